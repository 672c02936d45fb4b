/* store_approval.c — every SQL statement about approval gates, parameterized; row sets
 * travel as one jsonb parameter, as in store.c. Decisions are rare, so statements are
 * sent with PQexecParams rather than prepared. */
#include "store_approval.h"
#include "store_internal.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_status.h"
#include "util.h"

#define UNFINISHED RT_RUN_UNFINISHED_SQL

static rt_status exec(rt_store *st, const char *sql, int n, const char *const *params, PGresult **res,
                      rt_error *err)
{
    return rt_store_exec_params(st, sql, n, params, res, err, "approvals");
}

/* A statement returning one JSON text cell (NULL or no row: RT_ERR_NOT_FOUND). */
static rt_status exec_json(rt_store *st, const char *sql, int n, const char *const *params, json_t **out,
                           rt_error *err)
{
    PGresult *r = NULL;
    *out = NULL;
    rt_status s = exec(st, sql, n, params, &r, err);
    return s == RT_OK ? rt_store_result_json(r, out, err) : s;
}

static char *dump(const json_t *v)
{
    return json_dumps(v ? v : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
}

rt_status rt_store_approval_hold(rt_store *st, json_t *run_ids, json_t **out, rt_error *err)
{
    char *ids = dump(run_ids);
    if (!ids)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[] = {ids};
    rt_status s = exec(st,
                       "with ids as (select (jsonb_array_elements_text($1::jsonb))::uuid as id), "
                       "q as (delete from ratchet.queue where run_id" ANY_OF("select id from ids") "), "
                       "s as (delete from ratchet.steps where run_id" ANY_OF("select id from ids") " and status = 'pending') "
                       "update ratchet.runs set status = 'awaiting_approval', deadline = null, start_deadline = null "
                       "where id" ANY_OF("select id from ids"),
                       1, params, NULL, err);
    if (s == RT_OK)
        s = exec_json(st,
                      "select coalesce(jsonb_agg(jsonb_build_object('id', id, 'workflow', workflow_id,"
                      " 'workflow_hash', workflow_hash, 'event', event) order by id), '[]')::text "
                      "from ratchet.runs where id in (select (jsonb_array_elements_text($1::jsonb))::uuid)",
                      1, params, out, err);
    free(ids);
    return s;
}

rt_status rt_store_approval_insert(rt_store *st, json_t *gates, rt_error *err)
{
    if (json_array_size(gates) == 0)
        return RT_OK;
    char *text = dump(gates);
    if (!text)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[] = {text};
    rt_status s = exec(st,
                       "insert into ratchet.approvals (run_id, step_id, workflow_id, action_hash, approvers, initiator,"
                       " details, expires_at) "
                       "select x.run_id, x.step_id, x.workflow_id, x.action_hash, x.approvers, x.initiator, x.details,"
                       " case when x.expires_at > 0 then " TS("x.expires_at") " end "
                       "from jsonb_to_recordset($1::jsonb) as x(run_id uuid, step_id text, workflow_id text,"
                       " action_hash text, approvers jsonb, initiator jsonb, details jsonb, expires_at bigint) "
                       "on conflict (run_id, step_id) do nothing",
                       1, params, NULL, err);
    free(text);
    return s;
}

rt_status rt_store_approval_lock(rt_store *st, const char *run_id, const char *step_id, json_t **out, rt_error *err)
{
    if (!rt_uuid_valid(run_id))
        return rt_error_set(err, RT_ERR_NOT_FOUND, "not a run id");
    const char *params[] = {run_id, step_id ? step_id : ""};
    return exec_json(st,
                     "select jsonb_build_object('run_id', a.run_id, 'step_id', a.step_id, 'workflow_id', a.workflow_id,"
                     " 'action_hash', a.action_hash, 'approvers', a.approvers, 'initiator', a.initiator,"
                     " 'status', a.status, 'expires_at', ratchet.ts(a.expires_at),"
                     " 'expired', coalesce(a.expires_at <= clock_timestamp(), false), 'run_status', r.status,"
                     " 'step_status', s.status, 'workflow_hash', r.workflow_hash, 'priority', r.priority,"
                     " 'ckey', r.ckey, 'climit', r.climit, 'parent_run_id', r.parent_run_id,"
                     " 'parent_step_id', r.parent_step_id, 'event', r.event, 'trigger', r.trigger,"
                     " 'with', a.details->'with', 'requested_at', ratchet.ts(a.requested_at))::text "
                     "from ratchet.approvals a join ratchet.runs r on r.id = a.run_id"
                     " left join ratchet.steps s on s.run_id = a.run_id and s.step_id = a.step_id "
                     "where a.run_id = $1::uuid and a.step_id = $2 for update of a, r",
                     2, params, out, err);
}

rt_status rt_store_approval_use_nonce(rt_store *st, const char *approver, const char *nonce, const char *run_id,
                                      int64_t keep_ms, bool *fresh, rt_error *err)
{
    char keep[24];
    snprintf(keep, sizeof keep, "%lld", (long long)keep_ms);
    const char *p1[] = {keep};
    rt_status s = exec(st,
                       "delete from ratchet.approval_nonces where ctid" ANY_OF("select ctid from ratchet.approval_nonces"
                       " where used_at < now() - $1::bigint * interval '1 millisecond' limit 100"),
                       1, p1, NULL, err);
    const char *p2[] = {approver, nonce, rt_uuid_valid(run_id) ? run_id : NULL};
    PGresult *r = NULL;
    if (s == RT_OK)
        s = exec(st,
                 "insert into ratchet.approval_nonces (approver, nonce, run_id) values ($1, $2, $3::uuid)"
                 " on conflict do nothing returning 1",
                 3, p2, &r, err);
    if (s != RT_OK)
        return s;
    *fresh = PQntuples(r) == 1;
    PQclear(r);
    return RT_OK;
}

rt_status rt_store_approval_close(rt_store *st, const char *run_id, const char *step_id, const char *status,
                                  const char *decided_by, const char *comment, const json_t *decision,
                                  rt_error *err)
{
    char *d = decision ? dump(decision) : NULL;
    const char *params[] = {run_id, step_id ? step_id : "", status, decided_by, comment, d};
    rt_status s = exec(st,
                       "update ratchet.approvals set status = $3, decided_at = now(), decided_by = $4, comment = $5,"
                       " decision = $6::jsonb where run_id = $1::uuid and step_id = $2 and status = 'pending'",
                       6, params, NULL, err);
    free(d);
    return s;
}

rt_status rt_store_approval_release(rt_store *st, const char *run_id, int64_t timeout_ms, int64_t start_timeout_ms,
                                    json_t *steps, const json_t *trigger, int64_t run_at_ms, bool *released,
                                    rt_error *err)
{
    char to[24], sto[24], at[24];
    snprintf(to, sizeof to, "%lld", (long long)timeout_ms);
    snprintf(sto, sizeof sto, "%lld", (long long)start_timeout_ms);
    snprintf(at, sizeof at, "%lld", (long long)run_at_ms);
    char *trig = trigger ? dump(trigger) : NULL;
    const char *p1[] = {run_id, to, sto, trig};
    PGresult *r = NULL;
    *released = false;
    rt_status s = exec(st,
                       "update ratchet.runs set status = 'queued', trigger = coalesce($4::jsonb, trigger),"
                       " deadline = case when $2::bigint > 0 then now() + $2::bigint * interval '1 millisecond' end,"
                       " start_deadline = case when $3::bigint > 0 then now() + $3::bigint * interval '1 millisecond' end"
                       " where id = $1::uuid and status = 'awaiting_approval' returning 1",
                       4, p1, &r, err);
    free(trig);
    if (s != RT_OK)
        return s;
    *released = PQntuples(r) == 1;
    PQclear(r);
    if (!*released || json_array_size(steps) == 0)
        return RT_OK;
    char *text = dump(steps);
    if (!text)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *p2[] = {run_id, text, at};
    s = exec(st,
             "insert into ratchet.steps (run_id, step_id, status) "
             "select $1::uuid, x.step_id, 'pending' from jsonb_to_recordset($2::jsonb) as x(step_id text, slow boolean) "
             "on conflict do nothing",
             2, p2, NULL, err);
    if (s == RT_OK)
        s = exec(st,
                 "insert into ratchet.queue (run_id, step_id, priority, slow, run_at, ckey, climit) "
                 "select r.id, x.step_id, r.priority, x.slow, greatest(now(), " TS("$3::bigint") "), r.ckey, r.climit "
                 "from ratchet.runs r cross join jsonb_to_recordset($2::jsonb) as x(step_id text, slow boolean) "
                 "where r.id = $1::uuid on conflict (run_id, step_id) do nothing",
                 3, p2, NULL, err);
    free(text);
    if (s == RT_OK)
        s = rt_store_wake(st, err);
    return s;
}

rt_status rt_store_approval_end_run(rt_store *st, const char *run_id, const char *status, const char *error,
                                    const char *step_id, const json_t *output, json_t **ended, rt_error *err)
{
    *ended = NULL;
    const char *p1[] = {run_id, status, error};
    rt_status s = exec_json(st,
                            "update ratchet.runs r set status = $2, error = $3, finished_at = now()"
                            " where r.id = $1::uuid and r.status in " UNFINISHED
                            " returning jsonb_build_object('id', r.id, 'workflow', r.workflow_id, 'status', r.status,"
                            " 'error', r.error, 'parent_run_id', r.parent_run_id, 'parent_step_id', r.parent_step_id)::text",
                            3, p1, ended, err);
    if (s == RT_ERR_NOT_FOUND)
        return RT_OK; /* ended meanwhile */
    if (s != RT_OK)
        return s;
    if (step_id) {
        char *out = dump(output);
        const char *p2[] = {run_id, step_id, error, out};
        s = exec(st,
                 "update ratchet.steps set status = 'failed', error = $3, output = $4::jsonb, finished_at = now(),"
                 " state = null where run_id = $1::uuid and step_id = $2 and status = 'waiting'",
                 4, p2, NULL, err);
        free(out);
    }
    const char *p3[] = {run_id};
    /* SKIP LOCKED: an item a worker holds is dropped when it finds the run ended. */
    if (s == RT_OK)
        s = exec(st,
                 "delete from ratchet.queue where id" ANY_OF("select id from ratchet.queue where run_id = $1::uuid"
                 " and locked_by is null for update skip locked"),
                 1, p3, NULL, err);
    if (s != RT_OK) {
        json_decref(*ended);
        *ended = NULL;
    }
    return s;
}

rt_status rt_store_approval_close_runs(rt_store *st, json_t *run_ids, rt_error *err)
{
    if (json_array_size(run_ids) == 0)
        return RT_OK;
    char *text = dump(run_ids);
    if (!text)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[] = {text};
    rt_status s = exec(st,
                       "update ratchet.approvals set status = 'closed', decided_at = now()"
                       " where run_id in (select (jsonb_array_elements_text($1::jsonb))::uuid) and status = 'pending'",
                       1, params, NULL, err);
    free(text);
    return s;
}

rt_status rt_store_approval_due(rt_store *st, json_t **out, rt_error *err)
{
    return exec_json(st,
                     "select coalesce(jsonb_agg(jsonb_build_object('run_id', run_id, 'step_id', step_id,"
                     " 'workflow_id', workflow_id, 'expires_at', ratchet.ts(expires_at)) order by expires_at), '[]')::text"
                     " from (select run_id, step_id, workflow_id, expires_at from ratchet.approvals"
                     " where status = 'pending' and expires_at < now() order by expires_at limit 100"
                     " for update skip locked) t",
                     0, NULL, out, err);
}

rt_status rt_store_approval_pending(rt_store *st, const char *run_id, json_t **out, rt_error *err)
{
    if (run_id && !rt_uuid_valid(run_id))
        return rt_error_set(err, RT_ERR_INVALID, "\"%.64s\" is not a run id (expected a UUID)", run_id);
    const char *params[] = {run_id};
    return exec_json(st,
                     "select coalesce(jsonb_agg(jsonb_build_object('run_id', a.run_id, 'step_id', a.step_id,"
                     " 'workflow', a.workflow_id, 'workflow_hash', r.workflow_hash, 'run_status', r.status,"
                     " 'action_hash', a.action_hash,"
                     " 'approvers', a.approvers, 'actor', a.initiator, 'entity_id', r.entity_id, 'event', r.event,"
                     " 'details', a.details, 'requested_at', ratchet.ts(a.requested_at),"
                     " 'expires_at', ratchet.ts(a.expires_at)) order by a.requested_at, a.run_id, a.step_id), '[]')::text "
                     "from ratchet.approvals a join ratchet.runs r on r.id = a.run_id "
                     "where a.status = 'pending' and r.status in " UNFINISHED
                     " and ($1::uuid is null or a.run_id = $1::uuid)",
                     1, params, out, err);
}

rt_status rt_store_approval_outcome(rt_store *st, const char *event_id, json_t **out, rt_error *err)
{
    const char *params[] = {event_id};
    return exec_json(st,
                     "select jsonb_build_object('seq', seq, 'action', action, 'subject', subject,"
                     " 'details', details)::text from ratchet.audit_log"
                     " where action like 'approval.%' and details->>'event_id' = $1 order by seq limit 1",
                     1, params, out, err);
}
