/* store_runs.c — the runs family: pinned definitions (workflow_versions), run creation, run
 * queries, cancel and deadlines. Statements in the table below; store.c prepares and runs them. */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_status.h"
#include "util.h"

const char *const rt_store_sql_runs[S_COUNT] = {
    [S_PUT_WORKFLOW] = "insert into ratchet.workflow_versions (hash, workflow_id, definition) "
                       "values ($1, $2, $3::jsonb) on conflict (hash) do nothing",
    [S_GET_DEFINITION] = "select definition from ratchet.workflow_versions where hash = $1",
    /* A batch of runs in one round trip: the run rows ($1), then steps ($2) and queue items
     * ($3) only for the runs that were inserted (a dedupe key seen before inserts nothing),
     * then the wake-up. The children's foreign keys are checked at the statement's end,
     * when the runs are there. */
    [S_CREATE_RUNS] =
        "with r as (insert into ratchet.runs (id, workflow_id, workflow_hash, status, trigger, event, entity_id,"
        " priority, scheduled_at, dedupe_key, deadline, start_deadline, ckey, climit, parent_run_id, parent_step_id,"
        " event_id) "
        "select x.id, x.workflow_id, x.workflow_hash, 'queued', x.trigger, x.event, x.event->>'entity_id',"
        " x.priority, case when x.run_at > 0 then " TS("x.run_at") " end, x.dedupe_key,"
        " case when x.timeout > 0 then coalesce(" TS("nullif(x.run_at, 0)") ", now()) + x.timeout * interval '1 millisecond' end,"
        " case when x.start_timeout > 0 then coalesce(" TS("nullif(x.run_at, 0)") ", now()) + x.start_timeout * interval '1 millisecond' end,"
        " x.ckey, x.climit, x.parent_run_id, x.parent_step_id, x.trigger->>'event_id' "
        "from jsonb_to_recordset($1::jsonb) as x(id uuid, workflow_id text, workflow_hash text, trigger jsonb,"
        " event jsonb, priority smallint, run_at bigint, dedupe_key text, timeout bigint, start_timeout bigint,"
        " ckey text, climit int, parent_run_id uuid, parent_step_id text) "
        "on conflict (workflow_id, dedupe_key) where dedupe_key is not null do nothing "
        "returning id), "
        "s as (insert into ratchet.steps (run_id, step_id, status) "
        " select x.run_id, x.step_id, 'pending' from jsonb_to_recordset($2::jsonb) as x(run_id uuid, step_id text)"
        " where x.run_id in (select id from r)), "
        "q as (insert into ratchet.queue (run_id, step_id, priority, slow, run_at, ckey, climit) "
        " select x.run_id, x.step_id, x.priority, x.slow,"
        " case when x.run_at > 0 then " TS("x.run_at") " else now() end, x.ckey, x.climit "
        " from jsonb_to_recordset($3::jsonb) as x(run_id uuid, step_id text, priority smallint, slow boolean,"
        " run_at bigint, ckey text, climit int) where x.run_id in (select id from r)) "
        "select r.id::text from r, (select case when $4::boolean then pg_notify('" RT_WAKE_CHANNEL "', '') end)"
        " as wake",
    [S_GET_RUN] = "select jsonb_build_object('id', r.id, 'workflow', r.workflow_id, 'version', r.workflow_hash,"
                  " 'status', r.status,"
                  " 'trigger', r.trigger, 'created_at', ratchet.ts(r.created_at),"
                  " 'started_at', ratchet.ts(r.started_at), 'finished_at', ratchet.ts(r.finished_at),"
                  " 'output', r.output, 'error', r.error)::text "
                  "from ratchet.runs r where r.id = $1::uuid",
    [S_GET_RUN_STEPS] =
        "select coalesce(jsonb_agg(jsonb_build_object('id', d.value->>'id', 'status', coalesce(s.status, 'pending'),"
        " 'attempts', coalesce(s.attempts, 0), 'output', s.output, 'error', s.error,"
        " 'started_at', ratchet.ts(s.started_at), 'finished_at', ratchet.ts(s.finished_at),"
        " 'progress', s.progress, 'progress_at', ratchet.ts(s.progress_at),"
        " 'failed_attempts', (select coalesce(jsonb_agg(jsonb_build_object('attempt', a.attempt, 'error', a.error,"
        "   'started_at', ratchet.ts(a.started_at), 'finished_at', ratchet.ts(a.finished_at)) order by a.attempt),"
        "   '[]') from ratchet.step_attempts a where a.run_id = r.id and a.step_id = d.value->>'id'))"
        " || case when d.value ? 'for_each' then jsonb_build_object('items_done', (select count(*)"
        "   from ratchet.step_items i where i.run_id = r.id and i.step_id = d.value->>'id')) else '{}' end"
        " order by d.ord), '[]')::text "
        "from ratchet.runs r join ratchet.workflow_versions v on v.hash = r.workflow_hash "
        "cross join jsonb_array_elements(v.definition->'steps') with ordinality as d(value, ord) "
        "left join ratchet.steps s on s.run_id = r.id and s.step_id = d.value->>'id' "
        "where r.id = $1::uuid",
    [S_LIST_RUNS] = "select coalesce(jsonb_agg(o order by c desc, i desc), '[]')::text from ("
                    " select jsonb_build_object('id', r.id, 'workflow', r.workflow_id, 'status', r.status,"
                    " 'trigger', r.trigger, 'created_at', ratchet.ts(r.created_at),"
                    " 'started_at', ratchet.ts(r.started_at), 'finished_at', ratchet.ts(r.finished_at),"
                    " 'output', r.output, 'error', r.error) o, r.created_at c, r.id i"
                    " from ratchet.runs r"
                    " where ($1::text is null or r.workflow_id = $1) and ($2::text is null or r.status = $2)"
                    " order by r.created_at desc, r.id desc limit $3::int) t",
    [S_ACTIVE_RUNS] = "select coalesce(jsonb_agg(jsonb_build_object('id', id, 'workflow', workflow_id,"
                      " 'event', event) order by id), '[]')::text from (select id, workflow_id, event"
                      " from ratchet.runs where workflow_id = any($1::text[]) and status in"
                      " " RT_RUN_UNFINISHED_SQL " order by id for update) t",
    [S_CANCEL_RUNS] = "update ratchet.runs r set status = 'cancelled', error = x.error, finished_at = now() "
                      "from jsonb_to_recordset($1::jsonb) as x(id uuid, error text) where r.id = x.id"
                      " and r.status in " RT_RUN_UNFINISHED_SQL,
    [S_CANCEL_QUEUE] = "delete from ratchet.queue where id" ANY_OF("select q.id from ratchet.queue q"
                       " where q.run_id = any(" JSON_KEYS("$1", "id", "uuid") ") and q.locked_by is null"
                       " for update of q skip locked"),
    /* In deadline order, the order of runs_deadlines: a pass reads the index up to its
     * RT_SWEEP_BATCH-th overdue run and sorts nothing (passes follow one another while they
     * are full, engine/run/executor.c). */
    [S_SWEEP_DEADLINES] =
        "with d as (select id from ratchet.runs"
        " where least(deadline, start_deadline) < now()"
        " and status in " RT_RUN_UNFINISHED_SQL
        " and (deadline < now() or (status = 'queued' and start_deadline < now()))"
        " and id <> all(" JSON_IDS("$1", "uuid") ")"
        " order by least(deadline, start_deadline) limit " SQL_INT(RT_SWEEP_BATCH) " for update skip locked"
        "), u as (update ratchet.runs r set"
        " status = case when r.deadline < now() then 'timed_out' else 'expired' end, finished_at = now(),"
        " error = case when r.deadline < now() then 'timed out: the workflow timeout passed'"
        "  else 'expired: not started before start_timeout' end"
        " from d where r.id = d.id"
        " returning r.id, r.workflow_id, r.status, r.error, r.parent_run_id, r.parent_step_id, r.event, r.trigger,"
        " r.created_at"
        "), q as (delete from ratchet.queue where id" ANY_OF("select q.id from ratchet.queue q"
        " where q.run_id = any(array(select id from u)) and q.locked_by is null for update of q skip locked") ") "
        "select coalesce(jsonb_agg(jsonb_build_object('id', u.id, 'workflow', u.workflow_id, 'status', u.status,"
        " 'error', u.error, 'parent_run_id', u.parent_run_id, 'parent_step_id', u.parent_step_id, 'event', u.event,"
        " 'trigger', u.trigger, 'created_ms', (extract(epoch from u.created_at) * 1000)::bigint)), '[]')::text from u",
    [S_RUN_SOURCE] = "select jsonb_build_object('workflow_hash', workflow_hash, 'workflow', workflow_id,"
                     " 'event', event, 'trigger', trigger, 'status', status)::text from ratchet.runs where id = $1::uuid",
};

