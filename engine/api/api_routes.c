/* api_routes.c — the routes of the HTTP API (DESIGN §8) and their handlers: workflows,
 * events, runs, schedules, health, readiness and metrics. Agent tokens are held to their
 * entity here (DESIGN §6): their events and runs carry actor type agent and their
 * entity_id, they read only their entity's runs, never cancel a system workflow's runs
 * and never touch schedules. */
#include "api_routes.h"
#include "api_workflows.h"
#include "create.h"
#include "run_status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "api_dashboard.h"
#include "api_hooks.h"
#include "approval.h"
#include "audit.h"
#include "event.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "refusal.h"
#include "replay.h"
#include "runctl.h"
#include "run_trace.h"
#include "scheduler.h"
#include "store.h"
#include "store_api.h"
#include "store_approval.h"
#include "store_audit.h"
#include "store_schedules.h"
#include "util.h"

/* schemas/openapi.yaml as JSON (cmake/embed_openapi.cmake). */
extern const char rt_openapi_json[];

#define RUNS_LIMIT_DEFAULT 50
#define EVENTS_LIMIT_DEFAULT 50
#define EVENTS_LIMIT_MAX 1000
#define IDEMPOTENCY_KEY_MAX 200
#define CONFLICT_RETRIES 3

#define READERS (RT_ROLE_ADMIN | RT_ROLE_OPERATOR | RT_ROLE_VIEWER)
#define WRITERS (RT_ROLE_ADMIN | RT_ROLE_OPERATOR)
#define TRIGGERERS (RT_ROLE_ADMIN | RT_ROLE_OPERATOR | RT_ROLE_AGENT)

static bool is_agent(const rt_api_req *r)
{
    return r->who.role == RT_ROLE_AGENT;
}

/* Who acted, for the audit log: "agent:token:ab12..." or "api:token:ab12..." ("api:local"
 * without tokens). */
static void audit_actor(const rt_api_req *r, char *buf, size_t len)
{
    snprintf(buf, len, "%s:%s", is_agent(r) ? "agent" : "api", r->who.label);
}

static bool in_list(const char *s, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (!strcmp(s, list[i]))
            return true;
    return false;
}

static bool terminal_status(const char *s)
{
    static const char *const t[] = {"completed", "partial", "failed", "cancelled", "expired", "timed_out",
                                    "rejected", NULL};
    return in_list(s, t);
}

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* Parses an integer query argument in [lo, hi]; answers 400 and returns false if bad. */
static bool query_int(rt_api_req *r, const char *key, int dflt, int lo, int hi, int *out)
{
    const char *v = rt_api_query(r, key);
    if (!v) {
        *out = dflt;
        return true;
    }
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < lo || n > hi) {
        rt_api_reply_error(r, 400, "%s=%.40s: expected an integer from %d to %d", key, v, lo, hi);
        return false;
    }
    *out = (int)n;
    return true;
}

/* Parses a JSON request body that must be an object; an empty body is {}. */
static json_t *body_object(rt_api_req *r)
{
    size_t i = 0;
    while (i < r->body_len && (r->body[i] == ' ' || r->body[i] == '\n' || r->body[i] == '\r' || r->body[i] == '\t'))
        i++;
    if (i == r->body_len)
        return json_object();
    json_error_t jerr;
    json_t *doc = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!doc) {
        rt_api_reply_error(r, 400, "body is not valid JSON: line %d, column %d: %s", jerr.line, jerr.column,
                           jerr.text);
        return NULL;
    }
    if (!json_is_object(doc)) {
        rt_api_reply_error(r, 400, "$: expected a JSON object, not %s", json_type_name(doc));
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* Refuses keys of obj outside allowed (400 naming the first). */
static bool only_keys(rt_api_req *r, json_t *obj, const char *const *allowed, const char *known)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        if (!in_list(k, allowed)) {
            char safe[64];
            size_t n = 0;
            for (; k[n] && n + 1 < sizeof safe; n++)
                safe[n] = (unsigned char)k[n] < 0x20 ? '?' : k[n];
            safe[n] = '\0';
            rt_api_reply_error(r, 400, "$.%s: unknown key (known: %s)", safe, known);
            return false;
        }
    }
    return true;
}

/* Retries a store call: on CONFLICT (deadlock, serialization) a few times, and on
 * UNAVAILABLE once with a fresh connection when retry_lost (only for calls that are safe
 * to repeat). Answers and returns false on failure. */
typedef rt_status (*store_op)(rt_store *st, void *arg, rt_error *err);

static bool with_store(rt_api_req *r, store_op op, void *arg, bool retry_lost)
{
    rt_error err;
    rt_status s = RT_OK;
    bool retried_lost = false;
    for (int attempt = 0; attempt <= CONFLICT_RETRIES; attempt++) {
        rt_store *st = rt_api_store_get(r, &err);
        if (!st) {
            s = err.code;
            break;
        }
        s = op(st, arg, &err);
        if (s != RT_OK && !rt_store_healthy(st) && s != RT_ERR_UNAVAILABLE)
            s = err.code = RT_ERR_UNAVAILABLE;
        rt_api_store_put(r, st);
        if (s == RT_OK)
            return true;
        if (s == RT_ERR_UNAVAILABLE && retry_lost && !retried_lost) {
            retried_lost = true; /* a connection gone stale while idle: the next one reconnects */
            continue;
        }
        if (s != RT_ERR_CONFLICT)
            break;
    }
    if (s == RT_ERR_UNAVAILABLE)
        rt_metrics_gauge_set("ratchet_db_up", 0);
    rt_api_reply_status(r, &err);
    return false;
}

/* ------------------------------------------------------------------------------------
 * Health, readiness, metrics
 * ------------------------------------------------------------------------------------ */

