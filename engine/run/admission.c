/* admission.c — run admission: idempotency, debounce, batch_events, singleton and throttle
 * decided in the transaction that creates the runs (see admission.h for the rules).
 *
 * Why it is correct with many processes: every (workflow, control, key value) a call
 * touches is locked first, all at once and in sorted order (transaction-scoped advisory
 * locks, so no two admissions deadlock), and only then does the call read what other
 * transactions committed. Under READ COMMITTED each later statement sees every run an
 * earlier holder of the same lock created. The keys a run was admitted under are stamped
 * into its trigger (trigger.admission), so the run row itself records them; idempotency
 * keys and GCRA state have their own tables (migration 007). */
#include "admission.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"
#include "log.h"
#include "refusal.h"
#include "store_admission.h"
#include "util.h"

#define KEY_MAX 200 /* a longer key value is kept as "sha256:<hex>" */
#define RT_BATCH_MAX_BYTES (1 << 20) /* a batch closes when its events reach this (or max_size) */

typedef enum verdict {
    V_CREATE = 0, /* a new run (possibly delayed) */
    V_SKIP,       /* nothing: reason says why */
    V_JOIN_RUN,   /* joined an existing pending run (debounce, batch_events) */
    V_JOIN_PLAN,  /* joined the run an earlier request of this call creates */
} verdict;

typedef struct plan {
    rt_run_request *req; /* the caller's */
    bool controlled;     /* false: created exactly as asked */
    verdict what;
    char *idem;          /* owned: idempotency value, or NULL */
    char *single;        /* owned: singleton key value, or NULL */
    bool single_cancel;  /* singleton mode cancel */
    char *pending;       /* owned: "debounce:<value>" or "batch" (still collecting), or NULL */
    bool is_batch;
    char *throttle;      /* owned: throttle key value, or NULL */
    json_t *trigger;     /* owned: what the run is created with (a stamped copy) */
    json_t *event;       /* borrowed from a request of this call */
    int64_t run_at_ms;
    int64_t first_ms;    /* debounce: the first request of the window */
    int join;            /* V_JOIN_PLAN: index of the plan joined */
    char run[37];        /* V_JOIN_RUN: the run joined */
    bool idem_taken;     /* this transaction took the idempotency key */
    json_t *cancel;      /* owned: singleton cancel: ids of unfinished runs to cancel */
    int supersede;       /* singleton cancel: earlier plan of this call whose run this one cancels */
    bool approved;       /* a held run being admitted after its approval: never joins or collects */
    bool agent;          /* the request's actor is an agent: its keys live in its entity's partition */
} plan;

static bool controlled_wf(const rt_workflow *wf)
{
    return wf->idempotency || wf->singleton || wf->debounce || wf->throttle || wf->batch_events;
}

static json_t *admission_obj(json_t *trigger)
{
    json_t *a = json_object_get(trigger, "admission");
    if (!json_is_object(a)) {
        a = json_object();
        json_object_set_new(trigger, "admission", a);
    }
    return a;
}

static int64_t block_duration(json_t *blk, const char *key)
{
    int64_t ms = 0;
    const char *s = json_string_value(json_object_get(blk, key));
    rt_error e;
    if (s && rt_duration_parse(s, &ms, &e) != RT_OK)
        ms = 0; /* the loader validated it */
    return ms;
}

/* A key expression's value as text: a string as it is, other values as compact JSON,
 * null (or a failing expression, logged) as "null"; *is_null says which. Long values
 * become "sha256:<hex>". NULL expression: "*" (one bucket). Caller frees. */
static char *key_value(const rt_workflow *wf, const char *what, const char *expr, json_t *ctx, bool *is_null)
{
    *is_null = false;
    if (!expr)
        return strdup("*");
    json_t *v = NULL;
    rt_error e;
    rt_status s;
    if (rt_template_present(expr)) {
        json_t *t = json_string(expr);
        s = rt_template_render(t, ctx, &v, &e);
        json_decref(t);
    } else {
        s = rt_expr_eval(expr, ctx, &v, &e);
    }
    char *text;
    if (s != RT_OK) {
        rt_log_ctx lc = {.workflow = wf->id};
        rt_log(RT_LOG_WARN, &lc, "%s key failed to evaluate, using null: %s", what, e.msg);
        text = strdup("null");
        *is_null = true;
    } else if (!v || json_is_null(v)) {
        text = strdup("null");
        *is_null = true;
    } else if (json_is_string(v)) {
        text = strdup(json_string_value(v));
    } else {
        text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    }
    json_decref(v);
    if (text && strlen(text) > KEY_MAX) {
        char hex[65], *h = malloc(7 + 65);
        rt_sha256_hex(text, strlen(text), hex);
        if (h)
            snprintf(h, 7 + 65, "sha256:%s", hex);
        free(text);
        text = h;
    }
    return text;
}

