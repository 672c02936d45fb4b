/* executor.c — workers claim due queue items in batches, run each step, carry a run
 * through ready quick steps (transform, log, sleep) without going back to the database,
 * and commit the results of the whole batch in one transaction that also makes the
 * successors runnable. A completed step is never run again: its row is final. */
#include "executor.h"
#include "workflow_live.h"
#include "create.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gate.h"
#include "event.h"
#include "expr.h"
#include "ingest.h"
#include "log.h"
#include "refusal.h"
#include "metrics.h"
#include "run_trace.h"
#include "outcome.h"
#include "progress.h"
#include "step.h"
#include "store.h"
#include "store_runctl.h"
#include "util.h"
#include "workflow.h"

#define NEVER_MS (INT64_C(100) * 365 * 86400000) /* "wake only when woken": 100 years on */
#define MAX_HELD 1024

typedef struct worker {
    struct rt_engine *e;
    int index;
    pthread_t thread;
    char owner[160];
    rt_store *store;
    volatile sig_atomic_t cancelled;
    pthread_mutex_t held_mu; /* guards held/n_held/held_gen/lease_*, shared with the lease keeper */
    int64_t held[MAX_HELD];
    size_t n_held;
    uint64_t held_gen;       /* changes with every claim and release: the keeper's snapshot
                              * of held[] may only cancel the claim it was taken from */
    int64_t lease_deadline;  /* rt_mono_ms() after which the held lease may be another's */
    bool lease_lost;         /* past the deadline, or handed on: sticky until the next claim */
    bool finishing;          /* the claim's steps ran and are being committed: a renewal that
                              * finds the item gone saw that commit, not a lost lease */
    /* Statistics, written by this worker only and read after it stopped (steps_run also
     * while it runs: rt_engine_steps_run). */
    _Atomic uint64_t steps_run;
    uint64_t claims;
    uint32_t *claim_us; /* ring of the last CLAIM_SAMPLES claim latencies, first claims left out */
    uint64_t warm_claims; /* samples put in claim_us */
    uint32_t first_claim_us; /* the slowest first claim of a connection (cold: see process_quick) */
    uint64_t warm_session; /* rt_store_session of the connection that made a claim already */
    int quick_limit;    /* the next quick claim's size (next_quick_limit) */
    bool at_ingest;     /* a worker of the moment inside an ingest transaction (run_at_ingest) */
    json_t *fresh_steps; /* at ingest: the claimed runs' step rows, read with the claim (or NULL) */
} worker;

#define CLAIM_SAMPLES 65536
#define QUICK_GROWTH 16  /* a quick claim grows up to this many times RATCHET_CLAIM_BATCH */
#define QUICK_MAX 1000  /* ... and never past this */

struct rt_engine {
    const rt_config *cfg;
    rt_step_env env;
    char owner_prefix[128];
    int n_workers;
    worker *workers;
    pthread_t waker, keeper, sweeper;
    bool started;

    volatile sig_atomic_t stopping; /* stop claiming */
    volatile sig_atomic_t debug_paused; /* RATCHET_DEBUG_PAUSE_AFTER_CLAIM did its one pause */
    volatile sig_atomic_t force;    /* grace period over: cancel what runs */

    pthread_mutex_t mu; /* guards wake_seq, live_workers and the two conditions */
    pthread_cond_t wake;
    pthread_cond_t idle;
    uint64_t wake_seq;
    int live_workers;

    const rt_workflow_set *set; /* the loaded workflows (invoke, on_failure), borrowed */
    rt_progress *progress;      /* steps' latest progress, written behind them (progress.h) */

    atomic_int quick_busy; /* workers in process_quick, at most cfg->quick_workers */

    pthread_mutex_t cache_mu; /* guards the pinned-definition cache */
    rt_workflow **cache;
    size_t n_cache, cap_cache;
};

/* ---------- pinned definitions ---------- */

static rt_status definition_get(rt_engine *e, rt_store *st, const char *hash, const rt_workflow **out,
                                rt_error *err)
{
    pthread_mutex_lock(&e->cache_mu);
    for (size_t i = 0; i < e->n_cache; i++) {
        if (strcmp(e->cache[i]->hash, hash) == 0) {
            *out = e->cache[i];
            pthread_mutex_unlock(&e->cache_mu);
            return RT_OK;
        }
    }
    pthread_mutex_unlock(&e->cache_mu);

    json_t *def = NULL;
    rt_status s = rt_store_get_definition(st, hash, &def, err);
    if (s != RT_OK)
        return s;
    rt_workflow *wf = NULL;
    s = rt_workflow_from_json(def, NULL, &wf, err);
    json_decref(def);
    if (s != RT_OK)
        return rt_error_prefix(err, "pinned definition %.12s", hash);
    /* The stored text is canonical, so its hash is the one the run pinned. */
    snprintf(wf->hash, sizeof wf->hash, "%s", hash);

    pthread_mutex_lock(&e->cache_mu);
    for (size_t i = 0; i < e->n_cache; i++) {
        if (strcmp(e->cache[i]->hash, hash) == 0) { /* another worker was faster */
            rt_workflow_free(wf);
            *out = e->cache[i];
            pthread_mutex_unlock(&e->cache_mu);
            return RT_OK;
        }
    }
    if (e->n_cache == e->cap_cache) {
        size_t cap = e->cap_cache ? e->cap_cache * 2 : 16;
        rt_workflow **grown = realloc(e->cache, cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&e->cache_mu);
            rt_workflow_free(wf);
            return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
        }
        e->cache = grown;
        e->cap_cache = cap;
    }
    e->cache[e->n_cache++] = wf;
    *out = wf;
    pthread_mutex_unlock(&e->cache_mu);
    return RT_OK;
}

/* ---------- one run's view during a batch ---------- */

typedef struct run_view {
    char run_id[37];
    const rt_workflow *wf;
    json_t *event;   /* borrowed from the claim */
    json_t *trigger; /* borrowed from the claim */
    char *run_status;
    int64_t run_started_ms;
    int64_t run_created_ms;
    const char *ckey;       /* borrowed from the claim: concurrency key, or NULL */
    int climit;
    const char *parent_run_id; /* borrowed from the claim: invoke parent, or NULL */
    const char *parent_step_id;
    json_t *steps;   /* owned: {step_id: {status, output}} as known to this worker */
    json_t *rows;    /* owned: step rows to upsert (read back by waits, invokes, the gate) */
    rt_store_batch part; /* owned: this run's queue writes and failed attempts */
    json_t *emits;   /* owned: event envelopes steps handed over (publish without a broker) */
    int64_t *queue_ids; /* claims of this run in this batch */
    size_t n_queue_ids;
    bool touched;    /* executed something: must be committed */
} run_view;

static bool is_terminal_run(const char *status)
{
    rt_run_status s;
    return rt_run_status_parse(status, &s) && rt_run_status_final(s);
}

static const char *step_status(json_t *steps, const char *id)
{
    return json_string_value(json_object_get(json_object_get(steps, id), "status"));
}

/* A need is met when the step completed, was skipped, or failed with continue_on_error. */
static bool need_met(const rt_workflow *wf, json_t *steps, size_t idx)
{
    const char *s = step_status(steps, wf->steps[idx].id);
    if (!s)
        return false;
    if (!strcmp(s, "completed") || !strcmp(s, "skipped"))
        return true;
    return !strcmp(s, "failed") && wf->steps[idx].continue_on_error;
}

static bool needs_met(const rt_workflow *wf, json_t *steps, size_t idx)
{
    const rt_step_def *d = &wf->steps[idx];
    for (size_t k = 0; k < d->n_needs; k++)
        if (!need_met(wf, steps, d->need_idx[k]))
            return false;
    return true;
}

/* The outcome module's view of step i (outcome.h); a word the enum does not know counts as
 * a running step: not done, neither asleep nor waiting. */
static void step_state_of(const rt_workflow *wf, json_t *steps, size_t i, rt_step_state *out)
{
    const char *s = step_status(steps, wf->steps[i].id);
    out->scheduled = s != NULL;
    if (!s || !rt_step_status_parse(s, &out->status))
        out->status = RT_STEP_RUNNING;
    out->continue_on_error = wf->steps[i].continue_on_error;
    out->needs_met = needs_met(wf, steps, i);
}

static void set_step(run_view *v, const char *id, const char *status, json_t *output /* borrowed */)
{
    json_object_set_new(v->steps, id, json_pack("{s:s, s:O?}", "status", status, "output", output));
}

static json_t *build_context(run_view *v, const rt_step_def *d, int attempt, int64_t fence)
{
    char started[40], key[200];
    rt_time_format(v->run_started_ms ? v->run_started_ms : rt_now_ms(), started, sizeof started);
    snprintf(key, sizeof key, "%s:%s", v->run_id, d->id);
    json_t *actor = json_object_get(v->event, "actor");
    json_t *run = json_pack("{s:s, s:s, s:i, s:s, s:O?, s:s, s:I}", "id", v->run_id, "workflow", v->wf->id,
                            "attempt", attempt, "started_at", started, "actor", actor, "step_key", key, "fence",
                            (json_int_t)fence);
    if (!json_object_get(run, "actor") || json_is_null(json_object_get(run, "actor")))
        json_object_set_new(run, "actor", json_pack("{s:s}", "type", "service"));
    /* steps and event are shared with the view: json_pack "O" increfs them. */
    json_t *ctx = json_pack("{s:O, s:O, s:o}", "event", v->event, "steps", v->steps, "run", run);
    const char *type = json_string_value(json_object_get(v->trigger, "type"));
    if (type && !strcmp(type, "cron"))
        json_object_set(ctx, "schedule", json_object_get(v->trigger, "schedule"));
    /* batch_events: the envelopes admission collected (admission.h); a run of such a
     * workflow that was not batched (manual, cron) sees its one event. */
    json_t *events = json_object_get(v->trigger, "events");
    if (json_is_array(events))
        json_object_set(ctx, "events", events);
    else if (v->wf->batch_events)
        json_object_set_new(ctx, "events", json_pack("[O]", v->event ? v->event : json_null()));
    return ctx;
}

static int64_t backoff_ms(const rt_retry_policy *p, int failed_attempts)
{
    double d = (double)p->delay_ms;
    switch (p->backoff) {
    case RT_BACKOFF_FIXED: break;
    case RT_BACKOFF_LINEAR: d *= failed_attempts; break;
    case RT_BACKOFF_EXPONENTIAL: d *= pow(2.0, failed_attempts - 1); break;
    }
    if (p->max_delay_ms > 0 && d > (double)p->max_delay_ms)
        d = (double)p->max_delay_ms;
    if (p->jitter) {
        unsigned char r;
        rt_random_bytes(&r, 1);
        d *= 0.5 + (double)r / 510.0; /* between half and the full delay */
    }
    return d > 9e15 ? INT64_C(9000000000000000) : (int64_t)d;
}

/* A bare expression, or a string holding "${{ }}" templates. *out is a new reference. */
static rt_status eval_value(const char *src, json_t *ctx, json_t **out, rt_error *err)
{
    if (!rt_template_present(src))
        return rt_expr_eval(src, ctx, out, err);
    json_t *tmpl = json_string(src);
    rt_status s = rt_template_render(tmpl, ctx, out, err);
    json_decref(tmpl);
    return s;
}

typedef struct exec_out {
    rt_step_result res;
    bool skipped;
    bool given_up; /* the lease ran out before the step (or an item) started: nothing ran */
} exec_out;

/* ---------- the lease, as this process sees it ---------- */

/* A lease is treated as gone this long before its end: room for the gap between the
 * check and the side effect's start, and for this clock running slower than the
 * database's. */
static int64_t lease_deadline(const rt_engine *e, int64_t sent_mono_ms)
{
    return sent_mono_ms + e->cfg->lease_ms - e->cfg->lease_ms / 5;
}

/* Whether the worker may still start a side effect of the step it holds. The deadline is
 * measured on the monotonic clock from before the claim (or renewal) that set it, so a
 * process paused past its lease (SIGSTOP, a stalled VM, swap) knows it on waking, before
 * it repeats a step another worker took over. A "no" is sticky for the claim. */
static bool lease_live(worker *w)
{
    pthread_mutex_lock(&w->held_mu);
    if (!w->lease_lost && rt_mono_ms() >= w->lease_deadline)
        w->lease_lost = true;
    bool live = !w->lease_lost;
    pthread_mutex_unlock(&w->held_mu);
    return live;
}

/* Runs the step once with ctx (for a for_each item: ctx holds item and index), its own
 * timeout counted from now. Returns false, having started nothing, when a slow step's
 * lease ran out before it could start (res is then a retriable failure nobody should
 * record: the step belongs to whoever holds the lease now). */