static void get_healthz(rt_api_req *r)
{
    rt_api_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

static rt_status op_ping(rt_store *st, void *arg, rt_error *err)
{
    (void)arg;
    return rt_store_api_ping(st, err);
}

static void get_readyz(rt_api_req *r)
{
    if (!r->set) {
        rt_api_reply_error(r, 503, "workflows are not loaded yet");
        return;
    }
    rt_error err;
    rt_store *st = rt_api_store_get(r, &err);
    rt_status s = st ? op_ping(st, NULL, &err) : err.code;
    if (s != RT_OK && st) {
        /* A connection that went stale while idle gets one more chance. */
        if (rt_store_reconnect(st, &err) == RT_OK)
            s = op_ping(st, NULL, &err);
    }
    rt_api_store_put(r, st);
    rt_metrics_gauge_set("ratchet_db_up", s == RT_OK ? 1 : 0);
    if (s != RT_OK) {
        rt_api_reply_error(r, 503, "database not reachable: %s", err.msg);
        return;
    }
    rt_api_reply_json(r, 200, json_pack("{s:s, s:s, s:I, s:I}", "status", "ready", "database", "ok", "workflows",
                                        (json_int_t)r->set->n, "workflow_errors", (json_int_t)r->set->n_errors));
}

static void get_metrics(rt_api_req *r)
{
    /* The gauges that only the database knows, refreshed with one query per scrape. */
    rt_error err;
    rt_store *st = rt_api_store_get(r, &err);
    int64_t depth[4];
    double oldest = 0;
    rt_status s = st ? rt_store_api_queue_stats(st, depth, &oldest, &err) : err.code;
    rt_api_store_put(r, st);
    rt_metrics_gauge_set("ratchet_db_up", s == RT_OK ? 1 : 0);
    if (s == RT_OK) {
        for (int p = 0; p < 4; p++)
            rt_metrics_gauge_set("ratchet_queue_depth", "priority", rt_priority_name((rt_priority)p),
                                 (double)depth[p]);
        rt_metrics_gauge_set("ratchet_oldest_runnable_age_seconds", oldest);
    } else {
        rt_log(RT_LOG_WARN, NULL, "metrics: %s", err.msg);
    }
    char *text = rt_metrics_render();
    if (!text) {
        rt_api_reply_error(r, 500, "out of memory");
        return;
    }
    rt_api_reply_text(r, 200, RT_METRICS_CONTENT_TYPE, text);
}

/* ------------------------------------------------------------------------------------
 * Workflows
 * ------------------------------------------------------------------------------------ */

static json_t *workflow_json(const rt_workflow *wf, bool full)
{
    json_t *triggers = json_array();
    for (size_t i = 0; i < wf->n_triggers; i++) {
        const rt_trigger *t = &wf->triggers[i];
        if (t->kind == RT_TRIGGER_CRON)
            json_array_append_new(triggers, json_pack("{s:s, s:s, s:s, s:s}", "type", "cron", "cron", t->cron,
                                                      "timezone", t->timezone ? t->timezone : "UTC", "catch_up",
                                                      rt_catch_up_name(t->catch_up)));
        else
            json_array_append_new(triggers, json_pack("{s:s, s:s, s:s*}", "type", "event", "event", t->event,
                                                      "if", t->if_expr));
    }
    json_t *steps = json_array();
    for (size_t i = 0; i < wf->n_steps; i++) {
        const rt_step_def *d = &wf->steps[i];
        json_t *needs = json_array();
        for (size_t k = 0; k < d->n_needs; k++)
            json_array_append_new(needs, json_string(d->needs[k]));
        json_array_append_new(steps, json_pack("{s:s, s:s, s:o}", "id", d->id, "uses", d->uses, "needs", needs));
    }
    const char *file = wf->file ? strrchr(wf->file, '/') : NULL;
    file = file ? file + 1 : wf->file;
    json_t *o = json_pack("{s:s, s:s?, s:b, s:b, s:s, s:s, s:s?, s:o, s:o}", "id", wf->id, "name", wf->name,
                          "enabled", wf->enabled, "system", wf->system, "priority", rt_priority_name(wf->priority),
                          "hash", wf->hash, "file", file, "triggers", triggers, "steps", steps);
    if (full)
        json_object_set(o, "definition", wf->definition); /* borrowed from wf, increfed */
    return o;
}

static void get_workflows(rt_api_req *r)
{
    static const char *const q[] = {NULL};
    if (!rt_api_query_only(r, q))
        return;
    json_t *arr = json_array();
    for (size_t i = 0; i < r->set->n; i++)
        json_array_append_new(arr, workflow_json(r->set->items[i], false));
    rt_api_workflows_decorate(r, arr); /* version, source, paused, last run, in flight */
    rt_api_reply_json(r, 200, json_pack("{s:o}", "workflows", arr));
}

static const rt_workflow *find_workflow(rt_api_req *r, const char *id)
{
    const rt_workflow *wf = rt_workflow_id_valid(id) ? rt_workflow_set_find(r->set, id) : NULL;
    if (!wf)
        rt_api_reply_error(r, 404, "workflow \"%.128s\" not found (this server loaded %zu workflow(s))", id,
                           r->set->n);
    return wf;
}

static void get_workflow(rt_api_req *r)
{
    const rt_workflow *wf = find_workflow(r, r->params[0]);
    if (wf)
        rt_api_reply_json(r, 200, workflow_json(wf, true));
}

/* ------------------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------------------ */

/* An event sent with a token speaks for the token (docs/approvals-and-security.md "Who requested a run"): its
 * actor.id is the token's (its holder's approver id when declared, else its label), so
 * that no caller can name someone else as the requester of a gated run; another id is
 * refused (403). An agent's event is moreover of actor type agent and of the token's
 * entity. Serving without tokens nothing is known about the caller and the event is
 * taken as given. Values of the wrong type are left for the envelope parser to report. */
static bool scope_event(rt_api_req *r, json_t *e, const char *where)
{
    if (!json_is_object(e) || !r->who.authenticated)
        return true;
    const char *me = rt_identity_actor_id(&r->who);
    json_t *actor = json_object_get(e, "actor");
    if (!actor || json_is_null(actor)) {
        json_object_set_new(e, "actor", json_pack("{s:s, s:s}", "type", is_agent(r) ? "agent" : "service", "id", me));
    } else if (json_is_object(actor)) {
        json_t *t = json_object_get(actor, "type");
        if (is_agent(r) && json_is_string(t) && strcmp(json_string_value(t), "agent") != 0) {
            rt_api_refuse(r, 403, "%s.actor.type: an agent token sends events as actor type \"agent\", not \"%.20s\"",
                          where, json_string_value(t));
            return false;
        }
        json_t *id = json_object_get(actor, "id");
        if (!id || json_is_null(id)) {
            json_object_set_new(actor, "id", json_string(me));
        } else if (json_is_string(id) && strcmp(json_string_value(id), me) != 0) {
            rt_api_refuse(r, 403, "%s.actor.id: this token sends events as actor.id \"%s\", not \"%.60s\"", where,
                          me, json_string_value(id));
            return false;
        }
    }
    if (!is_agent(r))
        return true;
    json_t *ent = json_object_get(e, "entity_id");
    if (!ent || json_is_null(ent)) {
        json_object_set_new(e, "entity_id", json_string(r->who.entity_id));
    } else if (json_is_string(ent) && strcmp(json_string_value(ent), r->who.entity_id) != 0) {
        rt_api_refuse(r, 403, "%s.entity_id: this agent token may only send events of entity \"%s\"", where,
                      r->who.entity_id);
        return false;
    }
    return true;
}

/* What POST /api/v1/events keeps while its events are in the batcher. */
typedef struct events_state {
    json_t *doc;
    rt_event **events;
    size_t n;
    rt_ingest_result *results;
    int64_t started_ms; /* for the ingest spans */
} events_state;

static void events_state_free(void *p)
{
    events_state *es = p;
    if (!es)
        return;
    rt_ingest_results_clear(es->results, es->n);
    for (size_t i = 0; es->events && i < es->n; i++)
        rt_event_free(es->events[i]);
    free(es->events);
    free(es->results);
    json_decref(es->doc);
    free(es);
}

static void post_events_done(rt_api_req *r)
{
    events_state *es = r->state;
    if (r->async_status != RT_OK) {
        rt_api_reply_status(r, &r->async_err);
        return;
    }
    int64_t now = rt_now_ms();
    for (size_t i = 0; i < es->n; i++)
        rt_run_trace_ingest_span(es->events[i], r->transport ? r->transport : "api", es->started_ms, now);
    json_t *arr = json_array();
    for (size_t i = 0; i < es->n; i++)
        json_array_append_new(arr, json_pack("{s:s, s:b, s:O}", "id", es->events[i]->id, "duplicate",
                                             es->results[i].duplicate, "runs", es->results[i].run_ids));
    rt_api_reply_json(r, 200, arr);
}

static void post_events(rt_api_req *r)
{
    json_error_t jerr;
    json_t *doc = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!doc) {
        rt_api_reply_error(r, 400, "body is not valid JSON: line %d, column %d: %s", jerr.line, jerr.column,
                           jerr.text);
        return;
    }
    bool single = json_is_object(doc);
    if (!single && !json_is_array(doc)) {
        rt_api_reply_error(r, 400, "$: expected an event object or an array of events, not %s",
                           json_type_name(doc));
        json_decref(doc);
        return;
    }
    size_t n = single ? 1 : json_array_size(doc);
    if (n == 0 || n > RT_API_EVENTS_PER_REQUEST) {
        rt_api_reply_error(r, 400, "$: expected 1 to %d events, got %zu", RT_API_EVENTS_PER_REQUEST, n);
        json_decref(doc);
        return;
    }
    events_state *es = calloc(1, sizeof *es);
    if (es) {
        es->doc = doc;
        es->events = calloc(n, sizeof *es->events);
        es->results = calloc(n, sizeof *es->results);
        es->n = n;
    }
    if (!es || !es->events || !es->results) {
        if (!es)
            json_decref(doc);
        events_state_free(es);
        rt_api_reply_error(r, 500, "out of memory");
        return;
    }
    r->state = es;
    r->state_free = events_state_free;
    int64_t now = rt_now_ms();
    for (size_t i = 0; i < n; i++) {
        json_t *e = single ? doc : json_array_get(doc, i);
        char where[32];
        if (single)
            snprintf(where, sizeof where, "$");
        else
            snprintf(where, sizeof where, "$[%zu]", i);
        if (!scope_event(r, e, where))
            return;
        rt_error err;
        if (rt_event_from_json(e, now, &es->events[i], &err) != RT_OK) {
            /* "$.actor.type: ..." becomes "$[3].actor.type: ..." */
            const char *msg = err.msg;
            bool path = msg[0] == '$';
            json_t *extra = single ? NULL : json_pack("{s:I}", "index", (json_int_t)i);
            rt_api_reply_error_with(r, 400, extra, "%s%s%s", where, path ? "" : ": ", path ? msg + 1 : msg);
            return;
        }
        /* W3C Trace Context: the request's headers, unless the envelope carries its own */
        const char *tp = rt_api_header(r, "traceparent"), *ts = rt_api_header(r, "tracestate");
        rt_run_trace_adopt(&es->events[i], tp, tp ? strlen(tp) : 0, ts, ts ? strlen(ts) : 0);
    }
    es->started_ms = now;
    /* Stored by the batcher with the events of other requests in one transaction; the
     * answer comes after that commit (post_events_done). */
    rt_api_ingest_deferred(r, es->events, n, es->results, post_events_done);
}

