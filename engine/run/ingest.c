/* ingest.c — events in, runs out, in one transaction per batch. */
#include "ingest.h"
#include "create.h"
#include "gate.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"
#include "log.h"
#include "metrics.h"
#include "refusal.h"
#include "util.h"
#include "workflow_live.h"

bool rt_ingest_matches(const rt_workflow *wf, const rt_event *ev)
{
    if (!wf->enabled)
        return false;
    for (size_t t = 0; t < wf->n_triggers; t++) {
        const rt_trigger *tr = &wf->triggers[t];
        if (tr->kind != RT_TRIGGER_EVENT || !rt_event_name_matches(tr->event, ev->name))
            continue;
        if (!tr->if_expr)
            return true;
        /* The context holds only the event: borrowed envelope, increfed by "O". */
        json_t *ctx = json_pack("{s:O}", "event", ev->envelope);
        bool yes = false;
        rt_error err;
        if (rt_expr_condition(tr->if_expr, ctx, &yes, &err) != RT_OK) {
            rt_log_ctx lc = {.workflow = wf->id};
            rt_log(RT_LOG_WARN, &lc, "trigger if for event %s (%s) failed, not starting: %s", ev->id, ev->name,
                   err.msg);
            yes = false;
        }
        json_decref(ctx);
        if (yes)
            return true;
    }
    return false;
}

/* Evaluates a condition seeing the run's own trigger as `event` and the new one as
 * `async`. A failing condition is logged and counts as false. */
static bool async_condition(const char *cond, json_t *run_event, const rt_event *ev, const char *what)
{
    if (!cond)
        return true;
    json_t *ctx = json_pack("{s:O, s:O}", "event", run_event ? run_event : json_null(), "async", ev->envelope);
    bool yes = false;
    rt_error err;
    if (rt_expr_condition(cond, ctx, &yes, &err) != RT_OK) {
        rt_log(RT_LOG_WARN, NULL, "%s condition for event %s failed: %s", what, ev->id, err.msg);
        yes = false;
    }
    json_decref(ctx);
    return yes;
}

/* Wakes wait_for_event steps that the fresh events satisfy (first matching event wins). */
/* An agent's event wakes only its own entity's runs of non-system workflows; anything
 * else is a refusal (audited, rate-limited) and no match. */
static rt_status may_wake(const rt_workflow_set *set, rt_store *st, const json_t *wait, const rt_event *ev, bool *may,
                          rt_error *err)
{
    const char *wf_id = json_string_value(json_object_get(wait, "workflow"));
    const rt_workflow *wf = set && wf_id ? rt_workflow_set_find(set, wf_id) : NULL;
    const char *run_entity = json_string_value(json_object_get(json_object_get(wait, "event"), "entity_id"));
    const char *why = NULL;
    /* A workflow this process does not know counts as a system one: refuse when unsure. */
    *may = rt_event_may(ev->envelope, RT_AGENT_WAKE,
                        &(rt_agent_target){.workflow_id = wf_id, .system = !wf || wf->system, .entity_id = run_entity},
                        &why);
    if (*may)
        return RT_OK;
    json_t *extra = json_pack("{s:s, s:s?, s:s, s:s}", "via", "wait_for_event", "workflow", wf_id, "event_id", ev->id,
                              "event", ev->name);
    rt_status s = rt_agent_refusal_audit(st, ev->actor_id, RT_AGENT_WAKE,
                                         json_string_value(json_object_get(wait, "run_id")), why, extra, err);
    json_decref(extra);
    return s;
}

