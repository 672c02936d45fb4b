/* alerts.c — alert events (alerts.h). One thread per serve process checks the database
 * every RATCHET_ALERT_INTERVAL; an alert is an ordinary event stored through ingest with
 * transport "engine", so it reaches the brokers through the outbox and can trigger
 * workflows. Several processes check the same database: an alert's id is derived from its
 * kind (and run, step and attempt) and the database clock's RATCHET_ALERT_REPEAT period, so
 * they store it once; one that stays raised is stored again once RATCHET_ALERT_REPEAT has
 * passed since the last one. */
#include "alerts.h"
#include "workflow_live.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "store_alerts.h"
#include "util.h"

#define FAILURE_LOG_EVERY_MS 60000 /* a failing check is logged at most this often */
#define LONG_STEPS_LIMIT 100       /* execution_timeout candidates looked at per check */
#define TOP_WORKFLOWS 5            /* failure_rate_high names this many workflows */
#define SLA_CLAIM_LIMIT 100        /* sla_exceeded alerts raised per check (the rest next time) */

struct rt_alerts {
    const rt_config *cfg;
    const rt_workflow_set *set; /* alerts trigger workflows like any event */
    pthread_t thread;
    pthread_mutex_t mu; /* guards stopping */
    pthread_cond_t cond;
    bool stopping;
    /* Owned by the thread. */
    rt_store *st;
    int64_t failing_since_ms; /* mono ms of the first failed check in a row, 0 when fine */
    int64_t failure_logged_ms;
    int failures;
};

/* Seconds as JSON: an integer when whole ("window_s": 300), else a number with ms. */
static json_t *seconds_json(int64_t ms)
{
    if (ms % 1000 == 0)
        return json_integer((json_int_t)(ms / 1000));
    return json_real((double)ms / 1000.0);
}

static double round_to(double v, double unit)
{
    return round(v / unit) * unit;
}

/* Stores alert `kind` with id (unless one was stored within the repeat period: another
 * process may have stored it in the previous bucket), logs it and counts it. data is
 * borrowed. match_* narrow the repeat check to one step attempt (execution_timeout). */
static rt_status publish(rt_alerts *a, const char *kind, const char *id, json_t *data, const rt_log_ctx *lc,
                         const char *message, const char *match_run, const char *match_step, int match_attempt,
                         rt_error *err)
{
    char name[64];
    snprintf(name, sizeof name, "ratchet.alert.%s", kind);
    /* One transaction under a per-name lock: processes checking at the same moment (or
     * either side of a repeat-bucket boundary, where the ids differ) publish it once. */
    bool recent = false;
    rt_event *ev = NULL;
    rt_status s = rt_store_begin(a->st, err);
    if (s == RT_OK)
        s = rt_store_alerts_lock(a->st, name, err);
    if (s == RT_OK)
        s = rt_store_alerts_recent(a->st, name, a->cfg->alert_repeat_ms, match_run, match_step, match_attempt,
                                   &recent, err);
    if (s == RT_OK && !recent) {
        s = rt_event_new(name, data, RT_ACTOR_SYSTEM, "ratchet", NULL, id, &ev, err);
        if (s == RT_OK) {
            const rt_workflow_set *set = rt_workflow_set_acquire(a->set);
            s = rt_ingest_events_tx(set, a->st, &ev, 1, "engine", err);
            rt_workflow_set_release(set);
        }
    }
    if (s == RT_OK)
        s = rt_store_commit(a->st, err);
    else
        rt_store_rollback(a->st);
    if (s == RT_OK && !recent) {
        rt_log(RT_LOG_WARN, lc, "alert %s: %s; event %s", name, message, id);
        rt_metrics_counter_add("ratchet_alerts_total", "alert", kind, 1);
    }
    rt_event_free(ev);
    if (s != RT_OK)
        rt_error_prefix(err, "storing %s", name);
    return s;
}

