/* cli.c — the `ratchet` command line. Every command reads settings from the environment
 * and flags (config.c), prints one clear line on a usage or configuration error and exits
 * 2; runtime failures exit 1. */
#include "cli.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "bench.h"
#include "bench_cron.h"
#include "bench_flow.h"
#include "cli_schedules.h"
#include "audit.h"
#include "cli_approval.h"
#include "cli_token.h"
#include "cli_workflows.h"
#include "config.h"
#include "daemon.h"
#include "event.h"
#include "ingest.h"
#include "intake.h"
#include "log.h"
#include "metrics.h"
#include "cli_runctl.h"
#include "replay.h"
#include "store.h"
#include "util.h"
#include "workflow.h"
#include "workflow_catalog.h"

#define EXIT_USAGE 2

typedef struct cli {
    rt_config cfg;
    int argc;
    char **argv;
    int pos;          /* next argument */
    const char *cmd;
} cli;

/* Parsed command options: the union of what the commands take. */
typedef struct opts {
    const char *positional[8];
    int n_positional;
    const char *data;
    const char *at;
    const char *in;
    const char *workflow;
    const char *status;
    const char *wait_timeout;
    int limit;
    int runs;
    int steps;
    const char *id;
    const char *actor_type;
    const char *actor_id;
    const char *entity;
    const char *via;
    const char *name;
    const char *raw_file;
    int count;
    const char *from;
    bool wait;
    bool json;
} opts;

/* Where each option lands in opts, and whether it is an integer (1..100000). */
typedef struct opt_field {
    const char *name;
    enum { F_BOOL, F_STR, F_INT } kind;
    size_t offset;
} opt_field;

#define OPT(f) offsetof(opts, f)

static const opt_field fields[] = {
    {"--data", F_STR, OPT(data)},         {"--at", F_STR, OPT(at)},
    {"--in", F_STR, OPT(in)},             {"--workflow", F_STR, OPT(workflow)},
    {"--status", F_STR, OPT(status)},     {"--limit", F_INT, OPT(limit)},
    {"--wait", F_BOOL, OPT(wait)},        {"--json", F_BOOL, OPT(json)},
    {"--wait-timeout", F_STR, OPT(wait_timeout)},
    {"--runs", F_INT, OPT(runs)},         {"--steps", F_INT, OPT(steps)},
    {"--id", F_STR, OPT(id)},             {"--actor-type", F_STR, OPT(actor_type)},
    {"--actor-id", F_STR, OPT(actor_id)}, {"--entity", F_STR, OPT(entity)},
    {"--via", F_STR, OPT(via)},           {"--name", F_STR, OPT(name)},
    {"--raw-file", F_STR, OPT(raw_file)}, {"--count", F_INT, OPT(count)},
    {"--from", F_STR, OPT(from)},
};

/* The commands' option tables (args.h); help texts as in `ratchet help`. */
#define O_JSON {"--json", NULL, "print JSON"}
#define O_END {NULL, NULL, NULL}
static const rt_arg_opt no_opts[] = {O_END};
static const rt_arg_opt json_opts[] = {O_JSON, O_END};
static const rt_arg_cmd serve_cmd = {"ratchet serve", NULL, 0, "run the engine (workers) on RATCHET_WORKFLOWS",
                                     no_opts, true};
static const rt_arg_cmd migrate_cmd = {"ratchet migrate", NULL, 0, "apply database migrations", no_opts, true};
static const rt_arg_cmd validate_cmd = {"ratchet validate", "[PATH...]", 8,
                                        "check workflow files (default: RATCHET_WORKFLOWS)", json_opts, true};
static const rt_arg_opt run_opts[] = {
    {"--data", "JSON", "the trigger event's data"},
    {"--at", "RFC3339", "start at this time"},
    {"--in", "DURATION", "start after this long"},
    {"--wait", NULL, "wait for the run to end; exit 0 only if it completed"},
    {"--wait-timeout", "DURATION", "how long --wait waits"},
    O_JSON,
    O_END,
};
static const rt_arg_cmd run_cmd = {"ratchet run", "WORKFLOW", 1, "start a run; prints its id", run_opts, true};
static const rt_arg_opt runs_opts[] = {
    {"--workflow", "W", "only this workflow's runs"},
    {"--status", "S", "only runs with this status"},
    {"--limit", "N", "at most N runs"},
    O_JSON,
    O_END,
};
static const rt_arg_cmd runs_cmd = {"ratchet runs", NULL, 0, "list runs, newest first", runs_opts, true};
static const rt_arg_cmd show_cmd = {"ratchet show", "RUN", 1, "one run with its steps", json_opts, true};
static const rt_arg_opt send_opts[] = {
    {"--data", "JSON", "the event's data"},
    {"--id", "ID", "the event's id (with --count: ID-0, ID-1, ...)"},
    {"--actor-type", "T", "who sends it: user, service, agent, system"},
    {"--actor-id", "A", "the actor's id"},
    {"--entity", "E", "the entity the event is about"},
    {"--via", "db|amqp|nats", "store it directly (db) or publish it to a broker"},
    O_JSON,
    {"--raw-file", "FILE", "publish these raw bytes (tests; needs --via amqp or nats)"},
    {"--count", "N", "send N copies (needs --via amqp or nats)"},
    O_END,
};
static const rt_arg_cmd send_cmd = {"ratchet send", "NAME", 1, "store an event and start the workflows it triggers",
                                    send_opts, true};
