/* api_workflows.c — the registry routes (see api_workflows.h). Each change goes through
 * the catalog (workflow_catalog.h), which audits it and wakes every process. */
#include "api_workflows.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "log.h"
#include "metrics.h"
#include "workflow.h"
#include "workflow_catalog.h"

static void actor_of(const rt_api_req *r, char *buf, size_t len)
{
    snprintf(buf, len, "%s:%s", r->who.role == RT_ROLE_AGENT ? "agent" : "api", r->who.label);
}

static bool valid_id(rt_api_req *r, const char *id)
{
    if (rt_workflow_id_valid(id))
        return true;
    rt_api_reply_error(r, 400, "\"%.128s\" is not a workflow id (^[a-z0-9][a-z0-9._-]{0,127}$)", id);
    return false;
}

/* The store for one call, or NULL after answering 503. */
static rt_store *store_or_reply(rt_api_req *r)
{
    rt_error err;
    rt_store *st = rt_api_store_get(r, &err);
    if (!st)
        rt_api_reply_status(r, &err);
    return st;
}

/* PUT /api/v1/workflows/{id}: the body is the definition, validated as `ratchet validate`
 * does (400 naming the JSON path); its id must be the path's. */
void rt_api_put_workflow(rt_api_req *r)
{
    const char *id = r->params[0];
    if (!valid_id(r, id))
        return;
    rt_workflow *wf = NULL;
    rt_error err;
    if (rt_workflow_parse(r->body, r->body_len, NULL, &wf, &err) != RT_OK) {
        rt_metrics_counter_add("ratchet_bad_input_total", "kind", "workflow", 1);
        rt_api_reply_error_with(r, 400, json_pack("{s:[s]}", "errors", err.msg), "invalid workflow: %s", err.msg);
        return;
    }
    if (strcmp(wf->id, id)) {
        rt_api_reply_error(r, 400, "$.id: the definition is workflow \"%s\", the path names \"%s\"", wf->id, id);
        rt_workflow_free(wf);
        return;
    }
    rt_store *st = store_or_reply(r);
    if (!st) {
        rt_workflow_free(wf);
        return;
    }
    char actor[64];
    actor_of(r, actor, sizeof actor);
    bool changed = false;
    rt_status s = rt_catalog_apply(st, wf, "api", actor, &changed, &err);
    rt_api_store_put(r, st);
    if (s != RT_OK)
        rt_api_reply_status(r, &err);
    else
        rt_api_reply_json(r, changed ? 201 : 200,
                          json_pack("{s:s, s:s, s:b}", "id", wf->id, "version", wf->hash, "changed", changed));
    if (s == RT_OK)
        rt_log(RT_LOG_INFO, NULL, "api: workflow %s %s (version %.12s) by %s", wf->id, changed ? "applied" : "unchanged",
               wf->hash, actor);
    rt_workflow_free(wf);
}

/* DELETE /api/v1/workflows/{id}[?cancel_running=true] */
void rt_api_delete_workflow(rt_api_req *r)
{
    static const char *const q[] = {"cancel_running", NULL};
    if (!rt_api_query_only(r, q))
        return;
    const char *id = r->params[0];
    const char *cr = rt_api_query(r, "cancel_running");
    if (!valid_id(r, id))
        return;
    if (cr && strcmp(cr, "true") && strcmp(cr, "false")) {
        rt_api_reply_error(r, 400, "cancel_running must be true or false");
        return;
    }
    rt_store *st = store_or_reply(r);
    if (!st)
        return;
    char actor[64];
    actor_of(r, actor, sizeof actor);
    size_t cancelled = 0;
    rt_error err;
    bool cancel = cr && !strcmp(cr, "true");
    rt_status s = rt_catalog_remove(st, id, actor, cancel, &cancelled, &err);
    rt_api_store_put(r, st);
    if (s != RT_OK)
        rt_api_reply_status(r, &err);
    else
        rt_api_reply_json(r, 200, json_pack("{s:s, s:b, s:I, s:I}", "id", id, "removed", 1, "in_flight",
                                            (json_int_t)cancelled, "cancelled", (json_int_t)(cancel ? cancelled : 0)));
}

