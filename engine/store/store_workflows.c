/* store_workflows.c — the registry's SQL (see store_workflows.h), parameterized; row sets
 * come back as one JSON document built by the server. Only rt_store_wf_blocked is on a
 * hot path (every run creation): it is prepared. */
#include "store_workflows.h"
#include "store_internal.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A key of its own (store_schedules.c uses ...590, the migration lock ...588). */
#define WF_LOCK_KEY "7526411283428713630"

#define STATE_COLS                                                                                              \
    "workflow_id, hash, source, file, file_hash, removed, paused, ratchet.ts(paused_at) as paused_at, paused_by"

/* Runs sql and hands back the JSON in its first cell (a json_agg defaulting to []). */
static rt_status query_json(rt_store *st, const char *sql, int n, const char *const *params, json_t **out,
                            rt_error *err, const char *what)
{
    PGresult *r = NULL;
    rt_status s = rt_store_exec_params(st, sql, n, params, &r, err, what);
    if (s != RT_OK)
        return s;
    return rt_store_result_json(r, out, err);
}

static rt_status exec(rt_store *st, const char *sql, int n, const char *const *params, rt_error *err,
                      const char *what)
{
    PGresult *r = NULL;
    rt_status s = rt_store_exec_params(st, sql, n, params, &r, err, what);
    PQclear(r);
    return s;
}

rt_status rt_store_wf_lock(rt_store *st, rt_error *err)
{
    return exec(st, "select pg_advisory_xact_lock(" WF_LOCK_KEY ")", 0, NULL, err, "registry lock");
}

rt_status rt_store_wf_states(rt_store *st, json_t **out, rt_error *err)
{
    return query_json(st,
                      "select coalesce(json_agg(x order by x.workflow_id), '[]') from (select " STATE_COLS
                      " from ratchet.workflow_registry) x",
                      0, NULL, out, err, "reading the registry");
}

rt_status rt_store_wf_state(rt_store *st, const char *id, json_t **out, rt_error *err)
{
    const char *params[] = {id};
    rt_status s = query_json(st, "select row_to_json(x) from (select " STATE_COLS
                                 " from ratchet.workflow_registry where workflow_id = $1) x",
                             1, params, out, err, "reading the registry");
    if (s == RT_ERR_NOT_FOUND)
        return rt_error_set(err, RT_ERR_NOT_FOUND, "workflow \"%.128s\" is not registered", id);
    return s;
}

rt_status rt_store_wf_set_current(rt_store *st, const char *id, const char *hash, const char *source,
                                  const char *file, rt_error *err)
{
    const char *params[] = {id, hash, source, file};
    return exec(st,
                "insert into ratchet.workflow_registry as w (workflow_id, hash, source, file, file_hash) "
                "values ($1, $2, $3, $4, case when $3 = 'file' then $2 end) "
                "on conflict (workflow_id) do update set hash = excluded.hash, source = excluded.source,"
                " file = case when excluded.source = 'file' then excluded.file else w.file end,"
                " file_hash = case when excluded.source = 'file' then excluded.hash else w.file_hash end,"
                " removed = false, updated_at = now()",
                4, params, err, "storing the current version");
}

rt_status rt_store_wf_set_removed(rt_store *st, const char *id, bool forget_file, rt_error *err)
{
    const char *params[] = {id, forget_file ? "true" : "false"};
    return exec(st,
                "update ratchet.workflow_registry set removed = true, updated_at = now(),"
                " file_hash = case when $2::boolean then null else file_hash end where workflow_id = $1",
                2, params, err, "removing a workflow");
}

rt_status rt_store_wf_set_paused(rt_store *st, const char *id, bool paused, const char *actor, rt_error *err)
{
    const char *params[] = {id, paused ? "true" : "false", actor};
    return exec(st,
                "update ratchet.workflow_registry set paused = $2::boolean,"
                " paused_at = case when $2::boolean then now() end, paused_by = case when $2::boolean then $3 end,"
                " updated_at = now() where workflow_id = $1",
                3, params, err, "pausing a workflow");
}

