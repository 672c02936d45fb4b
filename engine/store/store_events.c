/* store_events.c — the events family: stored events, wait_for_event waits and their matching,
 * and the outbox of events the engine made. Statements in the table below; store.c prepares
 * and runs them. */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const rt_store_sql_events[S_COUNT] = {
    /* In id order: batches stored at once by several consumers that share an id (a
     * redelivery) wait for each other instead of deadlocking. */
    [S_INSERT_EVENTS] =
        "insert into ratchet.events (id, name, ts, envelope, transport, outbox) "
        "select x.id, x.name, " TS("x.ts") ", x.envelope, x.transport, x.transport = 'engine' "
        "from jsonb_to_recordset($1::jsonb) as x(id text, name text, ts bigint, envelope jsonb, transport text) "
        "order by x.id on conflict (id) do nothing returning id",
    [S_LIST_EVENTS] =
        "select coalesce(jsonb_agg(o order by rcv desc, eid desc), '[]')::text from ("
        " select jsonb_build_object('id', e.id, 'name', e.name, 'ts', ratchet.ts(e.ts),"
        "  'received_at', ratchet.ts(e.received_at), 'transport', e.transport,"
        "  'actor', e.envelope->'actor', 'entity_id', e.envelope->'entity_id', 'data', e.envelope->'data',"
        "  'runs', (select coalesce(jsonb_agg(jsonb_build_object('id', r.id, 'workflow', r.workflow_id,"
        "   'status', r.status) order by r.workflow_id), '[]') from ratchet.runs r where r.event_id = e.id)"
        " ) o, e.received_at rcv, e.id eid from ratchet.events e"
        " where ($1::text is null or e.name = $1) order by e.received_at desc, e.id desc limit $2::int) t",
    /* Ingest (shared) and wait registration (exclusive) serialize per event name. */
    [S_LOCK_EVENT_NAMES_SHARED] = "select count(pg_advisory_xact_lock_shared(hashtext('ratchet.event:' || n)))"
                                  " from (select distinct unnest($1::text[]) n order by 1) t",
    [S_LOCK_EVENT_NAMES] = "select count(pg_advisory_xact_lock(hashtext('ratchet.event:' || n)))"
                           " from (select distinct unnest($1::text[]) n order by 1) t",
    [S_EVENTS_SINCE] = "select coalesce(jsonb_agg(envelope order by received_at, id), '[]')::text from ("
                       " select envelope, received_at, id from ratchet.events where name = any($1::text[])"
                       " and received_at >= " TS("$2::bigint") " order by received_at, id limit 1000) t",
    [S_INSERT_WAITS] = "insert into ratchet.waits (run_id, step_id, name, if_expr) "
                       "select x.run_id, x.step_id, x.name, x.if_expr "
                       "from jsonb_to_recordset($1::jsonb) as x(run_id uuid, step_id text, name text, if_expr text) "
                       "on conflict do nothing",
    /* SKIP LOCKED: a wait an ingest is matching right now is deleted by that ingest. */
    [S_APPLY_UNWAIT] = "delete from ratchet.waits where ctid" ANY_OF("select w.ctid from ratchet.waits w"
                       " join jsonb_to_recordset($1::jsonb) as x(run_id uuid, step_id text)"
                       " on w.run_id = x.run_id and w.step_id = x.step_id for update of w skip locked"),
    [S_FIND_WAITS] = "select coalesce(jsonb_agg(jsonb_build_object('run_id', w.run_id, 'step_id', w.step_id,"
                     " 'name', w.name, 'if', w.if_expr, 'event', r.event, 'workflow', r.workflow_id)"
                     " order by w.created_at, w.run_id), '[]')::text"
                     " from ratchet.waits w join ratchet.runs r on r.id = w.run_id where w.name = any($1::text[])",
    [S_MATCH_WAITS_DELETE] = "with d as (delete from ratchet.waits w"
                             " using jsonb_to_recordset($1::jsonb) as x(run_id uuid, step_id text)"
                             " where w.run_id = x.run_id and w.step_id = x.step_id returning w.run_id, w.step_id) "
                             "select coalesce(jsonb_agg(distinct jsonb_build_object('run_id', d.run_id,"
                             " 'step_id', d.step_id)), '[]')::text from d",
    [S_MATCH_WAITS_STEPS] = "update ratchet.steps s set state = coalesce(s.state, '{}'::jsonb)"
                            " || jsonb_build_object('matched', x.envelope) "
                            "from jsonb_to_recordset($1::jsonb) as x(run_id uuid, step_id text, envelope jsonb) "
                            "where s.run_id = x.run_id and s.step_id = x.step_id and s.status = 'waiting'",
    [S_MATCH_WAITS_QUEUE] = "update ratchet.queue q set run_at = " RT_DUE_NOW_SQL " "
                            "from jsonb_to_recordset($1::jsonb) as x(run_id uuid, step_id text) "
                            "where q.run_id = x.run_id and q.step_id = x.step_id and q.locked_by is null"
                            " and q.run_id = any(" JSON_KEYS("$1", "run_id", "uuid") ")",
    [S_OUTBOX_TAKE] = "select coalesce(jsonb_agg(jsonb_build_object('id', id, 'name', name, 'envelope', envelope)"
                      " order by received_at), '[]')::text from (select id, name, envelope, received_at"
                      " from ratchet.events where outbox order by received_at limit $1::int for update skip locked) t",
    [S_OUTBOX_DONE] = "update ratchet.events set outbox = false where id = any($1::text[])",
};

