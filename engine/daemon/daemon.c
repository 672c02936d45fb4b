/* daemon.c — serve's start-up and shutdown (see daemon.h). Each component is one row of
 * `components`: a start that leaves nothing behind when it fails, and a stop. Shutdown
 * walks the rows that started backwards, so the order is written once. */
#include "daemon.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>

#include "alerts.h"
#include "api.h"
#include "approval.h"
#include "bus.h"
#include "executor.h"
#include "gate.h"
#include "intake.h"
#include "log.h"
#include "metrics.h"
#include "scheduler.h"
#include "store.h"
#include "workflow.h"

#define EXIT_USAGE 2

void rt_daemon_wire(void)
{
    rt_run_gate_set(&rt_approval_gate); /* DESIGN §6: the gate comes first, on every path */
}

void rt_daemon_unwire(void)
{
    rt_bus_shutdown(); /* cnats' process-wide state, after every bus is freed */
}

typedef struct serve_state {
    const rt_config *cfg;
    rt_workflow_set *workflows;
    rt_intake *intake;
    rt_engine *engine;
    rt_scheduler *sched;
    rt_alerts *alerts;
    rt_api *api;
} serve_state;

typedef struct component {
    const char *name; /* prefix of its start error in the log; NULL: the message says it all */
    rt_status (*start)(serve_state *d, rt_error *err);
    void (*stop)(serve_state *d);
    int fail_exit;    /* exit status when its start fails; 0: 2 for RT_ERR_INVALID, else 1;
                       * -1: optional, serve goes on without it */
} component;

static void load_error(void *arg, const char *file, const rt_error *err)
{
    (void)arg;
    (void)file;
    rt_metrics_counter_add("ratchet_bad_input_total", "kind", "workflow", 1);
    fprintf(stderr, "error: %s\n", err->msg);
}

/* The database (waited for: serve may start before PostgreSQL), its migrations, and the
 * workflows from cfg->workflows, stored so the API and other processes see them. */
/* err as "prefix: message" with code, which sets serve's exit status (rt_daemon_run). */
static rt_status prefixed(rt_error *err, rt_status code, const char *prefix)
{
    rt_error_prefix(err, "%s", prefix);
    err->code = code;
    return code;
}

static rt_status start_workflows(serve_state *d, rt_error *err)
{
    rt_store *st = NULL;
    int64_t delay = 200;
    while (rt_store_open(d->cfg->database_url, &st, err) != RT_OK) {
        rt_log(RT_LOG_WARN, NULL, "%s; retrying in %lld ms", err->msg, (long long)delay);
        struct timespec ts = {.tv_sec = delay / 1000, .tv_nsec = (delay % 1000) * 1000000};
        nanosleep(&ts, NULL);
        delay = delay * 2 > 5000 ? 5000 : delay * 2;
    }
    int applied = 0;
    rt_status s = rt_store_migrate(st, &applied, err);
    if (s != RT_OK) {
        rt_store_close(st);
        return prefixed(err, RT_ERR_UNAVAILABLE, "migrate");
    }
    if (applied)
        rt_log(RT_LOG_INFO, NULL, "applied %d migration(s)", applied);
    if (rt_workflow_load_dir(d->cfg->workflows, &d->workflows, load_error, NULL, err) != RT_OK) {
        rt_store_close(st);
        return prefixed(err, RT_ERR_INVALID, "workflows");
    }
    rt_workflow_set *set = d->workflows;
    for (size_t i = 0; i < set->n; i++) {
        if (rt_store_put_workflow(st, set->items[i], err) != RT_OK)
            rt_log(RT_LOG_WARN, NULL, "storing workflow %s: %s", set->items[i]->id, err->msg);
    }
    rt_log(RT_LOG_INFO, NULL, "loaded %zu workflow(s) from %s (%zu with errors)", set->n, d->cfg->workflows,
           set->n_errors);
    rt_store_close(st);
    return RT_OK;
}

static void stop_workflows(serve_state *d)
{
    rt_workflow_set_free(d->workflows);
}

/* Broker consumers, publishers, event retention. */
static rt_status start_intake(serve_state *d, rt_error *err)
{
    return rt_intake_start(d->cfg, d->workflows, &d->intake, err);
}

static void stop_intake(serve_state *d)
{
    rt_intake_stop(d->intake); /* after the engine: its publish steps use the publishers */
}

static rt_status start_engine(serve_state *d, rt_error *err)
{
    rt_status s = rt_engine_new(d->cfg, &d->engine, err);
    if (s != RT_OK)
        return s;
    rt_engine_set_publishers(d->engine, rt_intake_publisher(d->intake, "amqp"), rt_intake_publisher(d->intake, "nats"));
    rt_engine_set_workflows(d->engine, d->workflows);
    s = rt_engine_start(d->engine, err);
    if (s != RT_OK) {
        rt_engine_free(d->engine);
        d->engine = NULL;
    }
    return s;
}