typedef struct list_events_args {
    const char *name;
    int limit;
    json_t *out;
} list_events_args;

static rt_status op_list_events(rt_store *st, void *arg, rt_error *err)
{
    list_events_args *a = arg;
    return rt_store_list_events(st, a->name, a->limit, &a->out, err);
}

static void get_events(rt_api_req *r)
{
    static const char *const q[] = {"name", "limit", NULL};
    list_events_args a = {.name = rt_api_query(r, "name")};
    if (!rt_api_query_only(r, q) || !query_int(r, "limit", EVENTS_LIMIT_DEFAULT, 1, EVENTS_LIMIT_MAX, &a.limit))
        return;
    rt_error err;
    if (a.name && rt_event_name_check(a.name, &err) != RT_OK) {
        rt_api_reply_error(r, 400, "name: %s", err.msg);
        return;
    }
    if (with_store(r, op_list_events, &a, true))
        rt_api_reply_json(r, 200, json_pack("{s:o}", "events", a.out));
}

/* ------------------------------------------------------------------------------------
 * Runs
 * ------------------------------------------------------------------------------------ */

typedef struct create_args {
    rt_run_request req;
    const char *dedupe_key;
    const char *action;   /* audit action: "run.manual", "run.replay" */
    char actor[64];
    json_t *details;      /* audit details (borrowed) */
    bool created;
    rt_api_run_info existing; /* when !created: the run that holds the key */
    json_t *run;
} create_args;

static rt_status op_create_run(rt_store *st, void *arg, rt_error *err)
{
    create_args *a = arg;
    json_decref(a->run);
    a->run = NULL;
    /* The run and its audit record commit together (or neither does). */
    rt_status s = rt_store_begin(st, err);
    if (s == RT_OK)
        s = rt_run_create_tx(st, &a->req, 1, err);
    if (s == RT_OK && a->req.id[0]) /* AUDIT: a manual run (not a repeat of its key) */
        s = rt_store_audit_append(st, a->actor, a->action, a->req.id, a->details, err);
    if (s == RT_OK)
        s = rt_store_commit(st, err);
    if (s != RT_OK) {
        rt_store_rollback(st);
        return s;
    }
    a->created = a->req.id[0] != '\0';
    if (!a->created && !strncmp(a->req.reason, "held:", 5)) { /* a paused workflow (workflow_catalog.h) */
        a->run = json_pack("{s:s, s:s, s:s}", "workflow", a->req.wf->id, "status", "held", "reason", a->req.reason);
        return RT_OK;
    }
    if (!a->created && strstr(a->req.reason, " was removed"))
        return rt_error_set(err, RT_ERR_NOT_FOUND, "%s", a->req.reason);
    if (!a->created) {
        /* The key was taken: by a run committed before our insert gave way. */
        s = rt_store_api_find_dedupe(st, a->req.wf->id, a->dedupe_key, a->req.id, err);
        if (s == RT_OK)
            s = rt_store_api_run_info(st, a->req.id, &a->existing, err);
        if (s != RT_OK)
            return s == RT_ERR_NOT_FOUND ? rt_error_set(err, RT_ERR_CONFLICT, "idempotency key race") : s;
    }
    return rt_store_get_run(st, a->req.id, false, &a->run, err);
}

/* What a POST /api/v1/workflows/{id}/runs body asks for. */
typedef struct run_order {
    json_t *data;         /* borrowed from the body, NULL = {} */
    int64_t run_at;       /* 0 = now */
    const char *key;      /* idempotency_key as given, or NULL */
    char dedupe[IDEMPOTENCY_KEY_MAX + RT_EVENT_REF_MAX + 24]; /* the run's dedupe key, or "" */
    const char *entity;   /* NULL = none */
} run_order;

/* {data?, run_at?, idempotency_key?, entity_id?}: answers 400 and returns false if bad. */
static bool parse_run_order(rt_api_req *r, json_t *body, run_order *o)
{
    static const char *const keys[] = {"data", "run_at", "idempotency_key", "entity_id", NULL};
    memset(o, 0, sizeof *o);
    if (!only_keys(r, body, keys, "data, run_at, idempotency_key, entity_id"))
        return false;
    o->data = json_object_get(body, "data");
    json_t *v = json_object_get(body, "run_at");
    rt_error err;
    if (v && !json_is_null(v)) {
        if (!json_is_string(v)) {
            rt_api_reply_error(r, 400, "$.run_at: expected an RFC 3339 time like \"2026-12-01T00:00:00Z\", not %s",
                               json_type_name(v));
            return false;
        }
        if (rt_time_parse(json_string_value(v), &o->run_at, &err) != RT_OK) {
            rt_api_reply_error(r, 400, "$.run_at: %s", err.msg);
            return false;
        }
    }
    v = json_object_get(body, "idempotency_key");
    if (v && !json_is_null(v)) {
        const char *k = json_string_value(v);
        if (!k || !*k || strlen(k) > IDEMPOTENCY_KEY_MAX) {
            rt_api_reply_error(r, 400, "$.idempotency_key: expected a string of 1 to %d bytes, not %s",
                               IDEMPOTENCY_KEY_MAX, k ? "that" : json_type_name(v));
            return false;
        }
        o->key = k;
    }
    v = json_object_get(body, "entity_id");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v)) {
            rt_api_reply_error(r, 400, "$.entity_id: expected a string, not %s", json_type_name(v));
            return false;
        }
        o->entity = json_string_value(v);
    }
    if (is_agent(r)) {
        if (o->entity && strcmp(o->entity, r->who.entity_id) != 0) {
            rt_api_refuse(r, 403, "$.entity_id: this agent token may only start runs of entity \"%s\"",
                          r->who.entity_id);
            return false;
        }
        o->entity = r->who.entity_id;
    }
    /* An agent's keys are its entity's own: it can never take a key a person or a service
     * will use, nor another entity's (DESIGN §6). */
    if (o->key && is_agent(r))
        snprintf(o->dedupe, sizeof o->dedupe, "api:agent:%s|%s", r->who.entity_id, o->key);
    else if (o->key)
        snprintf(o->dedupe, sizeof o->dedupe, "api:%s", o->key);
    return true;
}

