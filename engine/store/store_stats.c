/* store_stats.c — the SQL of GET /api/v1/stats (store_stats.h): one prepared statement,
 * polled by every open dashboard every few seconds, so each part reads through an index
 * or a small table: the queue (transient), unfinished runs (runs_by_status) and runs
 * finished in the window (a finished_at range). */
#include "store_stats.h"
#include "store_internal.h"

#include <libpq-fe.h>
#include <stdio.h>

#include "run_status.h"
#include "workflow.h"

/* Its name shares one namespace per connection with store.c's and the other modules'. */
#define STATS_STMT "rstats0"

/* $1: the window in minutes. now() is the transaction's start, the same in every part.
 * json_build_object keeps the keys in the order written (jsonb would sort them). A
 * claimed slow item's run_at is its lease's end (store_queue.c), so an item is runnable when
 * run_at has passed, whether never claimed or its lease expired. */
static const char stats_sql[] =
    "with w as (select date_trunc('minute', now()) - ($1::int - 1) * interval '1 minute' as since),"
    " q as (select priority,"
    "   count(*) filter (where run_at <= now()) as runnable,"
    "   count(*) filter (where run_at > now() and locked_by is null) as scheduled,"
    "   count(*) filter (where run_at > now() and locked_by is not null) as leased,"
    "   min(run_at) filter (where run_at <= now()) as oldest"
    "  from ratchet.queue group by priority),"
    " a as (select status, count(*) as n from ratchet.runs"
    "  where status in " RT_RUN_UNFINISHED_SQL " group by status),"
    " f as (select date_trunc('minute', finished_at) as m, status, count(*) as n from ratchet.runs"
    "  where finished_at >= (select since from w) group by 1, 2),"
    " t as (select g.m,"
    "   coalesce(sum(f.n) filter (where f.status = 'completed'), 0) as completed,"
    "   coalesce(sum(f.n) filter (where f.status = 'failed'), 0) as failed,"
    "   coalesce(sum(f.n) filter (where f.status = 'cancelled'), 0) as cancelled,"
    "   coalesce(sum(f.n) filter (where f.status not in ('completed', 'failed', 'cancelled')), 0) as other"
    "  from generate_series((select since from w), date_trunc('minute', now()), interval '1 minute') as g(m)"
    "  left join f on f.m = g.m group by g.m) "
    "select json_build_object("
    " 'now', ratchet.ts(now()),"
    " 'queue', (select json_agg(json_build_object('priority', p.p, 'runnable', coalesce(q.runnable, 0),"
    "   'scheduled', coalesce(q.scheduled, 0), 'leased', coalesce(q.leased, 0)) order by p.p)"
    "   from generate_series(0, 3) as p(p) left join q on q.priority = p.p),"
    " 'oldest_runnable_age_s', coalesce((select extract(epoch from now() - min(oldest))::float8 from q), 0),"
    " 'active', (select json_object_agg(s.s, coalesce(a.n, 0) order by s.o)"
    "   from unnest(" RT_RUN_UNFINISHED_ARRAY ")"
    "   with ordinality as s(s, o) left join a on a.status = s.s),"
    " 'finished', (select json_object_agg(s.s, coalesce((select sum(f.n) from f where f.status = s.s), 0)"
    "   order by s.o) from unnest(array['completed', 'partial', 'failed', 'cancelled', 'expired', 'timed_out',"
    "   'rejected']) with ordinality as s(s, o)),"
    " 'minutes', $1::int,"
    " 'throughput', (select json_agg(json_build_object('t', ratchet.ts(t.m), 'completed', t.completed,"
    "   'failed', t.failed, 'cancelled', t.cancelled, 'other', t.other) order by t.m) from t))::text";

rt_status rt_store_stats(rt_store *st, int minutes, json_t **out, rt_error *err)
{
    *out = NULL;
    if (minutes < 1 || minutes > RT_STATS_MINUTES_MAX)
        return rt_error_set(err, RT_ERR_INVALID, "minutes=%d: expected 1 to %d", minutes, RT_STATS_MINUTES_MAX);
    char arg[16];
    snprintf(arg, sizeof arg, "%d", minutes);
    const char *params[] = {arg};
    PGresult *r = NULL;
    rt_status s = rt_store_exec_prepared(st, STATS_STMT, stats_sql, 1, params, &r, err);
    if (s != RT_OK)
        return s;
    json_t *doc = NULL;
    if (rt_store_result_json(r, &doc, err) != RT_OK || !json_is_object(doc)) {
        json_decref(doc);
        return rt_error_set(err, RT_ERR_INTERNAL, "reading stats: unexpected result from the database");
    }
    /* Priorities by name, as /metrics labels them. */
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(doc, "queue"), i, row) {
        json_int_t p = json_integer_value(json_object_get(row, "priority"));
        json_object_set_new(row, "priority", json_string(rt_priority_name((rt_priority)p)));
    }
    *out = doc;
    return RT_OK;
}