static const rt_arg_opt events_opts[] = {
    {"--name", "N", "only events with this name"},
    {"--limit", "N", "at most N events"},
    O_JSON,
    O_END,
};
static const rt_arg_cmd events_cmd = {"ratchet events", NULL, 0, "recent stored events with the runs they started",
                                      events_opts, true};
static const rt_arg_opt bench_opts[] = {
    {"--runs", "N", "how many runs"},
    {"--steps", "1|5", "steps per run"},
    O_JSON,
    O_END,
};
static const rt_arg_cmd bench_cmd = {"ratchet bench", NULL, 0,
                                     "drain N preloaded no-op runs in a scratch database", bench_opts, true};
static const rt_arg_cmd bench_events_cmd = {"ratchet bench events", NULL, 0,
                                            "ingest events/s and publish-to-first-step latency per broker",
                                            bench_opts, true};

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ratchet%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, cmd ? "; see ratchet %s --help\n" : " (see `ratchet help`)\n", cmd);
    va_end(ap);
    return EXIT_USAGE;
}

static int fail(const char *cmd, const rt_error *err)
{
    fprintf(stderr, "ratchet %s: %s\n", cmd, err->msg);
    return err->code == RT_ERR_INVALID ? EXIT_USAGE : 1;
}

/* Parses the command's arguments (args.h) into the typed view `o`. Returns true to go on;
 * false with *rc the exit status (0 after --help, 2 after a usage error). */
static bool parse_opts(cli *c, opts *o, const rt_arg_cmd *spec, int *rc)
{
    memset(o, 0, sizeof *o);
    rt_args a;
    if (!rt_args_take(spec, &c->cfg, c->argc, c->argv, c->pos, &a, rc))
        return false;
    for (int i = 0; i < a.n_pos && i < (int)(sizeof o->positional / sizeof o->positional[0]); i++)
        o->positional[o->n_positional++] = a.pos[i];
    char *base = (char *)o;
    for (int k = 0; spec->opts[k].name; k++) {
        const opt_field *f = NULL;
        for (size_t j = 0; j < sizeof fields / sizeof fields[0] && !f; j++)
            if (!strcmp(fields[j].name, spec->opts[k].name))
                f = &fields[j];
        if (!f || !a.given[k])
            continue;
        if (f->kind == F_BOOL) {
            *(bool *)(base + f->offset) = true;
        } else if (f->kind == F_STR) {
            *(const char **)(base + f->offset) = a.value[k];
        } else {
            long v = 0;
            rt_error err;
            if (rt_args_int(&a, f->name, 1, 100000, &v, &err) != RT_OK) {
                *rc = usage_error(c->cmd, "%s", err.msg);
                return false;
            }
            *(int *)(base + f->offset) = (int)v;
        }
    }
    return true;
}

static int setup(cli *c, bool need_db)
{
    rt_error err;
    if (rt_config_apply_logging(&c->cfg, &err) != RT_OK)
        return usage_error(c->cmd, "%s", err.msg);
    if (need_db && rt_config_require_database(&c->cfg, &err) != RT_OK)
        return usage_error(c->cmd, "%s", err.msg);
    return 0;
}

static int open_store(cli *c, rt_store **st)
{
    rt_error err;
    if (rt_store_open(c->cfg.database_url, st, &err) != RT_OK) {
        fprintf(stderr, "ratchet %s: %s\n", c->cmd, err.msg);
        return 1;
    }
    return 0;
}

static void print_load_error(void *arg, const char *file, const rt_error *err)
{
    (void)file;
    int *quiet = arg;
    rt_metrics_counter_add("ratchet_bad_input_total", "kind", "workflow", 1);
    if (!*quiet)
        fprintf(stderr, "error: %s\n", err->msg);
}

/* ---------- serve ---------- */

static int cmd_serve(cli *c)
{
    opts o;
    int rc;
    if (!parse_opts(c, &o, &serve_cmd, &rc) || (rc = setup(c, true)))
        return rc;
    return rt_daemon_run(&c->cfg);
}

/* ---------- migrate ---------- */

static int cmd_migrate(cli *c)
{
    opts o;
    int rc;
    if (!parse_opts(c, &o, &migrate_cmd, &rc) || (rc = setup(c, true)))
        return rc;
    rt_store *st;
    if ((rc = open_store(c, &st)))
        return rc;
    int applied = 0;
    rt_error err;
    rt_status s = rt_store_migrate(st, &applied, &err);
    rt_store_close(st);
    if (s != RT_OK)
        return fail(c->cmd, &err);
    printf("migrations: %d applied\n", applied);
    return 0;
}

/* ---------- validate ---------- */

