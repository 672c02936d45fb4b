/* workflow.h — loading and validating workflow definitions (DESIGN §3): one JSON file
 * each, every rule checked, errors naming file, JSON path and line/column. */
#ifndef RT_WORKFLOW_H
#define RT_WORKFLOW_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "step.h"

#define RT_WORKFLOW_MAX_BYTES (4u << 20) /* a workflow file larger than this is refused */
#define RT_WORKFLOW_MAX_STEPS 256

typedef enum rt_priority {
    RT_PRIORITY_CRITICAL = 0,
    RT_PRIORITY_HIGH = 1,
    RT_PRIORITY_NORMAL = 2,
    RT_PRIORITY_LOW = 3,
} rt_priority;

typedef enum rt_backoff {
    RT_BACKOFF_FIXED = 0,
    RT_BACKOFF_LINEAR,
    RT_BACKOFF_EXPONENTIAL,
} rt_backoff;

typedef struct rt_retry_policy {
    int max_attempts;  /* total attempts, >= 1; default 3 */
    rt_backoff backoff; /* default exponential */
    int64_t delay_ms;  /* default 1s */
    int64_t max_delay_ms; /* 0 = no cap */
    bool jitter;
} rt_retry_policy;

typedef enum rt_trigger_kind {
    RT_TRIGGER_CRON = 0,
    RT_TRIGGER_EVENT,
} rt_trigger_kind;

typedef enum rt_catch_up {
    RT_CATCH_UP_LATEST = 0,
    RT_CATCH_UP_ALL,
    RT_CATCH_UP_NONE,
} rt_catch_up;

typedef struct rt_trigger {
    rt_trigger_kind kind;
    char *cron;       /* RT_TRIGGER_CRON */
    char *timezone;   /* default "UTC" */
    rt_catch_up catch_up;
    char *event;      /* RT_TRIGGER_EVENT: exact name or NATS-style wildcard */
    char *if_expr;    /* optional */
} rt_trigger;

typedef struct rt_step_def {
    char *id;
    char *uses;
    const rt_step_type *type; /* resolved from uses */
    json_t *with;             /* owned; {} when absent */
    char **needs;             /* ids of the steps this one waits for */
    size_t n_needs;
    size_t *need_idx;         /* the same, as indexes into rt_workflow.steps */
    char *if_expr;            /* optional */
    int64_t timeout_ms;       /* 0 = none */
    bool has_retries;
    rt_retry_policy retries;  /* valid when has_retries */
    bool continue_on_error;
    char *for_each;           /* optional expression giving an array */
    int for_each_concurrency; /* 0 = unlimited */
} rt_step_def;

typedef struct rt_workflow {
    char *id;
    char *name;
    char *file;       /* where it was loaded from (for messages), or NULL */
    bool enabled;
    bool system;
    bool on_resume_skip;       /* on_resume: "skip" (default "run"): what resume does with held runs */
    rt_priority priority;
    int64_t timeout_ms;        /* 0 = none */
    int64_t start_timeout_ms;  /* 0 = none */
    int64_t sla_ms;            /* 0 = none: past it an unfinished run raises an alert (run/alerts.c) */
    rt_retry_policy retries;   /* workflow default (max_attempts 3 when absent) */
    json_t *output;            /* optional template for the run's output; owned */
    rt_trigger *triggers;
    size_t n_triggers;
    rt_step_def *steps;
    size_t n_steps;
    /* Flow-control and approval blocks, validated for shape and kept as JSON: owned
     * references that share structure with `definition` (read-only). Absent keys mean:
     * concurrency.key/throttle.key/debounce.key/singleton.key: one global bucket;
     * singleton.mode "skip"; throttle.burst: none; debounce.timeout: none;
     * approval.timeout: none. approval.required_for and .approvers are always present. */
    json_t *concurrency, *throttle, *debounce, *singleton, *batch_events, *approval,
        *cancel_on, *on_failure;
    char *idempotency;
    json_t *definition;  /* owned: the whole definition as loaded */
    char hash[65];       /* sha256 hex of the canonical definition (rt_json_canonical). A
                          * definition read back from jsonb may hash differently (jsonb
                          * rewrites 1e1 as 10): keep the hash that was pinned. */
} rt_workflow;

/* The defaults of DESIGN §3: 3 attempts, exponential, 1s delay, no cap, no jitter.
 * A step's `retries` starts from its workflow's policy and overrides the keys it gives. */
