/* scheduler.h — cron triggers: the schedules table kept in step with the loaded workflows,
 * and the one scheduler thread per `serve` process that fires each tick exactly once.
 *
 * Exactly once across processes: a scheduler claims due schedule rows with FOR UPDATE
 * SKIP LOCKED and, in the same short transaction, creates the tick's run (dedupe key
 * "cron:<trigger index>:<tick unix ms>", unique per workflow) and moves next_fire_at on.
 * A process that dies mid-claim rolls back; another one claims the same tick.
 *
 * On time: the thread sleeps until the earliest next_fire_at (measured against the
 * database's clock, which also decides what is due), and wakes early on a NOTIFY on
 * RT_SCHEDULES_CHANNEL when a sync, pause, resume or another scheduler changed a row.
 *
 * Late ticks and catch_up. A tick is late when the scheduler reaches it after its "grace"
 * = half the interval from the latest due tick to the one after it, clamped to 2 s..60 s
 * (2 s for a per-second schedule, 30 s for a per-minute one, 60 s for hourly and rarer).
 * On-time ticks always fire, one run each, even when a few are due at once. Late ticks
 * (downtime, a paused database) follow the trigger's catch_up:
 *   latest  one run for all of them, at the latest late tick; schedule.missed says how
 *           many ticks that run stands for;
 *   all     one run per tick, the most recent RT_SCHEDULE_CATCH_UP_MAX only;
 *   none    no run.
 * Paused workflows do not fire; `resume` moves their next fire past now, so the ticks of a
 * pause are never caught up. `enabled: false` keeps the rows (shown as disabled) with no
 * next fire.
 *
 * A cron run's trigger is {"type": "cron", "cron", "timezone", "index", "schedule":
 * {"time": RFC 3339 in the zone with its offset, "date": "YYYY-MM-DD" local, "late_ms": how
 * long after the tick the scheduler decided to fire it, "missed"?}}
 * and its event {"name": "ratchet.cron", "id", "ts", "data": {}, "actor": {"type":
 * "system", "id": "scheduler"}}; templates see trigger.schedule as `schedule`. */
#ifndef RT_SCHEDULER_H
#define RT_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "cron.h"
#include "status.h"
#include "store.h"
#include "store_schedules.h"
#include "workflow.h"

#define RT_SCHEDULE_CATCH_UP_MAX 100  /* runs one schedule may create for late ticks (catch_up all) */
#define RT_SCHEDULE_COUNT_MAX 100000  /* late ticks counted exactly; past this, a lower bound */
#define RT_SCHEDULE_GRACE_MIN_MS 2000
#define RT_SCHEDULE_GRACE_MAX_MS 60000

typedef struct rt_scheduler rt_scheduler;

/* cfg and set are borrowed and must outlive the scheduler. */
rt_status rt_scheduler_new(const rt_config *cfg, const rt_workflow_set *set, rt_scheduler **out, rt_error *err);
/* Starts the thread. It syncs the schedule rows from set first (retrying while the
 * database is away), then fires due ticks until stopped — unless cfg->scheduler_enabled
 * is false, in which case it ends after the sync. */
rt_status rt_scheduler_start(rt_scheduler *s, rt_error *err);
/* Stops and joins the thread (a claim in flight commits first). */
void rt_scheduler_stop(rt_scheduler *s);
void rt_scheduler_free(rt_scheduler *s);

typedef struct rt_scheduler_stats {
    bool synced;
    uint64_t claims;      /* transactions that fired something */
    uint64_t ticks;       /* ticks handled (fired, folded into a latest run, or skipped) */
    uint64_t runs;        /* runs created */
    uint64_t wakeups;     /* times the thread woke up */
    int64_t cpu_ns;       /* CPU time of the scheduler thread */
} rt_scheduler_stats;
/* Safe to call while the thread runs. */
void rt_scheduler_stats_get(rt_scheduler *s, rt_scheduler_stats *out);

/* What a sync did. */
typedef struct rt_schedule_sync_result {
    size_t total, inserted, updated, deleted, kept;
} rt_schedule_sync_result;

/* Brings the schedule rows in step with set, in one transaction that waits for other
 * syncs: inserts new triggers, recomputes the next fire of changed expressions or zones
 * (and of re-enabled ones) from now, deletes rows of triggers that are gone. When the set
 * had load errors, rows of workflows missing from it are kept (the broken file may be
 * theirs). Cron texts and zones are parsed here; use rt_scheduler's own cache when one
 * runs. */
rt_status rt_schedules_sync(rt_store *st, const rt_workflow_set *set, rt_schedule_sync_result *res, rt_error *err);

/* Pauses / resumes a workflow's schedules, at once for every process (NOTIFY) and
 * durably. *changed is false when it was already in that state. Resume moves each next
 * fire that is due past now, so the paused ticks are not caught up. actor names who did
 * it (kept with the pause). */
rt_status rt_schedules_pause(rt_store *st, const char *workflow_id, const char *actor, bool *changed, rt_error *err);
rt_status rt_schedules_resume(rt_store *st, const char *workflow_id, const char *actor, bool *changed,
                              rt_error *err);

/* The object `ratchet schedules --json` (and the API) shows for a row: {workflow, trigger,
 * cron, timezone, catch_up, state: active|paused|disabled, last_fire_at, next_fire_at}
 * with times as RFC 3339 UTC or null (next_fire_at is null unless active). New reference. */
json_t *rt_schedule_row_json(const rt_schedule_row *r);
const char *rt_schedule_state(const rt_schedule_row *r);

/* ---- pure pieces, exposed for tests ---- */

/* The ticks to fire for a schedule whose first unfired tick is `first` (unix seconds),
 * at now_ms, under policy (see the top of this file). */
typedef struct rt_tick_plan {
    int64_t fire[RT_SCHEDULE_CATCH_UP_MAX]; /* unix seconds, oldest first */
    int64_t fire_missed[RT_SCHEDULE_CATCH_UP_MAX]; /* per fired tick: late ticks it stands for (0 = on time) */
    size_t n_fire;
    int64_t due;        /* ticks at or before now (exact up to RT_SCHEDULE_COUNT_MAX) */
    int64_t late;       /* of those, the late ones */
    int64_t dropped;    /* due ticks that got no run of their own and are not counted in a fired one */
    bool has_next;
    int64_t next;       /* first tick after now (unix seconds), when has_next */
} rt_tick_plan;
rt_status rt_schedule_plan(const rt_cron *c, const rt_tz *tz, rt_catch_up policy, int64_t first, int64_t now_ms,
                           rt_tick_plan *out, rt_error *err);

/* schedule.time ("2026-03-08T01:00:00-05:00") and schedule.date ("2026-03-08") of tick t
 * (unix seconds) in tz (NULL = UTC). */
void rt_schedule_local_time(const rt_tz *tz, int64_t t, char time_buf[32], char date_buf[16]);

#endif