rt_status rt_store_put_workflow(rt_store *st, const rt_workflow *wf, rt_error *err)
{
    for (size_t i = 0; i < st->n_known; i++)
        if (strcmp(st->known_hashes[i], wf->hash) == 0)
            return RT_OK;
    char *def = rt_json_canonical(wf->definition);
    if (!def)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[] = {wf->hash, wf->id, def};
    PGresult *r = NULL;
    rt_status s = rt_stmt_run(st, S_PUT_WORKFLOW, 3, params, &r, err);
    PQclear(r);
    free(def);
    /* Remember it only once surely committed: a rollback would undo the row while the
     * cache still claimed it. */
    if (s == RT_OK && PQtransactionStatus(st->conn) == PQTRANS_IDLE)
        rt_store_remember_hash(st, wf->hash);
    else if (s == RT_OK && st->n_pending < 8)
        memcpy(st->pending_hashes[st->n_pending++], wf->hash, 65);
    return s;
}

rt_status rt_store_get_definition(rt_store *st, const char *hash, json_t **def, rt_error *err)
{
    const char *params[] = {hash};
    PGresult *r = NULL;
    rt_status s = rt_stmt_run(st, S_GET_DEFINITION, 1, params, &r, err);
    if (s != RT_OK)
        return s;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return rt_error_set(err, RT_ERR_NOT_FOUND, "workflow version %.12s not found", hash);
    }
    json_error_t jerr;
    *def = json_loads(PQgetvalue(r, 0, 0), 0, &jerr);
    PQclear(r);
    if (!*def)
        return rt_error_set(err, RT_ERR_INTERNAL, "stored definition %.12s is not JSON: %s", hash, jerr.text);
    return RT_OK;
}

