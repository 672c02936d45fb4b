/* admission.h — what happens when a run is about to be created (DESIGN §3 flow control):
 * idempotency, singleton, debounce, batch_events and throttle, decided inside the creating
 * transaction with PostgreSQL locks only, so any number of serve processes agree.
 *
 * The rules, per request of a workflow that has the block:
 *  - idempotency (expression): one run per (workflow, value) per 24 h; a request whose
 *    value was taken less than 24 h ago creates nothing. A null value is not deduplicated.
 *  - debounce {period, key, timeout}: the first request creates a run due after `period`;
 *    a later one with the same key value, while that run is still queued and not yet due
 *    (no worker has it), replaces its event and moves it (and its deadlines) to
 *    min(now + period, first + timeout) instead of creating one. Otherwise a new window.
 *  - batch_events {max_size, timeout} (event triggers only; it takes precedence over
 *    debounce): the first event creates a run due after `timeout`; later events are
 *    appended to its trigger's `events` until there are max_size (it is then due now, and
 *    the next event opens a new batch). Templates see `events`; `event` is the first.
 *  - singleton {key, mode}: at most one unfinished run per key value: `skip` creates
 *    nothing while one is unfinished, `cancel` cancels the unfinished ones and creates.
 *  - throttle {limit, period, key, burst}: GCRA per key value: runs past the rate are
 *    created due later (never dropped); no window of `period` holds more than
 *    limit + burst starts.
 * Checked in that order (idempotency, then joining a pending run, then — only when a new
 * run is created — singleton and throttle). Key expressions see `event` (and `schedule` for
 * cron runs); a value that is null or fails to evaluate is the bucket "null" (logged).
 * Child runs (invoke) and replays (trigger.replay_of) are created as asked: a skip or a
 * shared run would leave a parent waiting or change what a replay means.
 * Runs whose actor needs approval come here only once approved (run/create.h). */
#ifndef RT_ADMISSION_H
#define RT_ADMISSION_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"
#include "store.h"

/* Decides every request (run/create.c calls it for requests that need no approval, or
 * whose approval is done), creates the admitted ones (rt_store_create_runs_tx) and on
 * RT_OK sets each request's id to its new run, or the existing run it joined (debounce,
 * batch_events: reason says so), or "" with reason saying why nothing was created. A
 * throttled run's reason says when it starts. Requests without controls pass unchanged.
 *
 * Agents (DESIGN §6: an agent never skips, joins or cancels a run of a system workflow or
 * of another entity):
 *  - an agent's idempotency and debounce/batch keys live in a partition of their own
 *    ("agent:<entity_id>|<value>"): it neither takes a key others use nor joins their runs;
 *  - singleton keys are shared, but runs agents started never make another's request
 *    skip; an agent's `cancel` that would cancel a run it may not touch (a system
 *    workflow's, another entity's) is refused: nothing created or cancelled, an audited
 *    agent.refused;
 *  - throttle and concurrency are shared: they only delay. */
rt_status rt_admission_apply(rt_store *st, rt_run_request *reqs, size_t n, rt_error *err);

/* A run that waited for approval and is approved now: flow control applies to it as to a
 * new request, except that it neither joins nor collects (debounce, batch_events: the
 * approval covered exactly its own event). req: wf, trigger and event as stored, id the
 * run, parent_run_id when a child. On RT_OK, *admitted false: reason says why it may not
 * run (idempotency or singleton skip; the caller ends it); true: *trigger (new reference)
 * is the trigger stamped with the keys it holds, req->run_at_ms when it may start (0 or
 * a throttle slot), and singleton cancels are done. */
rt_status rt_admission_admit_approved(rt_store *st, rt_run_request *req, bool *admitted, json_t **trigger,
                                      rt_error *err);

#endif
