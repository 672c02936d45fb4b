/* store_alerts.c — the alert checks' SQL (store_alerts.h), each statement prepared once
 * per connection and run with parameters. Only the SLA claim writes (a run's
 * sla_alerted_at): alert events are stored through ingest like every other event. */
#include "store_alerts.h"
#include "store_internal.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_status.h"

#define FINAL "('completed', 'partial', 'failed', 'cancelled', 'expired', 'timed_out', 'rejected')"
#define UNFINISHED RT_RUN_UNFINISHED_SQL

/* A claimed slow item's run_at is its lease's end, so run_at <= now() means runnable:
 * never claimed, or its lease expired (the worker died). */
static const char backlog_sql[] =
    "select d.n, coalesce(" MSF("now() - o.run_at") ", 0), o.run_id::text, o.step_id, r.workflow_id, " MSF("now()") " "
    "from (select count(*) n from ratchet.queue where run_at <= now()) d "
    "left join lateral (select run_at, run_id, step_id from ratchet.queue where run_at <= now()"
    " order by run_at, id limit 1) o on true "
    "left join ratchet.runs r on r.id = o.run_id";

static const char finished_sql[] =
    "select coalesce(jsonb_agg(jsonb_build_object('workflow', w, 'finished', n, 'failed', f)"
    " order by f desc, n desc, w), '[]')::text from ("
    " select workflow_id w, count(*) n, count(*) filter (where status in ('failed', 'timed_out')) f"
    " from ratchet.runs where finished_at >= now() - $1::bigint * interval '1 millisecond'"
    " and status in " FINAL " group by workflow_id) t";

/* From the queue (small) to the step and run rows by key: the steps table is not scanned. */
static const char long_steps_sql[] =
    "select coalesce(jsonb_agg(o order by started), '[]')::text from ("
    " select jsonb_build_object('run_id', q.run_id, 'step_id', q.step_id, 'workflow', r.workflow_id,"
    "  'attempt', s.attempts, 'worker', q.locked_by, 'running_ms', " MSF("now() - s.started_at") ","
    "  'step', (select d from jsonb_array_elements(v.definition->'steps') d where d->>'id' = q.step_id limit 1)) o,"
    "  s.started_at started"
    " from ratchet.queue q"
    " join ratchet.steps s on s.run_id = q.run_id and s.step_id = q.step_id"
    " join ratchet.runs r on r.id = q.run_id"
    " join ratchet.workflow_versions v on v.hash = r.workflow_hash"
    " where q.locked_by is not null and q.locked_until > now() and s.status = 'running'"
    " and s.started_at < now() - $1::bigint * interval '1 millisecond' and r.status in " UNFINISHED
    " order by s.started_at limit $2::int) t";

static const char recent_sql[] =
    "select exists (select 1 from ratchet.events where name = $1 and transport = 'engine'"
    " and received_at > now() - $2::bigint * interval '1 millisecond'"
    " and ($3::text is null or (envelope->'data'->>'run_id' = $3 and envelope->'data'->>'step_id' = $4"
    "  and envelope->'data'->>'attempt' = $5)))";

/* Unfinished runs (not waiting at their approval gate) of workflows $1 whose pinned
 * definition has an `sla`, counted from when they were due: their scheduled time, or the
 * approval of a gated run. Those past it and not yet alerted are claimed (SKIP LOCKED:
 * another process claims the others) and marked; the UPDATE re-checks the mark on the
 * newest row version, so a run is claimed once. From runs_by_status: unfinished runs only. */
static const char sla_claim_sql[] =
    "with cand as ("
    " select r.id, r.workflow_id, r.status, r.entity_id, r.sla_alerted_at, v.definition->>'sla' sla,"
    "  greatest(coalesce(r.scheduled_at, r.created_at), (select a.decided_at from ratchet.approvals a"
    "   where a.run_id = r.id and a.step_id = '')) since"
    " from ratchet.runs r join ratchet.workflow_versions v on v.hash = r.workflow_hash"
    " where r.status in " UNFINISHED " and r.status <> 'awaiting_approval' and r.workflow_id = any(array(select jsonb_array_elements_text($1::jsonb)))"
    "  and v.definition ? 'sla'"
    "), past as ("
    " select c.*, c.since + ratchet.duration_ms(c.sla) * interval '1 millisecond' due from cand c"
    " where c.since + ratchet.duration_ms(c.sla) * interval '1 millisecond' < now()"
    "), pick as ("
    " select r.id from ratchet.runs r join past p on p.id = r.id where p.sla_alerted_at is null"
    " order by p.due limit $2::int for update of r skip locked"
    "), upd as ("
    " update ratchet.runs r set sla_alerted_at = now() from pick where r.id = pick.id and r.sla_alerted_at is null"
    " returning r.id"
    ") "
    "select (select count(*) from past),"
    " (select coalesce(jsonb_agg(jsonb_build_object('run_id', p.id, 'workflow', p.workflow_id, 'status', p.status,"
    "  'entity_id', p.entity_id, 'sla', p.sla, 'sla_ms', ratchet.duration_ms(p.sla), 'since', ratchet.ts(p.since),"
    "  'due_at', ratchet.ts(p.due), 'late_ms', " MSF("now() - p.due") ") order by p.due), '[]')"
    "  from past p join upd u on u.id = p.id)::text";