static rt_status wake_waiters(const rt_workflow_set *set, rt_store *st, rt_event *const *fresh, size_t n,
                              json_t *names, rt_error *err)
{
    json_t *waits = NULL;
    rt_status s = rt_store_lock_event_names(st, names, false, err);
    if (s == RT_OK)
        s = rt_store_find_waits(st, names, &waits, err);
    if (s != RT_OK || json_array_size(waits) == 0) {
        json_decref(waits);
        return s;
    }
    json_t *matched = json_array();
    json_t *taken = json_object(); /* "run_id:step_id" -> true */
    for (size_t i = 0; s == RT_OK && i < n; i++) {
        size_t k;
        json_t *w;
        json_array_foreach(waits, k, w) {
            if (strcmp(json_string_value(json_object_get(w, "name")), fresh[i]->name) != 0)
                continue;
            char key[300];
            snprintf(key, sizeof key, "%s:%s", json_string_value(json_object_get(w, "run_id")),
                     json_string_value(json_object_get(w, "step_id")));
            if (json_object_get(taken, key))
                continue;
            if (!async_condition(json_string_value(json_object_get(w, "if")), json_object_get(w, "event"), fresh[i],
                                 "wait_for_event"))
                continue;
            bool may = true;
            if ((s = may_wake(set, st, w, fresh[i], &may, err)) != RT_OK)
                break;
            if (!may)
                continue;
            json_object_set_new(taken, key, json_true());
            json_array_append_new(matched, json_pack("{s:O, s:O, s:O}", "run_id", json_object_get(w, "run_id"),
                                                     "step_id", json_object_get(w, "step_id"), "envelope",
                                                     fresh[i]->envelope));
        }
    }
    int woken = 0;
    if (s == RT_OK)
        s = rt_store_match_waits(st, matched, &woken, err);
    if (s == RT_OK && woken > 0)
        rt_log(RT_LOG_DEBUG, NULL, "events woke %d waiting step(s)", woken);
    json_decref(taken);
    json_decref(matched);
    json_decref(waits);
    return s;
}

/* No agent cancels a system job or another entity's run (DESIGN §6): a refusal. */
static rt_status may_cancel(rt_store *st, const rt_workflow *wf, const rt_event *ev, const json_t *run, bool *may,
                            rt_error *err)
{
    const char *why = NULL;
    const char *run_entity = json_string_value(json_object_get(json_object_get(run, "event"), "entity_id"));
    *may = rt_event_may(ev->envelope, RT_AGENT_CANCEL,
                        &(rt_agent_target){.workflow_id = wf->id, .system = wf->system, .entity_id = run_entity}, &why);
    if (*may)
        return RT_OK;
    json_t *extra = json_pack("{s:s, s:s, s:s, s:s}", "via", "cancel_on", "workflow", wf->id, "event_id", ev->id,
                              "event", ev->name);
    rt_status s = rt_agent_refusal_audit(st, ev->actor_id, RT_AGENT_CANCEL, json_string_value(json_object_get(run, "id")),
                                         why, extra, err);
    json_decref(extra);
    return s;
}

/* cancel_on: unfinished runs of workflows whose cancel_on matches a fresh event end
 * `cancelled` (a running exec step is signalled by its engine's lease keeper). */
static rt_status apply_cancel_on(const rt_workflow_set *set, rt_store *st, rt_event *const *fresh, size_t n,
                                 rt_error *err)
{
    json_t *wf_ids = json_array();
    for (size_t w = 0; set && w < set->n; w++) {
        json_t *rules = set->items[w]->cancel_on;
        bool hit = false;
        for (size_t i = 0; i < n && !hit; i++) {
            size_t k;
            json_t *rule;
            json_array_foreach(rules, k, rule) {
                const char *pat = json_string_value(json_object_get(rule, "event"));
                if (pat && rt_event_name_matches(pat, fresh[i]->name))
                    hit = true;
            }
        }
        if (hit)
            json_array_append_new(wf_ids, json_string(set->items[w]->id));
    }
    if (json_array_size(wf_ids) == 0) {
        json_decref(wf_ids);
        return RT_OK;
    }
    json_t *active = NULL;
    rt_status s = rt_store_active_runs(st, wf_ids, &active, err);
    json_t *cancel = json_array();
    size_t r;
    json_t *run;
    json_array_foreach(active, r, run) {
        const rt_workflow *wf = rt_workflow_set_find(set, json_string_value(json_object_get(run, "workflow")));
        bool done = false;
        for (size_t i = 0; wf && i < n && !done; i++) {
            size_t k;
            json_t *rule;
            json_array_foreach(wf->cancel_on, k, rule) {
                const char *pat = json_string_value(json_object_get(rule, "event"));
                if (!pat || !rt_event_name_matches(pat, fresh[i]->name))
                    continue;
                if (!async_condition(json_string_value(json_object_get(rule, "if")), json_object_get(run, "event"),
                                     fresh[i], "cancel_on"))
                    continue;
                bool may = true;
                if ((s = may_cancel(st, wf, fresh[i], run, &may, err)) != RT_OK || !may)
                    break;
                char msg[512];
                snprintf(msg, sizeof msg, "cancelled by event %s (%s) matching cancel_on", fresh[i]->name,
                         fresh[i]->id);
                json_array_append_new(cancel, json_pack("{s:O, s:s}", "id", json_object_get(run, "id"), "error", msg));
                rt_log_ctx lc = {.workflow = wf->id, .run_id = json_string_value(json_object_get(run, "id"))};
                rt_log(RT_LOG_INFO, &lc, "%s", msg);
                done = true;
                break;
            }
        }
    }
    if (s == RT_OK)
        s = rt_store_cancel_runs(st, cancel, err);
    json_decref(cancel);
    json_decref(active);
    json_decref(wf_ids);
    return s;
}

