/* store_schedules.c — every SQL statement about cron schedules, each prepared once per
 * connection and run with parameters; row sets travel as one jsonb parameter, as in
 * store.c. Statements are prepared on the connection of the rt_store passed in; which
 * ones a connection already has is remembered per thread (a connection is used by one
 * thread at a time), keyed by the connection and its server process, so a reconnect
 * starts afresh. */
#include "store_schedules.h"
#include "store_internal.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum sched_stmt {
    Q_SYNC_LOCK,
    Q_LOCK_ALL,
    Q_UPSERT,
    Q_DELETE,
    Q_NOTIFY,
    Q_LOADED_CLEAR,
    Q_LOADED_FILL,
    Q_LOADED_ANALYZE,
    Q_NEXT,
    Q_CLAIM,
    Q_PAUSED_AMONG,
    Q_ADVANCE,
    Q_PAUSE,
    Q_UNPAUSE,
    Q_LOCK_WORKFLOW,
    Q_LIST,
    Q_IS_PAUSED,
    Q_COUNT_WORKFLOW,
    Q_COUNT
} sched_stmt;

/* Unix µs rounded down, like MSF (a tick must never look due early; MSF and TS are in
 * store_internal.h). */
#define USF(col) "floor(extract(epoch from " col ") * 1000000)::bigint"

/* The columns every row-returning statement starts with (see read_rows). */
#define ROW_COLS                                                                                                 \
    "s.workflow_id, s.trigger_index, s.cron, s.timezone, s.catch_up, s.enabled,"                                 \
    " coalesce(" MSF("s.next_fire_at") ", 0), coalesce(" MSF("s.last_fire_at") ", 0)"

/* A key of its own for the sync lock (store.c's migration lock is ...588). */
#define SYNC_LOCK_KEY "7526411283428713590"

static const char *const sql[Q_COUNT] = {
    [Q_SYNC_LOCK] = "select pg_advisory_xact_lock(" SYNC_LOCK_KEY "), " MSF("now()"),
    [Q_LOCK_ALL] = "select " ROW_COLS " from ratchet.schedules s"
                   " order by s.workflow_id collate \"C\", s.trigger_index for update",
    [Q_UPSERT] =
        "insert into ratchet.schedules as s (workflow_id, trigger_index, cron, timezone, catch_up, enabled,"
        " next_fire_at) "
        "select x.workflow_id, x.trigger_index, x.cron, x.timezone, x.catch_up, x.enabled,"
        " case when x.next_fire_at > 0 then " TS("x.next_fire_at") " end "
        "from jsonb_to_recordset($1::jsonb) as x(workflow_id text, trigger_index int, cron text, timezone text,"
        " catch_up text, enabled boolean, next_fire_at bigint) "
        "on conflict (workflow_id, trigger_index) do update set cron = excluded.cron, timezone = excluded.timezone,"
        " catch_up = excluded.catch_up, enabled = excluded.enabled, next_fire_at = excluded.next_fire_at,"
        " updated_at = now()",
    [Q_DELETE] = "delete from ratchet.schedules s using jsonb_to_recordset($1::jsonb) as x(workflow_id text,"
                 " trigger_index int) where s.workflow_id = x.workflow_id and s.trigger_index = x.trigger_index",
    [Q_NOTIFY] = "select pg_notify('" RT_SCHEDULES_CHANNEL "', '')",
    [Q_LOADED_CLEAR] = "truncate pg_temp.rt_sched_loaded",
    [Q_LOADED_FILL] = "insert into pg_temp.rt_sched_loaded select distinct jsonb_array_elements_text($1::jsonb)",
    [Q_LOADED_ANALYZE] = "analyze pg_temp.rt_sched_loaded",
    /* order by + limit 1 walks schedules_next_fire and stops at the first active row. */
    [Q_NEXT] = "select coalesce((select " USF("s.next_fire_at") " from ratchet.schedules s"
               " where s.enabled and s.next_fire_at is not null"
               " and exists (select 1 from pg_temp.rt_sched_loaded l where l.workflow_id = s.workflow_id)"
               " and not exists (select 1 from ratchet.schedule_pauses p where p.workflow_id = s.workflow_id)"
               " order by s.next_fire_at limit 1), 0), " USF("clock_timestamp()"),
    [Q_CLAIM] = "select " ROW_COLS ", " MSF("now()") " from ratchet.schedules s"
                " where s.enabled and s.next_fire_at <= now()"
                " and exists (select 1 from pg_temp.rt_sched_loaded l where l.workflow_id = s.workflow_id)"
                " and not exists (select 1 from ratchet.schedule_pauses p where p.workflow_id = s.workflow_id)"
                " order by s.next_fire_at limit $1::int for update of s skip locked",
    [Q_PAUSED_AMONG] = "select workflow_id from ratchet.schedule_pauses"
                       " where workflow_id in (select jsonb_array_elements_text($1::jsonb))",
    [Q_ADVANCE] = "update ratchet.schedules s set"
                  " next_fire_at = case when x.next_fire_at > 0 then " TS("x.next_fire_at") " end,"
                  " last_fire_at = case when x.last_fire_at > 0 then " TS("x.last_fire_at") " else s.last_fire_at end "
                  "from jsonb_to_recordset($1::jsonb) as x(workflow_id text, trigger_index int, next_fire_at bigint,"
                  " last_fire_at bigint) "
                  "where s.workflow_id = x.workflow_id and s.trigger_index = x.trigger_index",
    [Q_PAUSE] = "insert into ratchet.schedule_pauses (workflow_id, paused_by) values ($1, $2)"
                " on conflict (workflow_id) do nothing returning 1",
    [Q_UNPAUSE] = "delete from ratchet.schedule_pauses where workflow_id = $1 returning 1",
    [Q_LOCK_WORKFLOW] = "select " ROW_COLS ", " MSF("now()") " from ratchet.schedules s"
                        " where s.workflow_id = $1 order by s.trigger_index for update",
    [Q_LIST] = "select " ROW_COLS ", p.workflow_id is not null from ratchet.schedules s"
               " left join ratchet.schedule_pauses p on p.workflow_id = s.workflow_id"
               " order by s.workflow_id collate \"C\", s.trigger_index",
    [Q_IS_PAUSED] = "select exists (select 1 from ratchet.schedule_pauses where workflow_id = $1)",
    [Q_COUNT_WORKFLOW] = "select count(*) from ratchet.schedules where workflow_id = $1",
};