static int cmd_validate(cli *c)
{
    opts o;
    int rc;
    if (!parse_opts(c, &o, &validate_cmd, &rc) || (rc = setup(c, false)))
        return rc;
    if (o.n_positional == 0)
        o.positional[o.n_positional++] = c->cfg.workflows;
    size_t total = 0, errors = 0;
    for (int i = 0; i < o.n_positional; i++) {
        rt_workflow_set *set = NULL;
        rt_error err;
        int quiet = 0;
        if (rt_workflow_load_dir(o.positional[i], &set, print_load_error, &quiet, &err) != RT_OK) {
            fprintf(stderr, "error: %s\n", err.msg);
            errors++;
            continue;
        }
        for (size_t k = 0; k < set->n; k++)
            printf("ok: %s (%s)\n", set->items[k]->id, set->items[k]->file ? set->items[k]->file : "-");
        total += set->n;
        errors += set->n_errors;
        rt_workflow_set_free(set);
    }
    printf("%zu workflow(s) valid, %zu error(s)\n", total, errors);
    return errors ? 1 : 0;
}

/* ---------- run ---------- */

static bool terminal(const char *status)
{
    static const char *const t[] = {"completed", "partial", "failed", "cancelled", "expired",
                                    "timed_out", "rejected", NULL};
    for (size_t i = 0; t[i]; i++)
        if (!strcmp(status, t[i]))
            return true;
    return false;
}