static void stop_engine(serve_state *d)
{
    rt_engine_stop(d->engine, d->cfg->shutdown_grace_ms);
    rt_engine_free(d->engine);
}

/* Syncs the schedules, then fires ticks unless disabled. */
static rt_status start_scheduler(serve_state *d, rt_error *err)
{
    rt_status s = rt_scheduler_new(d->cfg, d->workflows, &d->sched, err);
    if (s == RT_OK)
        s = rt_scheduler_start(d->sched, err);
    if (s != RT_OK) {
        rt_scheduler_free(d->sched);
        d->sched = NULL;
    }
    return s;
}

static void stop_scheduler(serve_state *d)
{
    rt_scheduler_free(d->sched); /* stops it: no tick fires once the engine stops */
}

/* ratchet.alert.* events; optional. */
static rt_status start_alerts(serve_state *d, rt_error *err)
{
    rt_status s = rt_alerts_start(d->cfg, d->workflows, &d->alerts, err);
    if (s != RT_OK) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        rt_error_set(err, s, "%s (no alert events from this process)", msg);
    }
    return s;
}

static void stop_alerts(serve_state *d)
{
    rt_alerts_stop(d->alerts);
}

/* The HTTP API: last to start, first to stop. */
static rt_status start_api(serve_state *d, rt_error *err)
{
    return rt_api_start(d->cfg, d->workflows, &d->api, err);
}

static void stop_api(serve_state *d)
{
    rt_api_stop(d->api);
}

static const component components[] = {
    {NULL, start_workflows, stop_workflows, 0},          /* its errors name migrate: or workflows: */
    {"brokers", start_intake, stop_intake, EXIT_USAGE},
    {NULL, start_engine, stop_engine, 1},
    {"scheduler", start_scheduler, stop_scheduler, 1},
    {"alerts", start_alerts, stop_alerts, -1},
    {"http", start_api, stop_api, 0},
};
#define N_COMPONENTS (sizeof components / sizeof components[0])

/* Waits for SIGTERM or SIGINT (SIGHUP reloads the API's tokens); returns the signal. */
static int wait_for_stop(serve_state *d, const sigset_t *set)
{
    int sig = 0;
    for (;;) {
        if (sigwait(set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            rt_error hup_err; /* the API's tokens file; workflows are not reloaded yet */
            if (rt_api_reload_tokens(d->api, &hup_err) != RT_OK)
                rt_log(RT_LOG_ERROR, NULL, "SIGHUP: tokens not reloaded, the old ones stay: %s", hup_err.msg);
            continue;
        }
        return sig;
    }
}

/* Configuration checked before anything starts: the API's address and tokens file, the
 * approvers. */
static int check_config(const rt_config *cfg)
{
    rt_error err;
    if (rt_api_check(cfg, &err) != RT_OK ||
        rt_approval_configure(cfg->approvers_file, cfg->approval_skew_ms, &err) != RT_OK) {
        fprintf(stderr, "ratchet serve: %s\n", err.msg);
        return EXIT_USAGE;
    }
    return 0;
}

int rt_daemon_run(const rt_config *cfg)
{
    int rc = check_config(cfg);
    if (rc)
        return rc;
    /* Signals are taken by sigwait; every thread inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    serve_state d = {.cfg = cfg};
    size_t started = 0; /* rows whose stop runs at shutdown (an optional row that failed too:
                         * every stop takes the NULL its failed start left) */
    bool stopping = false; /* a component failed after the engine ran: log the shutdown */
    for (; started < N_COMPONENTS; started++) {
        const component *c = &components[started];
        rt_error err;
        if (c->start(&d, &err) == RT_OK)
            continue;
        rt_log(RT_LOG_ERROR, NULL, "%s%s%s", c->name ? c->name : "", c->name ? ": " : "", err.msg);
        if (c->fail_exit < 0)
            continue;
        rc = c->fail_exit ? c->fail_exit : err.code == RT_ERR_INVALID ? EXIT_USAGE : 1;
        stopping = c->start == start_api;
        break;
    }
    if (!rc || stopping) {
        int sig = rc ? 0 : wait_for_stop(&d, &set);
        rt_log(RT_LOG_INFO, NULL, "%s: stopping (grace %lld ms)",
               sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "HTTP API", (long long)cfg->shutdown_grace_ms);
    }
    while (started-- > 0)
        components[started].stop(&d);
    if (!rc || stopping)
        rt_log(RT_LOG_INFO, NULL, "stopped");
    return rc;
}
