/* step.h — the one descriptor every built-in step type exports (name, validate, execute,
 * optional cancel), and the context/result an execution sees. steps/registry.c lists them. */
#ifndef RT_STEP_H
#define RT_STEP_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "status.h"

typedef enum rt_step_outcome {
    RT_STEP_OK = 0,   /* output is the step's result */
    RT_STEP_FAIL,     /* error set; retriable says whether another attempt may help */
    RT_STEP_SUSPEND,  /* wait until resume_at_ms (or an outside wake-up); state is kept */
} rt_step_outcome;

/* Settings a step may need, owned by the engine, read-only for steps. */
typedef struct rt_step_env {
    const char *database_url;     /* the engine's database */
    const char *app_database_url; /* RATCHET_APP_DATABASE_URL, or NULL: use database_url */
    const char *workflows_dir;
    /* Process-wide publishers (engine/run/bus.h; rt_bus_publish is thread-safe), or NULL when
     * that broker is not configured. The engine owns them. */
    struct rt_bus *bus_amqp;
    struct rt_bus *bus_nats;
    /* The engine's own HTTP API (RATCHET_HTTP_ADDR, "host:port", or NULL) and whether a
     * templated `http` URL may reach it (RATCHET_HTTP_STEP_ALLOW_ENGINE_API): steps/http.c. */
    const char *http_addr;
    bool http_allow_engine_api;
} rt_step_env;

typedef struct rt_step_ctx {
    const rt_step_env *env;
    const char *workflow_id;
    const char *run_id;
    const char *step_id;
    const char *step_key;    /* "run_id:step_id" — an idempotency key for the outside world */
    int attempt;             /* 1 for the first attempt */
    int64_t fence;           /* fencing token: grows with every claim of the step, so the
                              * outside world can refuse a writer whose lease ran out (0: the
                              * step runs unleased, inside the engine's transaction) */
    int64_t deadline_mono_ms; /* rt_mono_ms() value after which the step must give up; 0 = none */
    json_t *context;         /* borrowed: the expression context (event, steps, run, ...) */
    json_t *state;           /* borrowed: what the last RT_STEP_SUSPEND left, or NULL */
    volatile sig_atomic_t *cancelled; /* set to 1 when the run is cancelled or the engine stops */
    const json_t *raw_with;  /* borrowed, may be NULL: `with` as the definition has it, before
                              * rendering (which values a template chose: steps/http.c) */
    const char *traceparent; /* may be NULL: W3C traceparent of this attempt's span, for
                              * what the step calls or publishes (engine/run/run_trace.h) */
    /* May be NULL. A long step's latest progress ({done, total, message}; progress is
     * borrowed): the engine keeps it for `show`, the API and the dashboard, writing it at
     * most once a second per step. Never blocks; callable from any thread of the step. */
    void (*progress)(const struct rt_step_ctx *ctx, json_t *progress);
    void *progress_arg;      /* the engine's, for progress */
} rt_step_ctx;

typedef struct rt_step_result {
    rt_step_outcome outcome;
    json_t *output;     /* owned: the result (RT_STEP_OK); NULL means JSON null */
    bool retriable;     /* RT_STEP_FAIL: may another attempt succeed? */
    char error[RT_ERROR_MAX];
    json_t *error_detail; /* owned, optional: e.g. {"exit_code":3,"stderr":"..."} */
    int64_t resume_at_ms; /* RT_STEP_SUSPEND: wall-clock ms to wake at (0 = only when woken) */
    json_t *state;        /* owned, RT_STEP_SUSPEND: kept and handed back on resume */
    int64_t retry_after_ms; /* RT_STEP_FAIL, optional: the outside asked to wait this long */
    json_t *emit;           /* owned, RT_STEP_OK, optional: an event envelope the engine stores
                             * (triggers on it, publishes it through its outbox) in the commit
                             * that records the result (publish with no broker configured) */
} rt_step_result;

/* How a step type suspends (RT_STEP_SUSPEND) and what wakes it: the executor, intake and
 * the approval gate read this instead of naming step types. */
typedef enum rt_step_wait {
    RT_STEP_WAIT_NONE = 0, /* never suspends */
    RT_STEP_WAIT_TIMER,    /* a timer (sleep): its run shows `sleeping` */
    RT_STEP_WAIT_EVENT,    /* an event named by with.event (wait_for_event): registered waits */
    RT_STEP_WAIT_RUN,      /* a child run ending (invoke) */
    RT_STEP_WAIT_APPROVAL, /* a signed decision (approval) */
} rt_step_wait;

typedef struct rt_step_type {
    const char *name;
    rt_step_wait wait;
    /* In-process, fast and side-effect free on the outside world (transform, log): the
     * executor may chain several of them in one claim and commit. */
    bool inline_ok;
    /* Returns at once without waiting on the outside world (transform, log, sleep, which
     * only records a wake-up). Steps that are not quick (exec, http, sql) are claimed one
     * at a time so a slow one never holds a batch of quick ones back. */
    bool quick;
    /* Checks the raw `with` of a workflow file at load time. Values may still hold
     * ${{ }} templates, which are checked elsewhere; validate only what is fixed. */
    rt_status (*validate)(json_t *with, rt_error *err);
    /* Runs the step with its rendered input `with` (borrowed). Fills res. */
    void (*execute)(rt_step_ctx *ctx, json_t *with, rt_step_result *res);
} rt_step_type;

/* Helpers for step implementations. */
void rt_step_fail(rt_step_result *res, bool retriable, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void rt_step_result_clear(rt_step_result *res);
/* Whether a `with` value is a ${{ }} template still to be rendered: at load time
 * (rendered == false) such strings are taken on trust and checked once rendered. */
bool rt_step_is_template(const json_t *v, bool rendered);
/* Reads the optional duration `key` of `with` ("timeout": "30s") into *ms and its text into
 * *text (borrowed from with); absent, or a template at load time, leaves both untouched.
 * Messages name it as `step "key"`. */
rt_status rt_step_duration_option(json_t *with, const char *key, bool rendered, const char *step,
                                  int64_t *ms, const char **text, rt_error *err);

/* The registry (steps/registry.c). */
const rt_step_type *rt_step_type_find(const char *name);
/* NULL-terminated list of all step types. */
const rt_step_type *const *rt_step_types(void);

#endif