static void start_run(rt_api_req *r, const rt_workflow *wf, const run_order *o)
{
    /* The run's trigger event, as `ratchet run` makes it, speaking for the caller. */
    rt_event *ev = NULL;
    rt_error err;
    if (rt_event_new("ratchet.manual", o->data, is_agent(r) ? RT_ACTOR_AGENT : RT_ACTOR_USER,
                     rt_identity_actor_id(&r->who),
                     o->entity, NULL, &ev, &err) != RT_OK) {
        rt_api_reply_error(r, 400, "%s", err.msg);
        return;
    }
    json_t *trigger = json_pack("{s:s}", "type", "manual");
    create_args a = {.req = {.wf = wf, .trigger = trigger, .event = ev->envelope, .run_at_ms = o->run_at,
                             .dedupe_key = o->dedupe[0] ? o->dedupe : NULL, .set = r->set},
                     .dedupe_key = o->dedupe, .action = "run.manual"};
    audit_actor(r, a.actor, sizeof a.actor);
    a.details = json_pack("{s:s, s:s, s:s*, s:s*}", "workflow", wf->id, "via", "api", "entity_id", o->entity,
                          "idempotency_key", o->key);
    /* Without a key, a repeat after a lost connection could start a second run. */
    if (with_store(r, op_create_run, &a, o->dedupe[0] != '\0')) {
        bool foreign = !a.created && (a.existing.has_entity != (o->entity != NULL) ||
                                      (o->entity && strcmp(a.existing.entity_id, o->entity) != 0));
        if (foreign && is_agent(r)) {
            /* Another entity's run behind the same key is not the agent's to see. */
            rt_api_reply_error(r, 409, "idempotency key already used for another run of %s", wf->id);
        } else {
            bool held = !a.created && !strncmp(a.req.reason, "held:", 5);
            if (!held)
                snprintf(r->location, sizeof r->location, "/api/v1/runs/%s", a.req.id);
            rt_api_reply_json(r, a.created ? 201 : held ? 202 : 200, a.run);
            a.run = NULL;
        }
    }
    json_decref(a.run);
    json_decref(a.details);
    json_decref(trigger);
    rt_event_free(ev);
}

static void post_workflow_runs(rt_api_req *r)
{
    const rt_workflow *wf = find_workflow(r, r->params[0]);
    if (!wf)
        return;
    json_t *body = body_object(r);
    if (!body)
        return;
    run_order o;
    if (parse_run_order(r, body, &o)) {
        if (!wf->enabled)
            rt_api_reply_error(r, 409, "workflow \"%s\" is disabled (\"enabled\": false in its file)", wf->id);
        else
            start_run(r, wf, &o);
    }
    json_decref(body);
}