static void reason(rt_run_request *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reason(rt_run_request *q, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q->reason, sizeof q->reason, fmt, ap);
    va_end(ap);
}

static void skip(plan *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void skip(plan *q, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q->req->reason, sizeof q->req->reason, fmt, ap);
    va_end(ap);
    q->what = V_SKIP;
    q->req->id[0] = '\0';
}

/* "agent:<entity>|<value>": an agent's key, apart from everyone else's. */
static void partition(char **value, const char *entity)
{
    if (!*value)
        return;
    size_t len = strlen(*value) + (entity ? strlen(entity) : 1) + 8;
    char *p = malloc(len);
    if (p)
        snprintf(p, len, "agent:%s|%s", entity ? entity : "-", *value);
    free(*value);
    *value = p;
}

/* Fills the keys of one request. */
static void plan_keys(plan *q)
{
    rt_run_request *r = q->req;
    const rt_workflow *wf = r->wf;
    json_t *orig = r->trigger;
    q->trigger = orig ? json_copy(orig) : json_object(); /* shallow: only top-level keys change */
    q->event = r->event;
    q->run_at_ms = r->run_at_ms;
    q->join = q->supersede = -1;
    bool replay = json_object_get(orig, "replay_of") != NULL;
    if (replay) {
        /* A replay is an operator's explicit act: no control applies, and it never
         * collects requests or counts as a singleton holder. */
        json_object_del(q->trigger, "admission");
        q->controlled = true;
        return;
    }
    if (!controlled_wf(wf))
        return;
    q->controlled = true;
    bool child = r->parent_run_id != NULL;
    /* An agent's keys live in a partition of their own (its entity), so that its requests
     * can never skip, join or cancel a run another entity or a service started (DESIGN §6).
     * Throttle and concurrency stay shared: they only delay. */
    json_t *actor = json_object_get(r->event, "actor");
    const char *atype = json_string_value(json_object_get(actor, "type"));
    q->agent = atype && !strcmp(atype, "agent");
    json_t *ctx = json_pack("{s:O}", "event", r->event ? r->event : json_null());
    json_t *sched = json_object_get(orig, "schedule");
    if (sched)
        json_object_set(ctx, "schedule", sched);
    bool is_null;
    if (wf->idempotency && !child) {
        q->idem = key_value(wf, "idempotency", wf->idempotency, ctx, &is_null);
        if (is_null) {
            rt_log_ctx lc = {.workflow = wf->id};
            rt_log(RT_LOG_WARN, &lc, "idempotency key is null: the run is not deduplicated");
            free(q->idem);
            q->idem = NULL;
        }
    }
    const char *type = json_string_value(json_object_get(orig, "type"));
    if (q->approved) {
        /* The approval covered exactly this run's event: it neither joins nor collects. */
    } else if (wf->batch_events && !child && type && !strcmp(type, "event")) {
        q->pending = strdup("batch");
        q->is_batch = true;
    } else if (wf->debounce && !child) {
        char *k = key_value(wf, "debounce", json_string_value(json_object_get(wf->debounce, "key")), ctx, &is_null);
        size_t len = k ? strlen(k) + 10 : 0;
        q->pending = k ? malloc(len) : NULL;
        if (q->pending)
            snprintf(q->pending, len, "debounce:%s", k);
        free(k);
    }
    if (wf->singleton && !child) {
        q->single = key_value(wf, "singleton", json_string_value(json_object_get(wf->singleton, "key")), ctx, &is_null);
        const char *mode = json_string_value(json_object_get(wf->singleton, "mode"));
        q->single_cancel = mode && !strcmp(mode, "cancel");
    }
    if (wf->throttle)
        q->throttle = key_value(wf, "throttle", json_string_value(json_object_get(wf->throttle, "key")), ctx, &is_null);
    json_decref(ctx);
    if (q->agent) {
        const char *entity = json_string_value(json_object_get(r->event, "entity_id"));
        partition(&q->idem, entity);
        partition(&q->pending, entity);
    }
}