/* (1) The share of runs that finished in the window and failed or timed out. */
static rt_status check_failure_rate(rt_alerts *a, int64_t bucket, int64_t *finished_out, int64_t *failed_out,
                                    rt_error *err)
{
    const rt_config *cfg = a->cfg;
    json_t *rows = NULL;
    rt_status s = rt_store_alerts_finished(a->st, cfg->alert_window_ms, &rows, err);
    if (s != RT_OK)
        return s;
    int64_t finished = 0, failed = 0;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        finished += json_integer_value(json_object_get(row, "finished"));
        failed += json_integer_value(json_object_get(row, "failed"));
    }
    *finished_out = finished;
    *failed_out = failed;
    if (finished < cfg->alert_failure_min_runs || failed * 100 < (int64_t)cfg->alert_failure_rate_pct * finished) {
        json_decref(rows);
        return RT_OK;
    }
    json_t *top = json_array();
    json_array_foreach(rows, i, row) {
        json_int_t f = json_integer_value(json_object_get(row, "failed"));
        if (f == 0 || json_array_size(top) == TOP_WORKFLOWS)
            break; /* rows come most failures first */
        json_int_t n = json_integer_value(json_object_get(row, "finished"));
        json_array_append_new(top, json_pack("{s:O, s:I, s:I, s:f}", "workflow", json_object_get(row, "workflow"),
                                             "finished", n, "failed", f, "rate",
                                             round_to((double)f / (double)n, 0.0001)));
    }
    double rate = (double)failed / (double)finished;
    json_t *data = json_pack("{s:o, s:I, s:I, s:f, s:f, s:I, s:o}", "window_s", seconds_json(cfg->alert_window_ms),
                             "finished", (json_int_t)finished, "failed", (json_int_t)failed, "rate",
                             round_to(rate, 0.0001), "threshold", cfg->alert_failure_rate_pct / 100.0, "min_runs",
                             (json_int_t)cfg->alert_failure_min_runs, "workflows", top);
    char id[96], msg[256], window[32];
    s = rt_store_engine_event_id(a->st, id, sizeof id, err, "alert:failure_rate_high:%lld", (long long)bucket);
    if (s != RT_OK) {
        json_decref(data);
        json_decref(rows);
        return s;
    }
    rt_duration_format(cfg->alert_window_ms, window, sizeof window);
    snprintf(msg, sizeof msg,
             "%lld of %lld runs (%.1f%%) that finished in the last %s failed or timed out (threshold %d%%)",
             (long long)failed, (long long)finished, rate * 100.0, window, cfg->alert_failure_rate_pct);
    s = publish(a, "failure_rate_high", id, data, NULL, msg, NULL, NULL, 0, err);
    json_decref(data);
    json_decref(rows);
    return s;
}

/* (2) The oldest runnable queue item. */
static rt_status check_backlog(rt_alerts *a, const rt_alert_backlog *b, int64_t bucket, rt_error *err)
{
    const rt_config *cfg = a->cfg;
    if (b->depth == 0 || b->oldest_age_ms <= cfg->alert_backlog_ms)
        return RT_OK;
    json_t *data = json_pack("{s:f, s:I, s:o, s:{s:s, s:s, s:s}}", "oldest_age_s",
                             round_to((double)b->oldest_age_ms / 1000.0, 0.001), "depth", (json_int_t)b->depth,
                             "threshold_s", seconds_json(cfg->alert_backlog_ms), "oldest", "run_id", b->run_id,
                             "step_id", b->step_id, "workflow", b->workflow);
    char id[96], msg[256], threshold[32];
    rt_status is = rt_store_engine_event_id(a->st, id, sizeof id, err, "alert:queue_backlog:%lld", (long long)bucket);
    if (is != RT_OK) {
        json_decref(data);
        return is;
    }
    rt_duration_format(cfg->alert_backlog_ms, threshold, sizeof threshold);
    snprintf(msg, sizeof msg, "the oldest runnable step has waited %.1f s to be claimed (threshold %s), %lld waiting",
             (double)b->oldest_age_ms / 1000.0, threshold, (long long)b->depth);
    rt_log_ctx lc = {.workflow = b->workflow, .run_id = b->run_id, .step_id = b->step_id};
    rt_status s = publish(a, "queue_backlog", id, data, &lc, msg, NULL, NULL, 0, err);
    json_decref(data);
    return s;
}

/* A step's timeout as the executor enforces it: its `timeout`, or a literal (not
 * templated) `with.timeout` when that is shorter. 0 when it has none. */
static int64_t step_timeout_ms(const json_t *step)
{
    int64_t best = 0;
    const json_t *vals[] = {json_object_get(step, "timeout"),
                            json_object_get(json_object_get(step, "with"), "timeout")};
    for (size_t i = 0; i < 2; i++) {
        const char *text = json_string_value(vals[i]);
        int64_t ms = 0;
        rt_error ignored;
        if (!text || strstr(text, "${{") || rt_duration_parse(text, &ms, &ignored) != RT_OK)
            continue;
        if (!best || ms < best)
            best = ms;
    }
    return best;
}