/* Inserts the run rows with their steps and queue items (S_CREATE_RUNS); requests whose
 * dedupe key existed get id "". */
static rt_status create_run_rows(rt_store *st, json_t *runs, json_t *steps, json_t *queue, rt_run_request *reqs,
                                 size_t n, rt_error *err)
{
    char *docs[3] = {json_dumps(runs, JSON_COMPACT), json_dumps(steps, JSON_COMPACT), json_dumps(queue, JSON_COMPACT)};
    const char *params[] = {docs[0], docs[1], docs[2], st->defer_wake ? "false" : "true"};
    PGresult *r = NULL;
    rt_status s = docs[0] && docs[1] && docs[2] ? RT_OK : rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    if (s == RT_OK)
        s = rt_stmt_run(st, S_CREATE_RUNS, 4, params, &r, err);
    for (int i = 0; i < 3; i++)
        free(docs[i]);
    if (s != RT_OK)
        return s;
    /* The rows usually come back in the requests' order (less the ones not made), so each
     * search starts where the last one matched: a batch of hundreds is then one walk, not a
     * square (any order is still matched right). */
    int rows = PQntuples(r), next = 0;
    for (size_t i = 0; i < n; i++) {
        bool made = false;
        for (int k = 0; k < rows && !made; k++) {
            int row = (next + k) % rows;
            made = strcmp(PQgetvalue(r, row, 0), reqs[i].id) == 0;
            if (made)
                next = row + 1;
        }
        if (!made)
            reqs[i].id[0] = '\0';
    }
    PQclear(r);
    return RT_OK;
}

bool rt_store_defer_wake(rt_store *st, bool defer)
{
    bool was = st->defer_wake;
    st->defer_wake = defer;
    return was;
}