static bool run_once(worker *w, run_view *v, const rt_step_def *d, int attempt, int64_t fence, json_t *state,
                     json_t *ctx, const char *key, rt_step_result *res)
{
    rt_error err;
    json_t *with = NULL;
    if (rt_template_render(d->with, ctx, &with, &err) != RT_OK) {
        rt_step_fail(res, false, "with: %s", err.msg);
        rt_metrics_counter_add("ratchet_bad_input_total", "kind", "expression", 1);
        return true;
    }
    /* The last moment before the side effect: quick steps run inside the claim's
     * transaction and hold no lease. */
    if (!d->type->quick && !lease_live(w)) {
        json_decref(with);
        rt_step_fail(res, true, "the lease ran out before the step started");
        return false;
    }
    /* what a step that calls out hands on (quick steps stay in the process) */
    char traceparent[RT_TRACEPARENT_LEN + 1];
    if (!d->type->quick)
        rt_run_trace_step_parent(v->run_id, v->event, d->id, attempt, traceparent);
    rt_step_ctx sctx = {
        .traceparent = d->type->quick ? NULL : traceparent,
        .env = &w->e->env,
        .workflow_id = v->wf->id,
        .run_id = v->run_id,
        .step_id = d->id,
        .step_key = key,
        .attempt = attempt,
        .fence = fence,
        .deadline_mono_ms = d->timeout_ms ? rt_mono_ms() + d->timeout_ms : 0,
        .context = ctx,
        .state = state,
        .cancelled = &w->cancelled,
        .raw_with = d->with,
        .progress = rt_progress_report,
        .progress_arg = w->e->progress,
    };
    d->type->execute(&sctx, with, res);
    json_decref(with);
    return true;
}

/* ---------- for_each ---------- */

#define FOR_EACH_DEFAULT_CONCURRENCY 4
#define FOR_EACH_MAX_THREADS 16

/* An item's phase: TODO → RUNNING (a thread has it) → ENDED (its result waits for the
 * coordinator) → DONE (succeeded; memoized when the step is slow) or FAILED. */
enum { ITEM_TODO, ITEM_RUNNING, ITEM_ENDED, ITEM_DONE, ITEM_FAILED };

/* One for_each execution: the items, what is known of each, and the threads running them.
 * A slow step's items run in parallel (up to for_each_concurrency) and each success is
 * memoized in step_items as soon as it ends, while the lease is ours; a quick step's items
 * run one after another inside the claim's transaction, which makes them atomic. */
typedef struct fe_job {
    worker *w;
    run_view *v;
    const rt_step_def *d;
    int attempt;
    int64_t fence;
    json_t *base_ctx; /* read-only while threads run */
    json_t *items;
    size_t n;
    bool persist;            /* a slow step's items: run by threads, memoized */
    unsigned char *phase;    /* ITEM_* per item, under mu */
    json_t **outputs;        /* owned, per DONE item */
    rt_step_result *results; /* per item that ran */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t next;    /* the next item to consider */
    size_t running; /* threads still running */
    bool stop;      /* hand out no more items */
    bool given_up;  /* the lease ran out before an item started: the step is given up */
} fe_job;

/* Returns false when the item did not start (run_once). */
static bool fe_run_item(fe_job *j, size_t i, rt_step_result *res)
{
    json_t *ctx = json_copy(j->base_ctx); /* shallow: item and index are this item's own */
    json_object_set(ctx, "item", json_array_get(j->items, i));
    json_object_set_new(ctx, "index", json_integer((json_int_t)i));
    char key[240];
    snprintf(key, sizeof key, "%s:%s#%zu", j->v->run_id, j->d->id, i);
    bool started = run_once(j->w, j->v, j->d, j->attempt, j->fence, NULL, ctx, key, res);
    json_decref(ctx);
    if (!started)
        return false;
    if (res->outcome == RT_STEP_SUSPEND) {
        rt_step_result_clear(res);
        rt_step_fail(res, false, "step type %s cannot suspend inside for_each", j->d->type->name);
    } else if (res->emit) {
        /* an item's event would have to be memoized with the item: not supported */
        rt_step_result_clear(res);
        rt_step_fail(res, false, "%s inside for_each needs a broker (no broker is configured)", j->d->type->name);
    }
    return true;
}

/* Hands out the next item to run, or returns false. With j->mu held. */
static bool fe_next(fe_job *j, size_t *i)
{
    if (j->persist && (j->w->cancelled || j->w->e->force))
        j->stop = true; /* checked here too: a thread hands itself the next item */
    while (!j->stop && j->next < j->n) {
        size_t k = j->next++;
        if (j->phase[k] == ITEM_TODO && j->persist && !lease_live(j->w)) {
            j->stop = j->given_up = true; /* no item starts on a lease that ran out */
            break;
        }
        if (j->phase[k] == ITEM_TODO) {
            j->phase[k] = ITEM_RUNNING;
            *i = k;
            return true;
        }
    }
    return false;
}

/* Runs item i and leaves its result for the coordinator. With j->mu held (released while
 * the item runs). */
static void fe_run_locked(fe_job *j, size_t i)
{
    pthread_mutex_unlock(&j->mu);
    rt_step_result res = {0};
    bool started = fe_run_item(j, i, &res);
    pthread_mutex_lock(&j->mu);
    if (!started)
        j->stop = j->given_up = true;
    j->results[i] = res;
    j->phase[i] = ITEM_ENDED;
    pthread_cond_signal(&j->cv);
}

static void *fe_thread(void *arg)
{
    fe_job *j = arg;
    pthread_mutex_lock(&j->mu);
    size_t i;
    while (fe_next(j, &i))
        fe_run_locked(j, i);
    j->running--;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* The coordinator's part for an item that ended: memoize a success (slow steps), and
 * stop handing out items when the step fails anyway or the lease is lost. With j->mu
 * held (released around the database). */
static void fe_take(fe_job *j, size_t i, int64_t queue_id, bool persist)
{
    rt_step_result *r = &j->results[i];
    if (r->outcome != RT_STEP_OK) {
        j->phase[i] = ITEM_FAILED;
        if (!r->retriable && !j->d->continue_on_error)
            j->stop = true; /* the step fails whatever the other items do */
        return;
    }
    j->outputs[i] = r->output ? r->output : json_null();
    r->output = NULL;
    j->phase[i] = ITEM_DONE;
    if (!persist)
        return;
    pthread_mutex_unlock(&j->mu);
    bool held = true;
    rt_error err;
    rt_status s = rt_store_item_save(j->w->store, queue_id, j->w->owner, j->v->run_id, j->d->id, (int)i,
                                     json_array_get(j->items, i), j->outputs[i], &held, &err);
    if (s != RT_OK) {
        rt_log_ctx lc = {.workflow = j->v->wf->id, .run_id = j->v->run_id, .step_id = j->d->id};
        rt_log(RT_LOG_WARN, &lc, "for_each item %zu: not memoized (%s); its result still counts", i, err.msg);
    }
    pthread_mutex_lock(&j->mu);
    if (!held)
        j->stop = true; /* the lease is lost: the step belongs to another worker now */
}

/* Folds the items into one result: the array of outputs, or a failure naming the first
 * failed item (retriable only if every failure was). With continue_on_error a failed step
 * keeps the outputs it has, null for the failed items. */
static void fe_fold(fe_job *j, rt_step_result *res)
{
    size_t n = j->n, failed = 0, done = 0, first = n;
    bool cancelled = j->persist && j->w->cancelled;
    bool retriable = !cancelled;
    int64_t retry_after = 0;
    json_t *failures = json_array();
    for (size_t i = 0; i < n; i++) {
        if (j->phase[i] == ITEM_DONE)
            done++;
        if (j->phase[i] != ITEM_FAILED)
            continue;
        rt_step_result *r = &j->results[i];
        failed++;
        retriable = retriable && r->retriable;
        if (r->retry_after_ms > retry_after)
            retry_after = r->retry_after_ms;
        if (first == n)
            first = i;
        if (json_array_size(failures) < 100)
            json_array_append_new(failures, json_pack("{s:I, s:s, s:O?}", "index", (json_int_t)i, "error", r->error,
                                                      "detail", r->error_detail));
    }
    if (done == n) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
            json_array_append_new(arr, j->outputs[i]);
            j->outputs[i] = NULL;
        }
        res->outcome = RT_STEP_OK;
        res->output = arr;
    } else if (failed == 0) {
        /* stopped before every item ran, without a failure: cancelled, lease lost, shutdown */
        rt_step_fail(res, retriable, "for_each: stopped after %zu of %zu item(s)%s", done, n,
                     cancelled ? " (run cancelled)" : "");
    } else {
        char more[64] = "";
        if (failed > 1)
            snprintf(more, sizeof more, " (%zu of %zu items failed)", failed, n);
        rt_step_fail(res, retriable, "item %zu: %s%s", first, j->results[first].error, more);
        res->retry_after_ms = retry_after;
        res->error_detail = json_pack("{s:I, s:I, s:I, s:O}", "items", (json_int_t)n, "completed", (json_int_t)done,
                                      "failed", (json_int_t)failed, "failures", failures);
        if (j->d->continue_on_error) {
            json_t *arr = json_array();
            for (size_t i = 0; i < n; i++)
                json_array_append(arr, j->phase[i] == ITEM_DONE ? j->outputs[i] : json_null());
            res->output = arr;
        }
    }
    json_decref(failures);
}

/* Loads the items memoized by earlier attempts (or a worker that died) as DONE. */
static rt_status fe_load(fe_job *j, rt_error *err)
{
    json_t *saved = NULL;
    rt_status s = rt_store_items_load(j->w->store, j->v->run_id, j->d->id, j->items, &saved, err);
    if (s != RT_OK)
        return s;
    size_t memoized = 0;
    const char *k;
    json_t *out;
    json_object_foreach(saved, k, out) {
        long i = strtol(k, NULL, 10);
        if (i >= 0 && (size_t)i < j->n && j->phase[i] != ITEM_DONE) {
            j->outputs[i] = json_incref(out);
            j->phase[i] = ITEM_DONE;
            memoized++;
        }
    }
    json_decref(saved);
    if (memoized) {
        rt_log_ctx lc = {.workflow = j->v->wf->id, .run_id = j->v->run_id, .step_id = j->d->id};
        rt_log(RT_LOG_INFO, &lc, "for_each: %zu of %zu item(s) memoized, running the rest", memoized, j->n);
    }
    return RT_OK;
}

/* Runs every item not memoized yet, then folds them into res. Returns false when the
 * lease ran out before an item started (the step is given up; items that ended stay
 * memoized for the next owner). */
static bool run_for_each(worker *w, run_view *v, const rt_step_def *d, int attempt, int64_t fence, json_t *ctx,
                         json_t *items, int64_t queue_id, rt_step_result *res)
{
    fe_job j = {.w = w, .v = v, .d = d, .attempt = attempt, .fence = fence, .base_ctx = ctx, .items = items,
                .n = json_array_size(items)};
    size_t n = j.n;
    j.phase = calloc(n ? n : 1, 1);
    j.outputs = calloc(n ? n : 1, sizeof *j.outputs);
    j.results = calloc(n ? n : 1, sizeof *j.results);
    pthread_mutex_init(&j.mu, NULL);
    pthread_cond_init(&j.cv, NULL);
    bool persist = !d->type->quick && queue_id >= 0;
    j.persist = persist;
    rt_error err;
    if (!j.phase || !j.outputs || !j.results) {
        rt_step_fail(res, true, "for_each: out of memory");
    } else if (persist && fe_load(&j, &err) != RT_OK) {
        rt_step_fail(res, true, "for_each: loading memoized items: %s", err.msg);
    } else {
        /* Threads for a slow step's items; a quick step's run here, one after another. */
        size_t todo = 0;
        for (size_t i = 0; i < n; i++)
            todo += j.phase[i] == ITEM_TODO;
        size_t want = d->for_each_concurrency > 0 ? (size_t)d->for_each_concurrency : FOR_EACH_DEFAULT_CONCURRENCY;
        if (want > FOR_EACH_MAX_THREADS)
            want = FOR_EACH_MAX_THREADS;
        if (!persist || want > todo)
            want = persist ? todo : 0;
        pthread_t threads[FOR_EACH_MAX_THREADS];
        size_t started = 0;
        pthread_mutex_lock(&j.mu);
        for (size_t t = 0; t < want; t++) {
            if (pthread_create(&threads[started], NULL, fe_thread, &j) == 0) {
                started++;
                j.running++;
            }
        }
        for (;;) {
            if (persist && (w->cancelled || w->e->force))
                j.stop = true; /* quick items run inside the claim: nothing to stop there */
            size_t ended = n;
            for (size_t i = 0; i < n && ended == n; i++)
                if (j.phase[i] == ITEM_ENDED)
                    ended = i;
            if (ended < n) {
                fe_take(&j, ended, queue_id, persist);
                continue;
            }
            size_t i;
            if (j.running == 0 && started == 0 && fe_next(&j, &i)) {
                fe_run_locked(&j, i); /* no threads (quick, or none to be had): here */
                continue;
            }
            if (j.running == 0)
                break;
            pthread_cond_wait(&j.cv, &j.mu);
        }
        pthread_mutex_unlock(&j.mu);
        for (size_t t = 0; t < started; t++)
            pthread_join(threads[t], NULL);
        fe_fold(&j, res);
    }
    for (size_t i = 0; i < n && j.outputs && j.results; i++) {
        json_decref(j.outputs[i]);
        rt_step_result_clear(&j.results[i]);
    }
    pthread_cond_destroy(&j.cv);
    pthread_mutex_destroy(&j.mu);
    free(j.phase);
    free(j.outputs);
    free(j.results);
    return !j.given_up;
}