static void copy_text(char *dst, size_t len, PGresult *r, int col)
{
    snprintf(dst, len, "%s", PQgetisnull(r, 0, col) ? "" : PQgetvalue(r, 0, col));
}

rt_status rt_store_alerts_backlog(rt_store *st, rt_alert_backlog *out, rt_error *err)
{
    PGresult *r = NULL;
    rt_status s = rt_store_exec_prepared(st, "alerts_backlog", backlog_sql, 0, NULL, &r, err);
    if (s != RT_OK)
        return rt_error_prefix(err, "queue backlog");
    memset(out, 0, sizeof *out);
    out->depth = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    out->oldest_age_ms = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    copy_text(out->run_id, sizeof out->run_id, r, 2);
    copy_text(out->step_id, sizeof out->step_id, r, 3);
    copy_text(out->workflow, sizeof out->workflow, r, 4);
    out->now_ms = strtoll(PQgetvalue(r, 0, 5), NULL, 10);
    PQclear(r);
    return RT_OK;
}

/* The one text column of the one row of r as a new JSON array. */
static rt_status json_result(PGresult *r, json_t **out, rt_error *err, const char *what)
{
    if (rt_store_result_json(r, out, err) != RT_OK || !json_is_array(*out)) {
        json_decref(*out);
        *out = NULL;
        return rt_error_set(err, RT_ERR_INTERNAL, "%s: unexpected result", what);
    }
    return RT_OK;
}

rt_status rt_store_alerts_finished(rt_store *st, int64_t window_ms, json_t **out, rt_error *err)
{
    char window[24];
    snprintf(window, sizeof window, "%lld", (long long)window_ms);
    const char *params[] = {window};
    PGresult *r = NULL;
    *out = NULL;
    if (rt_store_exec_prepared(st, "alerts_finished", finished_sql, 1, params, &r, err) != RT_OK)
        return rt_error_prefix(err, "finished runs");
    return json_result(r, out, err, "finished runs");
}

rt_status rt_store_alerts_long_steps(rt_store *st, int64_t min_running_ms, int limit, json_t **out, rt_error *err)
{
    char min[24], lim[16];
    snprintf(min, sizeof min, "%lld", (long long)min_running_ms);
    snprintf(lim, sizeof lim, "%d", limit);
    const char *params[] = {min, lim};
    PGresult *r = NULL;
    *out = NULL;
    if (rt_store_exec_prepared(st, "alerts_long_steps", long_steps_sql, 2, params, &r, err) != RT_OK)
        return rt_error_prefix(err, "running steps");
    return json_result(r, out, err, "running steps");
}

rt_status rt_store_alerts_lock(rt_store *st, const char *name, rt_error *err)
{
    const char *params[] = {name};
    PGresult *r = NULL;
    static const char sql[] = "select pg_advisory_xact_lock(hashtextextended('ratchet.alert:' || $1, 0))";
    if (rt_store_exec_prepared(st, "alerts_lock", sql, 1, params, &r, err) != RT_OK)
        return rt_error_prefix(err, "alert lock");
    PQclear(r);
    return RT_OK;
}

rt_status rt_store_alerts_recent(rt_store *st, const char *name, int64_t within_ms, const char *run_id,
                                 const char *step_id, int attempt, bool *found, rt_error *err)
{
    char within[24], att[16];
    snprintf(within, sizeof within, "%lld", (long long)within_ms);
    snprintf(att, sizeof att, "%d", attempt);
    const char *params[] = {name, within, run_id, run_id ? step_id : NULL, run_id ? att : NULL};
    PGresult *r = NULL;
    if (rt_store_exec_prepared(st, "alerts_recent", recent_sql, 5, params, &r, err) != RT_OK)
        return rt_error_prefix(err, "recent alerts");
    *found = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return RT_OK;
}

rt_status rt_store_alerts_sla_claim(rt_store *st, json_t *workflows, int limit, int64_t *past, json_t **out,
                                    rt_error *err)
{
    *out = NULL;
    *past = 0;
    char *ids = json_dumps(workflows, JSON_COMPACT);
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *params[] = {ids, lim};
    PGresult *r = NULL;
    rt_status s = ids ? rt_store_exec_prepared(st, "alerts_sla_claim", sla_claim_sql, 2, params, &r, err)
                      : rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    free(ids);
    if (s != RT_OK)
        return rt_error_prefix(err, "runs past their SLA");
    *past = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    *out = json_loads(PQgetvalue(r, 0, 1), 0, NULL);
    PQclear(r);
    if (!json_is_array(*out)) {
        json_decref(*out);
        *out = NULL;
        return rt_error_set(err, RT_ERR_INTERNAL, "runs past their SLA: unexpected result");
    }
    return RT_OK;
}
