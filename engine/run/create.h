/* create.h — the one way a run is made (DESIGN §6 "the gate comes first"). Every path —
 * broker and HTTP events, webhooks, the CLI, cron, invoke, replay, on_failure, publish,
 * debounce and batch — calls rt_run_create_tx, which decides in this order:
 *   1. the gate: a request whose event actor the workflow's approval.required_for names
 *      is created as asked and held (awaiting_approval) by the approval gate. It takes no
 *      flow-control key, joins no pending run and cancels nothing; flow control applies
 *      when it is approved (rt_admission_admit_approved).
 *   2. flow control for the others (admission.h), which creates what it admits.
 * The approval gate lives above this layer (trust/); the process wires it in at start
 * (gate.h). A gated request in a process without a gate fails: it never runs unapproved. */
#ifndef RT_CREATE_H
#define RT_CREATE_H

#include <stddef.h>

#include "status.h"
#include "store.h"

/* Creates runs for reqs[0..n) inside the caller's transaction (rt_store_begin ... commit).
 * On RT_OK each request's id is its new run, the pending run it joined, or "" (reason says
 * why nothing was created); see rt_run_request. */
rt_status rt_run_create_tx(rt_store *st, rt_run_request *reqs, size_t n, rt_error *err);
/* The same in a transaction of its own. */
rt_status rt_run_create(rt_store *st, rt_run_request *reqs, size_t n, rt_error *err);

#endif