rt_status rt_store_create_runs_tx(rt_store *st, rt_run_request *reqs, size_t n, rt_error *err)
{
    json_t *runs = json_array(), *steps = json_array(), *queue = json_array();
    rt_status s = RT_OK;
    for (size_t i = 0; i < n; i++) {
        rt_run_request *q = &reqs[i];
        rt_uuid7(q->id);
        char ckey[512];
        int climit = 0;
        bool has_ckey = rt_workflow_concurrency_key(q->wf, q->event, ckey, sizeof ckey, &climit);
        json_array_append_new(
            runs, json_pack("{s:s, s:s, s:s, s:O, s:O, s:i, s:I, s:s?, s:I, s:I, s:s?, s:i, s:s?, s:s?}", "id", q->id,
                            "workflow_id", q->wf->id, "workflow_hash", q->wf->hash, "trigger", q->trigger, "event",
                            q->event, "priority", (int)q->wf->priority, "run_at", (json_int_t)q->run_at_ms,
                            "dedupe_key", q->dedupe_key, "timeout", (json_int_t)q->wf->timeout_ms, "start_timeout",
                            (json_int_t)q->wf->start_timeout_ms, "ckey", has_ckey ? ckey : NULL, "climit", climit,
                            "parent_run_id", q->parent_run_id, "parent_step_id", q->parent_step_id));
        for (size_t k = 0; k < q->wf->n_steps; k++) {
            const rt_step_def *d = &q->wf->steps[k];
            /* Ready: not carried over (replay --from) and every need carried over. */
            if (json_object_get(q->prefill, d->id))
                continue;
            bool ready = true;
            for (size_t m = 0; m < d->n_needs && ready; m++)
                ready = json_object_get(q->prefill, q->wf->steps[d->need_idx[m]].id) != NULL;
            if (!ready)
                continue;
            /* A pending row for every ready step, root steps included: without it a
             * completion inserts the step row instead of updating it in place, and with 8
             * workers those inserts meet at the right edge of steps_pkey (run ids are
             * time-ordered): drained ~20 % slower although it wrote fewer WAL records. */
            json_array_append_new(steps, json_pack("{s:s, s:s}", "run_id", q->id, "step_id", d->id));
            json_array_append_new(queue, json_pack("{s:s, s:s, s:i, s:b, s:I, s:s?, s:i}", "run_id", q->id,
                                                   "step_id", d->id, "priority", (int)q->wf->priority, "slow",
                                                   !d->type->quick, "run_at", (json_int_t)q->run_at_ms, "ckey",
                                                   has_ckey ? ckey : NULL, "climit", climit));
        }
    }
    for (size_t i = 0; s == RT_OK && i < n; i++) {
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = reqs[k].wf == reqs[i].wf;
        if (!seen)
            s = rt_store_put_workflow(st, reqs[i].wf, err);
    }
    if (s == RT_OK)
        s = create_run_rows(st, runs, steps, queue, reqs, n, err);
    for (size_t i = 0; s == RT_OK && i < n; i++) {
        if (reqs[i].id[0]) /* counted when the transaction commits */
            rt_store_count_started(st, reqs[i].wf->id, 1);
    }
    if (s == RT_OK) {
        /* Memoized rows carried over by replay --from. */
        json_t *carried = json_array();
        for (size_t i = 0; i < n; i++) {
            const char *sid;
            json_t *row;
            if (!reqs[i].id[0])
                continue;
            json_object_foreach(reqs[i].prefill, sid, row) {
                json_array_append_new(carried, json_pack("{s:s, s:s, s:O, s:i, s:O?}", "run_id", reqs[i].id, "step_id",
                                                         sid, "status", json_object_get(row, "status"), "attempts", 0,
                                                         "output", json_object_get(row, "output")));
            }
        }
        s = rt_stmt_json(st, S_APPLY_STEPS, carried, NULL, err);
        json_decref(carried);
    }
    json_decref(runs);
    json_decref(steps);
    json_decref(queue);
    return s;
}

static rt_status get_run(rt_store *st, const char *id, bool with_steps, json_t **out, rt_error *err)
{
    if (!rt_uuid_valid(id))
        return rt_error_set(err, RT_ERR_INVALID, "\"%.64s\" is not a run id (expected a UUID)", id);
    const char *params[] = {id};
    rt_status s = rt_stmt_single_json(st, S_GET_RUN, 1, params, out, err);
    if (s == RT_ERR_NOT_FOUND)
        return rt_error_set(err, RT_ERR_NOT_FOUND, "run %s not found", id);
    if (s != RT_OK || !with_steps)
        return s;
    json_t *steps = NULL;
    s = rt_stmt_single_json(st, S_GET_RUN_STEPS, 1, params, &steps, err);
    if (s != RT_OK) {
        json_decref(*out);
        *out = NULL;
        return s;
    }
    json_object_set_new(*out, "steps", steps);
    return RT_OK;
}

