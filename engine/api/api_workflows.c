/* api_workflows.c — the registry routes (see api_workflows.h). Each change goes through
 * the catalog (workflow_catalog.h), which audits it and wakes every process. */
#include "api_workflows.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "log.h"
#include "metrics.h"
#include "store_workflows.h"
#include "util.h"
#include "auth.h"
#include "workflow.h"
#include "workflow_catalog.h"
#include "workflow_proposal.h"

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

static bool is_agent(const rt_api_req *r)
{
    return r->who.role == RT_ROLE_AGENT;
}

/* An agent's change becomes a proposal (workflow_proposal.h): 202 with its id, action_hash
 * and diff; a system workflow's is refused (403, audited). */
static void propose(rt_api_req *r, const char *id, const char *action, const rt_workflow *wf, const char *on_resume)
{
    rt_store *st = store_or_reply(r);
    if (!st)
        return;
    char actor[64], why[300];
    actor_of(r, actor, sizeof actor);
    rt_proposal_request rq = {.workflow_id = id, .action = action, .wf = wf, .on_resume = on_resume, .actor = actor,
                              .requester = rt_identity_actor_id(&r->who),
                              .entity_id = r->who.entity_id[0] ? r->who.entity_id : NULL};
    bool refused = false;
    json_t *out = NULL;
    rt_error err;
    rt_status s = rt_proposal_create(st, &rq, &refused, why, sizeof why, &out, &err);
    rt_api_store_put(r, st);
    if (s != RT_OK)
        rt_api_reply_status(r, &err);
    else if (refused)
        rt_api_reply_error_with(r, 403, json_pack("{s:s}", "reason", "system"), "%s", why);
    else
        rt_api_reply_json(r, 202, out);
    if (s == RT_OK && !refused)
        rt_log(RT_LOG_INFO, NULL, "api: %s proposes to %s workflow %s (awaiting approval)", actor, action, id);
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
    if (is_agent(r)) {
        propose(r, id, "apply", wf, NULL);
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
    if (is_agent(r)) {
        if (cr && !strcmp(cr, "true"))
            rt_api_refuse(r, 403, "an agent may not cancel runs by removing a workflow (propose the removal alone)");
        else
            propose(r, id, "remove", NULL, NULL);
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
    if (is_agent(r)) {
        propose(r, id, pause ? "pause" : "resume", NULL, on_resume);
        json_decref(body);
        return;
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

/* GET /api/v1/workflow-proposals: what waits for a person's decision. */
void rt_api_get_workflow_proposals(rt_api_req *r)
{
    static const char *const q[] = {NULL};
    if (!rt_api_query_only(r, q))
        return;
    rt_store *st = store_or_reply(r);
    if (!st)
        return;
    json_t *rows = NULL;
    rt_error err;
    rt_status s = rt_store_wf_proposals_pending(st, &rows, &err);
    rt_api_store_put(r, st);
    if (s != RT_OK) {
        rt_api_reply_status(r, &err);
        return;
    }
    size_t i;
    json_t *p;
    json_array_foreach(rows, i, p) { /* the diff the approver signs for */
        const char *id = json_string_value(json_object_get(p, "workflow_id"));
        json_t *def = json_object_get(p, "definition"), *base = json_object_get(p, "base_definition");
        if (json_is_object(def)) {
            char la[80], lb[80];
            snprintf(la, sizeof la, json_is_object(base) ? "%s@%.12s" : "/dev/null", id,
                     json_string_value(json_object_get(p, "base_hash")));
            snprintf(lb, sizeof lb, "%s@%.12s", id, json_string_value(json_object_get(p, "hash")));
            char *d = rt_catalog_diff(json_is_object(base) ? base : NULL, def, la, lb);
            json_object_set_new(p, "diff", d ? json_string(d) : json_null());
            free(d);
        }
        json_object_del(p, "base_definition");
    }
    rt_api_reply_json(r, 200, json_pack("{s:o}", "proposals", rows));
}

/* POST /api/v1/workflow-proposals/{id}/decision: a signed decision (`ratchet approve ID
 * --hash ACTION_HASH --print` makes one; run_id is the proposal id). */
void rt_api_post_workflow_proposal_decision(rt_api_req *r)
{
    const char *id = r->params[0];
    if (!rt_uuid_valid(id)) {
        rt_api_reply_error(r, 400, "\"%.64s\" is not a proposal id (expected a UUID)", id);
        return;
    }
    json_error_t jerr;
    json_t *d = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(d)) {
        rt_api_reply_error(r, 400, "body: expected a signed decision object");
        json_decref(d);
        return;
    }
    if (!json_object_get(d, "run_id"))
        json_object_set_new(d, "run_id", json_string(id));
    rt_store *st = store_or_reply(r);
    if (!st) {
        json_decref(d);
        return;
    }
    char carrier[64], msg[700];
    actor_of(r, carrier, sizeof carrier);
    rt_refusal why = RT_REFUSAL_NONE;
    json_t *out = NULL;
    rt_error err;
    rt_status s = rt_proposal_decide(st, id, d, carrier, is_agent(r), &why, msg, sizeof msg, &out, &err);
    rt_api_store_put(r, st);
    json_decref(d);
    if (s != RT_OK) {
        rt_api_reply_status(r, &err);
    } else if (why) {
        int status = why == RT_REFUSAL_INVALID ? 400 : why == RT_REFUSAL_NOT_AWAITING || why == RT_REFUSAL_HASH_MISMATCH ||
                                                             why == RT_REFUSAL_EXPIRED || why == RT_REFUSAL_NONCE_REUSED
                                                         ? 409
                                                         : 403;
        rt_api_reply_error_with(r, status, json_pack("{s:s}", "reason", rt_refusal_name(why)), "decision refused (%s): %s",
                                rt_refusal_name(why), msg);
    } else {
        rt_api_reply_json(r, 200, out);
        out = NULL;
    }
    json_decref(out);
}
