/* store_admission.c — every SQL statement of run admission, each prepared once per
 * connection (rt_store_exec_prepared remembers which, and forgets on a reconnect) and run
 * with parameters, as in store.c. */
#include "store_admission.h"
#include "store_internal.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_status.h"

typedef enum adm_stmt {
    A_LOCK,
    A_NOW,
    A_IDEM_TAKE,
    A_IDEM_HOLDER,
    A_IDEM_FINISH,
    A_IDEM_RELEASE,
    A_IDEM_EXPIRE,
    A_SINGLETON,
    A_PENDING_RUN,
    A_PENDING_ITEMS,
    A_PENDING_UPDATE,
    A_THROTTLE,
    A_COUNT
} adm_stmt;

#define UNFINISHED RT_RUN_UNFINISHED_SQL

static const char *const sql[A_COUNT] = {
    /* Sorted, so that every admission takes its locks in the same order. */
    [A_LOCK] = "select count(pg_advisory_xact_lock(hashtextextended('ratchet.admission:' || k, 0)))"
               " from (select distinct jsonb_array_elements_text($1::jsonb) k order by 1) t",
    [A_NOW] = "select " MS("clock_timestamp()"),
    /* A row older than 24 h is taken over; a live one is left alone (and locked). */
    [A_IDEM_TAKE] = "insert into ratchet.idempotency_keys as k (workflow_id, key, run_id, created_at)"
                    " values ($1, $2, null, clock_timestamp())"
                    " on conflict (workflow_id, key) do update set run_id = null, created_at = excluded.created_at"
                    " where k.created_at <= excluded.created_at - interval '24 hours' returning 1",
    [A_IDEM_HOLDER] = "select coalesce(run_id::text, ''), " MS("created_at")
                      " from ratchet.idempotency_keys where workflow_id = $1 and key = $2",
    [A_IDEM_FINISH] = "update ratchet.idempotency_keys k set run_id = x.run_id"
                      " from jsonb_to_recordset($1::jsonb) as x(workflow_id text, key text, run_id uuid)"
                      " where k.workflow_id = x.workflow_id and k.key = x.key and x.run_id is not null",
    [A_IDEM_RELEASE] = "delete from ratchet.idempotency_keys k"
                       " using jsonb_to_recordset($1::jsonb) as x(workflow_id text, key text, run_id uuid)"
                       " where k.workflow_id = x.workflow_id and k.key = x.key and x.run_id is null"
                       " and k.run_id is null",
    [A_IDEM_EXPIRE] = "delete from ratchet.idempotency_keys where ctid" ANY_OF("select ctid from ratchet.idempotency_keys"
                      " where workflow_id = $1 and created_at < clock_timestamp() - interval '24 hours'"
                      " limit 50 for update skip locked"),
    [A_SINGLETON] = "select coalesce(jsonb_agg(jsonb_build_object('id', id, 'status', status, 'actor', event->'actor',"
                    " 'entity_id', event->'entity_id') order by id), '[]')::text"
                    " from (select id, status, event from ratchet.runs where workflow_id = $1"
                    " and trigger #>> '{admission,singleton}' = $2 and status in " UNFINISHED
                    " order by id for update) t",
    [A_PENDING_RUN] = "select id::text, trigger::text, coalesce(" MS("scheduled_at") ", 0), " MS("clock_timestamp()")
                      " from ratchet.runs where workflow_id = $1 and trigger #>> '{admission,pending}' = $2"
                      " and status = 'queued' order by created_at desc limit 1 for update",
    /* SKIP LOCKED: an item a worker holds (a quick claim in progress) is not counted as
     * idle, so the run counts as started. The idle ones stay locked until commit. */
    [A_PENDING_ITEMS] =
        "select (select count(*) from ratchet.queue where run_id = $1::uuid),"
        " (select count(*) from (select 1 from ratchet.queue where run_id = $1::uuid and locked_by is null"
        "  and run_at > clock_timestamp() for update skip locked) t),"
        " (select count(*) from ratchet.steps where run_id = $1::uuid and status <> 'pending'),"
        " " MS("clock_timestamp()"),
    /* Deadlines (workflow timeout, start_timeout) were set from the first due time: they
     * move with it. A null $2 keeps the event. */
    [A_PENDING_UPDATE] =
        "with r as (update ratchet.runs set event = coalesce($2::jsonb, event),"
        " entity_id = case when $2::jsonb is null then entity_id else $2::jsonb ->> 'entity_id' end,"
        " trigger = $3::jsonb,"
        " deadline = deadline + (" TS("$4::bigint") " - coalesce(scheduled_at, created_at)),"
        " start_deadline = start_deadline + (" TS("$4::bigint") " - coalesce(scheduled_at, created_at)),"
        " scheduled_at = " TS("$4::bigint") " where id = $1::uuid returning id) "
        "update ratchet.queue q set run_at = " TS("$4::bigint") " from r where q.run_id = r.id and q.locked_by is null"
        " and q.run_id = $1::uuid",
    /* GCRA: s = max(t, TAT - T - tolerance) after TAT' = max(t, TAT) + T, where t is the
     * request time ("seen"); the row lock of the upsert serializes concurrent requests. */
    [A_THROTTLE] =
        "insert into ratchet.throttles as t (workflow_id, key, tat, seen)"
        " select $1, $2, c.at + $3::double precision * interval '1 millisecond', c.at"
        " from (select greatest(clock_timestamp(), " TS("$5::bigint") ") as at) c"
        " on conflict (workflow_id, key) do update"
        " set tat = greatest(excluded.seen, t.tat) + $3::double precision * interval '1 millisecond',"
        " seen = excluded.seen"
        " returning ceil(extract(epoch from greatest(seen, tat - ($3::double precision + $4::double precision)"
        " * interval '1 millisecond')) * 1000)::bigint,"
        /* rounded the same way as the slot: a first request is due at once, not 1 ms later */
        " ceil(extract(epoch from seen) * 1000)::bigint",
};