/* (3) Steps still running (leased by a live lease) well past their timeout: the worker
 * that holds them is stuck, since the executor stops a step at its timeout. */
static rt_status check_timeouts(rt_alerts *a, int64_t bucket, size_t *overdue_out, rt_error *err)
{
    const rt_config *cfg = a->cfg;
    json_t *rows = NULL;
    rt_status s = rt_store_alerts_long_steps(a->st, cfg->alert_timeout_grace_ms, LONG_STEPS_LIMIT, &rows, err);
    if (s != RT_OK)
        return s;
    size_t i, overdue = 0;
    json_t *row;
    json_array_foreach(rows, i, row) {
        /* A for_each step's timeout is per item, and its items run one batch after
         * another: the step as a whole may rightly run longer. */
        if (json_object_get(json_object_get(row, "step"), "for_each"))
            continue;
        int64_t timeout = step_timeout_ms(json_object_get(row, "step"));
        int64_t running = json_integer_value(json_object_get(row, "running_ms"));
        if (!timeout || running <= timeout + cfg->alert_timeout_grace_ms)
            continue;
        overdue++;
        const char *run_id = json_string_value(json_object_get(row, "run_id"));
        const char *step_id = json_string_value(json_object_get(row, "step_id"));
        const char *workflow = json_string_value(json_object_get(row, "workflow"));
        int attempt = (int)json_integer_value(json_object_get(row, "attempt"));
        json_t *data = json_pack("{s:s, s:s, s:s, s:i, s:f, s:o, s:o, s:O?}", "run_id", run_id, "step_id", step_id,
                                 "workflow", workflow, "attempt", attempt, "running_s",
                                 round_to((double)running / 1000.0, 0.001), "timeout_s", seconds_json(timeout),
                                 "grace_s", seconds_json(cfg->alert_timeout_grace_ms), "worker",
                                 json_object_get(row, "worker"));
        char id[RT_EVENT_ID_MAX + 64], hex[65], msg[256], tbuf[32];
        s = rt_store_engine_event_id(a->st, id, sizeof id, err, "alert:execution_timeout:%s:%s:%d:%lld", run_id,
                                     step_id, attempt, (long long)bucket);
        if (s == RT_OK && strlen(id) > RT_EVENT_ID_MAX) { /* step ids reach 128 characters: keep the id valid */
            rt_sha256_hex(step_id, strlen(step_id), hex);
            s = rt_store_engine_event_id(a->st, id, sizeof id, err, "alert:execution_timeout:%s:%.32s:%d:%lld", run_id,
                                         hex, attempt, (long long)bucket);
        }
        if (s != RT_OK) {
            json_decref(data);
            break;
        }
        rt_duration_format(timeout, tbuf, sizeof tbuf);
        snprintf(msg, sizeof msg, "attempt %d has run %.1f s, past its timeout %s; the worker holding it is stuck",
                 attempt, (double)running / 1000.0, tbuf);
        rt_log_ctx lc = {.workflow = workflow, .run_id = run_id, .step_id = step_id};
        s = publish(a, "execution_timeout", id, data, &lc, msg, run_id, step_id, attempt, err);
        json_decref(data);
        if (s != RT_OK)
            break;
    }
    if (s == RT_OK)
        rt_metrics_gauge_set("ratchet_steps_past_timeout", (double)overdue);
    *overdue_out = overdue;
    json_decref(rows);
    return s;
}

/* (4) Runs unfinished past their workflow's `sla` (the run goes on: `timeout` is what ends
 * one). Each raises sla_exceeded once: the claim marks the run in the transaction that
 * stores its alert (store_alerts.c), so restarts and other processes never repeat it. */