rt_retry_policy rt_retry_policy_default(void);

/* Builds a workflow from a parsed definition (borrowed; the workflow keeps its own
 * reference, and `with`, `output` and the blocks share its structure, so it must not be
 * changed afterwards). Deterministic: the same definition always gives the same result,
 * which is how a pinned definition is rebuilt from the database. `file` (may be NULL)
 * prefixes messages: "workflows/x.json: $.steps[1].uses: unknown step type \"htp\"
 * (did you mean \"http\"? known: transform, log, ...)". */
rt_status rt_workflow_from_json(json_t *def, const char *file, rt_workflow **out, rt_error *err);

/* Parses text (syntax errors name line and column) and then calls rt_workflow_from_json. */
rt_status rt_workflow_parse(const char *text, size_t len, const char *file, rt_workflow **out,
                            rt_error *err);

/* Reads and parses one file. */
rt_status rt_workflow_load_file(const char *path, rt_workflow **out, rt_error *err);

void rt_workflow_free(rt_workflow *wf);

/* Index of a step by id, or -1. */
int rt_workflow_step_index(const rt_workflow *wf, const char *step_id);

/* The concurrency key of a run of wf started by event (borrowed): "<workflow>:<value of
 * concurrency.key>", or "<workflow>:*" without a key; *limit gets concurrency.limit.
 * Returns false (and *limit 0) when the workflow has no concurrency block. A key that
 * fails to evaluate counts as null. */
bool rt_workflow_concurrency_key(const rt_workflow *wf, json_t *event, char *buf, size_t len, int *limit);

/* All workflows of one directory. A bad file is reported through on_error and skipped;
 * duplicate ids are errors for the later file. */
typedef struct rt_workflow_set {
    rt_workflow **items;
    size_t n;
    size_t n_errors;
    /* The runtime registry (workflow_live.h): a long-lived component holds the live
     * handle (live set, n 0) and takes a snapshot with rt_workflow_set_acquire for each
     * piece of work; a snapshot knows its owner and how many hold it. Both NULL/0 for a
     * plain set, which acquire hands back as it is. */
    struct rt_workflow_live *live;  /* the live handle: the registry it stands for */
    struct rt_workflow_live *owner; /* a snapshot: the registry that frees it */
    int refs;                       /* a snapshot: holders (guarded by the owner's mutex) */
} rt_workflow_set;

typedef void (*rt_workflow_error_fn)(void *arg, const char *file, const rt_error *err);

/* Loads every *.json in dir (sorted by name; a path to a single file also works).
 * Returns RT_OK even if some files were bad (see set->n_errors); an unreadable dir is an
 * error. Files whose names start with "." are skipped. */
rt_status rt_workflow_load_dir(const char *dir, rt_workflow_set **out, rt_workflow_error_fn on_error,
                               void *arg, rt_error *err);
void rt_workflow_set_free(rt_workflow_set *set);
rt_workflow *rt_workflow_set_find(const rt_workflow_set *set, const char *id);

/* Does an event name match a trigger pattern ("a.b", "a.*", "a.>", "*", ">")? `*` is
 * exactly one token, `>` one or more trailing tokens; case-sensitive. */
bool rt_event_name_matches(const char *pattern, const char *name);

/* Event names are 1..255 bytes of dot-separated, non-empty tokens of letters, digits,
 * '_', '-' and ':'. A pattern may also use `*` as a whole token and `>` as the whole
 * last token. The message names what is wrong. */
rt_status rt_event_name_check(const char *name, rt_error *err);
rt_status rt_event_pattern_check(const char *pattern, rt_error *err);

/* ^[a-z0-9][a-z0-9._-]{0,127}$ — workflow and step ids. */
bool rt_workflow_id_valid(const char *id);

const char *rt_priority_name(rt_priority p);
const char *rt_backoff_name(rt_backoff b);
const char *rt_catch_up_name(rt_catch_up c);

/* Does a run of wf started by event (borrowed) wait for approval? True when the workflow
 * has an `approval` block whose required_for holds the event's actor.type ("service" when
 * absent). */
bool rt_workflow_gates(const rt_workflow *wf, const json_t *event);

/* Does wf have a gate (an `approval` block or an approval step)? Then the brokers must
 * deliver ratchet.approval.decided (intake subscribes to it). */
bool rt_workflow_wants_decisions(const rt_workflow *wf);

#endif