/* Statement names carry this module's prefix: they share one namespace per connection
 * with store.c's and the other store_<x>.c modules'. */
static void stmt_name(char name[16], sched_stmt id)
{
    snprintf(name, 16, "rsched%d", (int)id);
}

/* Runs a statement; *res (may be NULL when the rows are not wanted) must be PQclear'ed. */
static rt_status run(rt_store *st, sched_stmt id, int n, const char *const *params, PGresult **res, rt_error *err)
{
    char name[16];
    stmt_name(name, id);
    return rt_store_exec_prepared(st, name, sql[id], n, params, res, err);
}

static rt_status run_json(rt_store *st, sched_stmt id, json_t *doc, rt_error *err)
{
    char name[16];
    stmt_name(name, id);
    return rt_store_exec_json(st, name, sql[id], doc, err);
}

static rt_catch_up catch_up_parse(const char *s)
{
    if (!strcmp(s, "all"))
        return RT_CATCH_UP_ALL;
    if (!strcmp(s, "none"))
        return RT_CATCH_UP_NONE;
    return RT_CATCH_UP_LATEST;
}

void rt_schedule_rows_free(rt_schedule_row *rows, size_t n)
{
    if (!rows)
        return;
    for (size_t i = 0; i < n; i++) {
        free(rows[i].workflow_id);
        free(rows[i].cron);
        free(rows[i].timezone);
    }
    free(rows);
}