void rt_ingest_results_clear(rt_ingest_result *results, size_t n)
{
    for (size_t i = 0; results && i < n; i++) {
        json_decref(results[i].run_ids);
        results[i].run_ids = NULL;
    }
}

static rt_status ingest(const rt_workflow_set *set, rt_store *st, rt_event *const *events, size_t n,
                        const char *transport, rt_ingest_result *results, bool own_tx, rt_error *err);

/* Writer-preferring: an engine that stops must not wait behind an endless run of batches. */
static pthread_rwlock_t runner_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
static rt_ingest_runner_fn runner_fn;
static rt_ingest_after_fn runner_after;
static void *runner_arg;

void rt_ingest_set_runner(rt_ingest_runner_fn fn, rt_ingest_after_fn after, void *arg)
{
    pthread_rwlock_wrlock(&runner_lock);
    runner_fn = fn;
    runner_after = after;
    runner_arg = arg;
    pthread_rwlock_unlock(&runner_lock);
}

void rt_ingest_unset_runner(void *arg)
{
    pthread_rwlock_wrlock(&runner_lock);
    if (runner_arg == arg) {
        runner_fn = NULL;
        runner_after = NULL;
        runner_arg = NULL;
    }
    pthread_rwlock_unlock(&runner_lock);
}

static bool has_runner(void)
{
    pthread_rwlock_rdlock(&runner_lock);
    bool has = runner_fn != NULL;
    pthread_rwlock_unlock(&runner_lock);
    return has;
}

/* What a runner left for after the commit (rt_ingest_after_fn). */
typedef struct runner_after_call {
    rt_ingest_after_fn fn;
    void *after;
} runner_after_call;

/* Runs the created runs' quick first steps in this transaction (rt_ingest_set_runner), then,
 * if they were created without a wake (deferred), wakes the workers when anything of those
 * runs is left in the queue. */
static rt_status run_first_steps(rt_store *st, const rt_run_request *reqs, size_t n, bool deferred,
                                 runner_after_call *then, rt_error *err)
{
    const char **ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    size_t n_ids = 0;
    for (size_t i = 0; i < n; i++) {
        if (reqs[i].id[0])
            ids[n_ids++] = reqs[i].id;
    }
    rt_status s = RT_OK;
    bool ran = false, left = false;
    pthread_rwlock_rdlock(&runner_lock);
    if (runner_fn && n_ids > 0) {
        s = runner_fn(runner_arg, st, ids, n_ids, &then->after, &left, err);
        then->fn = runner_after;
        ran = true;
    }
    pthread_rwlock_unlock(&runner_lock);
    /* One for what the runner left, or for everything when the runner went away after the
     * runs were created (the engine is stopping). */
    if (s == RT_OK && deferred && n_ids > 0 && (left || !ran))
        s = rt_store_wake(st, err);
    free(ids);
    return s;
}