/* Opaque keyset cursors: base64url("v1:<created_at µs>:<run id>"). */
static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void rt_api_cursor_encode(int64_t us, const char *id, char *out, size_t len)
{
    char raw[96];
    int n = snprintf(raw, sizeof raw, "v1:%lld:%s", (long long)us, id);
    size_t o = 0;
    for (int i = 0; i < n && o + 5 < len; i += 3) {
        unsigned v = (unsigned char)raw[i] << 16;
        if (i + 1 < n)
            v |= (unsigned char)raw[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)raw[i + 2];
        out[o++] = b64url[(v >> 18) & 63];
        out[o++] = b64url[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = b64url[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = b64url[v & 63];
    }
    out[o] = '\0';
}

bool rt_api_cursor_decode(const char *s, int64_t *us, char id[37])
{
    char raw[96];
    size_t o = 0, len = strlen(s);
    if (len == 0 || len > 120 || len % 4 == 1)
        return false;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        const char *p = strchr(b64url, s[i]);
        if (!p || !s[i])
            return false;
        acc = (acc << 6) | (unsigned)(p - b64url);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= sizeof raw)
                return false;
            raw[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    raw[o] = '\0';
    if (strncmp(raw, "v1:", 3) != 0)
        return false;
    char *end;
    long long v = strtoll(raw + 3, &end, 10);
    if (end == raw + 3 || *end != ':' || strlen(end + 1) != 36 || !rt_uuid_valid(end + 1))
        return false;
    *us = v;
    memcpy(id, end + 1, 37);
    return true;
}

typedef struct list_runs_args {
    rt_api_run_filter f;
    json_t *out;
    bool more;
    int64_t last_us;
    char last_id[37];
} list_runs_args;

static rt_status op_list_runs(rt_store *st, void *arg, rt_error *err)
{
    list_runs_args *a = arg;
    json_decref(a->out);
    a->out = NULL;
    return rt_store_api_list_runs(st, &a->f, &a->out, &a->more, &a->last_us, a->last_id, err);
}

static void get_runs(rt_api_req *r)
{
    static const char *const q[] = {"workflow", "status", "entity_id", "limit", "cursor", NULL};
    list_runs_args a = {.f = {.workflow = rt_api_query(r, "workflow"), .status = rt_api_query(r, "status"),
                              .entity_id = rt_api_query(r, "entity_id")}};
    if (!rt_api_query_only(r, q) ||
        !query_int(r, "limit", RUNS_LIMIT_DEFAULT, 1, RT_API_RUNS_LIMIT_MAX, &a.f.limit))
        return;
    rt_run_status ignored;
    if (a.f.status && !rt_run_status_parse(a.f.status, &ignored)) {
        rt_api_reply_error(r, 400, "status=%.40s: expected one of %s", a.f.status, rt_run_status_list());
        return;
    }
    if (a.f.workflow && !rt_workflow_id_valid(a.f.workflow)) {
        rt_api_reply_error(r, 400, "workflow=%.40s: not a workflow id", a.f.workflow);
        return;
    }
    const char *cursor = rt_api_query(r, "cursor");
    if (cursor) {
        if (!rt_api_cursor_decode(cursor, &a.f.cursor_us, a.f.cursor_id)) {
            rt_api_reply_error(r, 400, "cursor: not a cursor this API gave out (use next_cursor as it is)");
            return;
        }
        a.f.has_cursor = true;
    }
    if (is_agent(r)) {
        if (a.f.entity_id && strcmp(a.f.entity_id, r->who.entity_id) != 0) {
            rt_api_refuse(r, 403, "entity_id: this agent token reads only runs of entity \"%s\"", r->who.entity_id);
            return;
        }
        a.f.entity_id = r->who.entity_id;
    }
    if (!with_store(r, op_list_runs, &a, true))
        return;
    json_t *next = json_null();
    if (a.more) {
        char buf[160];
        rt_api_cursor_encode(a.last_us, a.last_id, buf, sizeof buf);
        json_decref(next);
        next = json_string(buf);
    }
    rt_api_reply_json(r, 200, json_pack("{s:o, s:o}", "runs", a.out, "next_cursor", next));
}

/* Reads what an access check needs; answers (404, or refuses) and returns false when
 * the caller may not see the run. */
typedef struct run_info_args {
    const char *id;
    rt_api_run_info info;
} run_info_args;

static rt_status op_run_info(rt_store *st, void *arg, rt_error *err)
{
    run_info_args *a = arg;
    return rt_store_api_run_info(st, a->id, &a->info, err);
}

static bool visible_run(rt_api_req *r, const char *id, rt_api_run_info *info)
{
    if (!rt_uuid_valid(id)) {
        rt_api_reply_error(r, 400, "\"%.64s\" is not a run id (expected a UUID)", id);
        return false;
    }
    run_info_args a = {.id = id};
    if (!with_store(r, op_run_info, &a, true))
        return false;
    rt_agent_target target = {.workflow_id = a.info.workflow_id, .system = a.info.system,
                              .entity_id = a.info.has_entity ? a.info.entity_id : NULL};
    if (is_agent(r) && !rt_agent_may(r->who.entity_id, RT_AGENT_READ_RUN, &target, NULL)) {
        /* Answered like a run that does not exist: an agent learns nothing of others. */
        char why[128];
        snprintf(why, sizeof why, "run %s belongs to another entity", id);
        rt_store *st = rt_api_store_get(r, &(rt_error){0});
        rt_auth_refused(st, &r->who, r->method, r->safe_path, 404, why);
        rt_api_store_put(r, st);
        rt_api_reply_error(r, 404, "run %s not found", id);
        return false;
    }
    *info = a.info;
    return true;
}

typedef struct get_run_args {
    const char *id;
    bool steps;
    json_t *out;
} get_run_args;

static rt_status op_get_run(rt_store *st, void *arg, rt_error *err)
{
    get_run_args *a = arg;
    json_decref(a->out);
    a->out = NULL;
    return rt_store_get_run(st, a->id, a->steps, &a->out, err);
}

static void get_run(rt_api_req *r)
{
    rt_api_run_info info;
    if (is_agent(r) && !visible_run(r, r->params[0], &info))
        return;
    if (!rt_uuid_valid(r->params[0])) {
        rt_api_reply_error(r, 400, "\"%.64s\" is not a run id (expected a UUID)", r->params[0]);
        return;
    }
    get_run_args a = {.id = r->params[0], .steps = true};
    if (with_store(r, op_get_run, &a, true))
        rt_api_reply_json(r, 200, a.out);
}

typedef struct cancel_args {
    json_t *runs;
    const char *id;
    char actor[64];
    json_t *details;
    json_t *out;
} cancel_args;

static rt_status op_cancel(rt_store *st, void *arg, rt_error *err)
{
    cancel_args *a = arg;
    json_decref(a->out);
    a->out = NULL;
    bool cancelled = false; /* the same path as the CLI's and the bulk cancel (runctl.h) */
    const char *why = json_string_value(json_object_get(json_array_get(a->runs, 0), "error"));
    rt_status s = rt_run_cancel(st, a->id, why, a->actor, a->details, &cancelled, err);
    return s == RT_OK ? rt_store_get_run(st, a->id, false, &a->out, err) : s;
}

/* The body of a control action: {} or {"reason": "..."}. New reference, *reason borrowed
 * from it; NULL after answering 400. */
static json_t *reason_body(rt_api_req *r, json_t **reason)
{
    json_t *body = body_object(r);
    if (!body)
        return NULL;
    static const char *const keys[] = {"reason", NULL};
    *reason = json_object_get(body, "reason");
    if (!only_keys(r, body, keys, "reason")) {
        json_decref(body);
        return NULL;
    }
    if (*reason && !json_is_null(*reason) && !json_is_string(*reason)) {
        rt_api_reply_error(r, 400, "$.reason: expected a string, not %s", json_type_name(*reason));
        json_decref(body);
        return NULL;
    }
    return body;
}

static void post_cancel(rt_api_req *r)
{
    const char *id = r->params[0];
    rt_api_run_info info;
    if (!visible_run(r, id, &info))
        return;
    const char *no = NULL;
    if (is_agent(r) && !rt_agent_may(r->who.entity_id, RT_AGENT_CANCEL,
                                     &(rt_agent_target){.workflow_id = info.workflow_id, .system = info.system,
                                                        .entity_id = info.has_entity ? info.entity_id : NULL},
                                     &no)) {
        rt_api_refuse(r, 403, "run %s of workflow \"%s\": %s", id, info.workflow_id, no);
        return;
    }
    json_t *reason = NULL;
    json_t *body = reason_body(r, &reason);
    if (!body)
        return;
    if (terminal_status(info.status)) {
        rt_api_reply_error(r, 409, "run %s already ended: %s", id, info.status);
        json_decref(body);
        return;
    }
    char msg[600];
    const char *why = json_string_value(reason);
    snprintf(msg, sizeof msg, "cancelled through the API by %s%s%.500s", r->who.label, why ? ": " : "",
             why ? why : "");
    cancel_args a = {.id = id, .runs = json_pack("[{s:s, s:o}]", "id", id, "error", rt_json_text(msg, strlen(msg))),
                     .details = json_pack("{s:s, s:s, s:O?}", "workflow", info.workflow_id, "via", "api", "reason",
                                          reason)};
    audit_actor(r, a.actor, sizeof a.actor);
    if (with_store(r, op_cancel, &a, true)) {
        const char *status = json_string_value(json_object_get(a.out, "status"));
        if (status && strcmp(status, "cancelled") != 0)
            rt_api_reply_error(r, 409, "run %s ended (%s) before the cancel", id, status);
        else
            rt_api_reply_json(r, 200, json_incref(a.out));
    }
    rt_log(RT_LOG_INFO, NULL, "api: run %s cancelled by %s", id, r->who.label);
    json_decref(a.out);
    json_decref(a.details);
    json_decref(a.runs);
    json_decref(body);
}

/* ------------------------------------------------------------------------------------
 * Pause / resume one run; cancel / replay by filter (runctl.h)
 * ------------------------------------------------------------------------------------ */

typedef struct run_pause_args {
    const char *id;
    bool pause;
    char actor[64];
    json_t *details;
    rt_status outcome; /* of the pause itself: a conflict is an answer, not a retry */
    rt_error oerr;
    json_t *out;
} run_pause_args;

static rt_status op_run_pause(rt_store *st, void *arg, rt_error *err)
{
    run_pause_args *a = arg;
    char status[24] = "";
    json_decref(a->out);
    a->out = NULL;
    a->outcome = rt_run_pause(st, a->id, a->pause, a->actor, a->details, status, &a->oerr);
    if (a->outcome == RT_ERR_UNAVAILABLE || a->outcome == RT_ERR_NOMEM) {
        *err = a->oerr;
        return a->outcome;
    }
    return a->outcome == RT_OK ? rt_store_get_run(st, a->id, false, &a->out, err) : RT_OK;
}

static void pause_run(rt_api_req *r, bool pause)
{
    const char *id = r->params[0];
    rt_api_run_info info;
    if (!visible_run(r, id, &info))
        return;
    const char *why = NULL;
    if (is_agent(r) && !rt_agent_may_touch(r->who.entity_id, info.system, info.entity_id, &why)) {
        rt_api_refuse(r, 403, "run %s: %s", id, why);
        return;
    }
    json_t *reason = NULL;
    json_t *body = reason_body(r, &reason);
    if (!body)
        return;
    run_pause_args a = {.id = id, .pause = pause,
                        .details = json_pack("{s:s, s:s, s:O?}", "workflow", info.workflow_id, "via", "api", "reason",
                                             reason)};
    audit_actor(r, a.actor, sizeof a.actor);
    if (with_store(r, op_run_pause, &a, true)) {
        if (a.outcome != RT_OK) {
            rt_api_reply_status(r, &a.oerr);
        } else {
            rt_api_reply_json(r, 200, a.out);
            a.out = NULL;
            rt_log(RT_LOG_INFO, NULL, "api: run %s %s by %s", id, pause ? "paused" : "resumed", r->who.label);
        }
    }
    json_decref(a.out);
    json_decref(a.details);
    json_decref(body);
}

static void post_run_pause(rt_api_req *r)
{
    pause_run(r, true);
}

static void post_run_resume(rt_api_req *r)
{
    pause_run(r, false);
}

/* A filter time: RFC 3339, or a duration meaning that long ago ("1h"). */
static bool filter_time(rt_api_req *r, json_t *filter, const char *key, int64_t *ms)
{
    json_t *v = json_object_get(filter, key);
    if (!v || json_is_null(v))
        return true;
    rt_error err;
    int64_t d;
    const char *s = json_string_value(v);
    if (s && rt_duration_parse(s, &d, &err) == RT_OK) {
        *ms = rt_now_ms() - d;
        return true;
    }
    if (s && rt_time_parse(s, ms, &err) == RT_OK)
        return true;
    rt_api_reply_error(r, 400, "$.filter.%s: expected an RFC 3339 time or a duration like \"1h\" (that long ago)",
                       key);
    return false;
}

/* $.filter of a bulk body into b->filter: 400 and false if bad or empty (without all). */
static bool parse_bulk_filter(rt_api_req *r, json_t *filter, bool all, rt_bulk *b)
{
    static const char *const keys[] = {"workflow", "status", "entity_id", "error_contains", "since", "until", NULL};
    if (!json_is_object(filter)) {
        rt_api_reply_error(r, 400, "$.filter: expected an object, not %s", json_type_name(filter));
        return false;
    }
    if (!only_keys(r, filter, keys, "workflow, status, entity_id, error_contains, since, until"))
        return false;
    const char *k;
    json_t *v;
    size_t named = 0;
    json_object_foreach(filter, k, v) {
        if (json_is_null(v))
            continue;
        named++;
        if (strcmp(k, "since") && strcmp(k, "until") && (!json_is_string(v) || !json_string_length(v))) {
            rt_api_reply_error(r, 400, "$.filter.%s: expected a non-empty string, not %s", k, json_type_name(v));
            return false;
        }
    }
    if (named == 0 && !all) {
        rt_api_reply_error(r, 400, "$.filter: name at least one of workflow, status, entity_id, error_contains, "
                                   "since, until (or set \"all\": true to act on every run)");
        return false;
    }
    rt_run_select *f = &b->filter;
    f->workflow = json_string_value(json_object_get(filter, "workflow"));
    f->status = json_string_value(json_object_get(filter, "status"));
    f->entity_id = json_string_value(json_object_get(filter, "entity_id"));
    f->error_contains = json_string_value(json_object_get(filter, "error_contains"));
    rt_run_status ignored;
    if (f->status && !rt_run_status_parse(f->status, &ignored)) {
        rt_api_reply_error(r, 400, "$.filter.status: expected one of %s", rt_run_status_list());
        return false;
    }
    return filter_time(r, filter, "since", &f->since_ms) && filter_time(r, filter, "until", &f->until_ms);
}

static rt_status op_bulk(rt_store *st, void *arg, rt_error *err)
{
    rt_bulk *b = arg;
    rt_bulk_clear(b);
    return rt_runs_bulk(st, b, err);
}

/* POST /api/v1/runs/cancel and /replay: {filter, dry_run?, all?, reason? | from_step?}. */
static void post_runs_bulk(rt_api_req *r, rt_bulk_action action)
{
    json_t *body = body_object(r);
    if (!body)
        return;
    static const char *const cancel_keys[] = {"filter", "dry_run", "all", "reason", NULL};
    static const char *const replay_keys[] = {"filter", "dry_run", "all", "from_step", NULL};
    bool cancel = action == RT_BULK_CANCEL;
    char actor[64];
    audit_actor(r, actor, sizeof actor);
    rt_bulk b = {.action = action, .actor = actor, .via = "api", .agent = is_agent(r)};
    json_t *dry = json_object_get(body, "dry_run"), *all = json_object_get(body, "all");
    json_t *extra = json_object_get(body, cancel ? "reason" : "from_step");
    if (!only_keys(r, body, cancel ? cancel_keys : replay_keys,
                   cancel ? "filter, dry_run, all, reason" : "filter, dry_run, all, from_step")) {
    } else if (dry && !json_is_boolean(dry)) {
        rt_api_reply_error(r, 400, "$.dry_run: expected a boolean, not %s", json_type_name(dry));
    } else if (all && !json_is_boolean(all)) {
        rt_api_reply_error(r, 400, "$.all: expected a boolean, not %s", json_type_name(all));
    } else if (extra && !json_is_null(extra) && !json_is_string(extra)) {
        rt_api_reply_error(r, 400, "$.%s: expected a string, not %s", cancel ? "reason" : "from_step",
                           json_type_name(extra));
    } else if (!json_object_get(body, "filter")) {
        rt_api_reply_error(r, 400, "$.filter: required (an object naming which runs)");
    } else if (parse_bulk_filter(r, json_object_get(body, "filter"), json_is_true(all), &b)) {
        b.dry_run = json_is_true(dry);
        if (cancel)
            b.reason = json_string_value(extra);
        else
            b.from_step = json_string_value(extra);
        if (b.agent && b.filter.entity_id && strcmp(b.filter.entity_id, r->who.entity_id) != 0) {
            rt_api_refuse(r, 403, "$.filter.entity_id: this agent token acts only on runs of entity \"%s\"",
                          r->who.entity_id);
        } else {
            if (b.agent) /* an agent's filter is intersected with its entity */
                b.filter.entity_id = r->who.entity_id;
            if (with_store(r, op_bulk, &b, false))
                rt_api_reply_json(r, 200, rt_bulk_json(&b));
        }
    }
    rt_bulk_clear(&b);
    json_decref(body);
}

static void post_runs_cancel(rt_api_req *r)
{
    post_runs_bulk(r, RT_BULK_CANCEL);
}

static void post_runs_replay(rt_api_req *r)
{
    post_runs_bulk(r, RT_BULK_REPLAY);
}

/* GET /api/v1/openapi.json: schemas/openapi.yaml as JSON, embedded at build time. */
static void get_openapi(rt_api_req *r)
{
    static const char *const q[] = {NULL};
    if (!rt_api_query_only(r, q))
        return;
    json_error_t jerr;
    json_t *doc = json_loads(rt_openapi_json, 0, &jerr);
    if (!doc) {
        rt_api_reply_error(r, 500, "the embedded OpenAPI document does not parse: %s", jerr.text);
        return;
    }
    rt_api_reply_json(r, 200, doc);
}

/* ------------------------------------------------------------------------------------
 * Schedules
 * ------------------------------------------------------------------------------------ */

typedef struct schedules_args {
    rt_schedule_row *rows;
    size_t n;
} schedules_args;

static rt_status op_list_schedules(rt_store *st, void *arg, rt_error *err)
{
    schedules_args *a = arg;
    rt_schedule_rows_free(a->rows, a->n);
    a->rows = NULL;
    a->n = 0;
    return rt_store_schedules_list(st, &a->rows, &a->n, err);
}

static void get_schedules(rt_api_req *r)
{
    static const char *const q[] = {NULL};
    schedules_args a = {0};
    if (!rt_api_query_only(r, q) || !with_store(r, op_list_schedules, &a, true))
        return;
    /* The same objects as `ratchet schedules --json`. */
    json_t *arr = json_array();
    for (size_t i = 0; i < a.n; i++)
        json_array_append_new(arr, rt_schedule_row_json(&a.rows[i]));
    rt_schedule_rows_free(a.rows, a.n);
    rt_api_reply_json(r, 200, json_pack("{s:o}", "schedules", arr));
}

typedef struct pause_args {
    const char *workflow;
    bool pause;
    char actor[64];
    bool paused_before;
    size_t n_rows;
    bool changed;
    int stage; /* 0: look, 1: act */
} pause_args;

static rt_status op_pause_look(rt_store *st, void *arg, rt_error *err)
{
    pause_args *a = arg;
    rt_status s = rt_store_schedules_paused(st, a->workflow, &a->paused_before, err);
    if (s != RT_OK)
        return s;
    rt_schedule_row *rows = NULL;
    size_t n = 0;
    s = rt_store_schedules_list(st, &rows, &n, err);
    a->n_rows = 0;
    for (size_t i = 0; s == RT_OK && i < n; i++)
        a->n_rows += !strcmp(rows[i].workflow_id, a->workflow);
    rt_schedule_rows_free(rows, n);
    return s;
}

static rt_status op_pause_act(rt_store *st, void *arg, rt_error *err)
{
    pause_args *a = arg;
    return a->pause ? rt_schedules_pause(st, a->workflow, a->actor, &a->changed, err)
                    : rt_schedules_resume(st, a->workflow, a->actor, &a->changed, err);
}

static void pause_or_resume(rt_api_req *r, bool pause)
{
    pause_args a = {.workflow = r->params[0], .pause = pause};
    audit_actor(r, a.actor, sizeof a.actor);
    if (!rt_workflow_id_valid(a.workflow)) {
        rt_api_reply_error(r, 404, "workflow \"%.128s\" not found", a.workflow);
        return;
    }
    if (!with_store(r, op_pause_look, &a, true))
        return;
    /* As `ratchet schedules`: a workflow with schedule rows, or a loaded one with a cron
     * trigger (rows come with its first sync); a resume also clears a leftover pause. */
    if (a.n_rows == 0 && !(!pause && a.paused_before)) {
        const rt_workflow *wf = rt_workflow_set_find(r->set, a.workflow);
        bool cron = false;
        for (size_t k = 0; wf && k < wf->n_triggers; k++)
            cron |= wf->triggers[k].kind == RT_TRIGGER_CRON;
        if (!wf) {
            rt_api_reply_error(r, 404, "workflow \"%s\" not found: it has no cron schedule", a.workflow);
            return;
        }
        if (!cron) {
            rt_api_reply_error(r, 409, "workflow \"%s\" has no cron trigger: nothing to %s", a.workflow,
                               pause ? "pause" : "resume");
            return;
        }
    }
    if (!with_store(r, op_pause_act, &a, true))
        return;
    rt_log(RT_LOG_INFO, NULL, "api: schedules of %s %s by %s%s", a.workflow, pause ? "paused" : "resumed",
           r->who.label, a.changed ? "" : " (no change)");
    rt_api_reply_json(r, 200, json_pack("{s:s, s:b, s:b}", "workflow", a.workflow, "paused", pause, "changed",
                                        a.changed));
}

static void post_pause(rt_api_req *r)
{
    pause_or_resume(r, true);
}

static void post_resume(rt_api_req *r)
{
    pause_or_resume(r, false);
}

/* ------------------------------------------------------------------------------------
 * Replay
 * ------------------------------------------------------------------------------------ */

typedef struct replay_args {
    const char *id;
    const char *from;
    create_args c;
    rt_replay rp;
} replay_args;

/* As `ratchet replay`: a new run of the run's pinned definition and event; from_step
 * carries over the memoized outputs of the steps before it (file order). */
static rt_status op_replay(rt_store *st, void *arg, rt_error *err)
{
    replay_args *a = arg;
    rt_status s = rt_replay_prepare(st, a->id, a->from, "$.from_step", &a->rp, err);
    if (s != RT_OK)
        return s;
    a->c.req = a->rp.req;
    return op_create_run(st, &a->c, err);
}

static void post_replay(rt_api_req *r)
{
    const char *id = r->params[0];
    if (!rt_uuid_valid(id)) {
        rt_api_reply_error(r, 400, "\"%.64s\" is not a run id (expected a UUID)", id);
        return;
    }
    json_t *body = body_object(r);
    if (!body)
        return;
    static const char *const keys[] = {"from_step", NULL};
    json_t *from = json_object_get(body, "from_step");
    if (only_keys(r, body, keys, "from_step")) {
        if (from && !json_is_null(from) && !json_is_string(from)) {
            rt_api_reply_error(r, 400, "$.from_step: expected a step id, not %s", json_type_name(from));
        } else {
            replay_args a = {.id = id, .from = json_string_value(from), .c = {.action = "run.replay"}};
            audit_actor(r, a.c.actor, sizeof a.c.actor);
            a.c.details = json_pack("{s:s, s:s, s:s*}", "replay_of", id, "via", "api", "from", a.from);
            bool ok = with_store(r, op_replay, &a, false);
            if (ok && !a.c.created) { /* its workflow is paused: held (no run yet), as a manual run is */
                rt_api_reply_json(r, 202, a.c.run);
                a.c.run = NULL;
            } else if (ok) {
                snprintf(r->location, sizeof r->location, "/api/v1/runs/%s", a.c.req.id);
                rt_api_reply_json(r, 201, a.c.run);
                a.c.run = NULL;
                rt_log(RT_LOG_INFO, NULL, "api: run %s replays %s (by %s)", a.c.req.id, id, r->who.label);
            }
            json_decref(a.c.run);
            json_decref(a.c.details);
            rt_replay_clear(&a.rp);
        }
    }
    json_decref(body);
}

/* ------------------------------------------------------------------------------------
 * Audit log
 * ------------------------------------------------------------------------------------ */

typedef struct audit_args {
    int64_t since_ms;
    int limit;
    rt_audit_row *rows;
    size_t n;
} audit_args;

static rt_status op_audit(rt_store *st, void *arg, rt_error *err)
{
    audit_args *a = arg;
    rt_audit_rows_free(a->rows, a->n);
    a->rows = NULL;
    a->n = 0;
    return rt_store_audit_list(st, a->since_ms, a->limit, &a->rows, &a->n, err);
}

static void get_audit(rt_api_req *r)
{
    static const char *const q[] = {"since", "limit", NULL};
    audit_args a = {0};
    if (!rt_api_query_only(r, q) || !query_int(r, "limit", 100, 1, 1000, &a.limit))
        return;
    const char *since = rt_api_query(r, "since");
    rt_error err;
    if (since && rt_time_parse(since, &a.since_ms, &err) != RT_OK) {
        rt_api_reply_error(r, 400, "since: %s", err.msg);
        return;
    }
    if (!with_store(r, op_audit, &a, true))
        return;
    /* Oldest first, as `ratchet audit` lists them; hash and prev_hash let a reader check
     * the chain (ratchet audit verify does it all). */
    json_t *arr = json_array();
    for (size_t i = 0; i < a.n; i++) {
        const rt_audit_row *row = &a.rows[i];
        json_t *details = row->details ? json_loads(row->details, JSON_DECODE_ANY, NULL) : NULL;
        json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:s, s:s?, s:o, s:s, s:s}", "seq", (json_int_t)row->seq,
                                             "at", row->at, "actor", row->actor, "action", row->action, "subject",
                                             row->subject, "details", details ? details : json_null(), "hash",
                                             row->hash, "prev_hash", row->prev_hash));
    }
    rt_audit_rows_free(a.rows, a.n);
    rt_api_reply_json(r, 200, json_pack("{s:o}", "records", arr));
}

