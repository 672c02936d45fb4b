/* store_alerts.h — the SQL of alert checks (alerts.h): runs that finished in a window, the
 * oldest runnable queue item, steps still running long after they started, and whether an
 * alert event was stored recently. Same rules as store.h: one rt_store per thread. */
#ifndef RT_STORE_ALERTS_H
#define RT_STORE_ALERTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "status.h"
#include "store.h"

/* The queue items that are due (never claimed, or their lease expired). */
typedef struct rt_alert_backlog {
    int64_t now_ms;        /* the database's clock: every process buckets alerts by it */
    int64_t depth;         /* due items */
    int64_t oldest_age_ms; /* how long the oldest one has been due; 0 when none */
    char run_id[37];       /* the oldest one ("" when none) */
    char step_id[160];
    char workflow[160];
} rt_alert_backlog;

rt_status rt_store_alerts_backlog(rt_store *st, rt_alert_backlog *out, rt_error *err);

/* Runs that reached a final status in the last window_ms, one entry per workflow, most
 * failures first: *out is a new JSON array of {workflow, finished, failed}, where failed
 * counts the runs that ended failed or timed_out. */
rt_status rt_store_alerts_finished(rt_store *st, int64_t window_ms, json_t **out, rt_error *err);

/* Slow steps that are running now (status running, leased, the lease not expired, the run
 * unfinished) and started more than min_running_ms ago, longest first, at most limit.
 * *out is a new JSON array of {run_id, step_id, workflow, attempt, worker (the lease
 * owner), running_ms, step (the step's object from the run's pinned definition)}. */
rt_status rt_store_alerts_long_steps(rt_store *st, int64_t min_running_ms, int limit, json_t **out, rt_error *err);

/* Whether an event named name was received in the last within_ms; when run_id is given,
 * only one whose data has that run_id, step_id and attempt counts. */
/* Serializes the publishers of one alert name across processes, until the caller's
 * transaction ends, so that "published recently?" and the insert are one decision. */
rt_status rt_store_alerts_lock(rt_store *st, const char *name, rt_error *err);
rt_status rt_store_alerts_recent(rt_store *st, const char *name, int64_t within_ms, const char *run_id,
                                 const char *step_id, int attempt, bool *found, rt_error *err);

/* Runs of the workflows named in `workflows` (a JSON array of ids) that are unfinished past
 * their pinned definition's `sla`: *past counts them all; up to limit of those not alerted
 * yet are marked alerted (runs.sla_alerted_at) and returned in *out, a new JSON array of
 * {run_id, workflow, status, entity_id, sla, sla_ms, since, due_at, late_ms}. Call it
 * inside the transaction that stores their alerts, so mark and alert commit together. */
rt_status rt_store_alerts_sla_claim(rt_store *st, json_t *workflows, int limit, int64_t *past, json_t **out,
                                    rt_error *err);

#endif