/* Statement names carry this module's prefix: they share one namespace per connection
 * with store.c's and the other store_<x>.c modules'. */
static void stmt_name(char name[16], adm_stmt id)
{
    snprintf(name, 16, "radm%d", (int)id);
}

/* Runs a statement; *res (may be NULL when the rows are not wanted) must be PQclear'ed. */
static rt_status run(rt_store *st, adm_stmt id, int n, const char *const *params, PGresult **res, rt_error *err)
{
    char name[16];
    stmt_name(name, id);
    return rt_store_exec_prepared(st, name, sql[id], n, params, res, err);
}

static rt_status run_json(rt_store *st, adm_stmt id, json_t *doc, rt_error *err)
{
    char name[16];
    stmt_name(name, id);
    return rt_store_exec_json(st, name, sql[id], doc, err);
}

rt_status rt_store_admission_lock(rt_store *st, json_t *keys, rt_error *err)
{
    return run_json(st, A_LOCK, keys, err);
}

rt_status rt_store_admission_now(rt_store *st, int64_t *now_ms, rt_error *err)
{
    PGresult *r = NULL;
    rt_status s = run(st, A_NOW, 0, NULL, &r, err);
    if (s != RT_OK)
        return s;
    *now_ms = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return RT_OK;
}

rt_status rt_store_idempotency_take(rt_store *st, const char *workflow_id, const char *key, bool *taken,
                                    char *holder, int64_t *since_ms, rt_error *err)
{
    const char *params[] = {workflow_id, key};
    PGresult *r = NULL;
    *taken = false;
    holder[0] = '\0';
    *since_ms = 0;
    rt_status s = run(st, A_IDEM_TAKE, 2, params, &r, err);
    if (s != RT_OK)
        return s;
    *taken = PQntuples(r) == 1;
    PQclear(r);
    if (*taken)
        return RT_OK;
    r = NULL;
    s = run(st, A_IDEM_HOLDER, 2, params, &r, err);
    if (s != RT_OK)
        return s;
    if (PQntuples(r) == 1) {
        snprintf(holder, 37, "%s", PQgetvalue(r, 0, 0));
        *since_ms = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    }
    PQclear(r);
    return RT_OK;
}