static void lock_key(json_t *keys, const char *wf, const char *kind, const char *value)
{
    size_t len = strlen(wf) + strlen(kind) + strlen(value) + 3;
    char *k = malloc(len);
    if (!k)
        return;
    snprintf(k, len, "%s\n%s\n%s", wf, kind, value);
    json_array_append_new(keys, json_string(k));
    free(k);
}

static void log_decision(const plan *q, const char *what)
{
    rt_log_ctx lc = {.workflow = q->req->wf->id, .run_id = q->req->id[0] ? q->req->id : NULL};
    rt_log(RT_LOG_DEBUG, &lc, "admission: %s%s%s", what, q->req->reason[0] ? ": " : "", q->req->reason);
}

/* ---- joining a pending run (debounce, batch_events) ---- */

static int64_t debounce_due(const rt_workflow *wf, int64_t now, int64_t first)
{
    int64_t due = now + block_duration(wf->debounce, "period");
    int64_t timeout = block_duration(wf->debounce, "timeout");
    if (timeout > 0 && first > 0 && due > first + timeout)
        due = first + timeout;
    return due;
}

static int batch_max(const rt_workflow *wf)
{
    return (int)json_integer_value(json_object_get(wf->batch_events, "max_size"));
}

/* Appends the event to trigger.events; true when the batch is now full (and no longer
 * collects: its pending mark is removed). Full also means RT_BATCH_MAX_BYTES of events:
 * every join rewrites the run's trigger, so the bytes bound what one join costs and keep
 * the trigger far from jsonb's limit (a batch that could never be stored would make its
 * broker messages retry forever). */
static bool batch_append(const rt_workflow *wf, json_t *trigger, json_t *event)
{
    json_t *events = json_object_get(trigger, "events");
    if (!json_is_array(events)) {
        events = json_array();
        json_object_set_new(trigger, "events", events);
    }
    json_array_append(events, event ? event : json_null());
    char *text = event ? json_dumps(event, JSON_COMPACT) : NULL;
    json_t *adm = admission_obj(trigger);
    json_int_t bytes = json_integer_value(json_object_get(adm, "bytes")) + (json_int_t)(text ? strlen(text) : 4);
    free(text);
    json_object_set_new(adm, "bytes", json_integer(bytes));
    bool full = (int)json_array_size(events) >= batch_max(wf) || bytes >= RT_BATCH_MAX_BYTES;
    if (full)
        json_object_del(admission_obj(trigger), "pending");
    return full;
}

/* A throttled run never becomes due before its slot (trigger.admission.not_before). */
static int64_t not_before(json_t *trigger, int64_t due)
{
    json_t *nb = json_object_get(admission_obj(trigger), "not_before");
    return nb && json_integer_value(nb) > due ? json_integer_value(nb) : due;
}

static void count_request(json_t *trigger)
{
    json_t *adm = admission_obj(trigger);
    json_int_t n = json_integer_value(json_object_get(adm, "requests"));
    json_object_set_new(adm, "requests", json_integer(n > 0 ? n + 1 : 2));
}

/* A request joins the run an earlier request of this call creates. */
static void join_plan(plan *p, int j, plan *q, int64_t now)
{
    plan *t = &p[j];
    const rt_workflow *wf = q->req->wf;
    q->what = V_JOIN_PLAN;
    q->join = j;
    count_request(t->trigger);
    if (q->is_batch) {
        if (batch_append(wf, t->trigger, q->event)) {
            free(t->pending);
            t->pending = NULL;
            t->run_at_ms = not_before(t->trigger, t->req->run_at_ms); /* full: due as asked (now) */
        }
    } else {
        t->event = q->event;
        t->run_at_ms = not_before(t->trigger, debounce_due(wf, now, t->first_ms));
    }
}