static rt_status check_sla(rt_alerts *a, int64_t *past_out, rt_error *err)
{
    json_t *wfs = json_array();
    const rt_workflow_set *set = rt_workflow_set_acquire(a->set); /* a live handle: its current snapshot */
    for (size_t i = 0; set && i < set->n; i++)
        if (set->items[i]->sla_ms > 0)
            json_array_append_new(wfs, json_string(set->items[i]->id));
    rt_workflow_set_release(set);
    *past_out = 0;
    if (json_array_size(wfs) == 0) {
        json_decref(wfs);
        rt_metrics_gauge_set("ratchet_runs_past_sla", 0);
        return RT_OK;
    }
    json_t *rows = NULL;
    rt_status s = rt_store_begin(a->st, err);
    if (s == RT_OK)
        s = rt_store_alerts_sla_claim(a->st, wfs, SLA_CLAIM_LIMIT, past_out, &rows, err);
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        char id[128];
        const char *run_id = json_string_value(json_object_get(row, "run_id"));
        if (s == RT_OK)
            s = rt_store_engine_event_id(a->st, id, sizeof id, err, "alert:sla_exceeded:%s", run_id);
        if (s != RT_OK)
            break;
        json_t *data = json_pack("{s:O, s:O, s:O, s:O, s:O, s:o, s:O, s:O, s:f}", "run_id",
                                 json_object_get(row, "run_id"), "workflow", json_object_get(row, "workflow"),
                                 "status", json_object_get(row, "status"), "entity_id",
                                 json_object_get(row, "entity_id"), "sla", json_object_get(row, "sla"), "sla_s",
                                 seconds_json(json_integer_value(json_object_get(row, "sla_ms"))), "since",
                                 json_object_get(row, "since"), "due_at", json_object_get(row, "due_at"), "late_s",
                                 round_to((double)json_integer_value(json_object_get(row, "late_ms")) / 1000.0, 0.001));
        rt_event *ev = NULL;
        s = rt_event_new("ratchet.alert.sla_exceeded", data, RT_ACTOR_SYSTEM, "ratchet", NULL, id, &ev, err);
        if (s == RT_OK)
            s = rt_ingest_events_tx(a->set, a->st, &ev, 1, "engine", err);
        rt_event_free(ev);
        json_decref(data);
    }
    if (s == RT_OK)
        s = rt_store_commit(a->st, err);
    else
        rt_store_rollback(a->st);
    json_array_foreach(rows, i, row) {
        if (s != RT_OK)
            break;
        rt_log_ctx lc = {.workflow = json_string_value(json_object_get(row, "workflow")),
                         .run_id = json_string_value(json_object_get(row, "run_id"))};
        rt_log(RT_LOG_WARN, &lc, "alert ratchet.alert.sla_exceeded: still %s past its sla %s (due %s)",
               json_string_value(json_object_get(row, "status")), json_string_value(json_object_get(row, "sla")),
               json_string_value(json_object_get(row, "due_at")));
        rt_metrics_counter_add("ratchet_alerts_total", "alert", "sla_exceeded", 1);
    }
    if (s == RT_OK)
        rt_metrics_gauge_set("ratchet_runs_past_sla", (double)*past_out);
    else
        rt_error_prefix(err, "storing ratchet.alert.sla_exceeded");
    json_decref(rows);
    json_decref(wfs);
    return s;
}

static rt_status check_all(rt_alerts *a, rt_error *err)
{
    if (!a->st || !rt_store_healthy(a->st)) {
        rt_store_close(a->st);
        a->st = NULL;
        rt_status s = rt_store_open(a->cfg->database_url, &a->st, err);
        if (s != RT_OK)
            return s;
    }
    rt_alert_backlog b;
    rt_status s = rt_store_alerts_backlog(a->st, &b, err);
    if (s != RT_OK)
        return s;
    int64_t repeat = a->cfg->alert_repeat_ms > 0 ? a->cfg->alert_repeat_ms : 1;
    int64_t bucket = b.now_ms / repeat; /* the database's clock: the same in every process */
    int64_t finished = 0, failed = 0;
    size_t overdue = 0;
    s = check_backlog(a, &b, bucket, err);
    if (s == RT_OK)
        s = check_failure_rate(a, bucket, &finished, &failed, err);
    if (s == RT_OK)
        s = check_timeouts(a, bucket, &overdue, err);
    int64_t past_sla = 0;
    if (s == RT_OK)
        s = check_sla(a, &past_sla, err);
    if (s == RT_OK)
        rt_log(RT_LOG_DEBUG, NULL,
               "alerts: checked: %lld of %lld runs finished in the window failed or timed out; %lld runnable queue "
               "item(s), the oldest due for %lld ms; %zu step(s) past their timeout; %lld run(s) past their sla",
               (long long)failed, (long long)finished, (long long)b.depth, (long long)b.oldest_age_ms, overdue,
               (long long)past_sla);
    return s;
}