static void pause_or_resume(rt_api_req *r, bool pause)
{
    const char *id = r->params[0];
    if (!valid_id(r, id))
        return;
    const char *on_resume = NULL;
    json_t *body = NULL;
    if (!pause && r->body_len > 0) {
        json_error_t jerr;
        body = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(body)) {
            rt_api_reply_error(r, 400, "body: expected a JSON object like {\"on_resume\": \"run\"}");
            json_decref(body);
            return;
        }
        json_t *v = json_object_get(body, "on_resume");
        on_resume = json_string_value(v);
        if ((v && !on_resume) || (on_resume && strcmp(on_resume, "run") && strcmp(on_resume, "skip")) ||
            json_object_size(body) > (v ? 1u : 0u)) {
            rt_api_reply_error(r, 400, "$.on_resume: expected \"run\" or \"skip\" (and no other key)");
            json_decref(body);
            return;
        }
    }
    rt_store *st = store_or_reply(r);
    if (!st) {
        json_decref(body);
        return;
    }
    char actor[64];
    actor_of(r, actor, sizeof actor);
    bool changed = false;
    size_t started = 0, skipped = 0;
    rt_error err;
    rt_status s = pause ? rt_catalog_pause(st, id, actor, &changed, &err)
                        : rt_catalog_resume(st, id, actor, on_resume, &changed, &started, &skipped, &err);
    rt_api_store_put(r, st);
    json_decref(body);
    if (s != RT_OK)
        rt_api_reply_status(r, &err);
    else if (pause)
        rt_api_reply_json(r, 200, json_pack("{s:s, s:b, s:b}", "id", id, "paused", 1, "changed", changed));
    else
        rt_api_reply_json(r, 200, json_pack("{s:s, s:b, s:b, s:I, s:I}", "id", id, "paused", 0, "changed", changed,
                                            "started", (json_int_t)started, "skipped", (json_int_t)skipped));
}

void rt_api_post_workflow_pause(rt_api_req *r)
{
    pause_or_resume(r, true);
}

void rt_api_post_workflow_resume(rt_api_req *r)
{
    pause_or_resume(r, false);
}

/* GET /api/v1/workflows/{id}/versions: every change, an apply with its diff. */
void rt_api_get_workflow_versions(rt_api_req *r)
{
    static const char *const q[] = {NULL};
    if (!rt_api_query_only(r, q))
        return;
    const char *id = r->params[0];
    if (!valid_id(r, id))
        return;
    rt_store *st = store_or_reply(r);
    if (!st)
        return;
    json_t *changes = NULL;
    rt_error err;
    rt_status s = rt_catalog_history(st, id, &changes, &err);
    rt_api_store_put(r, st);
    if (s != RT_OK)
        rt_api_reply_status(r, &err);
    else
        rt_api_reply_json(r, 200, json_pack("{s:s, s:o}", "id", id, "versions", changes));
}

void rt_api_workflows_decorate(rt_api_req *r, json_t *workflows)
{
    rt_error err;
    rt_store *st = rt_api_store_get(r, &err);
    json_t *rows = NULL;
    rt_status s = st ? rt_catalog_list(st, &rows, &err) : err.code;
    rt_api_store_put(r, st);
    if (s != RT_OK) {
        rt_log(RT_LOG_WARN, NULL, "api: workflows list without registry fields: %s", err.msg);
        return;
    }
    static const char *const keys[] = {"version", "source", "paused", "last_run", "in_flight", "held", NULL};
    size_t i, k;
    json_t *w, *row;
    json_array_foreach(workflows, i, w) {
        const char *id = json_string_value(json_object_get(w, "id"));
        json_array_foreach(rows, k, row) {
            if (!id || strcmp(id, json_string_value(json_object_get(row, "id"))))
                continue;
            for (size_t j = 0; keys[j]; j++)
                json_object_set(w, keys[j], json_object_get(row, keys[j])); /* borrowed, increfed */
        }
    }
    json_decref(rows);
}
