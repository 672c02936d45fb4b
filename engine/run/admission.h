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
 * shared run would leave a parent waiting or change what a replay means. */
#ifndef RT_ADMISSION_H
#define RT_ADMISSION_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"
#include "store.h"

/* Called first by rt_store_create_runs_tx, inside its transaction. When no request needs
 * admission (no such blocks, or .admitted already set) it does nothing and sets *handled =
 * false: the caller creates them. Otherwise it decides every request, creates the admitted
 * ones itself (through rt_store_create_runs_tx with .admitted set; requests without
 * controls pass unchanged) and sets *handled = true. Either way, on RT_OK each request's
 * id is its new run, or the existing run it joined (debounce, batch_events: reason says
 * so), or "" with reason saying why nothing was created. A throttled run's reason says
 * when it starts. */
rt_status rt_admission_apply(rt_store *st, rt_run_request *reqs, size_t n, bool *handled, rt_error *err);

#endif