/* ------------------------------------------------------------------------------------
 * Approvals
 * ------------------------------------------------------------------------------------ */

typedef struct pending_args {
    const char *run_id;
    json_t *out;
} pending_args;

static rt_status op_pending(rt_store *st, void *arg, rt_error *err)
{
    pending_args *a = arg;
    json_decref(a->out);
    a->out = NULL;
    return rt_store_approval_pending(st, a->run_id, &a->out, err);
}

static void get_approvals(rt_api_req *r)
{
    static const char *const q[] = {"run_id", NULL};
    pending_args a = {.run_id = rt_api_query(r, "run_id")};
    if (!rt_api_query_only(r, q))
        return;
    if (a.run_id && !rt_uuid_valid(a.run_id)) {
        rt_api_reply_error(r, 400, "run_id=%.64s: not a run id (expected a UUID)", a.run_id);
        return;
    }
    if (with_store(r, op_pending, &a, true))
        rt_api_reply_json(r, 200, json_pack("{s:o}", "approvals", a.out));
}

typedef struct decide_args {
    const rt_workflow_set *set;
    rt_event *ev;
    json_t *outcome;
} decide_args;

/* Stores the decision event (ingest judges it in the same transaction, approval.h) and
 * reads the verdict it left in the audit log. */
static rt_status op_decide(rt_store *st, void *arg, rt_error *err)
{
    decide_args *a = arg;
    json_decref(a->outcome);
    a->outcome = NULL;
    rt_ingest_result res = {0};
    rt_status s = rt_ingest_events(a->set, st, &a->ev, 1, "api", &res, err);
    rt_ingest_results_clear(&res, 1);
    if (s == RT_OK)
        s = rt_store_approval_outcome(st, a->ev->id, &a->outcome, err);
    return s;
}