/* Looks for a pending run in the database; joins it when it still collects. */
static rt_status join_pending_run(rt_store *st, plan *q, int64_t now, bool *joined, bool *notify, rt_error *err)
{
    const rt_workflow *wf = q->req->wf;
    rt_pending_run pr;
    *joined = false;
    rt_status s = rt_store_pending_find(st, wf->id, q->pending, &pr, err);
    if (s != RT_OK || !pr.found) {
        rt_pending_run_clear(&pr);
        return s;
    }
    json_t *trigger = json_deep_copy(pr.trigger);
    count_request(trigger);
    int64_t due = pr.run_at_ms;
    json_t *event = NULL;
    char how[96];
    if (q->is_batch) {
        if (batch_append(wf, trigger, q->event)) {
            due = not_before(trigger, now);
            *notify = true;
        }
        snprintf(how, sizeof how, "batched (%zu of %d events)", json_array_size(json_object_get(trigger, "events")),
                 batch_max(wf));
    } else {
        event = q->event;
        int64_t first = json_integer_value(json_object_get(admission_obj(trigger), "first"));
        due = not_before(trigger, debounce_due(wf, now, first));
        snprintf(how, sizeof how, "debounced");
    }
    s = rt_store_pending_update(st, pr.id, event, trigger, due, err);
    json_decref(trigger);
    if (s == RT_OK) {
        char at[40];
        rt_time_format(due, at, sizeof at);
        q->what = V_JOIN_RUN;
        memcpy(q->run, pr.id, sizeof q->run);
        memcpy(q->req->id, pr.id, sizeof q->req->id);
        reason(q->req, "%s into run %s, due at %s", how, pr.id, at);
        *joined = true;
    }
    rt_pending_run_clear(&pr);
    return s;
}

/* Marks a new run as the one that collects later requests. */
static void open_pending(plan *q, int64_t now)
{
    const rt_workflow *wf = q->req->wf;
    json_t *adm = admission_obj(q->trigger);
    int64_t due;
    if (q->is_batch) {
        json_object_set_new(q->trigger, "events", json_array());
        if (batch_append(wf, q->trigger, q->event)) { /* max_size 1 */
            free(q->pending);
            q->pending = NULL;
            return;
        }
        due = now + block_duration(wf->batch_events, "timeout");
    } else {
        q->first_ms = now;
        json_object_set_new(adm, "first", json_integer(now));
        due = debounce_due(wf, now, now);
    }
    json_object_set_new(adm, "pending", json_string(q->pending));
    if (due > q->run_at_ms)
        q->run_at_ms = due;
}

/* May the agent behind q cancel the run started by event (an envelope, or a run row of
 * rt_store_singleton_runs with its actor and entity)? */
static bool may_touch_event(const plan *q, const json_t *event)
{
    return rt_event_may(q->req->event, RT_AGENT_CANCEL,
                        &(rt_agent_target){.workflow_id = q->req->wf->id, .system = q->req->wf->system,
                                           .entity_id = json_string_value(json_object_get(event, "entity_id"))},
                        NULL);
}

/* Singleton skip for a request that is not an agent's: runs agents started do not count,
 * so that an agent can never keep a service's or a person's run from starting. */
static void drop_agent_runs(json_t *runs)
{
    for (size_t k = json_array_size(runs); k-- > 0;) {
        const char *type =
            json_string_value(json_object_get(json_object_get(json_array_get(runs, k), "actor"), "type"));
        if (type && !strcmp(type, "agent"))
            json_array_remove(runs, k);
    }
}

/* An agent's singleton `cancel` that would cancel a run it may not touch (a system
 * workflow's, another entity's). Nothing is created or cancelled; the refusal is audited. */
