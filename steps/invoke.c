/* invoke.c — starts another workflow with `data` and suspends until that child run ends;
 * the child's output becomes this step's output, its failure fails this step. The
 * executor creates the child (once: its dedupe key is this step's key) and the child's
 * end wakes this step with the result. */
#include <string.h>

#include "expr.h"
#include "step.h"
#include "workflow.h"

static rt_status validate(json_t *with, rt_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(with, key, v) {
        if (strcmp(key, "workflow") && strcmp(key, "data"))
            return rt_error_set(err, RT_ERR_INVALID, "invoke: unknown key \"%s\" (known: workflow, data)", key);
    }
    json_t *wf = json_object_get(with, "workflow");
    if (!json_is_string(wf))
        return rt_error_set(err, RT_ERR_INVALID, "invoke needs \"workflow\": the id of the workflow to start");
    if (!rt_template_present(json_string_value(wf)) && !rt_workflow_id_valid(json_string_value(wf)))
        return rt_error_set(err, RT_ERR_INVALID, "invoke \"workflow\": \"%.64s\" is not a workflow id",
                            json_string_value(wf));
    return RT_OK;
}

static void execute(rt_step_ctx *ctx, json_t *with, rt_step_result *res)
{
    json_t *result = json_object_get(ctx->state, "result");
    if (result) {
        const char *status = json_string_value(json_object_get(result, "status"));
        if (status && (!strcmp(status, "completed") || !strcmp(status, "partial"))) {
            res->outcome = RT_STEP_OK;
            res->output = json_incref(json_object_get(result, "output"));
            return;
        }
        const char *error = json_string_value(json_object_get(result, "error"));
        rt_step_fail(res, false, "child run %s ended %s%s%s",
                     json_string_value(json_object_get(result, "run_id")) ?: "-", status ? status : "?",
                     error ? ": " : "", error ? error : "");
        res->error_detail = json_incref(result);
        return;
    }
    res->outcome = RT_STEP_SUSPEND;
    res->resume_at_ms = 0; /* woken by the child's end */
    if (json_object_get(ctx->state, "invoke")) {
        res->state = json_incref(ctx->state);
        return;
    }
    json_t *data = json_object_get(with, "data");
    res->state = json_pack("{s:{s:O, s:O}}", "invoke", "workflow", json_object_get(with, "workflow"), "data",
                           data ? data : json_object());
}

const rt_step_type rt_step_invoke = {.name = "invoke", .wait = RT_STEP_WAIT_RUN, .quick = true, .validate = validate, .execute = execute};