/* Rows whose first columns are ROW_COLS. */
static rt_status read_rows(PGresult *r, rt_schedule_row **out, size_t *n, rt_error *err)
{
    int rows = PQntuples(r);
    *out = NULL;
    *n = 0;
    if (rows == 0)
        return RT_OK;
    rt_schedule_row *v = calloc((size_t)rows, sizeof *v);
    if (!v)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    for (int i = 0; i < rows; i++) {
        v[i].workflow_id = strdup(PQgetvalue(r, i, 0));
        v[i].trigger_index = atoi(PQgetvalue(r, i, 1));
        v[i].cron = strdup(PQgetvalue(r, i, 2));
        v[i].timezone = strdup(PQgetvalue(r, i, 3));
        v[i].catch_up = catch_up_parse(PQgetvalue(r, i, 4));
        v[i].enabled = PQgetvalue(r, i, 5)[0] == 't';
        v[i].next_fire_ms = strtoll(PQgetvalue(r, i, 6), NULL, 10);
        v[i].last_fire_ms = strtoll(PQgetvalue(r, i, 7), NULL, 10);
        if (!v[i].workflow_id || !v[i].cron || !v[i].timezone) {
            rt_schedule_rows_free(v, (size_t)rows);
            return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
        }
    }
    *out = v;
    *n = (size_t)rows;
    return RT_OK;
}

static rt_status notify(rt_store *st, rt_error *err)
{
    return run(st, Q_NOTIFY, 0, NULL, NULL, err);
}

rt_status rt_store_schedules_lock_all(rt_store *st, rt_schedule_row **rows, size_t *n, int64_t *now_ms,
                                      rt_error *err)
{
    PGresult *r = NULL;
    rt_status s = run(st, Q_SYNC_LOCK, 0, NULL, &r, err);
    if (s != RT_OK)
        return s;
    *now_ms = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    s = run(st, Q_LOCK_ALL, 0, NULL, &r, err);
    if (s != RT_OK)
        return s;
    s = read_rows(r, rows, n, err);
    PQclear(r);
    return s;
}

rt_status rt_store_schedules_write(rt_store *st, json_t *upserts, json_t *deletes, rt_error *err)
{
    rt_status s = run_json(st, Q_UPSERT, upserts, err);
    if (s == RT_OK)
        s = run_json(st, Q_DELETE, deletes, err);
    if (s == RT_OK && (json_array_size(upserts) > 0 || json_array_size(deletes) > 0))
        s = notify(st, err);
    return s;
}

rt_status rt_store_schedules_set_loaded(rt_store *st, const char *const *workflow_ids, size_t n, rt_error *err)
{
    rt_status s = rt_store_exec_simple(st, "create temp table if not exists rt_sched_loaded (workflow_id text primary key)",
                             err);
    if (s == RT_OK)
        s = run(st, Q_LOADED_CLEAR, 0, NULL, NULL, err);
    json_t *ids = json_array();
    for (size_t i = 0; s == RT_OK && i < n; i++)
        json_array_append_new(ids, json_string(workflow_ids[i]));
    if (s == RT_OK)
        s = run_json(st, Q_LOADED_FILL, ids, err);
    json_decref(ids);
    /* Temporary tables get no autovacuum statistics; without them the planner guesses. */
    if (s == RT_OK)
        s = run(st, Q_LOADED_ANALYZE, 0, NULL, NULL, err);
    return s;
}

rt_status rt_store_schedules_next(rt_store *st, int64_t *next_us, int64_t *db_now_us, rt_error *err)
{
    PGresult *r = NULL;
    rt_status s = run(st, Q_NEXT, 0, NULL, &r, err);
    if (s != RT_OK)
        return s;
    *next_us = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    *db_now_us = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    return RT_OK;
}

rt_status rt_store_schedules_claim(rt_store *st, int limit, rt_schedule_row **rows, size_t *n, int64_t *now_ms,
                                   rt_error *err)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *params[] = {lim};
    PGresult *r = NULL;
    *rows = NULL;
    *n = 0;
    rt_status s = run(st, Q_CLAIM, 1, params, &r, err);
    if (s != RT_OK)
        return s;
    rt_schedule_row *got = NULL;
    size_t n_got = 0;
    s = read_rows(r, &got, &n_got, err);
    if (s == RT_OK && n_got > 0)
        *now_ms = strtoll(PQgetvalue(r, 0, 8), NULL, 10);
    PQclear(r);
    if (s != RT_OK || n_got == 0)
        return s;

    /* A new statement, a new snapshot: pauses that committed while we locked. */
    json_t *ids = json_array();
    for (size_t i = 0; i < n_got; i++)
        json_array_append_new(ids, json_string(got[i].workflow_id));
    char *text = json_dumps(ids, JSON_COMPACT);
    json_decref(ids);
    const char *p2[] = {text};
    s = run(st, Q_PAUSED_AMONG, 1, p2, &r, err);
    free(text);
    if (s != RT_OK) {
        rt_schedule_rows_free(got, n_got);
        return s;
    }
    size_t kept = 0;
    for (size_t i = 0; i < n_got; i++) {
        bool paused = false;
        for (int k = 0; k < PQntuples(r) && !paused; k++)
            paused = !strcmp(PQgetvalue(r, k, 0), got[i].workflow_id);
        if (paused) {
            free(got[i].workflow_id);
            free(got[i].cron);
            free(got[i].timezone);
            continue;
        }
        got[kept++] = got[i];
    }
    PQclear(r);
    if (kept == 0) {
        free(got);
        return RT_OK;
    }
    *rows = got;
    *n = kept;
    return RT_OK;
}