/* POST /api/v1/runs/{id}/approval: a signed decision as `ratchet approve --print` makes it
 * ({decision, approver, ts, nonce, action_hash, sig, comment?, step_id?}; run_id from the
 * path). The token only carries it: what counts is the approver's signature. */
static void post_approval(rt_api_req *r)
{
    const char *run_id = r->params[0];
    if (!rt_uuid_valid(run_id)) {
        rt_api_reply_error(r, 400, "\"%.64s\" is not a run id (expected a UUID)", run_id);
        return;
    }
    json_t *d = body_object(r);
    if (!d)
        return;
    json_t *rid = json_object_get(d, "run_id");
    rt_error err;
    if (rid && (!json_is_string(rid) || strcmp(json_string_value(rid), run_id) != 0)) {
        rt_api_reply_error(r, 400, "$.run_id: the decision names another run than the path");
        json_decref(d);
        return;
    }
    json_object_set_new(d, "run_id", json_string(run_id));
    if (rt_approval_decision_check(d, &err) != RT_OK) {
        rt_api_reply_error(r, 400, "%s", err.msg);
        json_decref(d);
        return;
    }
    decide_args a = {.set = r->set};
    if (rt_event_new(RT_APPROVAL_DECIDED_EVENT, d, RT_ACTOR_USER, json_string_value(json_object_get(d, "approver")),
                     NULL, NULL, &a.ev, &err) != RT_OK) {
        rt_api_reply_error(r, 400, "%s", err.msg);
        json_decref(d);
        return;
    }
    json_decref(d);
    /* Safe to repeat after a lost connection: the event id is fixed, a second store is a
     * duplicate and the verdict is read back. */
    if (with_store(r, op_decide, &a, true)) {
        const char *action = json_string_value(json_object_get(a.outcome, "action"));
        json_t *details = json_object_get(a.outcome, "details");
        json_t *seq = json_object_get(a.outcome, "seq");
        if (action && !strcmp(action, "approval.refused")) {
            const char *reason = json_string_value(json_object_get(details, "reason"));
            const char *msg = json_string_value(json_object_get(details, "message"));
            int status = reason && (!strcmp(reason, "bad_signature") || !strcmp(reason, "unknown_approver") ||
                                    !strcmp(reason, "self_approval") || !strcmp(reason, "agent") ||
                                    !strcmp(reason, "unknown_requester"))
                             ? 403
                         : reason && !strcmp(reason, "invalid") ? 400
                                                                : 409;
            rt_api_reply_error_with(r, status, json_pack("{s:s, s:s, s:O?}", "reason", reason ? reason : "?",
                                                         "event_id", a.ev->id, "audit_seq", seq),
                                    "decision refused (%s): %s", reason ? reason : "?", msg ? msg : "");
        } else {
            rt_api_reply_json(r, 200, json_pack("{s:s, s:s, s:s, s:O?, s:O?}", "run_id", run_id, "outcome",
                                                action && !strcmp(action, "approval.approved") ? "approved"
                                                                                               : "rejected",
                                                "event_id", a.ev->id, "step_id",
                                                json_object_get(details, "step_id"), "audit_seq", seq));
        }
    }
    json_decref(a.outcome);
    rt_event_free(a.ev);
}

