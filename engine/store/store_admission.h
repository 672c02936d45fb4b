/* store_admission.h — the SQL of run admission (admission.c): advisory locks per
 * (workflow, control, key), idempotency keys, unfinished singleton runs, the pending run of
 * a debounce window or batch, and GCRA throttle state. Everything runs inside the caller's
 * transaction; times are unix milliseconds of the database's clock. */
#ifndef RT_STORE_ADMISSION_H
#define RT_STORE_ADMISSION_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "status.h"
#include "store.h"

/* Takes a transaction-scoped advisory lock per distinct string of keys (a JSON array of
 * strings), in sorted order, so that any two admissions lock in the same order and never
 * deadlock with each other. */
rt_status rt_store_admission_lock(rt_store *st, json_t *keys, rt_error *err);

/* The database's clock_timestamp(). */
rt_status rt_store_admission_now(rt_store *st, int64_t *now_ms, rt_error *err);

/* idempotency: takes (workflow, key) for 24 h. *taken is true when there was no row or it
 * was older than 24 h (this transaction now holds it, with no run yet); otherwise
 * holder (>= 37 bytes) gets the run that holds it ("" while that run is being created) and
 * *since_ms when it was taken. */
rt_status rt_store_idempotency_take(rt_store *st, const char *workflow_id, const char *key, bool *taken,
                                    char *holder, int64_t *since_ms, rt_error *err);
/* rows: [{workflow_id, key, run_id}] — run_id null gives the key back (nothing was created). */
rt_status rt_store_idempotency_finish(rt_store *st, json_t *rows, rt_error *err);
/* Deletes up to a few dozen keys of the workflow older than 24 h (skipping locked ones). */
rt_status rt_store_idempotency_expire(rt_store *st, const char *workflow_id, rt_error *err);

/* singleton: locks and lists the unfinished runs of workflow_id admitted under key:
 * *runs is a new array [{id, status}] in id order. */
rt_status rt_store_singleton_runs(rt_store *st, const char *workflow_id, const char *key, json_t **runs,
                                  rt_error *err);

/* The newest queued run of workflow_id collecting under pending_key ("debounce:<value>",
 * "batch"), locked. It still collects when none of its steps moved and every one of its
 * queue items is idle and due in the future (each then stays locked by this transaction,
 * so no worker starts it meanwhile). */
typedef struct rt_pending_run {
    bool found;           /* a run that still collects */
    char id[37];
    json_t *trigger;      /* owned (new reference), or NULL */
    int64_t run_at_ms;    /* when it is due */
    int64_t now_ms;       /* the database's clock when it was looked at */
} rt_pending_run;
rt_status rt_store_pending_find(rt_store *st, const char *workflow_id, const char *pending_key, rt_pending_run *out,
                                rt_error *err);
void rt_pending_run_clear(rt_pending_run *p);
/* Debounce: the run gets event (borrowed) and becomes due at run_at_ms (its deadlines move
 * with it); trigger (borrowed) replaces its trigger. */
rt_status rt_store_pending_update(rt_store *st, const char *run_id, json_t *event, json_t *trigger,
                                  int64_t run_at_ms, rt_error *err);

/* throttle (GCRA): takes the next slot of (workflow, key) for a request at max(now,
 * at_ms): interval_ms = period / limit, tolerance_ms = burst * interval_ms. *slot_ms gets
 * when the run may start (>= the request time), *now_ms the request time used. */
rt_status rt_store_throttle_take(rt_store *st, const char *workflow_id, const char *key, double interval_ms,
                                 double tolerance_ms, int64_t at_ms, int64_t *slot_ms, int64_t *now_ms,
                                 rt_error *err);

#endif
