/* registry.c — the static table of built-in step types. Adding one is one line here. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "step.h"

extern const rt_step_type rt_step_transform;
extern const rt_step_type rt_step_log;
extern const rt_step_type rt_step_sleep;
extern const rt_step_type rt_step_exec;
extern const rt_step_type rt_step_http;
extern const rt_step_type rt_step_sql;

static const rt_step_type *const step_types[] = {
    &rt_step_transform, &rt_step_log, &rt_step_sleep, &rt_step_exec, &rt_step_http, &rt_step_sql, NULL,
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
    memset(res, 0, sizeof *res);
}
