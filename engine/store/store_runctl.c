/* store_runctl.c — pause/resume and bulk selection SQL (see store_runctl.h). Not on a hot
 * path: run with PQexecParams. */
#include "store_runctl.h"
#include "store_internal.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_status.h"

/* The run's status now (no lock): "" when there is no such run. */
static rt_status run_status_of(rt_store *st, const char *run_id, char out[24], rt_error *err)
{
    const char *params[] = {run_id};
    PGresult *r = NULL;
    rt_status s = rt_store_exec_params(st, "select status from ratchet.runs where id = $1::uuid", 1, params, &r, err,
                                       "reading a run");
    if (s != RT_OK)
        return s;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return rt_error_set(err, RT_ERR_NOT_FOUND, "run %s not found", run_id);
    }
    snprintf(out, 24, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return RT_OK;
}

/* Shifts the run's idle items by sign * RT_RUN_PAUSE_SHIFT_MS. Forward: those not shifted
 * yet (skip_locked for the second pass, made while holding the run's lock, so that a quick
 * claim waiting for that lock cannot deadlock with it). Back: those shifted. */
static rt_status shift_items(rt_store *st, const char *run_id, bool forward, bool skip_locked, rt_error *err)
{
    static const char fwd[] = "update ratchet.queue set run_at = run_at + $2::bigint * interval '1 millisecond'"
                              " where id" ANY_OF("select id from ratchet.queue where run_id = $1::uuid"
                              " and locked_by is null and run_at < now() + $2::bigint / 2 * interval '1 millisecond'"
                              " order by id for update");
    static const char fwd_skip[] = "update ratchet.queue set run_at = run_at + $2::bigint * interval '1 millisecond'"
                                   " where id" ANY_OF("select id from ratchet.queue where run_id = $1::uuid"
                                   " and locked_by is null"
                                   " and run_at < now() + $2::bigint / 2 * interval '1 millisecond'"
                                   " order by id for update skip locked");
    static const char back[] = "update ratchet.queue set run_at = run_at - $2::bigint * interval '1 millisecond'"
                               " where id" ANY_OF("select id from ratchet.queue where run_id = $1::uuid"
                               " and locked_by is null and run_at > now() + $2::bigint / 2 * interval '1 millisecond'"
                               " order by id for update");
    char shift[24];
    snprintf(shift, sizeof shift, "%lld", (long long)RT_RUN_PAUSE_SHIFT_MS);
    const char *params[] = {run_id, shift};
    PGresult *r = NULL;
    rt_status s = rt_store_exec_params(st, !forward ? back : skip_locked ? fwd_skip : fwd, 2, params, &r, err,
                                       forward ? "pausing a run's queue items" : "resuming a run's queue items");
    PQclear(r);
    return s;
}