/* Runs step idx once, or once per for_each item. Touches the database only to memoize a
 * slow step's for_each items (queue_id is its leased queue item; < 0 when inline). */
static void execute_step(worker *w, run_view *v, size_t idx, int attempt, int64_t fence, json_t *state,
                         int64_t queue_id, exec_out *out)
{
    const rt_step_def *d = &v->wf->steps[idx];
    memset(out, 0, sizeof *out);
    rt_step_result *res = &out->res;
    json_t *ctx = build_context(v, d, attempt, fence);
    rt_error err;

    if (d->if_expr) {
        bool go = false;
        if (rt_expr_condition(d->if_expr, ctx, &go, &err) != RT_OK) {
            rt_step_fail(res, false, "if: %s", err.msg);
            rt_metrics_counter_add("ratchet_bad_input_total", "kind", "expression", 1);
            json_decref(ctx);
            return;
        }
        if (!go) {
            out->skipped = true;
            res->outcome = RT_STEP_OK;
            json_decref(ctx);
            return;
        }
    }

    if (!d->for_each) {
        char key[200];
        snprintf(key, sizeof key, "%s:%s", v->run_id, d->id);
        out->given_up = !run_once(w, v, d, attempt, fence, state, ctx, key, res);
        json_decref(ctx);
        return;
    }
    json_t *items = NULL;
    if (eval_value(d->for_each, ctx, &items, &err) != RT_OK) {
        rt_step_fail(res, false, "for_each: %s", err.msg);
    } else if (!json_is_array(items)) {
        rt_step_fail(res, false, "for_each: expression gave a%s, not an array",
                     json_is_object(items) ? "n object" : json_is_string(items) ? " string" : " scalar");
    } else if (json_array_size(items) > (size_t)w->e->cfg->for_each_max_items) {
        /* An event must not fan one step out without bound (threads, rows, memory). */
        rt_step_fail(res, false, "for_each: the expression gave %zu items, more than RATCHET_FOR_EACH_MAX_ITEMS (%d)",
                     json_array_size(items), w->e->cfg->for_each_max_items);
    } else {
        out->given_up = !run_for_each(w, v, d, attempt, fence, ctx, items, queue_id, res);
    }
    json_decref(items);
    json_decref(ctx);
}

/* A new queue item for the step, due at run_at (0: now). */
static void enqueue_step(run_view *v, const rt_step_def *d, int64_t run_at)
{
    rt_batch_enqueue q = {.step_id = (char *)d->id, .priority = (int)v->wf->priority, .slow = !d->type->quick,
                          .run_at = run_at, .ckey = (char *)v->ckey, .climit = v->climit};
    memcpy(q.run_id, v->run_id, sizeof q.run_id);
    rt_store_batch_add_enqueue(&v->part, &q);
}

static void add_row(run_view *v, const char *step_id, const char *status, int attempts, json_t *output,
                    const char *error, json_t *detail, json_t *state, int64_t started, int64_t finished)
{
    json_array_append_new(v->rows,
                          json_pack("{s:s, s:s, s:s, s:i, s:O?, s:s?, s:O?, s:O?, s:I, s:I}", "run_id", v->run_id,
                                    "step_id", step_id, "status", status, "attempts", attempts, "output", output,
                                    "error", error, "error_detail", detail, "state", state, "started_at",
                                    (json_int_t)started, "finished_at", (json_int_t)finished));
}

/* The step comes due again at run_at: its claimed item handed back (queue_id >= 0), or a
 * new item (it ran inline). A suspension's item carries its step id, so that due_now can
 * find it when the batch makes the step due at once. */
static void requeue_or_enqueue(run_view *v, const rt_step_def *d, int64_t queue_id, int64_t run_at, bool findable)
{
    if (queue_id >= 0) {
        rt_batch_requeue rq = {.queue_id = queue_id, .run_at = run_at, .step_id = findable ? (char *)d->id : NULL};
        rt_store_batch_add_requeue(&v->part, &rq);
    } else {
        enqueue_step(v, d, run_at);
    }
}

/* Records what one execution produced. queue_id < 0: the step ran inline, it has no
 * queue item yet. Returns true when the step is done (its successors may run). */
static bool record_result(run_view *v, size_t idx, int64_t queue_id, int attempt, int64_t started, exec_out *o)
{
    const rt_step_def *d = &v->wf->steps[idx];
    rt_step_result *r = &o->res;
    int64_t now = rt_now_ms();
    rt_log_ctx lc = {.workflow = v->wf->id, .run_id = v->run_id, .step_id = d->id};
    v->touched = true;
    const char *outcome = o->skipped ? "skipped"
                          : r->outcome == RT_STEP_OK ? "completed"
                          : r->outcome == RT_STEP_SUSPEND ? "suspended"
                                                          : "failed";
    rt_metrics_counter_add("ratchet_steps_total", "type", d->type->name, "status", outcome, 1);
    if (!o->skipped)
        rt_metrics_histogram_observe("ratchet_step_duration_seconds", "type", d->type->name,
                                     (double)(now - started) / 1000.0);
    if (!o->skipped && r->outcome != RT_STEP_SUSPEND) /* a suspended step's span ends when it resumes */
        rt_run_trace_step_span(v->run_id, v->event, v->wf->id, d->id, d->type->name, attempt, outcome, r->error,
                               started, now);

    if (o->skipped) {
        add_row(v, d->id, "skipped", attempt, NULL, NULL, NULL, NULL, started, now);
        set_step(v, d->id, "skipped", NULL);
        if (queue_id >= 0)
            rt_store_batch_add_dequeue(&v->part, queue_id);
        return true;
    }
    switch (r->outcome) {
    case RT_STEP_OK:
        if (r->emit)
            json_array_append(v->emits, r->emit);
        rt_progress_count_records(v->wf->id, r->output);
        add_row(v, d->id, "completed", attempt, r->output, NULL, NULL, NULL, started, now);
        set_step(v, d->id, "completed", r->output);
        if (queue_id >= 0)
            rt_store_batch_add_dequeue(&v->part, queue_id);
        return true;
    case RT_STEP_SUSPEND: {
        const char *status = d->type->wait == RT_STEP_WAIT_TIMER ? "sleeping" : "waiting";
        int64_t at = r->resume_at_ms > 0 ? r->resume_at_ms : now + NEVER_MS;
        json_t *state = r->state ? json_incref(r->state) : json_object();
        add_row(v, d->id, status, attempt, NULL, NULL, NULL, state, started, 0);
        json_decref(state);
        set_step(v, d->id, status, NULL);
        requeue_or_enqueue(v, d, queue_id, at, true);
        return false;
    }
    case RT_STEP_FAIL: {
        const rt_retry_policy *p = d->has_retries ? &d->retries : &v->wf->retries;
        rt_batch_attempt fa = {.step_id = (char *)d->id, .attempt = attempt, .error = r->error,
                               .error_detail = r->error_detail, .started_at = started, .finished_at = now};
        memcpy(fa.run_id, v->run_id, sizeof fa.run_id);
        rt_store_batch_add_attempt(&v->part, &fa);
        if (r->retriable && attempt < p->max_attempts) {
            int64_t delay = backoff_ms(p, attempt);
            if (r->retry_after_ms > delay)
                delay = r->retry_after_ms;
            rt_log(RT_LOG_WARN, &lc, "attempt %d/%d failed, retrying in %lld ms: %s", attempt, p->max_attempts,
                   (long long)delay, r->error);
            add_row(v, d->id, "retrying", attempt, NULL, r->error, r->error_detail, NULL, started, 0);
            set_step(v, d->id, "retrying", NULL);
            requeue_or_enqueue(v, d, queue_id, now + delay, false);
            return false;
        }
        rt_log(RT_LOG_WARN, &lc, "failed after %d attempt(s): %s", attempt, r->error);
        /* output: a for_each step with continue_on_error keeps its items' results */
        add_row(v, d->id, "failed", attempt, r->output, r->error, r->error_detail, NULL, started, now);
        set_step(v, d->id, "failed", r->output);
        if (queue_id >= 0)
            rt_store_batch_add_dequeue(&v->part, queue_id);
        return d->continue_on_error;
    }
    }
    return false;
}

/* A slow step whose lease ran out before it started is left untouched: nothing is
 * recorded, and the queue item comes due for whoever claims it next (with a higher fence),
 * or is already another worker's. */
static void give_up(run_view *v, const rt_step_def *d, int64_t fence)
{
    rt_log_ctx lc = {.workflow = v->wf->id, .run_id = v->run_id, .step_id = d->id};
    rt_log(RT_LOG_WARN, &lc,
           "lease ran out before the step started (fence %lld): not running it; it is left to whoever holds "
           "its lease now",
           (long long)fence);
    rt_metrics_counter_add("ratchet_step_lease_lost_total", "at", "start", 1);
}

/* Runs the claimed step, then every quick step it makes ready, in this same claim. */
/* What a worker inside an ingest transaction leaves to the real workers: a step that waits
 * for events (registering its wait locks the event name exclusively, while the batch holds
 * names shared: two ingests could deadlock) and a for_each (an event must not hold its
 * ingest, and the other events of the batch, for as long as its items take). */
static bool runs_here(const worker *w, const rt_step_def *d)
{
    return !w->at_ingest || (!d->for_each && d->type->wait != RT_STEP_WAIT_EVENT);
}

static void run_claim(worker *w, run_view *v, const rt_claim *c)
{
    int idx = rt_workflow_step_index(v->wf, c->step_id);
    if (idx < 0) {
        rt_log_ctx lc = {.workflow = v->wf->id, .run_id = v->run_id, .step_id = c->step_id};
        rt_log(RT_LOG_ERROR, &lc, "step not in the pinned definition; dropping its queue item");
        rt_store_batch_add_dequeue(&v->part, c->queue_id);
        v->touched = true;
        return;
    }
    if (!runs_here(w, &v->wf->steps[idx]))
        return; /* its item stays queued: a worker takes it after the commit */
    size_t stack[RT_WORKFLOW_MAX_STEPS];
    int64_t qids[RT_WORKFLOW_MAX_STEPS];
    int attempts[RT_WORKFLOW_MAX_STEPS];
    int64_t fences[RT_WORKFLOW_MAX_STEPS];
    json_t *states[RT_WORKFLOW_MAX_STEPS];
    size_t top = 0;
    stack[top] = (size_t)idx;
    qids[top] = c->queue_id;
    attempts[top] = c->attempt;
    fences[top] = c->fence;
    states[top] = c->state;
    top++;
    while (top > 0 && !w->e->force) {
        top--;
        size_t i = stack[top];
        int64_t started = rt_now_ms();
        exec_out o;
        execute_step(w, v, i, attempts[top], fences[top], states[top], qids[top], &o);
        if (o.given_up) {
            give_up(v, &v->wf->steps[i], fences[top]);
            rt_step_result_clear(&o.res);
            return;
        }
        atomic_fetch_add_explicit(&w->steps_run, 1, memory_order_relaxed);
        if (w->e->force && o.res.outcome == RT_STEP_FAIL) {
            rt_step_result_clear(&o.res);
            return; /* interrupted by shutdown: the lease is given back, not a failure */
        }
        if (w->cancelled && o.res.outcome == RT_STEP_FAIL)
            o.res.retriable = false; /* the run was cancelled: no retry */
        bool done = record_result(v, i, qids[top], attempts[top], started, &o);
        rt_step_result_clear(&o.res);
        if (!done)
            continue;
        /* Successors that are quick and whose needs are all met run now, inline. */
        for (size_t t = v->wf->n_steps; t-- > 0;) {
            const rt_step_def *d = &v->wf->steps[t];
            if (!d->type->quick || step_status(v->steps, d->id) || d->n_needs == 0)
                continue;
            bool follows = false;
            for (size_t k = 0; k < d->n_needs && !follows; k++)
                follows = d->need_idx[k] == i;
            if (follows && needs_met(v->wf, v->steps, t) && runs_here(w, d) && top < RT_WORKFLOW_MAX_STEPS) {
                stack[top] = t;
                qids[top] = -1;
                attempts[top] = 1;
                fences[top] = 0; /* quick: unleased, inside this claim */
                states[top] = NULL;
                top++;
            }
        }
    }
}