/* `run`'s --data, --at/--in and --wait-timeout: 0, or the exit code after saying why. */
static int run_inputs(cli *c, const opts *o, json_t **data, int64_t *run_at, int64_t *wait_ms)
{
    rt_error err;
    *run_at = 0;
    *wait_ms = 0;
    if (o->data) {
        json_error_t jerr;
        *data = json_loads(o->data, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
        if (!*data)
            return usage_error(c->cmd, "--data is not valid JSON: line %d, column %d: %s", jerr.line, jerr.column,
                               jerr.text);
    } else {
        *data = json_object();
    }
    if (o->at && rt_time_parse(o->at, run_at, &err) != RT_OK)
        return usage_error(c->cmd, "--at: %s", err.msg);
    if (o->in) {
        int64_t ms;
        if (rt_duration_parse(o->in, &ms, &err) != RT_OK)
            return usage_error(c->cmd, "--in: %s", err.msg);
        *run_at = rt_now_ms() + ms;
    }
    if (o->wait_timeout && rt_duration_parse(o->wait_timeout, wait_ms, &err) != RT_OK)
        return usage_error(c->cmd, "--wait-timeout: %s", err.msg);
    return 0;
}

/* The workflow to run: the registry's current version (what `serve` runs), or the
 * directory's when the registry does not know it (no `serve` has synced it yet). *wf points
 * into *registered or *set, which the caller frees. 0, or the exit code after saying why. */
static int run_workflow(cli *c, const char *wf_id, rt_workflow **registered, rt_workflow_set **set, rt_workflow **wf)
{
    rt_error err;
    rt_store *reg_st = NULL;
    *registered = NULL;
    *set = NULL;
    if (rt_store_open(c->cfg.database_url, &reg_st, &err) == RT_OK &&
        rt_catalog_find(reg_st, wf_id, registered, &err) == RT_ERR_NOT_FOUND && strstr(err.msg, "was removed")) {
        rt_store_close(reg_st);
        fprintf(stderr, "ratchet run: %s\n", err.msg);
        return 1;
    }
    rt_store_close(reg_st);
    int quiet = 1;
    if (!*registered && rt_workflow_load_dir(c->cfg.workflows, set, print_load_error, &quiet, &err) != RT_OK)
        return usage_error(c->cmd, "workflows: %s", err.msg);
    *wf = *registered ? *registered : rt_workflow_set_find(*set, wf_id);
    if (!*wf) {
        fprintf(stderr, "ratchet run: workflow \"%s\" not found in %s%s\n", wf_id, c->cfg.workflows,
                (*set)->n_errors ? " (some files there have errors: run `ratchet validate`)" : "");
        return 1;
    }
    if (!(*wf)->enabled) {
        fprintf(stderr, "ratchet run: workflow \"%s\" is disabled (\"enabled\": false in %s)\n", wf_id,
                (*wf)->file ? (*wf)->file : "its definition");
        return 1;
    }
    return 0;
}

/* --wait: polls the run until it ends (0 when it completed) or wait_ms passes (0: never). */
static int wait_for_run(cli *c, rt_store *st, const char *run_id, int64_t wait_ms, const char *wait_timeout)
{
    rt_error err;
    int64_t deadline = wait_ms ? rt_mono_ms() + wait_ms : 0;
    int64_t pause = 20;
    for (;;) {
        json_t *run = NULL;
        if (rt_store_get_run(st, run_id, false, &run, &err) != RT_OK)
            return fail(c->cmd, &err);
        const char *status = json_string_value(json_object_get(run, "status"));
        if (status && terminal(status)) {
            bool ok = !strcmp(status, "completed");
            const char *error = json_string_value(json_object_get(run, "error"));
            fprintf(stderr, "run %s %s%s%s\n", run_id, status, error ? ": " : "", error ? error : "");
            json_decref(run);
            return ok ? 0 : 1;
        }
        json_decref(run);
        if (deadline && rt_mono_ms() > deadline) {
            fprintf(stderr, "ratchet run: run %s still %s after --wait-timeout %s\n", run_id, status ? status : "?",
                    wait_timeout);
            return 1;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = pause * 1000000};
        nanosleep(&ts, NULL);
        pause = pause * 2 > 500 ? 500 : pause * 2;
    }
}

static int cmd_run(cli *c)
{
    opts o;
    int rc;
    if (!parse_opts(c, &o, &run_cmd, &rc) || (rc = setup(c, true)))
        return rc;
    if (o.n_positional != 1)
        return usage_error(c->cmd, "expected a workflow id: ratchet run WORKFLOW [--data JSON] [--wait]");
    if (o.at && o.in)
        return usage_error(c->cmd, "--at and --in cannot be used together");
    const char *wf_id = o.positional[0];
    json_t *data = NULL;
    int64_t run_at, wait_ms;
    rt_workflow *registered = NULL, *wf = NULL;
    rt_workflow_set *set = NULL;
    if ((rc = run_inputs(c, &o, &data, &run_at, &wait_ms)) || (rc = run_workflow(c, wf_id, &registered, &set, &wf))) {
        json_decref(data);
        rt_workflow_set_free(set);
        rt_workflow_free(registered);
        return rc;
    }
    char event_id[37];
    rt_uuid7(event_id);
    json_t *event = json_pack("{s:s, s:s, s:I, s:o, s:{s:s, s:s}, s:s}", "name", "ratchet.manual", "id", event_id,
                              "ts", (json_int_t)rt_now_ms(), "data", data, "actor", "type", "user", "id",
                              rt_os_user("cli"), "v", "1");
    json_t *trigger = json_pack("{s:s}", "type", "manual");
    rt_run_request req = {.wf = wf, .trigger = trigger, .event = event, .run_at_ms = run_at};
    rt_store *st = NULL;
    rt_error err;
    rt_status s = RT_OK;
    if (!(rc = open_store(c, &st))) /* AUDIT HOOK (audit.h): the run and its audit record commit together */
        s = rt_audit_create_run_cli(st, &req, "run.manual", json_pack("{s:s}", "workflow", wf_id), &err);
    json_decref(event);
    json_decref(trigger);
    rt_workflow_set_free(set);
    rt_workflow_free(registered);
    if (rc)
        return rc;
    if (s != RT_OK) {
        rc = fail(c->cmd, &err);
    } else if (!req.id[0]) { /* admission created nothing (idempotency, singleton skip, a paused workflow) */
        fprintf(stderr, "skipped: %s\n", req.reason[0] ? req.reason : "not created");
    } else {
        if (req.reason[0])
            fprintf(stderr, "%s\n", req.reason);
        printf("%s\n", req.id);
        fflush(stdout);
        if (o.wait)
            rc = wait_for_run(c, st, req.id, wait_ms, o.wait_timeout);
    }
    rt_store_close(st);
    return rc;
}

/* ---------- runs / show ---------- */

static const char *str_or(json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : dflt;
}

/* Seconds between two RFC 3339 strings, or -1. */
static double span(json_t *o, const char *from, const char *to)
{
    const char *a = json_string_value(json_object_get(o, from));
    const char *b = json_string_value(json_object_get(o, to));
    int64_t ta, tb;
    rt_error err;
    if (!a || !b || rt_time_parse(a, &ta, &err) != RT_OK || rt_time_parse(b, &tb, &err) != RT_OK)
        return -1;
    return (double)(tb - ta) / 1000.0;
}

static void print_json(json_t *v)
{
    char *text = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
    printf("%s\n", text ? text : "null");
    free(text);
}

static int cmd_runs(cli *c)
{
    opts o;
    int rc;
    if (!parse_opts(c, &o, &runs_cmd, &rc) || (rc = setup(c, true)))
        return rc;
    rt_store *st;
    if ((rc = open_store(c, &st)))
        return rc;
    rt_run_filter f = {.workflow = o.workflow, .status = o.status, .limit = o.limit ? o.limit : 20};
    json_t *runs = NULL;
    rt_error err;
    rt_status s = rt_store_list_runs(st, &f, &runs, &err);
    rt_store_close(st);
    if (s != RT_OK)
        return fail(c->cmd, &err);
    if (o.json) {
        print_json(runs);
    } else {
        printf("%-36s  %-24s  %-17s  %-24s  %s\n", "ID", "WORKFLOW", "STATUS", "CREATED", "DURATION");
        size_t i;
        json_t *r;
        json_array_foreach(runs, i, r) {
            double d = span(r, "started_at", "finished_at");
            char dur[32] = "-";
            if (d >= 0)
                snprintf(dur, sizeof dur, "%.3fs", d);
            printf("%-36s  %-24s  %-17s  %-24s  %s\n", str_or(r, "id", "?"), str_or(r, "workflow", "?"),
                   str_or(r, "status", "?"), str_or(r, "created_at", "-"), dur);
        }
        if (json_array_size(runs) == 0)
            printf("(no runs)\n");
    }
    json_decref(runs);
    return 0;
}

/* A step's latest progress under its line: "  progress  40/100 (40%) syncing account 40". */
static void print_progress(const json_t *p, const char *at)
{
    if (!json_is_object(p))
        return;
    json_t *done = json_object_get(p, "done"), *total = json_object_get(p, "total");
    char amount[96] = "";
    if (json_is_number(done) && json_is_number(total) && json_number_value(total) > 0)
        snprintf(amount, sizeof amount, "%g/%g (%.0f%%) ", json_number_value(done), json_number_value(total),
                 100.0 * json_number_value(done) / json_number_value(total));
    else if (json_is_number(done))
        snprintf(amount, sizeof amount, "%g ", json_number_value(done));
    const char *msg = json_string_value(json_object_get(p, "message"));
    printf("%-24s  %-10s  %s%s (at %s)\n", "", "  progress", amount, msg ? msg : "", at);
}

static int cmd_show(cli *c)
{
    opts o;
    int rc;
    if (!parse_opts(c, &o, &show_cmd, &rc) || (rc = setup(c, true)))
        return rc;
    if (o.n_positional != 1)
        return usage_error(c->cmd, "expected a run id: ratchet show RUN [--json]");
    rt_store *st;
    if ((rc = open_store(c, &st)))
        return rc;
    json_t *run = NULL;
    rt_error err;
    rt_status s = rt_store_get_run(st, o.positional[0], true, &run, &err);
    rt_store_close(st);
    if (s != RT_OK) {
        fprintf(stderr, "ratchet show: %s\n", err.msg);
        return s == RT_ERR_INVALID ? EXIT_USAGE : 1;
    }
    if (o.json) {
        print_json(run);
        json_decref(run);
        return 0;
    }
    printf("run       %s\n", str_or(run, "id", "?"));
    printf("workflow  %s\n", str_or(run, "workflow", "?"));
    printf("version   %s\n", str_or(run, "version", "?")); /* the pinned definition (workflows history) */
    printf("status    %s\n", str_or(run, "status", "?"));
    printf("trigger   %s\n", str_or(json_object_get(run, "trigger"), "type", "?"));
    printf("created   %s\n", str_or(run, "created_at", "-"));
    printf("started   %s\n", str_or(run, "started_at", "-"));
    printf("finished  %s\n", str_or(run, "finished_at", "-"));
    if (json_object_get(run, "error") && !json_is_null(json_object_get(run, "error")))
        printf("error     %s\n", str_or(run, "error", ""));
    char *out = json_dumps(json_object_get(run, "output"), JSON_COMPACT | JSON_ENCODE_ANY);
    printf("output    %.200s%s\n", out ? out : "null", out && strlen(out) > 200 ? "..." : "");
    free(out);
    printf("\n%-24s  %-10s  %-8s  %-9s  %s\n", "STEP", "STATUS", "ATTEMPTS", "DURATION", "OUTPUT / ERROR");
    size_t i;
    json_t *step;
    json_array_foreach(json_object_get(run, "steps"), i, step) {
        double d = span(step, "started_at", "finished_at");
        char dur[32] = "-";
        if (d >= 0)
            snprintf(dur, sizeof dur, "%.3fs", d);
        const char *error = json_string_value(json_object_get(step, "error"));
        json_t *items_done = json_object_get(step, "items_done");
        char status[48];
        snprintf(status, sizeof status, "%s", str_or(step, "status", "?"));
        if (items_done && json_integer_value(items_done) > 0 && strcmp(status, "completed") != 0)
            snprintf(status, sizeof status, "%s (%lld items done)", str_or(step, "status", "?"),
                     (long long)json_integer_value(items_done));
        char *o_text = json_dumps(json_object_get(step, "output"), JSON_COMPACT | JSON_ENCODE_ANY);
        printf("%-24s  %-10s  %-8lld  %-9s  %.80s\n", str_or(step, "id", "?"), status,
               (long long)json_integer_value(json_object_get(step, "attempts")), dur,
               error ? error : (o_text ? o_text : "null"));
        free(o_text);
        print_progress(json_object_get(step, "progress"), str_or(step, "progress_at", "-"));
        size_t k;
        json_t *a;
        json_array_foreach(json_object_get(step, "failed_attempts"), k, a) {
            printf("%-24s  %-10s  %-8lld  %-9s  %.80s\n", "", "  attempt",
                   (long long)json_integer_value(json_object_get(a, "attempt")), "", str_or(a, "error", ""));
        }
    }
    json_decref(run);
    return 0;
}

/* ---------- send / events ---------- */

static int parse_data(cli *c, const char *text, json_t **out)
{
    if (!text) {
        *out = json_object();
        return 0;
    }
    json_error_t jerr;
    *out = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!*out)
        return usage_error(c->cmd, "--data is not valid JSON: line %d, column %d: %s", jerr.line, jerr.column,
                           jerr.text);
    return 0;
}

