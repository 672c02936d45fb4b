/* step_approval.c — the `approval` step type, an approval gate inside a workflow (DESIGN §4,
 * §6): suspends until one of `approvers` sends a signed decision for this run and step
 * (engine/trust/approval.c checks it),
 * then outputs {decision, approver, comment}. A rejection ends the run `rejected` and no
 * decision before `timeout` ends it `expired` (both done by the decision path and the
 * deadline sweep, not here). The executor registers the gate when the step suspends. */
#include <ctype.h>
#include <string.h>

#include "expr.h"
#include "step.h"
#include "util.h"

static bool approver_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128 || !isalnum((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._-@+", s[i]))
            return false;
    return true;
}

static rt_status check(json_t *with, bool rendered, rt_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(with, key, v) {
        if (strcmp(key, "approvers") && strcmp(key, "timeout") && strcmp(key, "message") && strcmp(key, "details"))
            return rt_error_set(err, RT_ERR_INVALID,
                                "approval: unknown key \"%s\" (known: approvers, timeout, message, details)", key);
    }
    json_t *a = json_object_get(with, "approvers");
    if (!a)
        return rt_error_set(err, RT_ERR_INVALID, "approval needs \"approvers\": the ids allowed to decide");
    if (!rt_step_is_template(a, rendered)) {
        if (!json_is_array(a) || json_array_size(a) == 0)
            return rt_error_set(err, RT_ERR_INVALID, "approval \"approvers\" must be a non-empty list of approver ids");
        size_t i;
        json_t *id;
        json_array_foreach(a, i, id) {
            if (rt_step_is_template(id, rendered))
                continue;
            if (!json_is_string(id) || !approver_ok(json_string_value(id)))
                return rt_error_set(err, RT_ERR_INVALID,
                                    "approval \"approvers\"[%zu] must match ^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$", i);
        }
    }
    json_t *m = json_object_get(with, "message");
    if (m && !json_is_string(m))
        return rt_error_set(err, RT_ERR_INVALID, "approval \"message\" must be a string");
    int64_t ms = 0;
    const char *text = NULL;
    return rt_step_duration_option(with, "timeout", rendered, "approval", &ms, &text, err);
}

static rt_status validate(json_t *with, rt_error *err)
{
    return check(with, false, err);
}

static void execute(rt_step_ctx *ctx, json_t *with, rt_step_result *res)
{
    json_t *decision = json_object_get(ctx->state, "decision");
    if (decision) {
        const char *d = json_string_value(json_object_get(decision, "decision"));
        if (d && !strcmp(d, "approve")) {
            res->outcome = RT_STEP_OK;
            res->output = json_incref(decision);
            return;
        }
        /* The decision path ends a rejected run itself; this is only a safety net. */
        rt_step_fail(res, false, "rejected by %s", json_string_value(json_object_get(decision, "approver")) ?: "?");
        res->error_detail = json_incref(decision);
        return;
    }
    res->outcome = RT_STEP_SUSPEND;
    res->resume_at_ms = 0; /* woken by a decision; expiry is the deadline sweep's */
    if (json_object_get(ctx->state, "approval")) {
        res->state = json_incref(ctx->state);
        return;
    }
    rt_error err;
    if (check(with, true, &err) != RT_OK) {
        res->outcome = RT_STEP_FAIL;
        rt_step_fail(res, false, "%s", err.msg);
        return;
    }
    int64_t timeout = 0;
    const char *text = NULL;
    rt_step_duration_option(with, "timeout", true, "approval", &timeout, &text, &err);
    json_t *gate = json_pack("{s:O, s:O?, s:O?, s:O}", "approvers", json_object_get(with, "approvers"), "message",
                             json_object_get(with, "message"), "details", json_object_get(with, "details"), "with",
                             with);
    if (timeout > 0)
        json_object_set_new(gate, "expires_at", json_integer(rt_now_ms() + timeout));
    res->state = json_pack("{s:o}", "approval", gate);
}

const rt_step_type rt_step_approval = {.name = "approval", .wait = RT_STEP_WAIT_APPROVAL, .quick = true, .validate = validate, .execute = execute};