/* Makes a step of this batch due now (its pending wake-up is rewritten). */
static void due_now(run_view *v, const char *sid, rt_store_batch *batch)
{
    for (size_t q = 0; q < v->part.n_requeue; q++)
        if (v->part.requeue[q].step_id && strcmp(v->part.requeue[q].step_id, sid) == 0)
            v->part.requeue[q].run_at = rt_now_ms();
    for (size_t q = 0; q < v->part.n_enqueue; q++)
        if (strcmp(v->part.enqueue[q].step_id, sid) == 0)
            v->part.enqueue[q].run_at = rt_now_ms();
    batch->notify = true;
}

/* Registers the event waits this batch created (wait_for_event), under an exclusive
 * per-name lock that ingest takes shared: an event either is visible to the lookback
 * query here, or sees the wait rows when it is ingested. A lookback match makes the step
 * due at once with the event in its state. Completed waits are unregistered. */
static rt_status register_waits(rt_store *st, run_view *v, rt_store_batch *batch, rt_error *err)
{
    size_t i;
    json_t *row;
    json_array_foreach(v->rows, i, row) {
        const char *sid = json_string_value(json_object_get(row, "step_id"));
        const char *status = json_string_value(json_object_get(row, "status"));
        int idx = rt_workflow_step_index(v->wf, sid);
        if (idx < 0 || v->wf->steps[idx].type->wait != RT_STEP_WAIT_EVENT)
            continue;
        if (strcmp(status, "completed") == 0 || strcmp(status, "failed") == 0) {
            rt_store_batch_add_unwait(batch, v->run_id, sid);
            continue;
        }
        json_t *state = json_object_get(row, "state");
        json_t *wait = json_object_get(state, "wait");
        if (strcmp(status, "waiting") != 0 || !wait || json_is_true(json_object_get(wait, "registered")))
            continue;
        json_t *names = json_object_get(wait, "names");
        rt_status s = rt_store_lock_event_names(st, names, true, err);
        int64_t from = json_integer_value(json_object_get(wait, "lookback_from"));
        if (from <= 0)
            from = v->run_created_ms;
        json_t *seen = NULL;
        if (s == RT_OK)
            s = rt_store_events_since(st, names, from, &seen, err);
        if (s != RT_OK)
            return s;
        const char *cond = json_string_value(json_object_get(wait, "if"));
        json_t *matched = NULL;
        size_t k;
        json_t *env;
        const char *run_entity = json_string_value(json_object_get(v->event, "entity_id"));
        json_array_foreach(seen, k, env) {
            /* An agent's event never wakes another entity's run or a system job (DESIGN §6). */
            if (!rt_event_may_touch(env, v->wf->system, run_entity, NULL))
                continue;
            if (!cond) {
                matched = env;
                break;
            }
            json_t *ctx = build_context(v, &v->wf->steps[idx], 1, 0);
            json_object_set(ctx, "async", env);
            bool yes = false;
            rt_error cerr;
            if (rt_expr_condition(cond, ctx, &yes, &cerr) != RT_OK)
                yes = false;
            json_decref(ctx);
            if (yes) {
                matched = env;
                break;
            }
        }
        json_object_set_new(wait, "registered", json_true());
        if (matched) {
            json_object_set(state, "matched", matched);
            due_now(v, sid, batch);
        } else {
            json_t *rows = json_array();
            json_t *name;
            json_array_foreach(names, k, name) {
                json_array_append_new(rows, json_pack("{s:s, s:s, s:O, s:s?}", "run_id", v->run_id, "step_id", sid,
                                                      "name", name, "if_expr", cond));
            }
            s = rt_store_insert_waits(st, rows, err);
            json_decref(rows);
        }
        json_decref(seen);
        if (s != RT_OK)
            return s;
    }
    return RT_OK;
}

/* Starts the child runs that invoke steps of this batch asked for, once each (the child's
 * dedupe key is the step's key), in this transaction. */
static rt_status register_invokes(const rt_workflow_set *set, rt_store *st, run_view *v, rt_store_batch *batch,
                                  rt_error *err)
{
    size_t i;
    json_t *row;
    json_array_foreach(v->rows, i, row) {
        const char *sid = json_string_value(json_object_get(row, "step_id"));
        int idx = rt_workflow_step_index(v->wf, sid);
        json_t *state = json_object_get(row, "state");
        json_t *inv = json_object_get(state, "invoke");
        if (idx < 0 || v->wf->steps[idx].type->wait != RT_STEP_WAIT_RUN || !inv ||
            json_object_get(inv, "child") || strcmp(json_string_value(json_object_get(row, "status")), "waiting"))
            continue;
        const char *wf_id = json_string_value(json_object_get(inv, "workflow"));
        const rt_workflow *child = set && wf_id ? rt_workflow_set_find(set, wf_id) : NULL;
        if (!child || !child->enabled) {
            char msg[300];
            snprintf(msg, sizeof msg, "workflow \"%s\" is %s", wf_id ? wf_id : "?", child ? "disabled" : "not loaded");
            json_object_set_new(state, "result", json_pack("{s:s, s:s}", "status", "failed", "error", msg));
            due_now(v, sid, batch);
            continue;
        }
        char key[256], eid[256];
        snprintf(key, sizeof key, "invoke:%s:%s", v->run_id, sid);
        snprintf(eid, sizeof eid, "%s:%s", v->run_id, sid);
        json_t *actor = json_object_get(v->event, "actor");
        json_t *event = json_pack("{s:s, s:s, s:I, s:O, s:O, s:s}", "name", "ratchet.invoke", "id", eid, "ts",
                                  (json_int_t)rt_now_ms(), "data", json_object_get(inv, "data"), "actor",
                                  actor ? actor : json_pack("{s:s}", "type", "service"), "v", "1");
        json_t *entity = json_object_get(v->event, "entity_id");
        if (entity)
            json_object_set(event, "entity_id", entity);
        char tp[RT_TRACEPARENT_LEN + 1]; /* the child's trace continues from the invoke step's span */
        rt_run_trace_step_parent(v->run_id, v->event, sid, (int)json_integer_value(json_object_get(row, "attempts")), tp);
        json_object_set_new(event, RT_EVENT_TRACEPARENT_KEY, json_string(tp));
        json_t *trigger = json_pack("{s:s, s:s, s:s, s:s}", "type", "invoke", "parent_run", v->run_id, "parent_step",
                                    sid, "parent_workflow", v->wf->id);
        rt_run_request req = {.wf = child, .trigger = trigger, .event = event, .dedupe_key = key,
                              .parent_run_id = v->run_id, .parent_step_id = sid, .set = set};
        rt_status s = rt_run_create_tx(st, &req, 1, err);
        json_decref(event);
        json_decref(trigger);
        if (s != RT_OK)
            return s;
        json_object_set_new(inv, "child", json_string(req.id));
    }
    return RT_OK;
}

/* on_failure of a run that ended badly (ingest.h). */
static rt_status run_on_failure(const rt_workflow_set *set, rt_store *st, json_t *rule, const char *workflow_id,
                                const char *run_id, const char *status, const char *error, rt_error *err)
{
    return rt_ingest_on_failure(set, st, rule, workflow_id, run_id, status, error, err);
}

/* A child run (invoke) that ended hands its result to the waiting parent step. */
static void wake_parent(run_view *v, rt_store_batch *batch, const char *status, json_t *output, const char *error)
{
    if (!v->parent_run_id || !v->parent_step_id)
        return;
    json_t *patch = json_pack("{s:{s:s, s:s, s:O?, s:s?}}", "result", "run_id", v->run_id, "status", status, "output",
                              output, "error", error);
    rt_store_batch_add_wake(batch, v->parent_run_id, v->parent_step_id, patch);
    json_decref(patch);
}

/* The events steps of this batch handed over (rt_step_result.emit), stored like the
 * engine's own: they trigger workflows and go to the brokers through the outbox. */
static rt_status store_emits(const rt_workflow_set *set, rt_store *st, run_view *v, rt_error *err)
{
    size_t i;
    json_t *env;
    json_array_foreach(v->emits, i, env) {
        rt_event *ev = NULL;
        /* The step put the run's actor on it (publish.c). */
        json_t *actor = json_object_get(env, "actor");
        const char *tname = json_string_value(json_object_get(actor, "type"));
        rt_actor_type type = RT_ACTOR_SERVICE;
        rt_error terr;
        if (!tname || rt_actor_type_parse(tname, &type, &terr) != RT_OK)
            type = RT_ACTOR_SERVICE;
        rt_status s = rt_event_new(json_string_value(json_object_get(env, "name")), json_object_get(env, "data"), type,
                                   json_string_value(json_object_get(actor, "id")),
                                   json_string_value(json_object_get(env, "entity_id")),
                                   json_string_value(json_object_get(env, "id")), &ev, err);
        /* the step's trace context (publish.c) goes with it */
        json_t *tp = json_object_get(env, RT_EVENT_TRACEPARENT_KEY);
        if (s == RT_OK && json_is_string(tp))
            rt_run_trace_adopt(&ev, json_string_value(tp), json_string_length(tp), NULL, 0);
        if (s == RT_OK)
            s = rt_ingest_events_tx(set, st, &ev, 1, "engine", err);
        rt_event_free(ev);
        if (s != RT_OK)
            return s;
    }
    return RT_OK;
}

/* Queue items (enqueue or requeue entries) of a paused run: shifted as the pause shifted
 * the run's other items (store_runctl.h), so the resume brings them back. */
static void hold_for_pause(rt_store_batch *part, int64_t now)
{
    for (size_t i = 0; i < part->n_enqueue; i++) {
        int64_t at = part->enqueue[i].run_at;
        part->enqueue[i].run_at = (at > 0 ? at : now) + RT_RUN_PAUSE_SHIFT_MS;
    }
    for (size_t i = 0; i < part->n_requeue; i++) {
        int64_t at = part->requeue[i].run_at;
        part->requeue[i].run_at = (at > 0 ? at : now) + RT_RUN_PAUSE_SHIFT_MS;
    }
}

/* The step rows of the view, typed, into the batch. */
static void rows_into_batch(run_view *v, rt_store_batch *batch)
{
    size_t i;
    json_t *row;
    json_array_foreach(v->rows, i, row) {
        rt_batch_step r = {.step_id = (char *)json_string_value(json_object_get(row, "step_id")),
                           .attempts = (int)json_integer_value(json_object_get(row, "attempts")),
                           .output = json_object_get(row, "output"),
                           .error = (char *)json_string_value(json_object_get(row, "error")),
                           .error_detail = json_object_get(row, "error_detail"),
                           .state = json_object_get(row, "state"),
                           .started_at = json_integer_value(json_object_get(row, "started_at")),
                           .finished_at = json_integer_value(json_object_get(row, "finished_at"))};
        memcpy(r.run_id, v->run_id, sizeof r.run_id);
        if (!rt_step_status_parse(json_string_value(json_object_get(row, "status")), &r.status))
            r.status = RT_STEP_PENDING; /* not reached: every row is written with a known status */
        rt_store_batch_add_step(batch, &r);
    }
}

/* What the database knows of the run's steps (locked), overlaid with what this batch did:
 * only that overrides the database, the rest of v->steps may be older than what other
 * workers committed meanwhile. A new object. */
static json_t *merged_steps(run_view *v, json_t *locked)
{
    json_t *fresh = json_object_get(locked, "steps");
    json_t *merged = fresh ? json_deep_copy(fresh) : json_object();
    size_t ri;
    json_t *done_row;
    json_array_foreach(v->rows, ri, done_row) {
        const char *sid = json_string_value(json_object_get(done_row, "step_id"));
        json_object_set(merged, sid, json_object_get(v->steps, sid));
    }
    return merged;
}

/* The run's outcome from the merged steps; the steps it makes ready get a pending row and a
 * queue item. false when out of memory (nothing was changed then). */