rt_status rt_store_run_pause(rt_store *st, const char *run_id, char was[24], bool *changed, rt_error *err)
{
    *changed = false;
    rt_status s = run_status_of(st, run_id, was, err);
    rt_run_status cur;
    if (s != RT_OK || !rt_run_status_parse(was, &cur))
        return s;
    if (cur != RT_RUN_QUEUED && cur != RT_RUN_RUNNING && cur != RT_RUN_SLEEPING && cur != RT_RUN_WAITING)
        return RT_OK;
    /* Items first, then the run: a quick claim locks its items before their run, so this
     * order never waits in a circle with it. */
    s = shift_items(st, run_id, true, false, err);
    if (s != RT_OK)
        return s;
    const char *params[] = {run_id};
    PGresult *r = NULL;
    s = rt_store_exec_params(st,
                             "with o as (select id, status from ratchet.runs where id = $1::uuid for update)"
                             " update ratchet.runs r set status = 'paused' from o where r.id = o.id"
                             " and o.status in ('queued', 'running', 'sleeping', 'waiting') returning o.status",
                             1, params, &r, err, "pausing a run");
    if (s != RT_OK)
        return s;
    *changed = PQntuples(r) == 1;
    if (*changed)
        snprintf(was, 24, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    /* Items a completion committed between the two statements (it saw the run unpaused). */
    return *changed ? shift_items(st, run_id, true, true, err) : RT_OK;
}

rt_status rt_store_run_resume(rt_store *st, const char *run_id, char now[24], bool *changed, rt_error *err)
{
    *changed = false;
    rt_status s = run_status_of(st, run_id, now, err);
    if (s != RT_OK || strcmp(now, "paused") != 0)
        return s;
    s = shift_items(st, run_id, false, false, err);
    if (s != RT_OK)
        return s;
    const char *params[] = {run_id};
    PGresult *r = NULL;
    s = rt_store_exec_params(
        st,
        "update ratchet.runs r set status = case"
        " when exists (select 1 from ratchet.steps s where s.run_id = r.id and s.status = 'sleeping') then 'sleeping'"
        " when exists (select 1 from ratchet.steps s where s.run_id = r.id and s.status = 'waiting') then 'waiting'"
        " when r.started_at is not null then 'running' else 'queued' end"
        " where r.id = $1::uuid and r.status = 'paused' returning r.status",
        1, params, &r, err, "resuming a run");
    if (s != RT_OK)
        return s;
    *changed = PQntuples(r) == 1;
    if (*changed)
        snprintf(now, 24, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    if (!*changed)
        return RT_OK;
    return rt_store_wake(st, err);
}

rt_status rt_store_run_lock(rt_store *st, const char *run_id, char status[24], rt_error *err)
{
    const char *params[] = {run_id};
    PGresult *r = NULL;
    rt_status s = rt_store_exec_params(st, "select status from ratchet.runs where id = $1::uuid for update", 1,
                                       params, &r, err, "locking a run");
    if (s != RT_OK)
        return s;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return rt_error_set(err, RT_ERR_NOT_FOUND, "run %s not found", run_id);
    }
    snprintf(status, 24, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return RT_OK;
}

/* The filter's WHERE clause over ratchet.runs r joined to its pinned definition v; $1..$7. */
#define SELECT_WHERE                                                                                          \
    " where ($1::text is null or r.workflow_id = $1) and ($2::text is null or r.status = $2)"               \
    " and ($3::text is null or r.entity_id = $3)"                                                            \
    " and ($4::text is null or strpos(lower(coalesce(r.error, '')), lower($4)) > 0)"                        \
    " and ($5::bigint is null or r.created_at >= to_timestamp($5::bigint / 1000.0))"                        \
    " and ($6::bigint is null or r.created_at <= to_timestamp($6::bigint / 1000.0))"                        \
    " and (not $7::boolean or r.status in " RT_RUN_UNFINISHED_SQL ")"

typedef struct select_params {
    char since[24], until[24];
    const char *v[10];
} select_params;

static void fill_params(const rt_run_select *f, select_params *p)
{
    snprintf(p->since, sizeof p->since, "%lld", (long long)f->since_ms);
    snprintf(p->until, sizeof p->until, "%lld", (long long)f->until_ms);
    p->v[0] = f->workflow;
    p->v[1] = f->status;
    p->v[2] = f->entity_id;
    p->v[3] = f->error_contains;
    p->v[4] = f->since_ms ? p->since : NULL;
    p->v[5] = f->until_ms ? p->until : NULL;
    p->v[6] = f->unfinished ? "true" : "false";
}

rt_status rt_store_runs_count(rt_store *st, const rt_run_select *f, int64_t *matched, int64_t *system,
                              rt_error *err)
{
    static const char sql[] =
        "select count(*), count(*) filter (where coalesce(v.definition->'system' = 'true'::jsonb, false))"
        " from ratchet.runs r join ratchet.workflow_versions v on v.hash = r.workflow_hash" SELECT_WHERE;
    select_params p;
    fill_params(f, &p);
    PGresult *r = NULL;
    rt_status s = rt_store_exec_params(st, sql, 7, p.v, &r, err, "counting runs");
    if (s != RT_OK)
        return s;
    *matched = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    *system = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    return RT_OK;
}

rt_status rt_store_runs_page(rt_store *st, const rt_run_select *f, int limit, int64_t *cursor_us,
                             char cursor_id[37], json_t **out, rt_error *err)
{
    static const char sql[] =
        "select r.id::text, r.workflow_id, r.status, r.entity_id,"
        " coalesce(v.definition->'system' = 'true'::jsonb, false),"
        " (extract(epoch from r.created_at) * 1000000)::bigint"
        " from ratchet.runs r join ratchet.workflow_versions v on v.hash = r.workflow_hash" SELECT_WHERE
        " and ($8::bigint is null or (r.created_at, r.id) >"
        "  (timestamptz 'epoch' + $8::bigint * interval '1 microsecond', $9::uuid))"
        " order by r.created_at, r.id limit $10::int";
    select_params p;
    fill_params(f, &p);
    char cur[24], lim[16];
    snprintf(cur, sizeof cur, "%lld", (long long)*cursor_us);
    snprintf(lim, sizeof lim, "%d", limit);
    bool has_cursor = cursor_id[0] != '\0';
    p.v[7] = has_cursor ? cur : NULL;
    p.v[8] = has_cursor ? cursor_id : NULL;
    p.v[9] = lim;
    PGresult *r = NULL;
    rt_status s = rt_store_exec_params(st, sql, 10, p.v, &r, err, "selecting runs");
    if (s != RT_OK)
        return s;
    json_t *arr = json_array();
    int rows = PQntuples(r);
    for (int i = 0; i < rows; i++) {
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s?, s:b}", "id", PQgetvalue(r, i, 0), "workflow",
                                             PQgetvalue(r, i, 1), "status", PQgetvalue(r, i, 2), "entity_id",
                                             PQgetisnull(r, i, 3) ? NULL : PQgetvalue(r, i, 3), "system",
                                             PQgetvalue(r, i, 4)[0] == 't'));
    }
    if (rows > 0) {
        *cursor_us = strtoll(PQgetvalue(r, rows - 1, 5), NULL, 10);
        snprintf(cursor_id, 37, "%s", PQgetvalue(r, rows - 1, 0));
    }
    PQclear(r);
    *out = arr;
    return RT_OK;
}
