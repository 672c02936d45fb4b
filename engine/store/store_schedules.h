/* store_schedules.h — the SQL of cron schedules (ratchet.schedules, one row per cron
 * trigger, and ratchet.schedule_pauses): sync, due claims with SKIP LOCKED, pause, resume,
 * listing. Same rules as store.h: one rt_store per thread; times are unix milliseconds. */
#ifndef RT_STORE_SCHEDULES_H
#define RT_STORE_SCHEDULES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "store.h"
#include "workflow.h"

/* NOTIFY channel: a schedule changed (sync, pause, resume, a tick fired); schedulers
 * re-read their next due time. */
#define RT_SCHEDULES_CHANNEL "ratchet_schedules"

typedef struct rt_schedule_row {
    char *workflow_id;
    int trigger_index;
    char *cron;
    char *timezone;
    rt_catch_up catch_up;
    bool enabled;
    bool paused;          /* filled by rt_store_schedules_list only */
    int64_t next_fire_ms; /* 0 = none */
    int64_t last_fire_ms; /* 0 = never */
} rt_schedule_row;

void rt_schedule_rows_free(rt_schedule_row *rows, size_t n);

/* ---- sync (inside rt_store_begin ... rt_store_commit) ---- */

/* Takes the sync lock (a transaction-scoped advisory lock, so concurrent syncs of several
 * processes run one after the other), locks every schedule row in key order and returns
 * them sorted by (workflow_id, trigger_index) in byte order, with the transaction's time. */
rt_status rt_store_schedules_lock_all(rt_store *st, rt_schedule_row **rows, size_t *n, int64_t *now_ms,
                                      rt_error *err);

/* Writes a sync (both borrowed; either may be NULL or empty) and notifies:
 *   upserts: [{workflow_id, trigger_index, cron, timezone, catch_up, enabled, next_fire_at}]
 *            (next_fire_at in ms, 0 = none); last_fire_at of an existing row is kept
 *   deletes: [{workflow_id, trigger_index}] */
rt_status rt_store_schedules_write(rt_store *st, json_t *upserts, json_t *deletes, rt_error *err);

/* ---- the scheduler loop ---- */

/* Tells this connection which workflows its process can fire (a temporary table, so it
 * is gone with the connection: call it again after a reconnect). */
rt_status rt_store_schedules_set_loaded(rt_store *st, const char *const *workflow_ids, size_t n, rt_error *err);

/* Earliest next_fire_at of the enabled, unpaused schedules of the loaded workflows
 * (*next_us = 0 when none), and the server's clock, both in unix microseconds. */
rt_status rt_store_schedules_next(rt_store *st, int64_t *next_us, int64_t *db_now_us, rt_error *err);

/* Inside a transaction: locks up to limit due rows of loaded, enabled, unpaused workflows
 * with FOR UPDATE SKIP LOCKED (earliest first) and returns them with the transaction's
 * time (the created_at of the runs it creates). Pauses are read again after the rows are
 * locked, so a pause that committed while this claim waited is seen: such rows are left
 * out (and stay untouched). */
rt_status rt_store_schedules_claim(rt_store *st, int limit, rt_schedule_row **rows, size_t *n, int64_t *now_ms,
                                   rt_error *err);

/* Inside the claim's transaction: [{workflow_id, trigger_index, next_fire_at, last_fire_at}]
 * (ms; next_fire_at 0 = none; last_fire_at 0 = unchanged), then notifies. */
rt_status rt_store_schedules_advance(rt_store *st, json_t *updates, rt_error *err);

/* ---- pause / resume / list ---- */

/* Inside a transaction: records the pause (no-op when there is one; *changed says) and
 * locks the workflow's rows, which waits for a claim in flight to commit, so no tick fires
 * after the pause commits. */
rt_status rt_store_schedules_pause(rt_store *st, const char *workflow_id, const char *actor, bool *changed,
                                   rt_error *err);

/* Inside a transaction: removes the pause (*changed says whether there was one). */
rt_status rt_store_schedules_unpause(rt_store *st, const char *workflow_id, bool *changed, rt_error *err);

/* Inside a transaction: locks the rows of one workflow, in key order, with the
 * transaction's time. */
rt_status rt_store_schedules_lock_workflow(rt_store *st, const char *workflow_id, rt_schedule_row **rows, size_t *n,
                                           int64_t *now_ms, rt_error *err);

/* Every row with its pause state, by workflow then trigger index. */
rt_status rt_store_schedules_list(rt_store *st, rt_schedule_row **rows, size_t *n, rt_error *err);

/* How many schedule rows the workflow has. */
rt_status rt_store_schedules_count(rt_store *st, const char *workflow_id, size_t *n, rt_error *err);

/* Whether the workflow is paused (a pause may exist before its schedules do). */
rt_status rt_store_schedules_paused(rt_store *st, const char *workflow_id, bool *paused, rt_error *err);

#endif