static bool outcome_and_start(run_view *v, json_t *merged, bool ended, rt_store_batch *batch, rt_run_outcome *out)
{
    const rt_workflow *wf = v->wf;
    rt_step_state *states = calloc(wf->n_steps ? wf->n_steps : 1, sizeof *states);
    if (!states)
        return false;
    for (size_t i = 0; i < wf->n_steps; i++)
        step_state_of(wf, merged, i, &states[i]);
    *out = rt_run_outcome_of(ended, states, wf->n_steps);
    for (size_t i = 0; i < wf->n_steps; i++) {
        if (!rt_run_outcome_starts(out, &states[i]))
            continue;
        const rt_step_def *d = &wf->steps[i];
        json_array_append_new(v->rows, json_pack("{s:s, s:s, s:s}", "run_id", v->run_id, "step_id", d->id,
                                                 "status", "pending"));
        enqueue_step(v, d, 0);
        json_object_set_new(merged, d->id, json_pack("{s:s}", "status", "pending"));
        batch->notify = true;
    }
    free(states);
    return true;
}

/* The run failed at failed_step: recorded as failed, its idle items dropped, its parent
 * woken and its on_failure run. */
static rt_status end_failed(const rt_workflow_set *set, rt_store *st, run_view *v, const char *failed_step,
                            rt_batch_run *run, rt_store_batch *batch, rt_error *err)
{
    char msg[RT_ERROR_MAX];
    json_t *row = NULL;
    size_t n = json_array_size(v->rows);
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_array_get(v->rows, i);
        if (!strcmp(json_string_value(json_object_get(r, "step_id")), failed_step))
            row = r;
    }
    const char *step_err = row ? json_string_value(json_object_get(row, "error")) : NULL;
    snprintf(msg, sizeof msg, "step %s failed%s%s", failed_step, step_err ? ": " : "", step_err ? step_err : "");
    run->status = RT_RUN_FAILED;
    run->error = msg;
    rt_store_batch_add_run(batch, run);
    rt_store_batch_add_drop(batch, v->run_id);
    rt_log_ctx lc = {.workflow = v->wf->id, .run_id = v->run_id};
    rt_log(RT_LOG_WARN, &lc, "run failed: %s", msg);
    wake_parent(v, batch, "failed", NULL, msg);
    return run_on_failure(set, st, v->wf->on_failure, v->wf->id, v->run_id, "failed", msg, err);
}

/* Every step is done: the run's output (the workflow's `output` template over the merged
 * steps, else the last step's output), and its end as completed, partial, or failed when
 * the template fails. */
static rt_status end_done(const rt_workflow_set *set, rt_store *st, run_view *v, json_t *merged, bool partial,
                          rt_batch_run *run, rt_store_batch *batch, rt_error *err)
{
    const rt_workflow *wf = v->wf;
    json_t *output = NULL;
    char errbuf[RT_ERROR_MAX] = "";
    if (wf->output) {
        json_t *saved = v->steps;
        v->steps = merged;
        json_t *ctx = build_context(v, &wf->steps[wf->n_steps - 1], 1, 0);
        v->steps = saved;
        rt_error oerr;
        if (rt_template_render(wf->output, ctx, &output, &oerr) != RT_OK)
            snprintf(errbuf, sizeof errbuf, "output: %s", oerr.msg);
        json_decref(ctx);
    } else {
        output = json_incref(json_object_get(json_object_get(merged, wf->steps[wf->n_steps - 1].id), "output"));
    }
    run->status = errbuf[0] ? RT_RUN_FAILED : partial ? RT_RUN_PARTIAL : RT_RUN_COMPLETED;
    const char *status = rt_run_status_name(run->status);
    run->output = output;
    run->error = errbuf[0] ? errbuf : NULL;
    rt_store_batch_add_run(batch, run);
    wake_parent(v, batch, status, output, errbuf[0] ? errbuf : NULL);
    rt_status rs = errbuf[0] ? run_on_failure(set, st, wf->on_failure, wf->id, v->run_id, status, errbuf, err) : RT_OK;
    json_decref(output);
    rt_log_ctx lc = {.workflow = wf->id, .run_id = v->run_id};
    rt_log(RT_LOG_DEBUG, &lc, "run %s", status);
    return rs;
}

/* What the batch's steps registered elsewhere: emitted events, event waits, child runs,
 * approval gates (for approval steps that suspended). */
static rt_status register_suspensions(const rt_workflow_set *set, rt_store *st, run_view *v, rt_store_batch *batch,
                                      rt_error *err)
{
    rt_status rs = store_emits(set, st, v, err);
    if (rs == RT_OK)
        rs = register_waits(st, v, batch, err);
    if (rs == RT_OK)
        rs = register_invokes(set, st, v, batch, err);
    const rt_run_gate *gate = rt_run_gate_get();
    if (rs == RT_OK && gate && gate->register_steps)
        rs = gate->register_steps(st, set, v->run_id, v->wf, v->event, v->rows, err);
    return rs;
}

/* Under the run lock: enqueue what became ready, and end or advance the run. */
static rt_status finalize_run_in(rt_engine *e, const rt_workflow_set *set, rt_store *st, run_view *v, json_t *locked,
                                 rt_store_batch *batch, int64_t batch_started, rt_error *err)
{
    (void)e;
    rt_status rs = register_suspensions(set, st, v, batch, err);
    if (rs != RT_OK)
        return rs;
    const char *db_status = json_string_value(json_object_get(locked, "status"));
    json_t *merged = merged_steps(v, locked);
    bool ended = db_status && is_terminal_run(db_status);
    rt_run_outcome outcome;
    if (!outcome_and_start(v, merged, ended, batch, &outcome)) {
        json_decref(merged);
        return rt_error_set(err, RT_ERR_INTERNAL, "out of memory"); /* before anything was moved into the batch */
    }
    int64_t now = rt_now_ms();
    rt_batch_run run = {.started_at = batch_started, .workflow = v->wf->id};
    memcpy(run.run_id, v->run_id, sizeof run.run_id);
    if (ended) {
        /* cancelled or otherwise ended meanwhile: keep the memoized rows, start nothing */
    } else if (outcome.kind == RT_OUTCOME_FAILED) {
        run.finished_at = now;
        rs = end_failed(set, st, v, v->wf->steps[outcome.failed_step].id, &run, batch, err);
    } else if (outcome.kind == RT_OUTCOME_DONE) {
        run.finished_at = now;
        rs = end_done(set, st, v, merged, outcome.status == RT_RUN_PARTIAL, &run, batch, err);
    } else if (db_status && !strcmp(db_status, "paused")) {
        /* Paused while a step ran: its result is kept, what it made ready waits for the
         * resume (which derives the status from the steps) far in the future. */
        hold_for_pause(&v->part, now);
    } else {
        run.status = outcome.status;
        if (!db_status || strcmp(db_status, rt_run_status_name(run.status)) != 0)
            rt_store_batch_add_run(batch, &run);
    }
    json_decref(merged);

    /* Move this run's pieces into the batch. */
    rows_into_batch(v, batch);
    if (v->part.n_enqueue > 0 || v->part.n_requeue > 0)
        batch->notify = true;
    rt_store_batch_move(batch, &v->part);
    return rs;
}

/* The same with the workflow set of this moment (invoke targets, on_failure, emitted
 * events' triggers): a snapshot held for the call (workflow_live.h). */
static rt_status finalize_run(rt_engine *e, rt_store *st, run_view *v, json_t *locked, rt_store_batch *batch,
                              int64_t batch_started, rt_error *err)
{
    const rt_workflow_set *set = rt_workflow_set_acquire(e->set);
    rt_status s = finalize_run_in(e, set, st, v, locked, batch, batch_started, err);
    rt_workflow_set_release(set);
    return s;
}

static void view_free(run_view *v)
{
    free(v->run_status);
    json_decref(v->steps);
    json_decref(v->rows);
    rt_store_batch_free(&v->part);
    json_decref(v->emits);
    free(v->queue_ids);
}

/* The view of run_id, looked for from *hint on (wrapping round), with *hint set to where
 * it was found; or NULL. Claims and batch rows come in run order (the quick claims sort by
 * run), so a walk over a batch finds each at once instead of scanning every view: batches
 * run to hundreds. */
static run_view *find_view(run_view *views, size_t n, const char *run_id, size_t *hint)
{
    for (size_t k = 0; k < n; k++) {
        size_t i = (*hint + k) % n;
        if (strcmp(views[i].run_id, run_id) == 0) {
            *hint = i;
            return &views[i];
        }
    }
    return NULL;
}

/* After a commit: count the runs this batch ended. */
static void count_finished(const rt_store_batch *batch)
{
    for (size_t i = 0; i < batch->n_runs; i++) {
        const rt_batch_run *r = &batch->runs[i];
        if (r->finished_at > 0)
            rt_metrics_counter_add("ratchet_runs_finished_total", "workflow", r->workflow, "status",
                                   rt_run_status_name(r->status), 1);
    }
}

/* After a commit: the root span of each run this batch ended (run_trace.h). */
static void trace_finished(run_view *views, size_t n, const rt_store_batch *batch)
{
    size_t hint = 0; /* the batch's runs are in the views' order */
    for (size_t i = 0; i < batch->n_runs; i++) {
        const rt_batch_run *r = &batch->runs[i];
        run_view *v = r->finished_at > 0 ? find_view(views, n, r->run_id, &hint) : NULL;
        if (v)
            rt_run_trace_run_span(r->run_id, v->event, v->trigger, v->wf->id, rt_run_status_name(r->status),
                                  r->error, v->run_created_ms, r->finished_at);
    }
}

/* Commits the views' results in one transaction. Returns RT_OK or the failure. */
static rt_status commit_views(worker *w, run_view *views, size_t n, int64_t batch_started, rt_error *err)
{
    const char **ids = malloc(n * sizeof *ids);
    size_t n_q = 0;
    for (size_t i = 0; i < n; i++)
        n_q += views[i].n_queue_ids;
    int64_t *qids = malloc((n_q ? n_q : 1) * sizeof *qids);
    size_t n_ids = 0, k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!views[i].touched)
            continue;
        ids[n_ids++] = views[i].run_id;
        for (size_t j = 0; j < views[i].n_queue_ids; j++)
            qids[k++] = views[i].queue_ids[j];
    }
    if (n_ids == 0) {
        free(ids);
        free(qids);
        return RT_OK;
    }
    rt_status s = RT_OK;
    for (int tries = 0; tries < 3; tries++) {
        json_t *owned = NULL, *locked = NULL;
        rt_store_batch batch;
        rt_store_batch_init(&batch);
        s = rt_store_begin(w->store, err);
        if (s == RT_OK)
            s = rt_store_lock_owned(w->store, w->owner, qids, k, &owned, err);
        if (s == RT_OK)
            s = rt_store_lock_runs(w->store, ids, n_ids, &locked, err);
        if (s == RT_OK) {
            for (size_t i = 0; i < n; i++) {
                run_view *v = &views[i];
                if (!v->touched)
                    continue;
                bool lost = false;
                for (size_t j = 0; j < v->n_queue_ids && !lost; j++) {
                    bool found = false;
                    for (size_t m = 0; m < json_array_size(owned) && !found; m++)
                        found = json_integer_value(json_array_get(owned, m)) == v->queue_ids[j];
                    lost = !found;
                }
                json_t *lk = json_object_get(locked, v->run_id);
                if (lost || !lk) {
                    rt_log_ctx lc = {.workflow = v->wf->id, .run_id = v->run_id};
                    rt_log(RT_LOG_WARN, &lc, "lease lost before commit; another worker owns this step now");
                    continue;
                }
                /* finalize moves copies into the batch; a retry of the transaction
                 * rebuilds it, so work on copies of the view's arrays. */
                run_view copy = *v;
                copy.rows = json_deep_copy(v->rows);
                rt_store_batch_init(&copy.part);
                rt_store_batch_copy(&copy.part, &v->part);
                s = finalize_run(w->e, w->store, &copy, lk, &batch, batch_started, err);
                json_decref(copy.rows);
                rt_store_batch_free(&copy.part);
            }
            if (s == RT_OK)
                s = rt_store_apply(w->store, w->owner, &batch, err);
        }
        if (s == RT_OK)
            s = rt_store_commit(w->store, err);
        if (s == RT_OK) {
            count_finished(&batch);
            trace_finished(views, n, &batch);
        }
        json_decref(owned);
        json_decref(locked);
        rt_store_batch_free(&batch);
        if (s == RT_OK)
            break;
        rt_store_rollback(w->store);
        if (s != RT_ERR_CONFLICT)
            break;
    }
    free(ids);
    free(qids);
    return s;
}

