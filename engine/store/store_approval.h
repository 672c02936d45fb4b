/* store_approval.h — the SQL of approval gates (ratchet.approvals, ratchet.approval_nonces)
 * and the run transitions a decision makes: hold a new run, release it, end it rejected
 * or expired. Same rules as store.h: one rt_store per thread; everything inside the
 * caller's transaction unless said otherwise; times are unix milliseconds. */
#ifndef RT_STORE_APPROVAL_H
#define RT_STORE_APPROVAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "status.h"
#include "store.h"

/* Makes just-created runs (run_ids: JSON array of ids) awaiting_approval: deadlines
 * cleared (they start at approval), queue items and pending step rows deleted. *out gets
 * [{id, workflow, workflow_hash, event}] with event as stored (jsonb-normalized). */
rt_status rt_store_approval_hold(rt_store *st, json_t *run_ids, json_t **out, rt_error *err);

/* gates: [{run_id, step_id ("" = the run's gate), workflow_id, action_hash, approvers,
 * initiator, details, expires_at (ms, 0 = never)}]. An existing gate is left as it is. */
rt_status rt_store_approval_insert(rt_store *st, json_t *gates, rt_error *err);

/* Locks one gate (FOR UPDATE) and returns it with what a decision needs: {run_id, step_id,
 * workflow_id, action_hash, approvers, initiator, status, expires_at, expired (expires_at
 * has passed by the database's clock), run_status, step_status, workflow_hash, priority,
 * ckey, climit, parent_run_id, parent_step_id, event (the run's), with (a step gate's
 * rendered input)}.
 * RT_ERR_NOT_FOUND when there is none. */
rt_status rt_store_approval_lock(rt_store *st, const char *run_id, const char *step_id, json_t **out, rt_error *err);

/* Records (approver, nonce) once: *fresh false when it was used before. Also forgets
 * nonces older than keep_ms (decisions that old are refused as expired anyway). */
rt_status rt_store_approval_use_nonce(rt_store *st, const char *approver, const char *nonce, const char *run_id,
                                      int64_t keep_ms, bool *fresh, rt_error *err);

/* Closes a gate with status (approved, rejected, expired, closed) and the decision (borrowed,
 * may be NULL). */
rt_status rt_store_approval_close(rt_store *st, const char *run_id, const char *step_id, const char *status,
                                  const char *decided_by, const char *comment, const json_t *decision,
                                  rt_error *err);

/* An approved run starts: awaiting_approval -> queued, deadline and start deadline from
 * now (0 = none), steps ([{step_id, slow}], borrowed) enqueued, workers notified.
 * trigger (borrowed, NULL = keep) replaces the run's, stamped with the admission keys it
 * holds; its steps are due at run_at_ms (0 = now: a throttle slot may be later).
 * *released false when the run was not awaiting approval any more. */
rt_status rt_store_approval_release(rt_store *st, const char *run_id, int64_t timeout_ms, int64_t start_timeout_ms,
                                    json_t *steps, const json_t *trigger, int64_t run_at_ms, bool *released,
                                    rt_error *err);

/* Ends an unfinished run with status (rejected, expired) and error; with step_id, that
 * waiting step fails with error and output (borrowed, may be NULL). Its idle queue items
 * go. *ended: {id, workflow, status, error, parent_run_id, parent_step_id}, or NULL when
 * the run had already ended. */
rt_status rt_store_approval_end_run(rt_store *st, const char *run_id, const char *status, const char *error,
                                    const char *step_id, const json_t *output, json_t **ended, rt_error *err);

/* Closes the pending gates of runs (ids: JSON array) that ended otherwise. */
rt_status rt_store_approval_close_runs(rt_store *st, json_t *run_ids, rt_error *err);

/* Locks (SKIP LOCKED) up to 100 pending gates past their expiry: [{run_id, step_id,
 * workflow_id, expires_at (RFC 3339)}]. */
rt_status rt_store_approval_due(rt_store *st, json_t **out, rt_error *err);

/* Pending gates of unfinished runs (run_id NULL: all, oldest first): [{run_id, step_id,
 * workflow, workflow_hash, run_status, action_hash, approvers, actor, entity_id, event,
 * details, requested_at, expires_at}]. */
rt_status rt_store_approval_pending(rt_store *st, const char *run_id, json_t **out, rt_error *err);

/* The outcome of a decision event from the audit log: {seq, action, details}; NOT_FOUND
 * while there is none. */
rt_status rt_store_approval_outcome(rt_store *st, const char *event_id, json_t **out, rt_error *err);

#endif
