/* store_wfstats.c — the SQL of the workflow health view (store_wfstats.h). The windows
 * read runs finished in the last 24 h through runs_by_finished (023), the last failure
 * through runs_failed_by_workflow (042), unfinished runs through runs_by_status. */
#include "store_wfstats.h"
#include "store_internal.h"

#include <libpq-fe.h>
#include <stdlib.h>

#include "run_status.h"

#define FAILED "('failed', 'timed_out')"
#define WINDOW(sfx)                                                                                              \
    "jsonb_build_object('runs', coalesce(a.n" sfx ", 0), 'completed', coalesce(a.ok" sfx ", 0),"              \
    " 'failed', coalesce(a.bad" sfx ", 0), 'cancelled', coalesce(a.can" sfx ", 0),"                           \
    " 'other', coalesce(a.n" sfx " - a.ok" sfx " - a.bad" sfx " - a.can" sfx ", 0),"                          \
    " 'success_rate', case when a.n" sfx " - a.can" sfx " > 0"                                                 \
    "  then round(a.ok" sfx "::numeric / (a.n" sfx " - a.can" sfx "), 4) end,"                                 \
    " 'p50_s', round(a.p50" sfx "::numeric, 3), 'p95_s', round(a.p95" sfx "::numeric, 3))"
#define AGG(sfx, cond)                                                                                           \
    " count(*) filter (where " cond ") n" sfx ","                                                              \
    " count(*) filter (where " cond " and status = 'completed') ok" sfx ","                                    \
    " count(*) filter (where " cond " and status in " FAILED ") bad" sfx ","                                   \
    " count(*) filter (where " cond " and status = 'cancelled') can" sfx ","                                   \
    " percentile_cont(0.5) within group (order by d) filter (where " cond ") p50" sfx ","                       \
    " percentile_cont(0.95) within group (order by d) filter (where " cond ") p95" sfx

static const char stats_sql[] =
    "with f as ("
    " select workflow_id w, status, extract(epoch from finished_at - started_at) d,"
    "  finished_at >= now() - interval '1 hour' recent"
    " from ratchet.runs where finished_at >= now() - interval '24 hours' and finished_at is not null"
    "), a as ("
    " select w," AGG("1", "recent") "," AGG("24", "true") " from f group by w"
    "), act as ("
    " select workflow_id w, count(*) n from ratchet.runs where status in " RT_RUN_UNFINISHED_SQL " group by 1"
    "), sch as ("
    " select s.workflow_id w, min(s.next_fire_at) filter (where s.enabled) nf,"
    "  bool_or(p.workflow_id is not null) paused"
    " from ratchet.schedules s left join ratchet.schedule_pauses p on p.workflow_id = s.workflow_id group by 1"
    "), ids as ("
    " select w from a union select w from act union select w from sch"
    " union select jsonb_array_elements_text($1::jsonb)"
    ") "
    "select jsonb_build_object('now', ratchet.ts(now()), 'workflows', coalesce(jsonb_agg(jsonb_build_object("
    " 'workflow', ids.w, 'windows', jsonb_build_object('1h', " WINDOW("1") ", '24h', " WINDOW("24") "),"
    " 'active', coalesce(act.n, 0),"
    " 'last_failure', (select jsonb_build_object('run_id', r.id, 'status', r.status, 'error', r.error,"
    "   'finished_at', ratchet.ts(r.finished_at)) from ratchet.runs r"
    "   where r.workflow_id = ids.w and r.status in " FAILED " order by r.finished_at desc limit 1),"
    " 'next_fire_at', ratchet.ts(sch.nf), 'schedule_paused', coalesce(sch.paused, false)"
    ") order by ids.w), '[]'::jsonb))::text "
    "from ids left join a on a.w = ids.w left join act on act.w = ids.w left join sch on sch.w = ids.w";

rt_status rt_store_workflow_stats(rt_store *st, json_t *workflows, json_t **out, rt_error *err)
{
    *out = NULL;
    char *ids = json_dumps(workflows, JSON_COMPACT);
    if (!ids)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[] = {ids};
    PGresult *r = NULL;
    rt_status s = rt_store_exec_prepared(st, "wfstats", stats_sql, 1, params, &r, err);
    free(ids);
    if (s != RT_OK)
        return rt_error_prefix(err, "workflow stats");
    s = rt_store_result_json(r, out, err);
    if (s == RT_OK && !json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return rt_error_set(err, RT_ERR_INTERNAL, "workflow stats: unexpected result");
    }
    return s;
}