static rt_status refuse_cancel(rt_store *st, plan *q, rt_error *err)
{
    const rt_workflow *wf = q->req->wf;
    const json_t *ev = q->req->event;
    json_t *runs = json_array(); /* what it would have cancelled, for the record */
    size_t k;
    json_t *run;
    json_array_foreach(q->cancel, k, run) {
        if (k < 10)
            json_array_append(runs, json_object_get(run, "id"));
    }
    json_decref(q->cancel);
    q->cancel = NULL;
    q->supersede = -1;
    skip(q, "singleton: an agent may not cancel the unfinished runs of %s for this key (%s)", wf->id,
         wf->system ? "a system workflow" : "another entity's");
    json_t *extra = json_pack("{s:s, s:s?, s:s?, s:o}", "via", "singleton", "event_id",
                              json_string_value(json_object_get(ev, "id")), "entity_id",
                              json_string_value(json_object_get(ev, "entity_id")), "runs", runs);
    rt_status s = rt_agent_refusal_audit(st, json_string_value(json_object_get(json_object_get(ev, "actor"), "id")),
                                         RT_AGENT_CANCEL, wf->id, q->req->reason, extra, err);
    json_decref(extra);
    return s;
}

/* ---- the decision for one request ---- */

static rt_status decide(rt_store *st, plan *p, size_t i, int64_t now, bool *notify, rt_error *err)
{
    plan *q = &p[i];
    const rt_workflow *wf = q->req->wf;
    rt_status s = RT_OK;

    if (q->idem) {
        bool taken = false;
        char holder[37];
        int64_t since = 0;
        s = rt_store_idempotency_take(st, wf->id, q->idem, &taken, holder, &since, err);
        if (s != RT_OK)
            return s;
        if (!taken) {
            char at[40];
            rt_time_format(since, at, sizeof at);
            if (holder[0])
                skip(q, "idempotency: run %s was started for key \"%s\" at %s (less than 24 h ago)", holder, q->idem,
                     at);
            else
                skip(q, "idempotency: a run for key \"%s\" is being started by another request", q->idem);
            return RT_OK;
        }
        q->idem_taken = true;
        json_object_set_new(admission_obj(q->trigger), "idempotency", json_string(q->idem));
    }

    if (q->pending) {
        for (size_t j = i; j-- > 0;) {
            if (p[j].what == V_CREATE && p[j].pending && p[j].req->wf == wf && !strcmp(p[j].pending, q->pending)) {
                join_plan(p, (int)j, q, now);
                return RT_OK;
            }
        }
        bool joined = false;
        s = join_pending_run(st, q, now, &joined, notify, err);
        if (s != RT_OK || joined)
            return s;
        open_pending(q, now);
    }

    if (q->single) {
        json_object_set_new(admission_obj(q->trigger), "singleton", json_string(q->single));
        for (size_t j = i; j-- > 0;) {
            if (p[j].what != V_CREATE || !p[j].single || p[j].req->wf != wf || strcmp(p[j].single, q->single))
                continue;
            if (p[j].agent && !q->agent && !q->single_cancel)
                continue; /* an agent's run never makes anyone else's request skip */
            if (!q->single_cancel) {
                skip(q, "singleton: an earlier request of the same batch starts the run for key \"%s\"", q->single);
                return RT_OK;
            }
            if (q->agent && !may_touch_event(q, p[j].req->event))
                return refuse_cancel(st, q, err);
            q->supersede = (int)j;
            break;
        }
        if (q->supersede < 0) {
            json_t *runs = NULL;
            s = rt_store_singleton_runs(st, wf->id, q->single, &runs, err);
            if (s != RT_OK)
                return s;
            if (!q->agent && !q->single_cancel)
                drop_agent_runs(runs);
            if (json_array_size(runs) > 0 && !q->single_cancel) {
                json_t *r0 = json_array_get(runs, 0);
                skip(q, "singleton: run %s is still %s (key \"%s\")", json_string_value(json_object_get(r0, "id")),
                     json_string_value(json_object_get(r0, "status")), q->single);
                json_decref(runs);
                return RT_OK;
            }
            if (json_array_size(runs) > 0)
                q->cancel = runs;
            else
                json_decref(runs);
            size_t k;
            json_t *run;
            json_array_foreach(q->cancel, k, run) {
                if (q->agent && !may_touch_event(q, run))
                    return refuse_cancel(st, q, err);
            }
        }
    }

    if (q->throttle) {
        int limit = (int)json_integer_value(json_object_get(wf->throttle, "limit"));
        int burst = (int)json_integer_value(json_object_get(wf->throttle, "burst"));
        double interval = (double)block_duration(wf->throttle, "period") / (limit > 0 ? limit : 1);
        int64_t slot = 0, seen = 0;
        s = rt_store_throttle_take(st, wf->id, q->throttle, interval, burst * interval, q->run_at_ms, &slot, &seen,
                                   err);
        if (s != RT_OK)
            return s;
        if (slot > seen) {
            char at[40];
            rt_time_format(slot, at, sizeof at);
            q->run_at_ms = slot;
            json_object_set_new(admission_obj(q->trigger), "not_before", json_integer(slot));
            reason(q->req, "throttled (key \"%s\"): starts at %s", q->throttle, at);
        }
    }
    return RT_OK;
}