typedef struct send_ctx {
    rt_event *ev;
    int count;
    char id[300];
} send_ctx;

/* The i-th message of `send --count N`: the event with id "<id>-<i>". */
static char *make_send_body(void *arg, size_t i, const char **id)
{
    send_ctx *sc = arg;
    if (sc->count <= 1) {
        *id = sc->ev->id;
        return rt_event_to_json(sc->ev);
    }
    snprintf(sc->id, sizeof sc->id, "%s-%zu", sc->ev->id, i);
    json_t *copy = json_copy(sc->ev->envelope);
    json_object_set_new(copy, "id", json_string(sc->id));
    char *body = json_dumps(copy, JSON_COMPACT);
    json_decref(copy);
    /* the id is read before the next call (rt_intake_publish builds a batch first) */
    *id = NULL;
    return body;
}

typedef struct raw_ctx {
    const char *body;
} raw_ctx;

static char *make_raw_body(void *arg, size_t i, const char **id)
{
    (void)i;
    *id = NULL;
    return strdup(((raw_ctx *)arg)->body);
}

/* --raw-file: bytes exactly as given, unvalidated, for testing consumers and replaying dead
 * letters. Only through a broker, whose consumer validates them. */
static int send_raw(cli *c, const opts *o, const char *via)
{
    rt_error err;
    if (strcmp(via, "db") == 0)
        return usage_error(c->cmd, "--raw-file needs --via amqp or nats");
    char *raw = NULL;
    size_t raw_len = 0;
    if (rt_file_read(o->raw_file, 64u << 20, &raw, &raw_len, &err) != RT_OK)
        return usage_error(c->cmd, "--raw-file: %s", err.msg);
    raw_ctx rc2 = {.body = raw};
    rt_status rs = rt_intake_publish(&c->cfg, via, o->positional[0], 1, 0, make_raw_body, &rc2, &err);
    free(raw);
    if (rs != RT_OK)
        return fail(c->cmd, &err);
    fprintf(stderr, "%zu raw byte(s) published via %s\n", raw_len, via);
    return 0;
}

