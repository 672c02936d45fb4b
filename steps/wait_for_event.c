/* wait_for_event.c — suspends the run until an event named `event` (or any of a list)
 * arrives and matches `if` (a bare expression over `async`, the candidate event, and the
 * run's own context), or until `timeout`. Events that arrived before the wait was
 * registered count too, back to `lookback` (default: since the run started). The executor
 * registers the wait and ingest wakes it; no thread is held meanwhile. */
#include <string.h>

#include "event.h"
#include "expr.h"
#include "step.h"
#include "util.h"
#include "workflow.h"

static rt_status check_names(json_t *ev, rt_error *err)
{
    if (json_is_string(ev))
        return rt_template_present(json_string_value(ev)) ? RT_OK
                                                          : rt_event_name_check(json_string_value(ev), err);
    if (!json_is_array(ev) || json_array_size(ev) == 0)
        return rt_error_set(err, RT_ERR_INVALID, "wait_for_event needs \"event\": a name or a non-empty list of names");
    size_t i;
    json_t *v;
    json_array_foreach(ev, i, v) {
        if (!json_is_string(v))
            return rt_error_set(err, RT_ERR_INVALID, "wait_for_event \"event\"[%zu] must be a string", i);
        if (!rt_template_present(json_string_value(v)) && rt_event_name_check(json_string_value(v), err) != RT_OK)
            return rt_error_prefix(err, "wait_for_event \"event\"[%zu]", i);
    }
    return RT_OK;
}

static rt_status validate(json_t *with, rt_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(with, key, v) {
        if (strcmp(key, "event") && strcmp(key, "if") && strcmp(key, "timeout") && strcmp(key, "lookback"))
            return rt_error_set(err, RT_ERR_INVALID, "wait_for_event: unknown key \"%s\" (known: event, if, timeout, lookback)", key);
    }
    rt_status s = check_names(json_object_get(with, "event"), err);
    if (s != RT_OK)
        return s;
    json_t *cond = json_object_get(with, "if");
    if (cond) {
        if (!json_is_string(cond))
            return rt_error_set(err, RT_ERR_INVALID, "wait_for_event \"if\" must be a string");
        if (rt_template_present(json_string_value(cond)))
            return rt_error_set(err, RT_ERR_INVALID,
                                "wait_for_event \"if\" is evaluated for each candidate event: write it as a bare "
                                "expression (e.g. \"async.data.id == event.data.id\"), not a ${{ }} template");
        if (rt_expr_check(json_string_value(cond), err) != RT_OK)
            return rt_error_prefix(err, "wait_for_event \"if\"");
    }
    int64_t ms;
    const char *durs[] = {"timeout", "lookback"};
    for (int i = 0; i < 2; i++) {
        json_t *d = json_object_get(with, durs[i]);
        if (d && !json_is_string(d))
            return rt_error_set(err, RT_ERR_INVALID, "wait_for_event \"%s\" must be a duration string", durs[i]);
        if (d && !rt_template_present(json_string_value(d)) && rt_duration_parse(json_string_value(d), &ms, err) != RT_OK)
            return rt_error_prefix(err, "wait_for_event \"%s\"", durs[i]);
    }
    return RT_OK;
}

static void execute(rt_step_ctx *ctx, json_t *with, rt_step_result *res)
{
    int64_t now = rt_now_ms();
    json_t *wait = json_object_get(ctx->state, "wait");
    if (wait) {
        json_t *matched = json_object_get(ctx->state, "matched");
        json_t *expires = json_object_get(wait, "expires_at");
        if (matched) {
            res->outcome = RT_STEP_OK;
            res->output = json_incref(matched);
            return;
        }
        if (json_is_integer(expires) && now >= json_integer_value(expires)) {
            res->outcome = RT_STEP_OK;
            res->output = json_null(); /* timed out */
            return;
        }
        res->outcome = RT_STEP_SUSPEND; /* woken early: keep waiting */
        res->resume_at_ms = json_is_integer(expires) ? json_integer_value(expires) : 0;
        res->state = json_incref(ctx->state);
        return;
    }
    rt_error err;
    if (check_names(json_object_get(with, "event"), &err) != RT_OK) {
        rt_step_fail(res, false, "%s", err.msg);
        return;
    }
    json_t *names = json_object_get(with, "event");
    names = json_is_string(names) ? json_pack("[O]", names) : json_incref(names);
    int64_t timeout = 0, lookback = -1;
    json_t *t = json_object_get(with, "timeout"), *l = json_object_get(with, "lookback");
    if ((t && rt_duration_parse(json_string_value(t), &timeout, &err) != RT_OK) ||
        (l && rt_duration_parse(json_string_value(l), &lookback, &err) != RT_OK)) {
        json_decref(names);
        rt_step_fail(res, false, "wait_for_event: %s", err.msg);
        return;
    }
    /* lookback_from 0 means "since the run started" (the executor knows when that was). */
    json_t *w = json_pack("{s:o, s:O?, s:I}", "names", names, "if", json_object_get(with, "if"), "lookback_from",
                          (json_int_t)(lookback >= 0 ? now - lookback : 0));
    if (timeout > 0)
        json_object_set_new(w, "expires_at", json_integer(now + timeout));
    res->outcome = RT_STEP_SUSPEND;
    res->resume_at_ms = timeout > 0 ? now + timeout : 0;
    res->state = json_pack("{s:o}", "wait", w);
}

const rt_step_type rt_step_wait_for_event = {
    .name = "wait_for_event", .wait = RT_STEP_WAIT_EVENT, .quick = true, .validate = validate, .execute = execute};