/* ---- after creation ---- */

static rt_status finish(rt_store *st, plan *p, size_t n, rt_error *err)
{
    json_t *idem = json_array(), *cancel = json_array(), *expire = json_array();
    for (size_t i = 0; i < n; i++) {
        plan *q = &p[i];
        rt_run_request *r = q->req;
        if (q->what == V_JOIN_PLAN) {
            plan *t = &p[q->join];
            memcpy(r->id, t->req->id, sizeof r->id);
            if (r->id[0])
                reason(r, "%s into run %s, created by an earlier request of the same batch",
                       q->is_batch ? "batched" : "debounced", r->id);
            else
                reason(r, "the run it joined was not created: %s", t->req->reason[0] ? t->req->reason : "duplicate");
        }
        if (q->idem_taken) {
            json_array_append_new(idem, json_pack("{s:s, s:s, s:s?}", "workflow_id", r->wf->id, "key", q->idem,
                                                  "run_id", r->id[0] ? r->id : NULL));
            bool seen = false;
            size_t k;
            json_t *w;
            json_array_foreach(expire, k, w) seen = seen || !strcmp(json_string_value(w), r->wf->id);
            if (!seen)
                json_array_append_new(expire, json_string(r->wf->id));
        }
        if (q->what != V_CREATE || !r->id[0])
            continue;
        char msg[128];
        snprintf(msg, sizeof msg, "cancelled by singleton: newer run %s", r->id);
        size_t k;
        json_t *old;
        json_array_foreach(q->cancel, k, old) {
            json_array_append_new(cancel, json_pack("{s:O, s:s}", "id", json_object_get(old, "id"), "error", msg));
            rt_log_ctx lc = {.workflow = r->wf->id, .run_id = json_string_value(json_object_get(old, "id"))};
            rt_log(RT_LOG_DEBUG, &lc, "admission: %s (key \"%s\")", msg, q->single);
        }
        if (q->supersede >= 0 && p[q->supersede].req->id[0]) {
            json_array_append_new(cancel, json_pack("{s:s, s:s}", "id", p[q->supersede].req->id, "error", msg));
            rt_log_ctx lc = {.workflow = r->wf->id, .run_id = p[q->supersede].req->id};
            rt_log(RT_LOG_DEBUG, &lc, "admission: %s (key \"%s\")", msg, q->single);
        }
    }
    rt_status s = rt_store_idempotency_finish(st, idem, err);
    if (s == RT_OK)
        s = rt_store_cancel_runs(st, cancel, err);
    size_t k;
    json_t *w;
    json_array_foreach(expire, k, w) {
        if (s == RT_OK)
            s = rt_store_idempotency_expire(st, json_string_value(w), err);
    }
    json_decref(idem);
    json_decref(cancel);
    json_decref(expire);
    return s;
}

static void plans_free(plan *p, size_t n)
{
    for (size_t i = 0; p && i < n; i++) {
        free(p[i].idem);
        free(p[i].single);
        free(p[i].pending);
        free(p[i].throttle);
        json_decref(p[i].trigger);
        json_decref(p[i].cancel);
    }
    free(p);
}

/* Locks every key the plans touch (sorted, all at once), reads the clock, decides each
 * controlled plan. */
static rt_status lock_and_decide(rt_store *st, plan *p, size_t n, int64_t *now, bool *notify, rt_error *err)
{
    json_t *keys = json_array();
    for (size_t i = 0; i < n; i++) {
        const char *wf = p[i].req->wf->id;
        if (p[i].idem)
            lock_key(keys, wf, "idempotency", p[i].idem);
        if (p[i].pending)
            lock_key(keys, wf, "pending", p[i].pending);
        if (p[i].single)
            lock_key(keys, wf, "singleton", p[i].single);
        if (p[i].throttle)
            lock_key(keys, wf, "throttle", p[i].throttle);
    }
    rt_status s = rt_store_admission_lock(st, keys, err);
    json_decref(keys);
    if (s == RT_OK)
        s = rt_store_admission_now(st, now, err);
    for (size_t i = 0; s == RT_OK && i < n; i++) {
        if (p[i].controlled)
            s = decide(st, p, i, *now, notify, err);
    }
    return s;
}