rt_status rt_ingest_events(const rt_workflow_set *set, rt_store *st, rt_event *const *events, size_t n,
                           const char *transport, rt_ingest_result *results, rt_error *err)
{
    return ingest(set, st, events, n, transport, results, true, err);
}

rt_status rt_ingest_events_tx(const rt_workflow_set *set, rt_store *st, rt_event *const *events, size_t n,
                              const char *transport, rt_error *err)
{
    return ingest(set, st, events, n, transport, NULL, false, err);
}

/* How a batch's transaction goes: its own (with or without the first steps), or the caller's. */
typedef enum { TX_CALLER, TX_OWN, TX_OWN_FIRST_STEPS } tx_mode;

static rt_status ingest_in(const rt_workflow_set *set, rt_store *st, rt_event *const *events, size_t n,
                           const char *transport, rt_ingest_result *results, tx_mode mode, bool *runner_failed,
                           rt_error *err);

/* set may be a live handle (workflow_live.h): the batch works on one snapshot of it. */
static rt_status ingest(const rt_workflow_set *set, rt_store *st, rt_event *const *events, size_t n,
                        const char *transport, rt_ingest_result *results, bool own_tx, rt_error *err)
{
    const rt_workflow_set *snap = rt_workflow_set_acquire(set);
    bool runner_failed = false;
    rt_status s = ingest_in(snap, st, events, n, transport, results, own_tx ? TX_OWN_FIRST_STEPS : TX_CALLER,
                            &runner_failed, err);
    if (s != RT_OK && runner_failed) {
        /* The batch is stored again without its first steps: those wait for a worker,
         * which reports whatever failed there as that step's error. */
        rt_log(RT_LOG_WARN, NULL, "running first steps at ingest failed, the runs go to the workers: %s", err->msg);
        rt_metrics_counter_add("ratchet_ingest_first_steps_failed_total", 1);
        s = ingest_in(snap, st, events, n, transport, results, TX_OWN, &runner_failed, err);
    }
    rt_workflow_set_release(snap);
    return s;
}

/* A batch's run requests: one per fresh event and workflow it triggers. */
typedef struct req_list {
    rt_run_request *reqs;
    json_t **trigger; /* owned: each request's trigger (it holds the dedupe key's text) */
    size_t *event;    /* the index of the request's event in the batch */
    size_t n, cap;
} req_list;

static void add_request(req_list *l, const rt_workflow_set *set, const rt_workflow *wf, rt_event *ev, size_t i,
                        const char *transport)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->reqs = realloc(l->reqs, l->cap * sizeof *l->reqs);
        l->trigger = realloc(l->trigger, l->cap * sizeof *l->trigger);
        l->event = realloc(l->event, l->cap * sizeof *l->event);
    }
    char key[256];
    snprintf(key, sizeof key, "event:%s", ev->id);
    json_t *trigger = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "event", "event_id", ev->id, "event", ev->name,
                                "transport", transport, "dedupe_key", key);
    l->trigger[l->n] = trigger;
    l->event[l->n] = i;
    /* The dedupe key's text lives in the trigger, which outlives the run creation. */
    l->reqs[l->n] = (rt_run_request){.wf = wf, .trigger = trigger, .event = ev->envelope, .set = set,
                                     .dedupe_key = json_string_value(json_object_get(trigger, "dedupe_key"))};
    l->n++;
}

static void req_list_free(req_list *l)
{
    for (size_t r = 0; r < l->n; r++)
        json_decref(l->trigger[r]);
    free(l->reqs);
    free(l->trigger);
    free(l->event);
}

/* is_fresh[i]: event i was stored now (its id not seen before), and is the first of its
 * id in the batch. A hash of the inserted ids, not a scan per event: batches hold hundreds. */
static void mark_fresh(rt_event *const *events, size_t n, json_t *inserted, bool *is_fresh)
{
    json_t *ids = json_object();
    size_t k;
    json_t *id;
    json_array_foreach(inserted, k, id) json_object_set_new(ids, json_string_value(id), json_true());
    for (size_t i = 0; i < n; i++) {
        is_fresh[i] = json_object_get(ids, events[i]->id) != NULL;
        if (is_fresh[i])
            json_object_del(ids, events[i]->id); /* a second occurrence is not fresh */
    }
    json_decref(ids);
}