/* jsonb orders keys by length; print them in the documented order instead. */
static json_t *in_order(json_t *o, const char *const *keys)
{
    json_t *r = json_object();
    for (size_t i = 0; keys[i]; i++) {
        json_t *v = json_object_get(o, keys[i]);
        if (v)
            json_object_set(r, keys[i], v);
    }
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        if (!json_object_get(r, k))
            json_object_set(r, k, v);
    }
    json_decref(o);
    return r;
}

static const char *const run_keys[] = {"id", "workflow", "status", "trigger", "created_at", "started_at",
                                       "finished_at", "output", "error", "steps", NULL};
static const char *const step_keys[] = {"id", "status", "attempts", "output", "error", "started_at",
                                        "finished_at", "failed_attempts", "items_done", NULL};

static json_t *run_in_order(json_t *run)
{
    json_t *steps = json_object_get(run, "steps");
    size_t i;
    json_t *st;
    json_array_foreach(steps, i, st) {
        json_array_set_new(steps, i, in_order(json_incref(st), step_keys));
    }
    return in_order(run, run_keys);
}

rt_status rt_store_get_run(rt_store *st, const char *id, bool with_steps, json_t **out, rt_error *err)
{
    rt_status s = get_run(st, id, with_steps, out, err);
    if (s == RT_OK)
        *out = run_in_order(*out);
    return s;
}

rt_status rt_store_list_runs(rt_store *st, const rt_run_filter *f, json_t **out, rt_error *err)
{
    char limit[16];
    snprintf(limit, sizeof limit, "%d", f->limit > 0 ? f->limit : 50);
    const char *params[] = {f->workflow, f->status, limit};
    rt_status s = rt_stmt_single_json(st, S_LIST_RUNS, 3, params, out, err);
    size_t i;
    json_t *run;
    if (s == RT_OK)
        json_array_foreach(*out, i, run) json_array_set_new(*out, i, run_in_order(json_incref(run)));
    return s;
}

rt_status rt_store_run_source(rt_store *st, const char *id, json_t **out, rt_error *err)
{
    if (!rt_uuid_valid(id))
        return rt_error_set(err, RT_ERR_INVALID, "\"%.64s\" is not a run id (expected a UUID)", id);
    const char *params[] = {id};
    rt_status s = rt_stmt_single_json(st, S_RUN_SOURCE, 1, params, out, err);
    if (s == RT_ERR_NOT_FOUND)
        return rt_error_set(err, RT_ERR_NOT_FOUND, "run %s not found", id);
    return s;
}

rt_status rt_store_run_event(rt_store *st, const char *run_id, json_t **out, rt_error *err)
{
    *out = NULL;
    if (!rt_uuid_valid(run_id))
        return rt_error_set(err, RT_ERR_NOT_FOUND, "not a run id");
    const char *params[] = {run_id};
    PGresult *r = NULL;
    rt_status s = rt_store_exec_params(st, "select event::text from ratchet.runs where id = $1::uuid", 1, params, &r,
                                       err, "run event");
    return s == RT_OK ? rt_store_result_json(r, out, err) : s;
}

rt_status rt_store_active_runs(rt_store *st, json_t *workflow_ids, json_t **out, rt_error *err)
{
    return rt_stmt_names_json(st, S_ACTIVE_RUNS, workflow_ids, out, err);
}

rt_status rt_store_cancel_runs(rt_store *st, json_t *runs, rt_error *err)
{
    rt_status s = rt_stmt_json(st, S_CANCEL_RUNS, runs, NULL, err);
    if (s == RT_OK)
        s = rt_stmt_json(st, S_CANCEL_QUEUE, runs, NULL, err);
    return s;
}

rt_status rt_store_sweep_deadlines(rt_store *st, json_t *skip, json_t **ended, rt_error *err)
{
    PGresult *r = NULL;
    rt_status s = rt_stmt_json_rows(st, S_SWEEP_DEADLINES, skip, &r, err);
    return s == RT_OK ? rt_store_result_json(r, ended, err) : s;
}
