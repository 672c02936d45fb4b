/* store_bench.c — the SQL of store_bench.h, for `ratchet bench scale` only. */
#include "store_bench.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Names share one namespace per connection with store.c's and the other modules'. */
#define FILL_STMT "rbench0"
#define COUNT_STMT "rbench1"

/* $1 workflow id, $2 its hash, $3 n, $4 the step ids (text[]). Ids are UUIDv7-shaped: the
 * creation time in ms in the first 48 bits (like rt_uuid7), so the primary key grows at
 * its right edge as it does in production, not at random places. */
static const char fill_sql[] =
    "with r as ("
    " insert into ratchet.runs (id, workflow_id, workflow_hash, status, trigger, event, priority, output,"
    "  created_at, started_at, finished_at) "
    " select encode(overlay(uuid_send(gen_random_uuid()) placing"
    "   substring(int8send((extract(epoch from t.at) * 1000)::bigint) from 3) from 1 for 6), 'hex')::uuid,"
    "  $1, $2, 'completed', '{\"type\": \"manual\"}'::jsonb, '{\"name\": \"ratchet.manual\", \"data\": {}}'::jsonb,"
    "  2, '0'::jsonb, t.at, t.at + interval '2 milliseconds', t.at + interval '4 milliseconds'"
    " from (select now() - interval '7 days' * (1 - g::double precision / $3::bigint) as at"
    "  from generate_series(1, $3::bigint) g) t"
    " returning id, started_at, finished_at) "
    "insert into ratchet.steps (run_id, step_id, status, attempts, output, started_at, finished_at) "
    "select r.id, s.id, 'completed', 1, '0'::jsonb, r.started_at, r.finished_at"
    " from r cross join unnest($4::text[]) as s(id)";

static const char count_sql[] = "select count(*) from ratchet.runs where workflow_id = $1 and status = $2";

rt_status rt_store_bench_fill_finished(rt_store *st, const rt_workflow *wf, int64_t n, rt_error *err)
{
    rt_status s = rt_store_put_workflow(st, wf, err);
    if (s != RT_OK)
        return s;
    size_t len = 3;
    for (size_t i = 0; i < wf->n_steps; i++)
        len += strlen(wf->steps[i].id) * 2 + 3;
    char *ids = malloc(len), *p = ids;
    if (!ids)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    *p++ = '{';
    for (size_t i = 0; i < wf->n_steps; i++) /* step ids are [a-z0-9._-]: no quoting needed */
        p += sprintf(p, i ? ",%s" : "%s", wf->steps[i].id);
    *p++ = '}';
    *p = '\0';
    char count[24];
    snprintf(count, sizeof count, "%lld", (long long)n);
    const char *params[] = {wf->id, wf->hash, count, ids};
    s = rt_store_exec_prepared(st, FILL_STMT, fill_sql, 4, params, NULL, err);
    free(ids);
    if (s == RT_OK)
        s = rt_store_exec_simple(st, "vacuum analyze ratchet.runs, ratchet.steps", err);
    return s;
}

rt_status rt_store_bench_count_runs(rt_store *st, const char *workflow_id, const char *status, int64_t *n,
                                    rt_error *err)
{
    const char *params[] = {workflow_id, status};
    PGresult *r = NULL;
    *n = 0;
    rt_status s = rt_store_exec_prepared(st, COUNT_STMT, count_sql, 2, params, &r, err);
    if (s == RT_OK)
        *n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return s;
}