rt_status rt_store_insert_events(rt_store *st, json_t *events, json_t **inserted, rt_error *err)
{
    *inserted = json_array();
    if (json_array_size(events) == 0)
        return RT_OK;
    PGresult *r = NULL;
    rt_status s = rt_stmt_json_rows(st, S_INSERT_EVENTS, events, &r, err);
    if (s != RT_OK)
        return s;
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(*inserted, json_string(PQgetvalue(r, i, 0)));
    PQclear(r);
    return RT_OK;
}

rt_status rt_store_events_existing(rt_store *st, json_t *ids, json_t **out, rt_error *err)
{
    *out = NULL;
    char *text = json_dumps(ids, JSON_COMPACT);
    if (!text)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[] = {text};
    PGresult *r = NULL;
    rt_status s = rt_store_exec_params(st,
                                       "select coalesce(jsonb_agg(id), '[]')::text from ratchet.events"
                                       " where id in (select jsonb_array_elements_text($1::jsonb))",
                                       1, params, &r, err, "events");
    free(text);
    return s == RT_OK ? rt_store_result_json(r, out, err) : s;
}

rt_status rt_store_list_events(rt_store *st, const char *name, int limit, json_t **out, rt_error *err)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit > 0 ? limit : 50);
    const char *params[] = {name, lim};
    return rt_stmt_single_json(st, S_LIST_EVENTS, 2, params, out, err);
}

rt_status rt_store_lock_event_names(rt_store *st, json_t *names, bool exclusive, rt_error *err)
{
    if (json_array_size(names) == 0)
        return RT_OK;
    char *arr = NULL;
    if (rt_sql_names_literal(names, &arr) != RT_OK)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[] = {arr};
    PGresult *r = NULL;
    rt_status s = rt_stmt_run(st, exclusive ? S_LOCK_EVENT_NAMES : S_LOCK_EVENT_NAMES_SHARED, 1, params, &r, err);
    PQclear(r);
    free(arr);
    return s;
}

rt_status rt_store_events_since(rt_store *st, json_t *names, int64_t from_ms, json_t **out, rt_error *err)
{
    char *arr = NULL;
    if (rt_sql_names_literal(names, &arr) != RT_OK)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    char from[24];
    snprintf(from, sizeof from, "%lld", (long long)from_ms);
    const char *params[] = {arr, from};
    rt_status s = rt_stmt_single_json(st, S_EVENTS_SINCE, 2, params, out, err);
    free(arr);
    return s;
}

rt_status rt_store_insert_waits(rt_store *st, json_t *waits, rt_error *err)
{
    return rt_stmt_json(st, S_INSERT_WAITS, waits, NULL, err);
}

rt_status rt_store_find_waits(rt_store *st, json_t *names, json_t **out, rt_error *err)
{
    return rt_stmt_names_json(st, S_FIND_WAITS, names, out, err);
}

rt_status rt_store_match_waits(rt_store *st, json_t *matched, int *woken, rt_error *err)
{
    *woken = 0;
    if (json_array_size(matched) == 0)
        return RT_OK;
    char *text = json_dumps(matched, JSON_COMPACT);
    const char *params[] = {text};
    json_t *taken = NULL;
    rt_status s = rt_stmt_single_json(st, S_MATCH_WAITS_DELETE, 1, params, &taken, err);
    free(text);
    if (s != RT_OK)
        return s;
    /* Only the waits this transaction deleted are ours to wake. */
    json_t *ours = json_array();
    size_t i, k;
    json_t *m, *t;
    json_array_foreach(matched, i, m) {
        json_array_foreach(taken, k, t) {
            if (json_equal(json_object_get(m, "run_id"), json_object_get(t, "run_id")) &&
                json_equal(json_object_get(m, "step_id"), json_object_get(t, "step_id"))) {
                json_array_append(ours, m);
                break;
            }
        }
    }
    s = rt_stmt_json(st, S_MATCH_WAITS_STEPS, ours, NULL, err);
    if (s == RT_OK)
        s = rt_stmt_json(st, S_MATCH_WAITS_QUEUE, ours, NULL, err);
    if (s == RT_OK && json_array_size(ours) > 0)
        s = rt_store_wake(st, err);
    *woken = (int)json_array_size(ours);
    json_decref(ours);
    json_decref(taken);
    return s;
}

rt_status rt_store_outbox_take(rt_store *st, int limit, json_t **out, rt_error *err)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *params[] = {lim};
    return rt_stmt_single_json(st, S_OUTBOX_TAKE, 1, params, out, err);
}

rt_status rt_store_outbox_done(rt_store *st, json_t *ids, rt_error *err)
{
    if (json_array_size(ids) == 0)
        return RT_OK;
    char *arr = NULL;
    if (rt_sql_names_literal(ids, &arr) != RT_OK) /* ids made by the engine: no quotes or commas */
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[] = {arr};
    PGresult *r = NULL;
    rt_status s = rt_stmt_run(st, S_OUTBOX_DONE, 1, params, &r, err);
    PQclear(r);
    free(arr);
    return s;
}