rt_status rt_store_wf_change(rt_store *st, const char *id, const char *action, const char *hash, const char *source,
                             const char *actor, const json_t *details, rt_error *err)
{
    char *d = details ? json_dumps(details, JSON_COMPACT) : NULL;
    const char *params[] = {id, action, hash, source, actor, d};
    rt_status s = exec(st,
                       "insert into ratchet.workflow_changes (workflow_id, action, hash, source, actor, details) "
                       "values ($1, $2, $3, $4, $5, $6::jsonb)",
                       6, params, err, "recording a workflow change");
    free(d);
    return s;
}

rt_status rt_store_wf_changes(rt_store *st, const char *id, json_t **out, rt_error *err)
{
    const char *params[] = {id};
    return query_json(st,
                      "select coalesce(json_agg(x order by x.seq), '[]') from (select c.seq, c.action, c.hash, c.source,"
                      " c.actor, ratchet.ts(c.at) as at, c.details, v.definition from ratchet.workflow_changes c"
                      " left join ratchet.workflow_versions v on v.hash = c.hash and c.action = 'apply'"
                      " where c.workflow_id = $1) x",
                      1, params, out, err, "reading a workflow's history");
}

rt_status rt_store_wf_current(rt_store *st, json_t **out, rt_error *err)
{
    return query_json(st,
                      "select coalesce(json_agg(x order by x.workflow_id), '[]') from (select w.workflow_id, w.hash,"
                      " v.definition, w.paused from ratchet.workflow_registry w"
                      " join ratchet.workflow_versions v on v.hash = w.hash where not w.removed) x",
                      0, NULL, out, err, "reading the current workflows");
}

rt_status rt_store_wf_blocked(rt_store *st, json_t *ids, json_t **out, rt_error *err)
{
    static const char sql[] =
        "select coalesce(json_object_agg(workflow_id, case when removed then 'removed' else 'paused' end), '{}') "
        "from ratchet.workflow_registry where (paused or removed)"
        " and workflow_id in (select jsonb_array_elements_text($1::jsonb))";
    char *doc = json_dumps(ids, JSON_COMPACT);
    if (!doc)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[] = {doc};
    PGresult *r = NULL;
    rt_status s = rt_store_exec_prepared(st, "wfreg_blocked", sql, 1, params, &r, err);
    free(doc);
    if (s != RT_OK)
        return s;
    return rt_store_result_json(r, out, err);
}

rt_status rt_store_wf_hold(rt_store *st, json_t *rows, rt_error *err)
{
    if (json_array_size(rows) == 0)
        return RT_OK;
    char *doc = json_dumps(rows, JSON_COMPACT);
    if (!doc)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[] = {doc};
    rt_status s = exec(st,
                       "insert into ratchet.workflow_held as h (workflow_id, hold_key, trigger, event, run_at, dedupe_key,"
                       " parent_run_id, parent_step_id) "
                       "select x.workflow_id, x.hold_key, x.trigger, x.event,"
                       " case when x.run_at > 0 then to_timestamp(x.run_at::double precision / 1000) end,"
                       " x.dedupe_key, x.parent_run_id::uuid, x.parent_step_id "
                       "from jsonb_to_recordset($1::jsonb) as x(workflow_id text, hold_key text, trigger jsonb,"
                       " event jsonb, run_at bigint, dedupe_key text, parent_run_id text, parent_step_id text) "
                       "on conflict (workflow_id, hold_key) do update set trigger = excluded.trigger,"
                       " event = excluded.event, run_at = excluded.run_at, dedupe_key = excluded.dedupe_key,"
                       " held_at = now()",
                       1, params, err, "holding run requests");
    free(doc);
    return s;
}

rt_status rt_store_wf_take_held(rt_store *st, const char *id, json_t **out, rt_error *err)
{
    const char *params[] = {id};
    return query_json(st,
                      "with d as (delete from ratchet.workflow_held where workflow_id = $1 returning *) "
                      "select coalesce(json_agg(json_build_object('trigger', trigger, 'event', event, 'run_at',"
                      " coalesce(floor(extract(epoch from run_at) * 1000)::bigint, 0), 'dedupe_key', dedupe_key,"
                      " 'parent_run_id', parent_run_id, 'parent_step_id', parent_step_id) order by id), '[]') from d",
                      1, params, out, err, "taking held run requests");
}