/* claimed_mono_ms: rt_mono_ms() read before the claim was sent; its lease ends later. */
static void hold(worker *w, const rt_claim *c, size_t n, int64_t claimed_mono_ms)
{
    pthread_mutex_lock(&w->held_mu);
    w->held_gen++;
    w->lease_deadline = lease_deadline(w->e, claimed_mono_ms);
    w->lease_lost = false;
    w->finishing = false;
    w->n_held = 0;
    for (size_t i = 0; i < n && w->n_held < MAX_HELD; i++)
        w->held[w->n_held++] = c[i].queue_id;
    pthread_mutex_unlock(&w->held_mu);
}

static void release_held(worker *w)
{
    pthread_mutex_lock(&w->held_mu);
    w->held_gen++;
    w->n_held = 0;
    if (!w->e->force)
        w->cancelled = 0; /* it was about the claim just released */
    pthread_mutex_unlock(&w->held_mu);
}

/* The view of c's run, made if new; *hint as in find_view (the caller walks the claims in
 * order with one hint, starting at 0). */
static run_view *view_for(run_view *views, size_t *n_views, const rt_claim *c, size_t *hint)
{
    run_view *found = find_view(views, *n_views, c->run_id, hint);
    if (found)
        return found;
    *hint = *n_views;
    run_view *v = &views[(*n_views)++];
    memset(v, 0, sizeof *v);
    memcpy(v->run_id, c->run_id, sizeof v->run_id);
    v->event = c->event;
    v->trigger = c->trigger;
    v->run_status = strdup(c->run_status);
    v->run_started_ms = c->run_started_ms;
    v->run_created_ms = c->run_created_ms;
    v->ckey = c->ckey;
    v->climit = c->climit;
    v->parent_run_id = c->parent_run_id;
    v->parent_step_id = c->parent_step_id;
    v->rows = json_array();
    rt_store_batch_init(&v->part);
    v->emits = json_array();
    return v;
}

static void add_queue_id(run_view *v, int64_t id)
{
    int64_t *grown = realloc(v->queue_ids, (v->n_queue_ids + 1) * sizeof *grown);
    if (!grown)
        return;
    v->queue_ids = grown;
    v->queue_ids[v->n_queue_ids++] = id;
}

/* Runs one claimed batch: quick items first and committed together, then the slow one. */
/* Attaches pinned definitions; a run whose definition cannot be rebuilt is logged and
 * skipped (its queue item stays, so nothing is lost). */
static rt_status attach_definitions(worker *w, run_view *views, size_t n_views, rt_claim *claims, size_t n,
                                    rt_error *err)
{
    size_t hint = 0;
    for (size_t i = 0; i < n; i++) {
        run_view *v = view_for(views, &n_views, &claims[i], &hint);
        if (!v->wf && definition_get(w->e, w->store, claims[i].wf_hash, &v->wf, err) != RT_OK) {
            rt_log_ctx lc = {.workflow = claims[i].workflow_id, .run_id = v->run_id};
            rt_log(RT_LOG_ERROR, &lc, "%s", err->msg);
            if (err->code == RT_ERR_UNAVAILABLE)
                return err->code;
        }
    }
    return RT_OK;
}

/* Runs every claim whose run has a definition; ended runs just drop their item. */
static void run_claims(worker *w, run_view *views, size_t *n_views, rt_claim *claims, size_t n)
{
    size_t hint = 0;
    for (size_t i = 0; i < n && !w->e->force; i++) {
        rt_claim *c = &claims[i];
        run_view *v = view_for(views, n_views, c, &hint);
        if (!v->wf)
            continue;
        add_queue_id(v, c->queue_id);
        if (is_terminal_run(v->run_status)) {
            rt_store_batch_add_dequeue(&v->part, c->queue_id);
            v->touched = true;
            continue;
        }
        /* A quick claim whose run was paused while the claim waited for its lock: start
         * nothing, the item stays for the resume. (A slow claim read its run unpaused and
         * runs: to a pause it is a step that was already running.) */
        if (!c->slow && !strcmp(v->run_status, "paused"))
            continue;
        run_claim(w, v, c);
    }
}

/* Quick steps (transform, log, sleep) are claimed, run and completed in ONE transaction:
 * the claimed rows stay locked (FOR UPDATE SKIP LOCKED) instead of being leased, so a
 * crash simply rolls the claim back, and a batch of runs costs one commit. */
static void wake_chain(rt_engine *e, bool full);

/* {run_id: {"status", "steps"}} of the runs a quick claim locked: the status the claim
 * read under the lock, and their step rows read after it (so they are final for this
 * batch: a statement that waited for a lock still reads with its older snapshot). */
static rt_status locked_runs(worker *w, run_view *views, size_t n_views, json_t **locked, rt_error *err)
{
    json_t *steps = json_incref(w->fresh_steps); /* at ingest, read with the claim */
    if (!steps) {
        const char **ids = malloc(n_views * sizeof *ids);
        if (!ids)
            return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < n_views; i++)
            ids[i] = views[i].run_id;
        rt_status s = rt_store_load_steps(w->store, ids, n_views, &steps, err);
        free(ids);
        if (s != RT_OK)
            return s;
    }
    *locked = json_object();
    for (size_t i = 0; i < n_views; i++) {
        json_t *st = json_object_get(steps, views[i].run_id);
        json_object_set_new(*locked, views[i].run_id,
                            json_pack("{s:s, s:O}", "status", views[i].run_status, "steps", st ? st : json_object()));
    }
    json_decref(steps);
    return RT_OK;
}

/* The next quick claim's size: doubled after a full batch (a backlog: fewer, larger
 * transactions), back to RATCHET_CLAIM_BATCH after a partial one. */
static int next_quick_limit(const worker *w, int limit, size_t got)
{
    int base = w->e->cfg->claim_batch, cap = base * QUICK_GROWTH > QUICK_MAX ? QUICK_MAX : base * QUICK_GROWTH;
    if (cap < base)
        cap = base;
    if ((int)got < limit)
        return base;
    return limit * 2 > cap ? cap : limit * 2;
}

/* A quick batch between running its steps and its commit. */
typedef struct quick_batch {
    run_view *views;
    size_t n_views;
    json_t *locked; /* locked_runs */
    rt_store_batch batch; /* the completion writes */
} quick_batch;

/* Runs claimed quick items (locked by the caller's open transaction) and writes their
 * results in it; the caller commits (or rolls back) and then calls quick_done. */
static rt_status quick_run(worker *w, rt_claim *claims, size_t n, quick_batch *qb, rt_error *err)
{
    rt_store_batch_init(&qb->batch);
    qb->views = calloc(n, sizeof *qb->views);
    if (!qb->views)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    run_view *views = qb->views;
    size_t hint = 0;
    for (size_t i = 0; i < n; i++)
        view_for(views, &qb->n_views, &claims[i], &hint);
    /* The claim locked the runs; now read their steps: what we read is final for this batch. */
    rt_status s = locked_runs(w, views, qb->n_views, &qb->locked, err);
    int64_t batch_started = rt_now_ms();
    for (size_t i = 0; s == RT_OK && i < qb->n_views; i++) {
        json_t *lk = json_object_get(qb->locked, views[i].run_id);
        json_t *st = json_object_get(lk, "steps");
        views[i].steps = st ? json_deep_copy(st) : json_object();
        const char *status = json_string_value(json_object_get(lk, "status"));
        if (status) {
            free(views[i].run_status);
            views[i].run_status = strdup(status);
        }
    }
    if (s == RT_OK)
        s = attach_definitions(w, views, qb->n_views, claims, n, err);
    if (s != RT_OK)
        return s;
    run_claims(w, views, &qb->n_views, claims, n);
    if (w->e->force)
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "stopping");
    for (size_t i = 0; s == RT_OK && i < qb->n_views; i++) {
        json_t *lk = json_object_get(qb->locked, views[i].run_id);
        if (views[i].touched && lk)
            s = finalize_run(w->e, w->store, &views[i], lk, &qb->batch, batch_started, err);
    }
    return s == RT_OK ? rt_store_apply(w->store, NULL, &qb->batch, err) : s;
}

/* After the commit (committed) or the rollback: counts and traces what finished, frees. */
static void quick_done(quick_batch *qb, bool committed)
{
    if (committed) {
        count_finished(&qb->batch);
        trace_finished(qb->views, qb->n_views, &qb->batch);
    }
    rt_store_batch_free(&qb->batch);
    json_decref(qb->locked);
    for (size_t i = 0; i < qb->n_views; i++)
        view_free(&qb->views[i]);
    free(qb->views);
    memset(qb, 0, sizeof *qb);
}

static rt_status process_quick(worker *w, size_t *n_out, bool *slow_due, rt_error *err)
{
    rt_claim *claims = NULL;
    size_t n = 0;
    *n_out = 0;
    *slow_due = true;
    if (w->quick_limit <= 0)
        w->quick_limit = w->e->cfg->claim_batch;
    rt_status s = rt_store_begin(w->store, err);
    if (s == RT_OK) {
        int64_t t0 = rt_mono_us();
        s = rt_store_claim_quick(w->store, w->quick_limit, &claims, &n, slow_due, err);
        uint32_t us = (uint32_t)(rt_mono_us() - t0);
        if (s == RT_OK && w->warm_session != rt_store_session(w->store)) {
            /* a connection's first claim is kept apart: it plans the statement, and in a bench
             * it is the first to read the preloaded rows (setting their hint bits) */
            w->warm_session = rt_store_session(w->store);
            if (us > w->first_claim_us)
                w->first_claim_us = us;
        } else if (s == RT_OK && n > 0 && w->claim_us) {
            w->claim_us[w->warm_claims++ % CLAIM_SAMPLES] = us;
        }
        if (s == RT_OK && n > 0)
            w->claims++;
        if (s == RT_OK) {
            wake_chain(w->e, n > 0 && (int)n == w->quick_limit);
            w->quick_limit = next_quick_limit(w, w->quick_limit, n);
        }
    }
    if (s != RT_OK || n == 0) {
        if (s == RT_OK)
            s = rt_store_commit(w->store, err);
        else
            rt_store_rollback(w->store);
        rt_claims_free(claims, n);
        return s;
    }
    *n_out = n;
    quick_batch qb = {0};
    s = quick_run(w, claims, n, &qb, err);
    if (s == RT_OK)
        s = rt_store_commit(w->store, err);
    if (s != RT_OK)
        rt_store_rollback(w->store);
    quick_done(&qb, s == RT_OK);
    rt_claims_free(claims, n);
    return s;
}

/* A first-steps batch between the ingest's statements and its commit. */
typedef struct ingest_after {
    quick_batch qb;
    rt_claim *claims; /* the views borrow from them */
    size_t n;
} ingest_after;

/* The ingest runner (ingest.h): the quick first steps of the runs the caller's open
 * transaction just created run in it, by a worker of the moment that holds no lease (quick
 * steps need none). What finished is counted in after_ingest, once the caller committed. */
static rt_status run_at_ingest(void *arg, rt_store *st, const char *const *run_ids, size_t n, void **after,
                               bool *left, rt_error *err)
{
    rt_engine *e = arg;
    *after = NULL;
    *left = true;
    if (e->stopping || n == 0)
        return RT_OK;
    rt_claim *claims = NULL;
    size_t got = 0, queued = 0;
    json_t *steps = NULL;
    rt_status s = rt_store_claim_created(st, run_ids, n, &claims, &got, &queued, &steps, err);
    *left = queued > 0;
    ingest_after *a = s == RT_OK && got > 0 ? calloc(1, sizeof *a) : NULL;
    if (s == RT_OK && got > 0 && !a)
        s = rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    if (!a) {
        rt_claims_free(claims, got);
        json_decref(steps);
        return s;
    }
    a->claims = claims;
    a->n = got;
    worker w = {.e = e, .index = -1, .store = st, .at_ingest = true, .fresh_steps = steps};
    pthread_mutex_init(&w.held_mu, NULL);
    snprintf(w.owner, sizeof w.owner, "%s/ingest", e->owner_prefix);
    s = quick_run(&w, claims, got, &a->qb, err);
    pthread_mutex_destroy(&w.held_mu);
    json_decref(steps);
    /* Items this batch neither finished nor re-queued (a step left to workers, a run it
     * could not load) are still there; what it enqueued or re-queued sent its own wake. */
    *left = queued > a->qb.batch.n_dequeue;
    *after = a; /* freed by after_ingest, which the caller calls whatever happened */
    return s;
}

static void after_ingest(void *after, bool committed)
{
    ingest_after *a = after;
    if (!a)
        return;
    quick_done(&a->qb, committed);
    rt_claims_free(a->claims, a->n);
    free(a);
}

/* Test only (RATCHET_DEBUG_PAUSE_AFTER_CLAIM, tests/integration/t_fence.sh): the whole
 * process stops itself once, right after claiming that step and before starting it, and
 * runs on when the test sends SIGCONT. Inert unless set. */