/* --via db: ingests the event here (as a broker's consumer would) and says what it started. */
static int send_to_db(cli *c, const opts *o, rt_event *ev)
{
    rt_error err;
    int rc;
    rt_workflow_set *set = NULL;
    int quiet = 1;
    if (rt_workflow_load_dir(c->cfg.workflows, &set, print_load_error, &quiet, &err) != RT_OK)
        return usage_error(c->cmd, "workflows: %s", err.msg);
    rt_store *st = NULL;
    if ((rc = open_store(c, &st))) {
        rt_workflow_set_free(set);
        return rc;
    }
    rt_ingest_result res = {0};
    rt_status s = rt_ingest_events(set, st, &ev, 1, "cli", &res, &err);
    rt_store_close(st);
    rt_workflow_set_free(set);
    if (s != RT_OK)
        return fail(c->cmd, &err);
    if (o->json) {
        json_t *out = json_pack("{s:s, s:b, s:O}", "id", ev->id, "duplicate", res.duplicate, "runs", res.run_ids);
        print_json(out);
        json_decref(out);
    } else {
        printf("%s\n", ev->id);
        if (res.duplicate)
            fprintf(stderr, "event %s was stored before: nothing started\n", ev->id);
        else
            fprintf(stderr, "event %s stored, %zu run(s) started\n", ev->id, json_array_size(res.run_ids));
        size_t i;
        json_t *id;
        json_array_foreach(res.run_ids, i, id) fprintf(stderr, "  run %s\n", json_string_value(id));
    }
    rt_ingest_results_clear(&res, 1);
    return 0;
}

static int cmd_send(cli *c)
{
    opts o;
    int rc;
    if (!parse_opts(c, &o, &send_cmd, &rc) || (rc = setup(c, !o.via || strcmp(o.via, "db") == 0)))
        return rc;
    if (o.n_positional != 1)
        return usage_error(c->cmd, "expected an event name: ratchet send NAME [--data JSON] [--via db]");
    const char *via = o.via ? o.via : "db";
    if (o.n_positional != 1)
        return usage_error(c->cmd, "expected an event name: ratchet send NAME [--data JSON] [--via db]");
    if (strcmp(via, "db") != 0 && strcmp(via, "amqp") != 0 && strcmp(via, "nats") != 0)
        return usage_error(c->cmd, "--via %s: expected db, amqp or nats", via);
    rt_error err;
    if (o.raw_file)
        return send_raw(c, &o, via);
    rt_actor_type actor = RT_ACTOR_USER;
    if (o.actor_type && rt_actor_type_parse(o.actor_type, &actor, &err) != RT_OK)
        return usage_error(c->cmd, "--actor-type: %s", err.msg);
    json_t *data = NULL;
    if ((rc = parse_data(c, o.data, &data)))
        return rc;
    if (rt_event_name_reserved(o.positional[0])) {
        json_decref(data);
        return usage_error(c->cmd, "\"%s\" is reserved for events the engine makes", o.positional[0]);
    }
    rt_event *ev = NULL;
    rt_status s = rt_event_new(o.positional[0], data, actor, o.actor_id ? o.actor_id : (o.actor_type ? NULL : rt_os_user("cli")),
                               o.entity, o.id, &ev, &err);
    json_decref(data);
    if (s != RT_OK)
        return usage_error(c->cmd, "%s", err.msg);

    if (strcmp(via, "db") != 0) {
        /* Through the broker: the serve processes' consumers store it and start the runs. */
        send_ctx sc = {.ev = ev, .count = o.count};
        s = rt_intake_publish(&c->cfg, via, ev->name, o.count ? (size_t)o.count : 1, 0, make_send_body, &sc, &err);
        if (s == RT_OK) {
            printf("%s\n", ev->id);
            fprintf(stderr, "%d event(s) published via %s\n", o.count ? o.count : 1, via);
        }
        rt_event_free(ev);
        return s == RT_OK ? 0 : fail(c->cmd, &err);
    }
    if (o.count > 1) {
        rt_event_free(ev);
        return usage_error(c->cmd, "--count needs --via amqp or nats");
    }
    rc = send_to_db(c, &o, ev);
    rt_event_free(ev);
    return rc;
}