rt_status rt_store_schedules_advance(rt_store *st, json_t *updates, rt_error *err)
{
    rt_status s = run_json(st, Q_ADVANCE, updates, err);
    if (s == RT_OK && json_array_size(updates) > 0)
        s = notify(st, err);
    return s;
}

rt_status rt_store_schedules_pause(rt_store *st, const char *workflow_id, const char *actor, bool *changed,
                                   rt_error *err)
{
    const char *params[] = {workflow_id, actor};
    PGresult *r = NULL;
    rt_status s = run(st, Q_PAUSE, 2, params, &r, err);
    if (s != RT_OK)
        return s;
    *changed = PQntuples(r) > 0;
    PQclear(r);
    rt_schedule_row *rows = NULL;
    size_t n = 0;
    int64_t now = 0;
    s = rt_store_schedules_lock_workflow(st, workflow_id, &rows, &n, &now, err);
    rt_schedule_rows_free(rows, n);
    if (s == RT_OK && *changed)
        s = notify(st, err);
    return s;
}

rt_status rt_store_schedules_unpause(rt_store *st, const char *workflow_id, bool *changed, rt_error *err)
{
    const char *params[] = {workflow_id};
    PGresult *r = NULL;
    rt_status s = run(st, Q_UNPAUSE, 1, params, &r, err);
    if (s != RT_OK)
        return s;
    *changed = PQntuples(r) > 0;
    PQclear(r);
    if (*changed)
        s = notify(st, err);
    return s;
}

rt_status rt_store_schedules_lock_workflow(rt_store *st, const char *workflow_id, rt_schedule_row **rows, size_t *n,
                                           int64_t *now_ms, rt_error *err)
{
    const char *params[] = {workflow_id};
    PGresult *r = NULL;
    rt_status s = run(st, Q_LOCK_WORKFLOW, 1, params, &r, err);
    if (s != RT_OK)
        return s;
    s = read_rows(r, rows, n, err);
    if (s == RT_OK && *n > 0)
        *now_ms = strtoll(PQgetvalue(r, 0, 8), NULL, 10);
    PQclear(r);
    return s;
}

rt_status rt_store_schedules_list(rt_store *st, rt_schedule_row **rows, size_t *n, rt_error *err)
{
    PGresult *r = NULL;
    rt_status s = run(st, Q_LIST, 0, NULL, &r, err);
    if (s != RT_OK)
        return s;
    s = read_rows(r, rows, n, err);
    for (size_t i = 0; s == RT_OK && i < *n; i++)
        (*rows)[i].paused = PQgetvalue(r, (int)i, 8)[0] == 't';
    PQclear(r);
    return s;
}

rt_status rt_store_schedules_paused(rt_store *st, const char *workflow_id, bool *paused, rt_error *err)
{
    const char *params[] = {workflow_id};
    PGresult *r = NULL;
    rt_status s = run(st, Q_IS_PAUSED, 1, params, &r, err);
    if (s != RT_OK)
        return s;
    *paused = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return RT_OK;
}

rt_status rt_store_schedules_count(rt_store *st, const char *workflow_id, size_t *n, rt_error *err)
{
    const char *params[] = {workflow_id};
    PGresult *r = NULL;
    rt_status s = run(st, Q_COUNT_WORKFLOW, 1, params, &r, err);
    if (s != RT_OK)
        return s;
    *n = (size_t)strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return RT_OK;
}
