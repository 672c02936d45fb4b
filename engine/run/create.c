/* create.c — the gate, then flow control, then the store (see create.h). */
#include "create.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "gate.h"
#include "store_workflows.h"
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

static rt_status create_unblocked(rt_store *st, rt_run_request *reqs, size_t n, rt_error *err)
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

/* A paused workflow's request becomes a held row (a cron tick replaces the one its
 * trigger already holds); a removed workflow's creates nothing. */
static json_t *held_row(const rt_run_request *r)
{
    json_t *trigger = r->trigger;
    const char *type = json_string_value(json_object_get(trigger, "type"));
    char key[32] = "";
    if (type && !strcmp(type, "cron"))
        snprintf(key, sizeof key, "cron:%lld", (long long)json_integer_value(json_object_get(trigger, "index")));
    return json_pack("{s:s, s:s?, s:O, s:O, s:I, s:s?, s:s?, s:s?}", "workflow_id", r->wf->id, "hold_key",
                     key[0] ? key : NULL, "trigger", trigger, "event", r->event, "run_at", (json_int_t)r->run_at_ms,
                     "dedupe_key", r->dedupe_key, "parent_run_id", r->parent_run_id, "parent_step_id",
                     r->parent_step_id);
}

/* Which requests are for paused or removed workflows (asked in this transaction, so a
 * pause that committed is seen by every process at once, before its NOTIFY arrives).
 * A replay (prefill) is a person's explicit re-run of a pinned definition: it passes. */
rt_status rt_run_create_tx(rt_store *st, rt_run_request *reqs, size_t n, rt_error *err)
{
    json_t *ids = json_array(), *blocked = NULL;
    for (size_t i = 0; i < n; i++)
        if (!reqs[i].prefill)
            json_array_append_new(ids, json_string(reqs[i].wf->id));
    rt_status s = json_array_size(ids) ? rt_store_wf_blocked(st, ids, &blocked, err) : RT_OK;
    json_decref(ids);
    if (s != RT_OK || json_object_size(blocked) == 0) {
        json_decref(blocked);
        return s == RT_OK ? create_unblocked(st, reqs, n, err) : s;
    }
    rt_run_request *pass = calloc(n, sizeof *pass);
    size_t *from = calloc(n, sizeof *from), n_pass = 0;
    json_t *held = json_array();
    if (!pass || !from)
        s = rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; s == RT_OK && i < n; i++) {
        const char *why = reqs[i].prefill ? NULL : json_string_value(json_object_get(blocked, reqs[i].wf->id));
        reqs[i].id[0] = '\0';
        if (!why) {
            from[n_pass] = i;
            pass[n_pass++] = reqs[i];
        } else if (!strcmp(why, "paused")) {
            json_array_append_new(held, held_row(&reqs[i]));
            snprintf(reqs[i].reason, sizeof reqs[i].reason, "held: workflow %s is paused (it starts on resume)",
                     reqs[i].wf->id);
        } else {
            snprintf(reqs[i].reason, sizeof reqs[i].reason, "workflow %s was removed", reqs[i].wf->id);
        }
    }
    if (s == RT_OK)
        s = rt_store_wf_hold(st, held, err);
    if (s == RT_OK && n_pass)
        s = create_unblocked(st, pass, n_pass, err);
    for (size_t k = 0; s == RT_OK && k < n_pass; k++) {
        memcpy(reqs[from[k]].id, pass[k].id, sizeof pass[k].id);
        memcpy(reqs[from[k]].reason, pass[k].reason, sizeof pass[k].reason);
    }
    json_decref(held);
    json_decref(blocked);
    free(pass);
    free(from);
    return s;
}

rt_status rt_run_create(rt_store *st, rt_run_request *reqs, size_t n, rt_error *err)
{
    rt_status s = rt_store_begin(st, err);
    if (s == RT_OK)
        s = rt_run_create_tx(st, reqs, n, err);
    s = rt_store_end(st, s, err);
    return s;
}
