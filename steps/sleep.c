/* sleep.c — a durable sleep: the first execution records when to wake and suspends; no
 * worker is held. After a restart the stored wake time still holds. */
#include "step.h"
#include "expr.h"
#include "util.h"

static rt_status validate(json_t *with, rt_error *err)
{
    json_t *d = json_object_get(with, "duration"), *u = json_object_get(with, "until");
    if (!d == !u)
        return rt_error_set(err, RT_ERR_INVALID, "sleep needs exactly one of \"duration\" or \"until\"");
    int64_t ms;
    if (d && json_is_string(d) && !rt_template_present(json_string_value(d)))
        return rt_duration_parse(json_string_value(d), &ms, err);
    if (u && json_is_string(u) && !rt_template_present(json_string_value(u)))
        return rt_time_parse(json_string_value(u), &ms, err);
    if ((d && !json_is_string(d)) || (u && !json_is_string(u)))
        return rt_error_set(err, RT_ERR_INVALID, "sleep \"duration\"/\"until\" must be a string");
    return RT_OK;
}

static void execute(rt_step_ctx *ctx, json_t *with, rt_step_result *res)
{
    json_t *wake = json_object_get(ctx->state, "wake_at_ms");
    int64_t now = rt_now_ms();
    if (json_is_integer(wake)) {
        int64_t at = json_integer_value(wake);
        if (now >= at) {
            char ts[40];
            rt_time_format(now, ts, sizeof ts);
            res->outcome = RT_STEP_OK;
            res->output = json_pack("{s:s}", "woke_at", ts);
            return;
        }
        res->outcome = RT_STEP_SUSPEND;
        res->resume_at_ms = at;
        res->state = json_incref(ctx->state);
        return;
    }
    rt_error err;
    int64_t at;
    json_t *d = json_object_get(with, "duration"), *u = json_object_get(with, "until");
    if (json_is_string(d)) {
        int64_t ms;
        if (rt_duration_parse(json_string_value(d), &ms, &err) != RT_OK) {
            rt_step_fail(res, false, "sleep: %s", err.msg);
            return;
        }
        at = now + ms;
    } else if (json_is_string(u)) {
        if (rt_time_parse(json_string_value(u), &at, &err) != RT_OK) {
            rt_step_fail(res, false, "sleep: %s", err.msg);
            return;
        }
    } else {
        rt_step_fail(res, false, "sleep needs \"duration\" or \"until\" as a string");
        return;
    }
    res->outcome = RT_STEP_SUSPEND;
    res->resume_at_ms = at;
    res->state = json_pack("{s:I}", "wake_at_ms", (json_int_t)at);
}

const rt_step_type rt_step_sleep = {.name = "sleep", .wait = RT_STEP_WAIT_TIMER, .quick = true, .validate = validate, .execute = execute};