static void debug_pause_after_claim(worker *w, const rt_claim *c, size_t n)
{
    const char *step = w->e->cfg->debug_pause_after_claim;
    for (size_t i = 0; step && i < n && !w->e->debug_paused; i++) {
        if (strcmp(c[i].step_id, step) != 0)
            continue;
        w->e->debug_paused = 1;
        rt_log_ctx lc = {.workflow = c[i].workflow_id, .run_id = c[i].run_id, .step_id = c[i].step_id};
        rt_log(RT_LOG_WARN, &lc, "debug: pausing the process (SIGSTOP) after claiming the step, fence %lld",
               (long long)c[i].fence);
        raise(SIGSTOP);
        rt_log(RT_LOG_WARN, &lc, "debug: resumed after the pause");
    }
}

/* A slow step (exec, http, sql) is leased, run outside any transaction while the lease
 * keeper extends the lease, and completed in a transaction that checks the lease is still
 * ours. It starts only while the lease is live (lease_live). */
static rt_status process_slow(worker *w, size_t *n_out, rt_error *err)
{
    rt_claim *claims = NULL;
    size_t n = 0;
    *n_out = 0;
    if (!w->e->force)
        w->cancelled = 0;
    int64_t claimed_at = rt_mono_ms();
    rt_status s = rt_store_claim(w->store, w->owner, 1, w->e->cfg->lease_ms, &claims, &n, err);
    if (s != RT_OK || n == 0)
        return s;
    wake_chain(w->e, true); /* a slow claim takes one item: the next may be due too */
    *n_out = n;
    hold(w, claims, n, claimed_at);
    debug_pause_after_claim(w, claims, n);
    run_view *views = calloc(n, sizeof *views);
    size_t n_views = 0, hint = 0;
    for (size_t i = 0; i < n; i++)
        view_for(views, &n_views, &claims[i], &hint);
    const char **ids = malloc(n_views * sizeof *ids);
    for (size_t i = 0; i < n_views; i++)
        ids[i] = views[i].run_id;
    json_t *loaded = NULL;
    s = rt_store_load_steps(w->store, ids, n_views, &loaded, err); /* the claim marked the runs running */
    free(ids);
    int64_t batch_started = rt_now_ms();
    for (size_t i = 0; s == RT_OK && i < n_views; i++) {
        json_t *st = json_object_get(loaded, views[i].run_id);
        views[i].steps = st ? json_incref(st) : json_object();
    }
    json_decref(loaded);
    if (s == RT_OK)
        s = attach_definitions(w, views, n_views, claims, n, err);
    if (s == RT_OK) {
        run_claims(w, views, &n_views, claims, n);
        pthread_mutex_lock(&w->held_mu);
        w->finishing = true;
        pthread_mutex_unlock(&w->held_mu);
        if (!w->e->force)
            s = commit_views(w, views, n_views, batch_started, err);
    }
    release_held(w);
    for (size_t i = 0; i < n_views; i++)
        view_free(&views[i]);
    free(views);
    rt_claims_free(claims, n);
    return s;
}

/* ---------- threads ---------- */

static void wait_for_work(rt_engine *e, uint64_t seen)
{
    pthread_mutex_lock(&e->mu);
    if (e->wake_seq == seen && !e->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = (int64_t)ts.tv_nsec + (e->cfg->poll_ms % 1000) * 1000000;
        ts.tv_sec += e->cfg->poll_ms / 1000 + ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&e->wake, &e->mu, &ts);
    }
    pthread_mutex_unlock(&e->mu);
}

/* Wakes one idle worker: a notification is one batch of new work, and a worker that
 * finds more than one claim's worth wakes the next (wake_chain), so an idle engine answers
 * an event with one claim, not one per worker (eight empty claims per event at 1,000/s). */
static void wake_one(rt_engine *e)
{
    pthread_mutex_lock(&e->mu);
    e->wake_seq++;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->mu);
}

/* After a claim that took all it asked for: there is probably more; bring in a helper
 * (unless every quick slot is taken: the helper could only look for slow steps, and a
 * due slow step wakes a worker of its own). */
static void wake_chain(rt_engine *e, bool full)
{
    if (full && atomic_load(&e->quick_busy) < e->cfg->quick_workers)
        wake_one(e);
}

/* Takes one of the RATCHET_QUICK_WORKERS slots if one is free. A failed try leaves the
 * count alone, so two tries at once never shut each other out. */
static bool quick_slot_take(rt_engine *e)
{
    int busy = atomic_load(&e->quick_busy);
    while (busy < e->cfg->quick_workers) {
        if (atomic_compare_exchange_weak(&e->quick_busy, &busy, busy + 1))
            return true;
    }
    return false;
}

