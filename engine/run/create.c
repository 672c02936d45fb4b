/* create.c — the gate, then flow control, then the store (see create.h). */
#include "create.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "gate.h"
#include "workflow.h"

static const rt_run_gate *gate;

void rt_run_gate_set(const rt_run_gate *g)
{
    gate = g;
}

const rt_run_gate *rt_run_gate_get(void)
{
    return gate;
}

/* Gated requests: created as asked (no flow control), then held. */
static rt_status create_gated(rt_store *st, rt_run_request *reqs, size_t n, rt_error *err)
{
    if (!gate || !gate->hold)
        return rt_error_set(err, RT_ERR_UNAVAILABLE,
                            "workflow %s needs approval for this actor, but this process has no approval gate wired in",
                            reqs[0].wf->id);
    for (size_t i = 0; i < n; i++)
        reqs[i].reason[0] = '\0';
    rt_status s = rt_store_create_runs_tx(st, reqs, n, err);
    return s == RT_OK ? gate->hold(st, reqs, n, err) : s;
}

rt_status rt_run_create_tx(rt_store *st, rt_run_request *reqs, size_t n, rt_error *err)
{
    bool *gated_req = calloc(n ? n : 1, sizeof *gated_req); /* decided once per request */
    if (!gated_req)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    size_t n_gated = 0;
    for (size_t i = 0; i < n; i++)
        n_gated += gated_req[i] = rt_workflow_gates(reqs[i].wf, reqs[i].event);
    rt_status s;
    if (n_gated == 0) {
        s = rt_admission_apply(st, reqs, n, err);
    } else if (n_gated == n) {
        s = create_gated(st, reqs, n, err);
    } else {
        /* Both kinds in one batch: each goes its way, the answers go back in place. */
        rt_run_request *gated = calloc(n_gated, sizeof *gated), *free_ = calloc(n - n_gated, sizeof *free_);
        s = gated && free_ ? RT_OK : rt_error_set(err, RT_ERR_NOMEM, "out of memory");
        size_t g = 0, f = 0;
        for (size_t i = 0; s == RT_OK && i < n; i++) {
            if (gated_req[i])
                gated[g++] = reqs[i];
            else
                free_[f++] = reqs[i];
        }
        if (s == RT_OK)
            s = create_gated(st, gated, g, err);
        if (s == RT_OK)
            s = rt_admission_apply(st, free_, f, err);
        g = f = 0;
        for (size_t i = 0; s == RT_OK && i < n; i++) {
            const rt_run_request *from = gated_req[i] ? &gated[g++] : &free_[f++];
            memcpy(reqs[i].id, from->id, sizeof reqs[i].id);
            memcpy(reqs[i].reason, from->reason, sizeof reqs[i].reason);
        }
        free(gated);
        free(free_);
    }
    free(gated_req);
    return s;
}

rt_status rt_run_create(rt_store *st, rt_run_request *reqs, size_t n, rt_error *err)
{
    rt_status s = rt_store_begin(st, err);
    if (s == RT_OK)
        s = rt_run_create_tx(st, reqs, n, err);
    if (s == RT_OK)
        s = rt_store_commit(st, err);
    if (s != RT_OK)
        rt_store_rollback(st);
    return s;
}