rt_status rt_store_idempotency_finish(rt_store *st, json_t *rows, rt_error *err)
{
    rt_status s = run_json(st, A_IDEM_FINISH, rows, err);
    if (s == RT_OK)
        s = run_json(st, A_IDEM_RELEASE, rows, err);
    return s;
}

rt_status rt_store_idempotency_expire(rt_store *st, const char *workflow_id, rt_error *err)
{
    const char *params[] = {workflow_id};
    return run(st, A_IDEM_EXPIRE, 1, params, NULL, err);
}

rt_status rt_store_singleton_runs(rt_store *st, const char *workflow_id, const char *key, json_t **runs,
                                  rt_error *err)
{
    const char *params[] = {workflow_id, key};
    PGresult *r = NULL;
    *runs = NULL;
    rt_status s = run(st, A_SINGLETON, 2, params, &r, err);
    return s == RT_OK ? rt_store_result_json(r, runs, err) : s;
}

void rt_pending_run_clear(rt_pending_run *p)
{
    json_decref(p->trigger);
    memset(p, 0, sizeof *p);
}

rt_status rt_store_pending_find(rt_store *st, const char *workflow_id, const char *pending_key, rt_pending_run *out,
                                rt_error *err)
{
    memset(out, 0, sizeof *out);
    const char *params[] = {workflow_id, pending_key};
    PGresult *r = NULL;
    rt_status s = run(st, A_PENDING_RUN, 2, params, &r, err);
    if (s != RT_OK)
        return s;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return rt_store_admission_now(st, &out->now_ms, err);
    }
    snprintf(out->id, sizeof out->id, "%s", PQgetvalue(r, 0, 0));
    out->trigger = json_loads(PQgetvalue(r, 0, 1), 0, NULL);
    out->run_at_ms = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    PQclear(r);
    const char *p2[] = {out->id};
    r = NULL;
    s = run(st, A_PENDING_ITEMS, 1, p2, &r, err);
    if (s != RT_OK) {
        rt_pending_run_clear(out);
        return s;
    }
    long long total = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    long long idle = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    long long moved = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    out->now_ms = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
    PQclear(r);
    out->found = out->trigger && total > 0 && idle == total && moved == 0;
    return RT_OK;
}

rt_status rt_store_pending_update(rt_store *st, const char *run_id, json_t *event, json_t *trigger,
                                  int64_t run_at_ms, rt_error *err)
{
    char *ev = event ? json_dumps(event, JSON_COMPACT) : NULL;
    char *tr = json_dumps(trigger, JSON_COMPACT);
    char at[24];
    snprintf(at, sizeof at, "%lld", (long long)run_at_ms);
    rt_status s;
    if (!tr || (event && !ev)) {
        s = rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    } else {
        const char *params[] = {run_id, ev, tr, at};
        s = run(st, A_PENDING_UPDATE, 4, params, NULL, err);
    }
    free(ev);
    free(tr);
    return s;
}

rt_status rt_store_throttle_take(rt_store *st, const char *workflow_id, const char *key, double interval_ms,
                                 double tolerance_ms, int64_t at_ms, int64_t *slot_ms, int64_t *now_ms,
                                 rt_error *err)
{
    char iv[40], tol[40], at[24];
    snprintf(iv, sizeof iv, "%.6f", interval_ms);
    snprintf(tol, sizeof tol, "%.6f", tolerance_ms);
    snprintf(at, sizeof at, "%lld", (long long)at_ms);
    const char *params[] = {workflow_id, key, iv, tol, at};
    PGresult *r = NULL;
    rt_status s = run(st, A_THROTTLE, 5, params, &r, err);
    if (s != RT_OK)
        return s;
    *slot_ms = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    *now_ms = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    return RT_OK;
}
