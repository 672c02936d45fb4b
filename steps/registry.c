/* registry.c — the static table of built-in step types. Adding one is one line here.
 * Also the small helpers that step implementations share (step.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "expr.h"
#include "step.h"
#include "util.h"

extern const rt_step_type rt_step_transform;
extern const rt_step_type rt_step_log;
extern const rt_step_type rt_step_sleep;
extern const rt_step_type rt_step_exec;
extern const rt_step_type rt_step_http;
extern const rt_step_type rt_step_sql;
extern const rt_step_type rt_step_wait_for_event;
extern const rt_step_type rt_step_publish;
extern const rt_step_type rt_step_invoke;
extern const rt_step_type rt_step_approval;
extern const rt_step_type rt_step_email;

static const rt_step_type *const step_types[] = {
    &rt_step_transform, &rt_step_log, &rt_step_sleep, &rt_step_exec, &rt_step_http, &rt_step_sql, &rt_step_wait_for_event, &rt_step_publish, &rt_step_invoke, &rt_step_approval, &rt_step_email, NULL,
};

const rt_step_type *rt_step_type_find(const char *name)
{
    for (size_t i = 0; step_types[i]; i++) {
        if (strcmp(step_types[i]->name, name) == 0)
            return step_types[i];
    }
    return NULL;
}

const rt_step_type *const *rt_step_types(void)
{
    return step_types;
}

void rt_step_fail(rt_step_result *res, bool retriable, const char *fmt, ...)
{
    res->outcome = RT_STEP_FAIL;
    res->retriable = retriable;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->error, sizeof res->error, fmt, ap);
    va_end(ap);
}

void rt_step_result_clear(rt_step_result *res)
{
    json_decref(res->output);
    json_decref(res->error_detail);
    json_decref(res->state);
    json_decref(res->emit);
    memset(res, 0, sizeof *res);
}

bool rt_step_is_template(const json_t *v, bool rendered)
{
    return !rendered && json_is_string(v) && rt_template_present(json_string_value(v));
}

rt_status rt_step_duration_option(json_t *with, const char *key, bool rendered, const char *step,
                                  int64_t *ms, const char **text, rt_error *err)
{
    json_t *v = json_object_get(with, key);
    if (!v || rt_step_is_template(v, rendered))
        return RT_OK;
    if (!json_is_string(v))
        return rt_error_set(err, RT_ERR_INVALID, "%s \"%s\" must be a duration string like \"30s\"",
                            step, key);
    if (rt_duration_parse(json_string_value(v), ms, err) != RT_OK)
        return rt_error_prefix(err, "%s \"%s\"", step, key);
    *text = json_string_value(v);
    return RT_OK;
}
