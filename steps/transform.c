/* transform.c — evaluates `value` (already rendered by the executor) and returns it. */
#include "step.h"

static rt_status validate(json_t *with, rt_error *err)
{
    if (!json_object_get(with, "value"))
        return rt_error_set(err, RT_ERR_INVALID, "transform needs \"value\"");
    return RT_OK;
}

static void execute(rt_step_ctx *ctx, json_t *with, rt_step_result *res)
{
    res->outcome = RT_STEP_OK;
    res->output = json_incref(json_object_get(with, "value")); /* new reference for res */
}

const rt_step_type rt_step_transform = {
    .name = "transform", .inline_ok = true, .quick = true, .validate = validate, .execute = execute};