static void wake_all(rt_engine *e)
{
    pthread_mutex_lock(&e->mu);
    e->wake_seq++;
    pthread_cond_broadcast(&e->wake);
    pthread_mutex_unlock(&e->mu);
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Opens or re-opens a thread's connection, backing off while the database is away. */
static bool ensure_store(rt_engine *e, rt_store **st, const char *who)
{
    int64_t delay = 100;
    while (!e->stopping) {
        rt_error err;
        rt_status s = *st ? rt_store_reconnect(*st, &err) : rt_store_open(e->cfg->database_url, st, &err);
        if (s == RT_OK)
            return true;
        rt_log(RT_LOG_WARN, NULL, "%s: %s; retrying in %lld ms", who, err.msg, (long long)delay);
        sleep_ms(delay);
        delay = delay * 2 > 5000 ? 5000 : delay * 2;
    }
    return false;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    rt_engine *e = w->e;
    if (ensure_store(e, &w->store, "worker")) {
        while (!e->stopping) {
            pthread_mutex_lock(&e->mu);
            uint64_t seen = e->wake_seq;
            pthread_mutex_unlock(&e->mu);
            rt_error err;
            size_t n_quick = 0, n_slow = 0;
            bool slow_due = true;
            /* Quick batches are CPU work here and in PostgreSQL: more of them at once than
             * there are cores only contend (on 2 cores, 8 at once drained 30 % slower than 2,
             * their claims 4x slower). A worker past the limit looks for a slow step. */
            bool slot = quick_slot_take(e);
            rt_status s = RT_OK;
            if (slot) {
                s = process_quick(w, &n_quick, &slow_due, &err);
                atomic_fetch_sub(&e->quick_busy, 1);
            } else {
                s = rt_store_slow_due(w->store, &slow_due, &err); /* one probe, not a claim transaction */
            }
            if (s == RT_OK && slow_due)
                s = process_slow(w, &n_slow, &err);
            if (s != RT_OK) {
                if (e->force || e->stopping)
                    break;
                rt_log(RT_LOG_WARN, NULL, "worker %d: %s", w->index, err.msg);
                if (!rt_store_healthy(w->store) && !ensure_store(e, &w->store, "worker"))
                    break;
                sleep_ms(100);
                continue;
            }
            if (n_quick == 0 && n_slow == 0)
                wait_for_work(e, seen);
        }
    }
    pthread_mutex_lock(&e->mu);
    e->live_workers--;
    pthread_cond_broadcast(&e->idle);
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* Wakes workers on NOTIFY and when the earliest queue item (a timer, a retry, an
 * expired lease) comes due, so a sleep ends on time without busy polling. */
static void *waker_main(void *arg)
{
    rt_engine *e = arg;
    rt_store *st = NULL;
    while (!e->stopping) {
        if ((!st || !rt_store_healthy(st)) && !ensure_store(e, &st, "waker"))
            break;
        rt_error err;
        if (rt_store_listen(st, RT_WAKE_CHANNEL, &err) != RT_OK) {
            rt_log(RT_LOG_WARN, NULL, "waker: %s", err.msg);
            sleep_ms(500);
            continue;
        }
        while (!e->stopping && rt_store_healthy(st)) {
            int64_t due = 0, future = 0;
            if (rt_store_next_due(st, &due, &future, &err) != RT_OK)
                break;
            int64_t now = rt_now_ms();
            if (due > 0 && due <= now + 1)
                wake_one(e);
            /* Sleep until the next item comes due (a timer, a retry, a lease end), not
             * merely until the next poll: items already due do not hold the next one back. */
            int64_t wait = e->cfg->poll_ms;
            if (future > now && future - now < wait)
                wait = future - now;
            if (wait > 250)
                wait = 250; /* re-check stopping and the due time at least 4 times a second */
            bool notified = false;
            if (rt_store_wait_notify(st, (int)(wait < 1 ? 1 : wait), &notified, &err) != RT_OK)
                break;
            if (notified)
                wake_one(e);
        }
    }
    rt_store_close(st);
    return NULL;
}

/* Runs whose ending failed (their on_failure could not be stored: a refusal, an error of
 * the database that is not a lost connection, a deadlock or a lack of memory): {run_id:
 * until, rt_mono_ms}. The sweep leaves them aside until then, so that runs failing every
 * time do not roll back every pass and block the runs behind them (a pass that sets one
 * aside is followed by the next at once). */
#define SWEEP_ASIDE_MS 60000
#define SWEEP_ASIDE_MAX 10000

/* The run ids still aside, as a JSON array; drops the ones whose time is up. */
static json_t *sweep_aside_ids(json_t *aside)
{
    json_t *ids = json_array();
    int64_t now = rt_mono_ms();
    const char *id;
    json_t *until, *tmp;
    json_object_foreach_safe(aside, tmp, id, until) {
        if (json_integer_value(until) <= now)
            json_object_del(aside, id);
        else
            json_array_append_new(ids, json_string(id));
    }
    return ids;
}

/* Ends runs past their workflow timeout (timed_out) or start_timeout (expired), wakes
 * their invoke parents and runs their on_failure, in one transaction, except the runs
 * aside. What ended is logged and counted after the commit. Whether another pass should
 * follow at once: this one was full, or it set a run aside. */
static bool sweep_deadlines(rt_engine *e, rt_store *st, json_t *aside)
{
    const rt_workflow_set *set = rt_workflow_set_acquire(e->set); /* released at the end */
    rt_error err;
    json_t *ended = NULL, *skip = sweep_aside_ids(aside);
    rt_status s = rt_store_begin(st, &err);
    if (s == RT_OK)
        s = rt_store_sweep_deadlines(st, skip, &ended, &err);
    json_decref(skip);
    json_t *wake = json_array(), *culprit = NULL; /* the run whose ending failed */
    size_t i;
    json_t *r;
    json_array_foreach(ended, i, r) {
        const char *id = json_string_value(json_object_get(r, "id"));
        const char *wf_id = json_string_value(json_object_get(r, "workflow"));
        const char *status = json_string_value(json_object_get(r, "status"));
        const char *error = json_string_value(json_object_get(r, "error"));
        json_t *parent = json_object_get(r, "parent_run_id");
        if (json_is_string(parent))
            json_array_append_new(wake, json_pack("{s:O, s:O, s:{s:{s:s, s:s, s:s}}}", "run_id", parent, "step_id",
                                                  json_object_get(r, "parent_step_id"), "patch", "result", "run_id",
                                                  id, "status", status, "error", error));
        const rt_workflow *wf = set ? rt_workflow_set_find(set, wf_id) : NULL;
        if (s == RT_OK && wf && (s = run_on_failure(set, st, wf->on_failure, wf_id, id, status, error, &err)) != RT_OK &&
            s != RT_ERR_UNAVAILABLE && s != RT_ERR_CONFLICT && s != RT_ERR_NOMEM)
            culprit = r; /* not a failure of the moment, which the next pass may not meet */
    }
    const rt_run_gate *gate = rt_run_gate_get(); /* close gates of ended runs, expire overdue ones */
    if (s == RT_OK)
        s = gate && gate->sweep ? gate->sweep(st, set, ended, &err) : RT_OK;
    if (s == RT_OK && json_array_size(wake) > 0)
        s = rt_store_wake_steps(st, wake, &err);
    if (s == RT_OK)
        s = rt_store_commit(st, &err);
    bool again = false;
    if (s != RT_OK)
        rt_store_rollback(st);
    if (s != RT_OK && !culprit) {
        rt_log(RT_LOG_WARN, NULL, "deadline sweep: %s", err.msg);
    } else if (s != RT_OK) {
        const char *id = json_string_value(json_object_get(culprit, "id"));
        const char *wf_id = json_string_value(json_object_get(culprit, "workflow"));
        rt_log_ctx lc = {.workflow = wf_id, .run_id = id};
        if (json_object_size(aside) < SWEEP_ASIDE_MAX) {
            rt_log(RT_LOG_ERROR, &lc, "deadline sweep: run %s (%s): its on_failure failed: %s; it stays as it is for %d s",
                   id, wf_id, err.msg, SWEEP_ASIDE_MS / 1000);
            json_object_set_new(aside, id, json_integer(rt_mono_ms() + SWEEP_ASIDE_MS));
            again = true;
        } else {
            rt_log(RT_LOG_ERROR, &lc, "deadline sweep: run %s (%s): its on_failure failed: %s; %d runs are set aside "
                   "already, so this pass is retried in a second", id, wf_id, err.msg, SWEEP_ASIDE_MAX);
        }
    }
    json_array_foreach(s == RT_OK ? ended : NULL, i, r) {
        const char *id = json_string_value(json_object_get(r, "id"));
        const char *wf_id = json_string_value(json_object_get(r, "workflow"));
        const char *status = json_string_value(json_object_get(r, "status"));
        const char *error = json_string_value(json_object_get(r, "error"));
        rt_log_ctx lc = {.workflow = wf_id, .run_id = id};
        rt_log(RT_LOG_WARN, &lc, "run %s: %s", status, error);
        rt_metrics_counter_add("ratchet_runs_finished_total", "workflow", wf_id, "status", status, 1);
        rt_run_trace_run_span(id, json_object_get(r, "event"), json_object_get(r, "trigger"), wf_id, status, error,
                              json_integer_value(json_object_get(r, "created_ms")), rt_now_ms()); /* run_trace.h */
    }
    if (s == RT_OK && json_array_size(ended) >= RT_SWEEP_BATCH)
        again = true;
    json_decref(wake);
    json_decref(ended);
    rt_workflow_set_release(set);
    return again;
}

/* A renewal extends the worker's deadline only if its answer came back before that
 * deadline and every held item was still the worker's: a late answer (this process was
 * paused, the database stalled) never revives a lease the database may have handed on
 * meanwhile. With w->held_mu held. */
static void lease_renewed(worker *w, int64_t sent_mono_ms, bool all_still_ours)
{
    if (w->lease_lost || w->finishing)
        return; /* nothing starts any more under this claim */
    int64_t now = rt_mono_ms();
    if (all_still_ours && now < w->lease_deadline) {
        w->lease_deadline = lease_deadline(w->e, sent_mono_ms);
        return;
    }
    w->lease_lost = true;
    rt_log(RT_LOG_WARN, NULL, "worker %d: lease lost (%s); the step starts nothing more", w->index,
           all_still_ours ? "the renewal answered after the lease's deadline" : "another worker holds it now");
    rt_metrics_counter_add("ratchet_step_lease_lost_total", "at", "renew", 1);
}

/* Extends the leases of everything the workers hold, every lease/3. */
static void *keeper_main(void *arg)
{
    rt_engine *e = arg;
    rt_store *st = NULL;
    /* At least every second, so a cancelled run's running step stops promptly. */
    int64_t period = e->cfg->lease_ms / 3 > 0 ? e->cfg->lease_ms / 3 : 1;
    if (period > 1000)
        period = 1000;
    int64_t next = rt_mono_ms() + period;
    while (!e->stopping || e->live_workers > 0) {
        if (rt_mono_ms() < next) {
            sleep_ms(50);
            continue;
        }
        next = rt_mono_ms() + period;
        if ((!st || !rt_store_healthy(st)) && !ensure_store(e, &st, "lease keeper"))
            break;
        for (int i = 0; i < e->n_workers; i++) {
            worker *w = &e->workers[i];
            int64_t ids[MAX_HELD];
            pthread_mutex_lock(&w->held_mu);
            size_t n = w->n_held;
            uint64_t gen = w->held_gen;
            memcpy(ids, w->held, n * sizeof ids[0]);
            pthread_mutex_unlock(&w->held_mu);
            if (n == 0)
                continue;
            rt_error err;
            bool ended = false;
            size_t renewed = 0;
            int64_t sent = rt_mono_ms(); /* before the statement: the new lease ends later */
            rt_status rs = rt_store_renew(st, w->owner, ids, n, e->cfg->lease_ms, &ended, &renewed, &err);
            if (rs != RT_OK)
                rt_log(RT_LOG_WARN, NULL, "lease keeper: %s", err.msg);
            pthread_mutex_lock(&w->held_mu);
            if (ended && w->held_gen == gen) /* its run was cancelled or ended: stop the step (exec kills its group) */
                w->cancelled = 1;
            if (rs == RT_OK && w->held_gen == gen)
                lease_renewed(w, sent, renewed == n);
            pthread_mutex_unlock(&w->held_mu);
        }
    }
    rt_store_close(st);
    return NULL;
}

/* Ends runs past their deadlines, every second, on its own connection: a slow sweep (the
 * on_failure runs of many ended runs) never makes a lease renewal late. A full pass (or one
 * that set a failing run aside) is followed by the next at once, so a mass expiry (a backlog
 * behind an outage) ends in seconds instead of at RT_SWEEP_BATCH runs a second, which claims
 * meanwhile step over. */
static void *sweeper_main(void *arg)
{
    rt_engine *e = arg;
    rt_store *st = NULL;
    json_t *aside = json_object(); /* sweep_deadlines */
    int64_t next = rt_mono_ms() + 1000;
    while (!e->stopping) {
        if (rt_mono_ms() < next) {
            sleep_ms(50);
            continue;
        }
        next = rt_mono_ms() + 1000;
        if ((!st || !rt_store_healthy(st)) && !ensure_store(e, &st, "deadline sweeper"))
            break;
        while (!e->stopping && sweep_deadlines(e, st, aside))
            ;
    }
    json_decref(aside);
    rt_store_close(st);
    return NULL;
}

rt_status rt_engine_new(const rt_config *cfg, rt_engine **out, rt_error *err)
{
    rt_engine *e = calloc(1, sizeof *e);
    if (!e)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    e->cfg = cfg;
    e->env.database_url = cfg->database_url;
    e->env.app_database_url = cfg->app_database_url;
    e->env.workflows_dir = cfg->workflows;
    e->env.http_addr = cfg->http_addr;
    e->env.http_allow_engine_api = cfg->http_step_allow_engine_api;
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    char nonce[9];
    unsigned char rnd[4];
    rt_random_bytes(rnd, sizeof rnd);
    snprintf(nonce, sizeof nonce, "%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
    /* host:pid:nonce — unique per process even across pid reuse. */
    snprintf(e->owner_prefix, sizeof e->owner_prefix, "%s:%d:%s:", host, (int)getpid(), nonce);
    e->n_workers = cfg->workers;
    e->workers = calloc((size_t)e->n_workers, sizeof *e->workers);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->wake, NULL);
    pthread_cond_init(&e->idle, NULL);
    pthread_mutex_init(&e->cache_mu, NULL);
    for (int i = 0; i < e->n_workers; i++) {
        worker *w = &e->workers[i];
        w->e = e;
        w->index = i;
        snprintf(w->owner, sizeof w->owner, "%sw%d", e->owner_prefix, i);
        w->claim_us = calloc(CLAIM_SAMPLES, sizeof *w->claim_us);
        pthread_mutex_init(&w->held_mu, NULL);
    }
    *out = e;
    return RT_OK;
}

void rt_engine_set_workflows(rt_engine *e, const rt_workflow_set *set)
{
    e->set = set;
}

void rt_engine_set_publishers(rt_engine *e, struct rt_bus *amqp, struct rt_bus *nats)
{
    e->env.bus_amqp = amqp;
    e->env.bus_nats = nats;
}

rt_status rt_engine_start(rt_engine *e, rt_error *err)
{
    if (rt_progress_start(e->cfg, &e->progress, err) != RT_OK)
        return err->code;
    e->live_workers = e->n_workers;
    for (int i = 0; i < e->n_workers; i++) {
        if (pthread_create(&e->workers[i].thread, NULL, worker_main, &e->workers[i]) != 0)
            return rt_error_set(err, RT_ERR_INTERNAL, "cannot start worker thread %d", i);
    }
    if (pthread_create(&e->waker, NULL, waker_main, e) != 0 || pthread_create(&e->keeper, NULL, keeper_main, e) != 0 ||
        pthread_create(&e->sweeper, NULL, sweeper_main, e) != 0)
        return rt_error_set(err, RT_ERR_INTERNAL, "cannot start engine threads");
    e->started = true;
    if (e->cfg->run_at_ingest)
        rt_ingest_set_runner(run_at_ingest, after_ingest, e);
    rt_log(RT_LOG_INFO, NULL, "engine started: %d workers, lease %lld ms, owner %s", e->n_workers,
           (long long)e->cfg->lease_ms, e->owner_prefix);
    return RT_OK;
}

void rt_engine_stop(rt_engine *e, int64_t grace_ms)
{
    if (!e->started)
        return;
    if (e->cfg->run_at_ingest)
        rt_ingest_unset_runner(e); /* waits for a batch running first steps */
    e->stopping = 1;
    wake_all(e);
    int64_t deadline = rt_mono_ms() + grace_ms;
    pthread_mutex_lock(&e->mu);
    while (e->live_workers > 0) {
        int64_t left = deadline - rt_mono_ms();
        if (left <= 0)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t step = left < 100 ? left : 100;
        int64_t ns = ts.tv_nsec + step * 1000000;
        ts.tv_sec += ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&e->idle, &e->mu, &ts);
    }
    int left_running = e->live_workers;
    pthread_mutex_unlock(&e->mu);
    if (left_running > 0) {
        rt_log(RT_LOG_WARN, NULL, "grace period over: cancelling %d in-flight step(s)", left_running);
        e->force = 1;
        for (int i = 0; i < e->n_workers; i++)
            e->workers[i].cancelled = 1;
    }
    for (int i = 0; i < e->n_workers; i++)
        pthread_join(e->workers[i].thread, NULL);
    pthread_join(e->waker, NULL);
    pthread_join(e->keeper, NULL);
    pthread_join(e->sweeper, NULL);
    rt_progress_stop(e->progress); /* after the workers: their last reports are written */
    e->progress = NULL;
    /* Whatever this process still holds goes back to the queue at once. */
    rt_store *st = NULL;
    rt_error err;
    int released = 0;
    if (rt_store_open(e->cfg->database_url, &st, &err) == RT_OK &&
        rt_store_release(st, e->owner_prefix, &released, &err) == RT_OK) {
        if (released > 0)
            rt_log(RT_LOG_INFO, NULL, "released %d lease(s)", released);
    } else {
        rt_log(RT_LOG_WARN, NULL, "could not release leases (they expire on their own): %s", err.msg);
    }
    rt_store_close(st);
    e->started = false;
}

void rt_engine_free(rt_engine *e)
{
    if (!e)
        return;
    for (int i = 0; i < e->n_workers; i++) {
        rt_store_close(e->workers[i].store);
        free(e->workers[i].claim_us);
        pthread_mutex_destroy(&e->workers[i].held_mu);
    }
    free(e->workers);
    for (size_t i = 0; i < e->n_cache; i++)
        rt_workflow_free(e->cache[i]);
    free(e->cache);
    pthread_mutex_destroy(&e->mu);
    pthread_mutex_destroy(&e->cache_mu);
    pthread_cond_destroy(&e->wake);
    pthread_cond_destroy(&e->idle);
    free(e);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

uint64_t rt_engine_steps_run(rt_engine *e)
{
    uint64_t n = 0;
    for (int i = 0; i < e->n_workers; i++)
        n += atomic_load_explicit(&e->workers[i].steps_run, memory_order_relaxed);
    return n;
}

void rt_engine_stats_get(rt_engine *e, rt_engine_stats *out)
{
    memset(out, 0, sizeof *out);
    size_t total = 0;
    for (int i = 0; i < e->n_workers; i++) {
        worker *w = &e->workers[i];
        out->claims += w->claims;
        out->steps += atomic_load(&w->steps_run);
        total += w->warm_claims < CLAIM_SAMPLES ? w->warm_claims : CLAIM_SAMPLES;
        if (w->first_claim_us / 1000.0 > out->claim_first_ms)
            out->claim_first_ms = w->first_claim_us / 1000.0;
    }
    if (total == 0)
        return;
    uint32_t *all = malloc(total * sizeof *all);
    if (!all)
        return;
    size_t k = 0;
    for (int i = 0; i < e->n_workers; i++) {
        worker *w = &e->workers[i];
        size_t n = w->warm_claims < CLAIM_SAMPLES ? w->warm_claims : CLAIM_SAMPLES;
        if (w->claim_us)
            memcpy(all + k, w->claim_us, n * sizeof *all);
        k += n;
    }
    qsort(all, total, sizeof *all, cmp_u32);
    out->claim_p50_ms = all[total / 2] / 1000.0;
    out->claim_p99_ms = all[(total * 99) / 100 < total ? (total * 99) / 100 : total - 1] / 1000.0;
    free(all);
}