static int cmd_events(cli *c)
{
    opts o;
    int rc;
    if (!parse_opts(c, &o, &events_cmd, &rc) || (rc = setup(c, true)))
        return rc;
    rt_store *st;
    if ((rc = open_store(c, &st)))
        return rc;
    json_t *events = NULL;
    rt_error err;
    rt_status s = rt_store_list_events(st, o.name, o.limit ? o.limit : 20, &events, &err);
    rt_store_close(st);
    if (s != RT_OK)
        return fail(c->cmd, &err);
    if (o.json) {
        print_json(events);
    } else {
        printf("%-36s  %-28s  %-9s  %-24s  %s\n", "ID", "NAME", "VIA", "RECEIVED", "RUNS");
        size_t i;
        json_t *e;
        json_array_foreach(events, i, e) {
            printf("%-36s  %-28s  %-9s  %-24s  ", str_or(e, "id", "?"), str_or(e, "name", "?"),
                   str_or(e, "transport", "?"), str_or(e, "received_at", "-"));
            size_t k;
            json_t *r;
            json_array_foreach(json_object_get(e, "runs"), k, r) {
                printf("%s%s:%s(%s)", k ? ", " : "", str_or(r, "workflow", "?"), str_or(r, "id", "?"),
                       str_or(r, "status", "?"));
            }
            printf("%s\n", json_array_size(json_object_get(e, "runs")) ? "" : "-");
        }
        if (json_array_size(events) == 0)
            printf("(no events)\n");
    }
    json_decref(events);
    return 0;
}

/* ---------- pause / resume / cancel / replay (cli_runctl.c) ---------- */

static int cmd_runctl(cli *c)
{
    return rt_cli_runctl(c->cmd, &c->cfg, c->argc, c->argv, c->pos);
}

/* ---------- bench ---------- */

static int cmd_bench(cli *c)
{
    if (c->pos < c->argc && !strcmp(c->argv[c->pos], "cron"))
        return rt_bench_cron_main(&c->cfg, c->argc, c->argv, c->pos + 1);
    if (c->pos < c->argc && !strcmp(c->argv[c->pos], "flow"))
        return rt_bench_flow_main(&c->cfg, c->argc, c->argv, c->pos + 1);
    if (c->pos < c->argc && !strcmp(c->argv[c->pos], "scale"))
        return rt_bench_scale_main(&c->cfg, c->argc, c->argv, c->pos + 1);
    bool events = c->pos < c->argc && !strcmp(c->argv[c->pos], "events");
    if (events)
        c->pos++;
    opts o;
    int rc;
    if (!parse_opts(c, &o, events ? &bench_events_cmd : &bench_cmd, &rc) || (rc = setup(c, true)))
        return rc;
    if (events)
        return rt_bench_events_main(&c->cfg, o.runs ? o.runs : 20000, o.json);
    if (o.steps && o.steps != 1 && o.steps != 5)
        return usage_error(c->cmd, "--steps must be 1 or 5");
    return rt_bench_main(&c->cfg, o.runs ? o.runs : 20000, o.steps, o.json);
}

static int cmd_schedules(cli *c)
{
    return rt_cli_schedules(&c->cfg, c->argc, c->argv, c->pos);
}

static int cmd_workflows(cli *c)
{
    return rt_cli_workflows(&c->cfg, c->argc, c->argv, c->pos);
}

static int cmd_token(cli *c)
{
    return rt_cli_token(c->argc, c->argv, c->pos);
}

static int cmd_approval(cli *c) /* keygen, approve, reject, approvals, audit (cli_approval.h) */
{
    return rt_cli_approval(c->cmd, &c->cfg, c->argc, c->argv, c->pos);
}

/* ---------- help ---------- */