/* Waiting steps, cancel_on and approval decisions see every fresh event of the batch. */
static rt_status react_to_fresh(const rt_workflow_set *set, rt_store *st, rt_event *const *events, size_t n,
                                const bool *is_fresh, rt_error *err)
{
    rt_event **fresh = calloc(n ? n : 1, sizeof *fresh);
    if (!fresh)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    size_t n_fresh = 0;
    json_t *names = json_array(), *seen = json_object();
    for (size_t i = 0; i < n; i++) {
        if (!is_fresh[i])
            continue;
        fresh[n_fresh++] = events[i];
        if (!json_object_get(seen, events[i]->name)) {
            json_object_set_new(seen, events[i]->name, json_true());
            json_array_append_new(names, json_string(events[i]->name));
        }
    }
    rt_status s = RT_OK;
    if (n_fresh > 0)
        s = wake_waiters(set, st, fresh, n_fresh, names, err);
    if (s == RT_OK && n_fresh > 0)
        s = apply_cancel_on(set, st, fresh, n_fresh, err);
    const rt_run_gate *gate = rt_run_gate_get();
    if (s == RT_OK && n_fresh > 0 && gate && gate->decisions) /* ratchet.approval.decided */
        s = gate->decisions(st, set, fresh, n_fresh, err);
    free(fresh);
    json_decref(seen);
    json_decref(names);
    return s;
}

static void count_ingested(rt_event *const *events, size_t n, const bool *is_fresh, const char *transport)
{
    size_t fresh_n = 0;
    int64_t now = rt_now_ms();
    for (size_t i = 0; i < n; i++) {
        if (!is_fresh[i])
            continue;
        fresh_n++;
        rt_metrics_histogram_observe("ratchet_event_ingest_lag_seconds", "transport", transport,
                                     (double)(now - events[i]->ts_ms) / 1000.0);
    }
    rt_metrics_counter_add("ratchet_events_ingested_total", "transport", transport, (uint64_t)fresh_n);
}

static rt_status ingest_in(const rt_workflow_set *set, rt_store *st, rt_event *const *events, size_t n,
                           const char *transport, rt_ingest_result *results, tx_mode mode, bool *runner_failed,
                           rt_error *err)
{
    bool own_tx = mode != TX_CALLER;
    json_t *rows = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(rows, json_pack("{s:s, s:s, s:I, s:O, s:s}", "id", events[i]->id, "name",
                                              events[i]->name, "ts", (json_int_t)events[i]->ts_ms, "envelope",
                                              events[i]->envelope, "transport", transport));
        if (results) {
            results[i].duplicate = true;
            results[i].run_ids = json_array();
        }
    }
    json_t *inserted = NULL;
    req_list l = {0};
    runner_after_call then = {0};
    bool *is_fresh = calloc(n ? n : 1, sizeof *is_fresh);
    rt_status s = own_tx ? rt_store_begin(st, err) : RT_OK;
    if (s == RT_OK)
        s = rt_store_insert_events(st, rows, &inserted, err);
    if (s == RT_OK)
        mark_fresh(events, n, inserted, is_fresh);
    for (size_t i = 0; s == RT_OK && i < n; i++) {
        if (!is_fresh[i])
            continue;
        if (results)
            results[i].duplicate = false;
        for (size_t w = 0; set && w < set->n; w++) {
            if (rt_ingest_matches(set->items[w], events[i]))
                add_request(&l, set, set->items[w], events[i], i, transport);
        }
    }
    if (s == RT_OK)
        s = react_to_fresh(set, st, events, n, is_fresh, err);
    /* With a runner, the runs are created without a wake: run_first_steps sends one for
     * what it leaves (and for everything if the runner is gone by then). */
    bool deferred = mode == TX_OWN_FIRST_STEPS && has_runner();
    if (s == RT_OK && l.n > 0) {
        bool was = rt_store_defer_wake(st, deferred);
        s = rt_run_create_tx(st, l.reqs, l.n, err);
        rt_store_defer_wake(st, was);
    }
    if (s == RT_OK && l.n > 0 && mode == TX_OWN_FIRST_STEPS) {
        s = run_first_steps(st, l.reqs, l.n, deferred, &then, err);
        *runner_failed = s != RT_OK;
    }
    for (size_t r = 0; s == RT_OK && results && r < l.n; r++) {
        if (l.reqs[r].id[0]) /* the run row names its event (runs.event_id) */
            json_array_append_new(results[l.event[r]].run_ids, json_string(l.reqs[r].id));
    }
    if (s == RT_OK && own_tx)
        s = rt_store_commit(st, err);
    if (s == RT_OK)
        count_ingested(events, n, is_fresh, transport);
    if (s != RT_OK) {
        if (own_tx)
            rt_store_rollback(st);
        for (size_t i = 0; results && i < n; i++)
            json_array_clear(results[i].run_ids);
    }
    if (then.fn)
        then.fn(then.after, s == RT_OK);
    req_list_free(&l);
    free(is_fresh);
    json_decref(inserted);
    json_decref(rows);
    return s;
}