/* Who may do what (DESIGN §6, §8). admin and operator: everything; viewer: every GET
 * but none of the writes; agent: POST events and runs, read and cancel the runs of its
 * own entity (never a system workflow's), nothing else — the handlers enforce the entity
 * and system parts. /healthz and /readyz need no token; /metrics needs a non-agent one
 * (Prometheus sends it with `authorization: credentials_file`). */
static const rt_api_route routes[] = {
    {"GET", "/", 0, false, rt_api_get_dashboard},
    {"GET", "/healthz", 0, false, get_healthz},
    {"GET", "/readyz", 0, false, get_readyz},
    {"GET", "/metrics", READERS, false, get_metrics},
    {"GET", "/api/v1/workflows", READERS, false, get_workflows},
    {"GET", "/api/v1/workflows/{}", READERS, false, get_workflow},
    /* An agent's PUT, DELETE, pause and resume become proposals (api_workflows.c). */
    {"PUT", "/api/v1/workflows/{}", TRIGGERERS, false, rt_api_put_workflow},
    {"DELETE", "/api/v1/workflows/{}", TRIGGERERS, false, rt_api_delete_workflow},
    {"POST", "/api/v1/workflows/{}/pause", TRIGGERERS, false, rt_api_post_workflow_pause},
    {"POST", "/api/v1/workflows/{}/resume", TRIGGERERS, false, rt_api_post_workflow_resume},
    {"GET", "/api/v1/workflow-proposals", READERS, false, rt_api_get_workflow_proposals},
    {"POST", "/api/v1/workflow-proposals/{}/decision", TRIGGERERS, false, rt_api_post_workflow_proposal_decision},
    {"GET", "/api/v1/workflows/{}/versions", READERS, false, rt_api_get_workflow_versions},
    {"POST", "/api/v1/workflows/{}/runs", TRIGGERERS, false, post_workflow_runs},
    {"POST", "/api/v1/events", TRIGGERERS, true, post_events},
    {"GET", "/api/v1/events", READERS, false, get_events},
    {"GET", "/api/v1/runs", RT_ROLES_ALL, false, get_runs},
    {"GET", "/api/v1/runs/{}", RT_ROLES_ALL, false, get_run},
    {"POST", "/api/v1/runs/{}/cancel", TRIGGERERS, false, post_cancel},
    {"POST", "/api/v1/runs/{}/replay", WRITERS, false, post_replay},
    {"POST", "/api/v1/runs/{}/pause", TRIGGERERS, false, post_run_pause},
    {"POST", "/api/v1/runs/{}/resume", TRIGGERERS, false, post_run_resume},
    {"POST", "/api/v1/runs/cancel", TRIGGERERS, false, post_runs_cancel},
    {"POST", "/api/v1/runs/replay", WRITERS, false, post_runs_replay},
    {"GET", "/api/v1/openapi.json", READERS, false, get_openapi},
    {"POST", "/api/v1/runs/{}/approval", WRITERS, false, post_approval},
    {"GET", "/api/v1/approvals", READERS, false, get_approvals},
    {"GET", "/api/v1/audit", READERS, false, get_audit},
    {"GET", "/api/v1/schedules", READERS, false, get_schedules},
    {"POST", "/api/v1/schedules/{}/pause", WRITERS, false, post_pause},
    {"POST", "/api/v1/schedules/{}/resume", WRITERS, false, post_resume},
    {"GET", "/api/v1/stats", READERS, false, rt_api_get_stats},
    {"GET", "/api/v1/stats/workflows", READERS, false, rt_api_get_workflow_stats},
    {"POST", "/hooks/stripe", 0, true, rt_api_post_stripe_hook},
    {"POST", "/hooks/generic/{}", 0, true, rt_api_post_generic_hook},
};

const rt_api_route *rt_api_routes(size_t *n)
{
    *n = sizeof routes / sizeof routes[0];
    return routes;
}
