/* replay.c — builds the request for a replay of a run from what the store pinned. */
#include "replay.h"

#include <stdio.h>
#include <string.h>

void rt_replay_clear(rt_replay *r)
{
    rt_workflow_free(r->wf);
    json_decref(r->trigger);
    json_decref(r->prefill);
    json_decref(r->src);
    r->wf = NULL;
    r->trigger = r->prefill = r->src = NULL;
}

rt_status rt_replay_prepare(rt_store *st, const char *run_id, const char *from_step, const char *from_what,
                            rt_replay *out, rt_error *err)
{
    rt_replay_clear(out);
    json_t *def = NULL, *old = NULL;
    rt_status s = rt_store_run_source(st, run_id, &out->src, err);
    const char *hash = json_string_value(json_object_get(out->src, "workflow_hash"));
    if (s == RT_OK)
        s = rt_store_get_definition(st, hash, &def, err);
    if (s == RT_OK)
        s = rt_workflow_from_json(def, NULL, &out->wf, err);
    if (s == RT_OK) /* the run pinned this exact definition: keep its hash */
        snprintf(out->wf->hash, sizeof out->wf->hash, "%s", hash);
    if (s == RT_OK && from_step) {
        int from = rt_workflow_step_index(out->wf, from_step);
        if (from < 0)
            s = rt_error_set(err, RT_ERR_INVALID, "%s: no step \"%.64s\" in workflow %s", from_what, from_step,
                             out->wf->id);
        if (s == RT_OK)
            s = rt_store_get_run(st, run_id, true, &old, err);
        out->prefill = json_object();
        size_t i;
        json_t *step;
        json_array_foreach(json_object_get(old, "steps"), i, step) {
            const char *status = json_string_value(json_object_get(step, "status"));
            /* Steps before from_step (file order) that completed keep their memoized output. */
            if ((int)i < from && status && (!strcmp(status, "completed") || !strcmp(status, "skipped")))
                json_object_set_new(out->prefill, json_string_value(json_object_get(step, "id")),
                                    json_pack("{s:s, s:O?}", "status", status, "output",
                                              json_object_get(step, "output")));
        }
    }
    json_decref(def);
    json_decref(old);
    if (s != RT_OK)
        return s;
    out->trigger = json_deep_copy(json_object_get(out->src, "trigger"));
    json_object_set_new(out->trigger, "replay_of", json_string(run_id));
    if (from_step)
        json_object_set_new(out->trigger, "replay_from", json_string(from_step));
    out->req = (rt_run_request){.wf = out->wf, .trigger = out->trigger, .event = json_object_get(out->src, "event"),
                                .prefill = out->prefill};
    return RT_OK;
}