/* on_failure of a run that ended badly: {"event": NAME} stores (and triggers on) an event
 * {run_id, workflow, status, error}; {"workflow": ID} starts that workflow with it. Both
 * in this transaction, at most once per run (their ids derive from the run's). */
rt_status rt_ingest_on_failure(const rt_workflow_set *set, rt_store *st, const json_t *rule, const char *workflow_id,
                               const char *run_id, const char *status, const char *error, rt_error *err)
{
    if (!rule)
        return RT_OK;
    json_t *data = json_pack("{s:s, s:s, s:s, s:s?}", "run_id", run_id, "workflow", workflow_id, "status", status,
                             "error", error);
    char id[128];
    const char *name = json_string_value(json_object_get(rule, "event"));
    const char *target = json_string_value(json_object_get(rule, "workflow"));
    rt_status s = rt_store_engine_event_id(st, id, sizeof id, err, "on_failure:%s", run_id);
    /* The failed run's actor and entity carry over (DESIGN §6): a failure of an agent's run
     * starts nothing an agent could not start. */
    json_t *run_event = NULL;
    if (s == RT_OK)
        s = rt_store_run_event(st, run_id, &run_event, err);
    if (s == RT_ERR_NOT_FOUND)
        s = RT_OK;
    json_t *actor = json_object_get(run_event, "actor");
    const char *tname = json_string_value(json_object_get(actor, "type"));
    rt_actor_type type = RT_ACTOR_SYSTEM;
    rt_error terr;
    if (tname && rt_actor_type_parse(tname, &type, &terr) != RT_OK)
        type = RT_ACTOR_SERVICE;
    const char *actor_id = tname ? json_string_value(json_object_get(actor, "id")) : "ratchet";
    rt_event *ev = NULL;
    if (s == RT_OK)
        s = rt_event_new(name ? name : "ratchet.run.failed", data, type, actor_id,
                         json_string_value(json_object_get(run_event, "entity_id")), id, &ev, err);
    if (s == RT_OK && name)
        s = rt_ingest_events_tx(set, st, &ev, 1, "engine", err);
    if (s == RT_OK && target) {
        const rt_workflow *wf = set ? rt_workflow_set_find(set, target) : NULL;
        if (!wf) {
            rt_log(RT_LOG_WARN, NULL, "on_failure of run %s: workflow %s is not loaded", run_id, target);
        } else {
            json_t *trigger = json_pack("{s:s, s:s, s:s}", "type", "event", "event_id", id, "event", ev->name);
            rt_run_request req = {.wf = wf, .trigger = trigger, .event = ev->envelope, .dedupe_key = id, .set = set};
            s = rt_run_create_tx(st, &req, 1, err);
            json_decref(trigger);
        }
    }
    rt_event_free(ev);
    json_decref(run_event);
    json_decref(data);
    return s;
}