static void print_help(void)
{
    printf("ratchet %s — durable, event-driven workflows on PostgreSQL\n\n"
           "Usage: ratchet COMMAND [options]\n\n"
           "Commands:\n"
           "  serve [--watch]             run the engine on the workflow registry, synced from RATCHET_WORKFLOWS\n"
           "                              (--watch: file changes apply at once; SIGHUP: sync now)\n"
           "  migrate                     apply database migrations\n"
           "  validate [PATH...]          check workflow files (default: RATCHET_WORKFLOWS)\n"
           "  run WORKFLOW [--data JSON] [--at RFC3339 | --in DURATION] [--wait [--wait-timeout D]]\n"
           "                              start a run; prints its id; --wait exits 0 only if it completed\n"
           "  runs [--workflow W] [--status S] [--limit N] [--json]\n"
           "                              list runs, newest first\n"
           "  show RUN [--json]           one run with its steps\n"
           "  cancel RUN... [--reason R]  stop runs: nothing more is scheduled, a running exec is killed\n"
           "  replay RUN [--from STEP]    a new run of the same pinned definition and event; --from\n"
           "                              reuses the memoized outputs of the steps before STEP\n"
           "  cancel|replay FILTER [--dry-run] [--json] [--from STEP]   every run the filter matches,\n"
           "                              FILTER: --workflow W --status S --since D|T --until D|T --entity E\n"
           "                              --error TEXT (at least one, or --all); --dry-run only counts\n"
           "  pause RUN... | resume RUN...  a paused run starts no new step (a running one finishes)\n"
           "  send NAME [--data JSON] [--id ID] [--actor-type T --actor-id A] [--entity E] [--via db|amqp|nats]\n"
           "       [--count N] [--raw-file FILE]  N copies (ids ID-0..), or raw bytes (tests)\n"
           "                              store an event and start the workflows it triggers\n"
           "  events [--name N] [--limit N] [--json]\n"
           "                              recent stored events with the runs they started\n"
           "  bench [--runs N] [--steps 1|5] [--json]\n"
           "                              drain N preloaded no-op runs in a scratch database\n"
           "  bench events [--runs N] [--json]   ingest events/s and publish-to-first-step latency per broker\n"
           "  bench scale [--runs N] [--finished N] [--sleeping N] [--scheduled N] [--due N] [--rounds N] [--json]\n"
           "                                     drain with 1M finished runs kept, serve's RSS, claims behind 100k later runs\n"
           "  bench flow [--runs N] [--rounds N] [--throttle PER_S] [--reference STEPS_PER_S] [--json]\n"
           "                              flow-control cost: concurrency keys, a throttle, retries, vs a baseline\n"
           "  bench cron [--ticks N] [--schedules N] [--json]\n"
           "                              cron fire lateness (3 schedulers) and the cost of many schedules\n"
           "  schedules [--json]          every cron trigger: expression, zone, state, last and next fire\n"
           "  schedules pause|resume WORKFLOW\n"
           "                              stop / restart a workflow's cron ticks in every process\n"
           "  workflows [--json]          the registry: every workflow's version, source, state, triggers,\n"
           "                              last run and runs in flight\n"
           "  workflows apply FILE|DIR... | remove ID [--cancel-running] | pause ID |\n"
           "            resume ID [--on-resume run|skip] | history ID [--json] |\n"
           "            approve|reject PROPOSAL --as APPROVER --key FILE [--comment C]\n"
           "                              change workflows at runtime, in every serve process (docs/workflows.md)\n"
           "  token create --role admin|operator|agent|viewer [--entity E]\n"
           "                              a new API token (printed once) and its line for RATCHET_TOKENS\n"
           "  keygen --approver ID [--out DIR]\n"
           "                              an approver's Ed25519 key pair; prints its RATCHET_APPROVERS line\n"
           "  approve|reject RUN --as ID --key FILE [--comment C] [--step STEP] [--via db|amqp|nats]\n"
           "                              sign and send a decision; prints what the engine decided\n"
           "  approvals [--json]          runs and steps awaiting approval, with action_hash and expiry\n"
           "  audit [--since T] [--limit N] [--json] | audit verify\n"
           "                              the audit log; verify walks its hash chain\n"
           "  version                     print the version\n"
           "  help                        this text\n\n",
           RATCHET_VERSION);
    rt_config_print_help();
}

int rt_cli_main(int argc, char **argv)
{
    cli c = {.argc = argc, .argv = argv, .pos = 2};
    if (argc < 2) {
        print_help();
        return EXIT_USAGE;
    }
    c.cmd = argv[1];
    rt_error err;
    if (rt_config_from_env(&c.cfg, &err) != RT_OK) {
        fprintf(stderr, "ratchet: %s\n", err.msg);
        rt_config_free(&c.cfg);
        return EXIT_USAGE;
    }
    static const struct {
        const char *name;
        int (*fn)(cli *);
    } commands[] = {
        {"serve", cmd_serve}, {"migrate", cmd_migrate}, {"validate", cmd_validate},
        {"run", cmd_run},     {"runs", cmd_runs},       {"show", cmd_show},
        {"bench", cmd_bench}, {"send", cmd_send},       {"events", cmd_events},
        {"cancel", cmd_runctl}, {"replay", cmd_runctl}, {"pause", cmd_runctl}, {"resume", cmd_runctl},
        {"schedules", cmd_schedules}, {"token", cmd_token}, {"workflows", cmd_workflows},
        {"keygen", cmd_approval}, {"approve", cmd_approval}, {"reject", cmd_approval}, {"approvals", cmd_approval}, {"audit", cmd_approval},
    };
    int rc = -1;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (!strcmp(c.cmd, commands[i].name)) {
            rc = commands[i].fn(&c);
            break;
        }
    }
    if (rc == -1) {
        if (!strcmp(c.cmd, "version") || !strcmp(c.cmd, "--version")) {
            printf("ratchet %s\n", RATCHET_VERSION);
            rc = 0;
        } else if (!strcmp(c.cmd, "help") || !strcmp(c.cmd, "--help") || !strcmp(c.cmd, "-h")) {
            print_help();
            rc = 0;
        } else {
            rc = usage_error(NULL, "unknown command \"%s\"", c.cmd);
        }
    }
    rt_config_free(&c.cfg);
    return rc;
}
