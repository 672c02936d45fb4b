/* fuzz_workflow.c — libFuzzer target for the workflow loader: any bytes go through
 * rt_workflow_parse; what loads must be self-consistent and rebuild to the same hash. The
 * same bytes, split at the first newline, also exercise event patterns and matching. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "workflow.h"

static void check_loaded(rt_workflow *wf)
{
    for (size_t i = 0; i < wf->n_steps; i++) {
        const rt_step_def *sd = &wf->steps[i];
        if (rt_workflow_step_index(wf, sd->id) != (int)i || !sd->type || !json_is_object(sd->with))
            abort();
        for (size_t k = 0; k < sd->n_needs; k++) {
            if (sd->need_idx[k] >= wf->n_steps || sd->need_idx[k] == i ||
                strcmp(wf->steps[sd->need_idx[k]].id, sd->needs[k]) != 0)
                abort();
        }
    }
    for (size_t i = 0; i < wf->n_triggers; i++) {
        const rt_trigger *t = &wf->triggers[i];
        if (t->kind == RT_TRIGGER_EVENT ? !t->event : (!t->cron || !t->timezone))
            abort();
        if (t->kind == RT_TRIGGER_EVENT && rt_event_pattern_check(t->event, NULL) != RT_OK)
            abort();
    }
    /* a pinned definition rebuilds to the same workflow */
    rt_workflow *again = NULL;
    rt_error err;
    if (rt_workflow_from_json(wf->definition, wf->file, &again, &err) != RT_OK ||
        strcmp(again->hash, wf->hash) != 0 || again->n_steps != wf->n_steps)
        abort();
    rt_workflow_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rt_workflow *wf = NULL;
    rt_error err;
    if (rt_workflow_parse((const char *)data, size, "fuzz.json", &wf, &err) == RT_OK) {
        check_loaded(wf);
        rt_workflow_free(wf);
    } else if (wf != NULL || err.msg[0] == '\0') {
        abort();
    }

    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *nl = strchr(text, '\n');
    if (nl) {
        *nl = '\0';
        const char *pattern = text, *name = nl + 1;
        bool valid = rt_event_pattern_check(pattern, NULL) == RT_OK;
        bool m = rt_event_name_matches(pattern, name);
        /* a name always matches itself as a pattern, and ">" matches every valid name */
        if (valid && rt_event_name_check(pattern, NULL) == RT_OK && !rt_event_name_matches(pattern, pattern))
            abort();
        if (rt_event_name_check(name, NULL) == RT_OK && !rt_event_name_matches(">", name))
            abort();
        (void)m;
    }
    free(text);
    return 0;
}
