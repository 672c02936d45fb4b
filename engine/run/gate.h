/* gate.h — where the approval gate (trust/, a layer above) acts inside run/: one table of
 * hooks, filled once at start by the binary (engine/main.c), nginx-phase style. run/
 * calls nothing in trust/ directly.
 *
 * Fail closed: a run that needs approval in a process without a gate is not created
 * (create.c); without a gate no decision is read and no approval step registers. */
#ifndef RT_GATE_H
#define RT_GATE_H

#include <jansson.h>
#include <stddef.h>

#include "event.h"
#include "status.h"
#include "store.h"
#include "workflow.h"

typedef struct rt_run_gate {
    /* Runs just created whose actor needs approval (reqs[i].id set): make them wait. */
    rt_status (*hold)(rt_store *st, const rt_run_request *reqs, size_t n, rt_error *err);
    /* Every fresh event of an ingest batch, in its transaction: signed decisions. */
    rt_status (*decisions)(rt_store *st, const rt_workflow_set *set, rt_event *const *fresh, size_t n, rt_error *err);
    /* executor finalize: approval steps of run_id that just suspended (rows, changed in place). */
    rt_status (*register_steps)(rt_store *st, const rt_workflow_set *set, const char *run_id, const rt_workflow *wf,
                                json_t *event, json_t *rows, rt_error *err);
    /* executor deadline sweep: runs it ended ([{id, ...}]) close their gates; overdue gates expire. */
    rt_status (*sweep)(rt_store *st, const rt_workflow_set *set, json_t *ended, rt_error *err);
} rt_run_gate;

/* Wires the gate in (g is borrowed for the process's life); once, before any thread. */
void rt_run_gate_set(const rt_run_gate *g);
/* The wired gate, or NULL. */
const rt_run_gate *rt_run_gate_get(void);

#endif
