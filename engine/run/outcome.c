/* outcome.c — a run's outcome from its steps' states (see outcome.h). */
#include "outcome.h"

static bool step_done(const rt_step_state *s)
{
    return s->scheduled &&
           (s->status == RT_STEP_COMPLETED || s->status == RT_STEP_SKIPPED || s->status == RT_STEP_FAILED);
}

rt_run_outcome rt_run_outcome_of(bool ended, const rt_step_state *steps, size_t n)
{
    rt_run_outcome o = {.kind = RT_OUTCOME_ENDED, .status = RT_RUN_RUNNING, .failed_step = 0};
    if (ended)
        return o;
    bool partial = false;
    for (size_t i = 0; i < n; i++) {
        if (!steps[i].scheduled || steps[i].status != RT_STEP_FAILED)
            continue;
        if (!steps[i].continue_on_error) {
            o.kind = RT_OUTCOME_FAILED;
            o.status = RT_RUN_FAILED;
            o.failed_step = i;
            return o;
        }
        partial = true;
    }
    bool all_done = true, sleeping = false, waiting = false;
    for (size_t i = 0; i < n; i++) {
        const rt_step_state *s = &steps[i];
        /* an unscheduled ready step is about to be pending: not done, neither asleep nor waiting */
        if (!step_done(s))
            all_done = false;
        if (s->scheduled && s->status == RT_STEP_SLEEPING)
            sleeping = true;
        if (s->scheduled && s->status == RT_STEP_WAITING)
            waiting = true;
    }
    if (all_done) {
        o.kind = RT_OUTCOME_DONE;
        o.status = partial ? RT_RUN_PARTIAL : RT_RUN_COMPLETED;
    } else {
        o.kind = RT_OUTCOME_UNFINISHED;
        o.status = sleeping ? RT_RUN_SLEEPING : waiting ? RT_RUN_WAITING : RT_RUN_RUNNING;
    }
    return o;
}

bool rt_run_outcome_starts(const rt_run_outcome *o, const rt_step_state *step)
{
    return o->kind != RT_OUTCOME_ENDED && o->kind != RT_OUTCOME_FAILED && !step->scheduled && step->needs_met;
}
