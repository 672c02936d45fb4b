/* outcome.h — what a run becomes from its steps' states: one pure function, so the rule
 * (first failure wins, continue_on_error makes a run partial, sleeping beats waiting beats
 * running) lives in one place with a unit table (tests/unit/test_outcome.c). */
#ifndef RT_OUTCOME_H
#define RT_OUTCOME_H

#include <stdbool.h>
#include <stddef.h>

#include "run_status.h"

/* One step of the workflow, in workflow order, as the executor sees it under the run lock. */
typedef struct rt_step_state {
    bool scheduled;          /* false: no row yet (status is then ignored) */
    rt_step_status status;   /* the row's status when scheduled */
    bool continue_on_error;  /* a failure of this step makes the run partial, not failed */
    bool needs_met;          /* every step it needs completed, was skipped or failed with continue_on_error */
} rt_step_state;

typedef enum rt_outcome_kind {
    RT_OUTCOME_ENDED = 0, /* the run had already ended (cancelled meanwhile, ...): change nothing */
    RT_OUTCOME_FAILED,    /* a step failed without continue_on_error: failed_step says which */
    RT_OUTCOME_DONE,      /* every step completed, was skipped or failed: status is completed or partial */
    RT_OUTCOME_UNFINISHED /* status is running, sleeping or waiting; start the unscheduled ready steps */
} rt_outcome_kind;

typedef struct rt_run_outcome {
    rt_outcome_kind kind;
    rt_run_status status; /* FAILED, DONE, UNFINISHED: the run's new status */
    size_t failed_step;   /* FAILED: index of the first failed step (workflow order) */
} rt_run_outcome;

/* The run's outcome. `ended` says the run's stored status is already final. Unscheduled
 * steps whose needs are met count as pending (the caller starts them unless the run ended
 * or failed). Pure: no I/O, no allocation. */
rt_run_outcome rt_run_outcome_of(bool ended, const rt_step_state *steps, size_t n);

/* Should this step be started now, given the outcome? (unscheduled, needs met, run going on) */
bool rt_run_outcome_starts(const rt_run_outcome *o, const rt_step_state *step);

#endif