rt_status rt_store_wf_list(rt_store *st, json_t **out, rt_error *err)
{
    return query_json(
        st,
        "select coalesce(json_agg(x order by x.id), '[]') from (select w.workflow_id as id, w.hash as version,"
        " w.source, w.file, not w.removed and coalesce(v.definition->'enabled' <> 'false'::jsonb, true) as enabled,"
        " w.removed, w.paused, ratchet.ts(w.paused_at) as paused_at, w.paused_by,"
        " coalesce(v.definition->'system' = 'true'::jsonb, false) as system,"
        " coalesce(v.definition->'triggers', '[]'::jsonb) as triggers, ratchet.ts(w.updated_at) as updated_at,"
        " (select json_build_object('id', r.id, 'status', r.status, 'created_at', ratchet.ts(r.created_at))"
        "   from ratchet.runs r where r.workflow_id = w.workflow_id order by r.created_at desc limit 1) as last_run,"
        " (select count(*) from ratchet.runs r where r.workflow_id = w.workflow_id and r.finished_at is null) as in_flight,"
        " (select count(*) from ratchet.workflow_held h where h.workflow_id = w.workflow_id) as held"
        " from ratchet.workflow_registry w left join ratchet.workflow_versions v on v.hash = w.hash) x",
        0, NULL, out, err, "listing workflows");
}

rt_status rt_store_wf_notify(rt_store *st, rt_error *err)
{
    return exec(st, "select pg_notify('" RT_WORKFLOWS_CHANNEL "', '')", 0, NULL, err, "notify");
}

rt_status rt_store_wf_propose(rt_store *st, const json_t *row, rt_error *err)
{
    char *doc = json_dumps(row, JSON_COMPACT);
    if (!doc)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[] = {doc};
    rt_status s = exec(st,
                       "insert into ratchet.workflow_proposals (id, workflow_id, action, definition, hash, base_hash,"
                       " on_resume, action_hash, requested_by, requester, entity_id) "
                       "select x.id::uuid, x.workflow_id, x.action, x.definition, x.hash, x.base_hash, x.on_resume,"
                       " x.action_hash, x.requested_by, x.requester, x.entity_id "
                       "from jsonb_to_record($1::jsonb) as x(id text, workflow_id text, action text, definition jsonb,"
                       " hash text, base_hash text, on_resume text, action_hash text, requested_by text,"
                       " requester text, entity_id text)",
                       1, params, err, "storing a proposal");
    free(doc);
    return s;
}

rt_status rt_store_wf_proposal_lock(rt_store *st, const char *id, json_t **out, rt_error *err)
{
    const char *params[] = {id};
    rt_status s = query_json(st,
                             "select row_to_json(p) from (select id, workflow_id, action, definition, hash, base_hash,"
                             " on_resume, action_hash, status, requested_by, requester, entity_id,"
                             " ratchet.ts(created_at) as created_at from ratchet.workflow_proposals"
                             " where id = $1::uuid for update) p",
                             1, params, out, err, "reading a proposal");
    if (s == RT_ERR_NOT_FOUND)
        return rt_error_set(err, RT_ERR_NOT_FOUND, "proposal %.64s not found", id);
    return s;
}

rt_status rt_store_wf_proposal_decide(rt_store *st, const char *id, const char *status, const char *approver,
                                      const char *comment, rt_error *err)
{
    const char *params[] = {id, status, approver, comment};
    return exec(st,
                "update ratchet.workflow_proposals set status = $2, decided_by = $3, comment = $4, decided_at = now()"
                " where id = $1::uuid",
                4, params, err, "deciding a proposal");
}

rt_status rt_store_wf_proposals_pending(rt_store *st, json_t **out, rt_error *err)
{
    return query_json(st,
                      "select coalesce(json_agg(p order by p.created_at), '[]') from (select w.id, w.workflow_id,"
                      " w.action, w.hash, w.base_hash, w.action_hash, w.requested_by, w.requester, w.entity_id,"
                      " ratchet.ts(w.created_at) as created_at, w.definition, b.definition as base_definition"
                      " from ratchet.workflow_proposals w left join ratchet.workflow_versions b on b.hash = w.base_hash"
                      " where w.status = 'awaiting_approval') p",
                      0, NULL, out, err, "listing proposals");
}