/* libpq's messages span lines; a log line must not. */
static void one_line(char *s)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        char c = (*r == '\n' || *r == '\r' || *r == '\t') ? ' ' : *r;
        if (c == ' ' && (w == s || w[-1] == ' '))
            continue;
        *w++ = c;
    }
    while (w > s && w[-1] == ' ')
        w--;
    *w = '\0';
}

/* A failed check is retried next interval; the log says so once a minute, not each time. */
static void note_result(rt_alerts *a, rt_status s, rt_error *err)
{
    int64_t now = rt_mono_ms();
    if (s == RT_OK) {
        if (a->failing_since_ms)
            rt_log(RT_LOG_INFO, NULL, "alerts: checks work again after %d failure(s) in %lld s", a->failures,
                   (long long)((now - a->failing_since_ms) / 1000));
        a->failing_since_ms = 0;
        a->failures = 0;
        return;
    }
    a->failures++;
    if (!a->failing_since_ms) {
        a->failing_since_ms = now;
        a->failure_logged_ms = 0;
    }
    if (a->failure_logged_ms && now - a->failure_logged_ms < FAILURE_LOG_EVERY_MS)
        return;
    a->failure_logged_ms = now;
    one_line(err->msg);
    char every[32];
    rt_duration_format(a->cfg->alert_interval_ms, every, sizeof every);
    rt_log(RT_LOG_WARN, NULL, "alerts: check failed (%d time(s) in a row): %s; retrying every %s", a->failures,
           err->msg, every);
}

static void *alerts_main(void *arg)
{
    rt_alerts *a = arg;
    int64_t interval = a->cfg->alert_interval_ms > 0 ? a->cfg->alert_interval_ms : 1000;
    pthread_mutex_lock(&a->mu);
    while (!a->stopping) {
        pthread_mutex_unlock(&a->mu);
        struct timespec next;
        clock_gettime(CLOCK_MONOTONIC, &next);
        next.tv_sec += interval / 1000;
        next.tv_nsec += (interval % 1000) * 1000000;
        if (next.tv_nsec >= 1000000000) {
            next.tv_sec++;
            next.tv_nsec -= 1000000000;
        }
        rt_error err;
        rt_status s = check_all(a, &err); /* reconnects first when the last one broke */
        note_result(a, s, &err);
        pthread_mutex_lock(&a->mu);
        while (!a->stopping && pthread_cond_timedwait(&a->cond, &a->mu, &next) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&a->mu);
    rt_store_close(a->st);
    a->st = NULL;
    return NULL;
}

rt_status rt_alerts_start(const rt_config *cfg, const rt_workflow_set *set, rt_alerts **out, rt_error *err)
{
    *out = NULL;
    if (!cfg->alerts_enabled) {
        rt_log(RT_LOG_INFO, NULL, "alerts: off (RATCHET_ALERTS=false)");
        return RT_OK;
    }
    rt_alerts *a = calloc(1, sizeof *a);
    if (!a)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    a->cfg = cfg;
    a->set = set;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&a->mu, NULL);
    if (pthread_create(&a->thread, NULL, alerts_main, a) != 0) {
        pthread_cond_destroy(&a->cond);
        pthread_mutex_destroy(&a->mu);
        free(a);
        return rt_error_set(err, RT_ERR_INTERNAL, "cannot start the alerts thread");
    }
    char every[32], window[32], backlog[32], grace[32], repeat[32];
    rt_duration_format(cfg->alert_interval_ms, every, sizeof every);
    rt_duration_format(cfg->alert_window_ms, window, sizeof window);
    rt_duration_format(cfg->alert_backlog_ms, backlog, sizeof backlog);
    rt_duration_format(cfg->alert_timeout_grace_ms, grace, sizeof grace);
    rt_duration_format(cfg->alert_repeat_ms, repeat, sizeof repeat);
    rt_log(RT_LOG_INFO, NULL,
           "alerts: checking every %s: failure rate >= %d%% of >= %d runs in %s, backlog over %s, steps %s past "
           "their timeout; repeated every %s",
           every, cfg->alert_failure_rate_pct, cfg->alert_failure_min_runs, window, backlog, grace, repeat);
    *out = a;
    return RT_OK;
}

void rt_alerts_stop(rt_alerts *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->stopping = true;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->mu);
    free(a);
}
