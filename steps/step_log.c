/* step_log.c — the `log` step type: writes one structured log line from `message` (and
 * optional `level`, `fields`). */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "step.h"

static rt_status validate(json_t *with, rt_error *err)
{
    json_t *msg = json_object_get(with, "message");
    if (!msg)
        return rt_error_set(err, RT_ERR_INVALID, "log needs \"message\"");
    json_t *level = json_object_get(with, "level");
    rt_log_level lv;
    if (level && (!json_is_string(level) || !rt_log_level_parse(json_string_value(level), &lv)))
        return rt_error_set(err, RT_ERR_INVALID, "log \"level\" must be debug, info, warn or error");
    return RT_OK;
}

static void execute(rt_step_ctx *ctx, json_t *with, rt_step_result *res)
{
    rt_log_level lv = RT_LOG_INFO;
    json_t *level = json_object_get(with, "level");
    if (json_is_string(level))
        rt_log_level_parse(json_string_value(level), &lv);
    json_t *msg = json_object_get(with, "message");
    char *text = json_is_string(msg) ? strdup(json_string_value(msg))
                                     : json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY);
    rt_log_ctx lc = {.workflow = ctx->workflow_id, .run_id = ctx->run_id, .step_id = ctx->step_id};
    rt_log(lv, &lc, "%s", text ? text : "");
    free(text);
    res->outcome = RT_STEP_OK;
    res->output = json_null();
}

const rt_step_type rt_step_log = {.name = "log", .inline_ok = true, .quick = true, .validate = validate, .execute = execute};