rt_status rt_admission_apply(rt_store *st, rt_run_request *reqs, size_t n, rt_error *err)
{
    bool needed = false;
    for (size_t i = 0; i < n; i++) {
        reqs[i].reason[0] = '\0';
        if (controlled_wf(reqs[i].wf) || json_object_get(reqs[i].trigger, "replay_of") != NULL)
            needed = true;
    }
    if (!needed)
        return rt_store_create_runs_tx(st, reqs, n, err);

    plan *p = calloc(n, sizeof *p);
    rt_run_request *made = calloc(n, sizeof *made);
    size_t *from = calloc(n, sizeof *from);
    if (!p || !made || !from) {
        free(made);
        free(from);
        free(p);
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        p[i].req = &reqs[i];
        plan_keys(&p[i]);
    }
    int64_t now = 0;
    bool notify = false;
    rt_status s = lock_and_decide(st, p, n, &now, &notify, err);

    size_t m = 0;
    for (size_t i = 0; s == RT_OK && i < n; i++) {
        if (p[i].what != V_CREATE)
            continue;
        made[m] = reqs[i]; /* every field the caller set, then what admission decided */
        made[m].trigger = p[i].trigger;
        made[m].event = p[i].event;
        made[m].run_at_ms = p[i].run_at_ms;
        from[m++] = i;
    }
    if (s == RT_OK && m > 0)
        s = rt_store_create_runs_tx(st, made, m, err);
    for (size_t k = 0; s == RT_OK && k < m; k++) {
        rt_run_request *r = &reqs[from[k]];
        memcpy(r->id, made[k].id, sizeof r->id);
        if (!r->id[0] && !r->reason[0])
            reason(r, "not created: a run with dedupe key \"%s\" exists", r->dedupe_key ? r->dedupe_key : "?");
    }
    if (s == RT_OK)
        s = finish(st, p, n, err);
    if (s == RT_OK && notify)
        s = rt_store_wake(st, err);
    for (size_t i = 0; s == RT_OK && i < n; i++) {
        if (!p[i].controlled)
            continue;
        static const char *const names[] = {"created", "skipped", "joined", "joined"};
        log_decision(&p[i], p[i].what == V_CREATE && !reqs[i].id[0] ? "not created" : names[p[i].what]);
    }
    if (s != RT_OK) {
        for (size_t i = 0; i < n; i++)
            reqs[i].id[0] = '\0';
    }
    free(made);
    free(from);
    plans_free(p, n);
    return s;
}

rt_status rt_admission_admit_approved(rt_store *st, rt_run_request *req, bool *admitted, json_t **trigger,
                                      rt_error *err)
{
    char run_id[37];
    memcpy(run_id, req->id, sizeof run_id);
    req->reason[0] = '\0';
    *admitted = true;
    *trigger = NULL;
    plan q = {.req = req, .approved = true};
    plan_keys(&q);
    int64_t now = 0;
    bool notify = false;
    rt_status s = q.controlled ? lock_and_decide(st, &q, 1, &now, &notify, err) : RT_OK;
    if (s == RT_OK && q.what == V_SKIP) {
        *admitted = false;
    } else if (s == RT_OK) {
        memcpy(req->id, run_id, sizeof req->id);
        req->run_at_ms = q.run_at_ms;
        s = finish(st, &q, 1, err);
        *trigger = json_incref(q.trigger);
    }
    memcpy(req->id, run_id, sizeof req->id);
    if (s == RT_OK && q.controlled)
        log_decision(&q, *admitted ? "admitted after approval" : "not admitted after approval");
    free(q.idem);
    free(q.single);
    free(q.pending);
    free(q.throttle);
    json_decref(q.trigger);
    json_decref(q.cancel);
    return s;
}
