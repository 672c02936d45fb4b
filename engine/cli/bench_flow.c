/* bench_flow.c — `ratchet bench flow`: what flow control costs. Variants of a one-step
 * workflow run in alternating rounds (each round measures every variant once, in an order
 * that rotates) so that the noise of a shared machine falls on all of them alike. Every
 * measurement gets a fresh scratch database, a preload through run admission (where a
 * throttle is decided) and a drain by a real engine (where concurrency is enforced, at
 * claim). Figures are medians over rounds; a ratio is the median of the ratios taken within
 * each round, between two variants measured minutes apart at most. */
#include "bench_flow.h"

#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "bench.h"
#include "log.h"
#include "util.h"
#include "workflow.h"

#define MAX_ROUNDS 20
#define KEYS 1000 /* values of event.data.k for the keyed variants */

enum { BASELINE, PRIORITY, THROTTLE_OPEN, THROTTLE, SLOW, CONCURRENCY, EXEC, RETRY, N_VARIANTS };

/* The one step the variants run. */
#define STEP_NOOP "{\"id\": \"a\", \"uses\": \"transform\", \"with\": {\"value\": 0}}"
#define STEP_SQL "{\"id\": \"a\", \"uses\": \"sql\", \"with\": {\"query\": \"select 1\"}}"
/* test(1) with the attempt number: exits 1 when it equals FAIL_ON, so "0" never fails and
 * "1" fails the first attempt only; both variants render the same template. */
#define STEP_EXEC(FAIL_ON)                                                                                   \
    "{\"id\": \"a\", \"uses\": \"exec\", \"with\": {\"command\": [\"test\", \"${{ to_json(run.attempt) }}\", " \
    "\"!=\", \"" FAIL_ON "\"], \"stdin\": \"none\"}, "                                                         \
    "\"retries\": {\"max_attempts\": 2, \"backoff\": \"fixed\", \"delay\": \"1ms\"}}"

typedef struct variant {
    const char *name;
    const char *step; /* its step type, for the table */
    const char *what; /* the flow control it declares, for the table */
    int keys;         /* how many values event.data.k takes (0: data is {}) */
    int to;           /* the variant its ratio is taken to */
    const char *def;  /* the definition; the throttle variant's %d is its limit */
} variant;

static const variant variants[N_VARIANTS] = {
    [BASELINE] = {"baseline", "transform", "none (= ratchet bench --steps 1)", 0, BASELINE,
                  "{\"id\": \"bench-flow-baseline\", \"steps\": [" STEP_NOOP "]}"},
    [PRIORITY] = {"priority", "transform", "priority high, no key", 0, BASELINE,
                  "{\"id\": \"bench-flow-priority\", \"priority\": \"high\", \"steps\": [" STEP_NOOP "]}"},
    [THROTTLE_OPEN] = {"throttle-open", "transform", "throttle 1000000/s per k, 1000 keys", KEYS, BASELINE,
                       "{\"id\": \"bench-flow-throttle-open\", \"throttle\": {\"limit\": 1000000, \"period\": \"1s\", "
                       "\"key\": \"${{ event.data.k }}\"}, \"steps\": [" STEP_NOOP "]}"},
    [THROTTLE] = {"throttle", "transform", "throttle %d/s, one bucket", 0, THROTTLE,
                  "{\"id\": \"bench-flow-throttle\", \"throttle\": {\"limit\": %d, \"period\": \"1s\"}, "
                  "\"steps\": [" STEP_NOOP "]}"},
    [SLOW] = {"slow", "sql", "none", KEYS, SLOW, "{\"id\": \"bench-flow-slow\", \"steps\": [" STEP_SQL "]}"},
    [CONCURRENCY] = {"concurrency", "sql", "concurrency limit 1 per k, 1000 keys", KEYS, SLOW,
                     "{\"id\": \"bench-flow-concurrency\", \"concurrency\": {\"limit\": 1, "
                     "\"key\": \"${{ event.data.k }}\"}, \"steps\": [" STEP_SQL "]}"},
    [EXEC] = {"exec", "exec", "retries allowed, none needed", 0, EXEC,
              "{\"id\": \"bench-flow-exec\", \"steps\": [" STEP_EXEC("0") "]}"},
    [RETRY] = {"retry", "exec", "fails attempt 1, retried after 1 ms", 0, EXEC,
               "{\"id\": \"bench-flow-retry\", \"steps\": [" STEP_EXEC("1") "]}"},
};

typedef struct flow_opts {
    int runs, rounds, throttle, reference;
    bool json;
} flow_opts;

/* One measurement of one variant. */
typedef struct sample {
    double admit_s;  /* preload: run admission and creation */
    double drain_s;  /* engine start to empty queue */
    double window_s; /* first admission to empty queue */
    rt_engine_stats stats;
} sample;

static rt_status measure(const rt_config *base, int v, const flow_opts *o, sample *out, rt_error *err)
{
    char tag[16], def[1024];
    snprintf(tag, sizeof tag, "flow%d", v);
    snprintf(def, sizeof def, variants[v].def, o->throttle);
    rt_workflow *wf = NULL;
    rt_status s = rt_workflow_parse(def, strlen(def), NULL, &wf, err);
    if (s != RT_OK)
        return rt_error_prefix(err, "bench workflow %s", variants[v].name);
    rt_bench_db db;
    s = rt_bench_db_open(&db, base, tag, err);
    if (s != RT_OK) {
        rt_workflow_free(wf);
        return s;
    }
    int64_t a0 = rt_mono_us();
    s = rt_bench_preload(db.st, wf, o->runs, variants[v].keys, err);
    int64_t a1 = rt_mono_us(), t0 = a1, t1 = a1;
    /* Every run's first attempt fails on purpose: its warning is no news. */
    if (v == RETRY)
        rt_log_configure(RT_LOG_ERROR, false);
    if (s == RT_OK)
        s = rt_bench_drain(&db.cfg, db.st, 0, &t0, &t1, &out->stats, err);
    if (v == RETRY)
        rt_log_configure(RT_LOG_WARN, false);
    out->admit_s = (double)(a1 - a0) / 1e6;
    out->drain_s = (double)(t1 - t0) / 1e6;
    out->window_s = (double)(t1 - a0) / 1e6;
    rt_workflow_free(wf);
    rt_bench_db_close(&db);
    if (s != RT_OK)
        return rt_error_prefix(err, "variant %s", variants[v].name);
    return RT_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *xs, int n)
{
    double tmp[MAX_ROUNDS];
    memcpy(tmp, xs, (size_t)n * sizeof *tmp);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_double);
    return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

static double rounded(double x, int digits)
{
    double f = pow(10, digits);
    return round(x * f) / f;
}

/* Per-round figures of every variant, and their medians. */
typedef struct figures {
    double runs_s[N_VARIANTS][MAX_ROUNDS];  /* drained runs/s (= memoized steps/s: one step) */
    double admit_s[N_VARIANTS][MAX_ROUNDS]; /* runs admitted and created per second */
    double ratio[N_VARIANTS][MAX_ROUNDS];   /* to variants[v].to in the same round; throttle: to its limit */
    double achieved[MAX_ROUNDS];            /* throttle: runs / (first admission -> empty queue) */
    double retry_ms[MAX_ROUNDS];            /* extra wall ms per retry */
    double retry_eq[MAX_ROUNDS];            /* extra executions of the exec step per retry */
    double med_runs[N_VARIANTS], med_admit[N_VARIANTS], med_ratio[N_VARIANTS];
    double med_achieved, med_retry_ms, med_retry_eq, med_expected;
} figures;

static void compute(const flow_opts *o, sample s[N_VARIANTS][MAX_ROUNDS], figures *f)
{
    double expected[MAX_ROUNDS];
    for (int r = 0; r < o->rounds; r++) {
        for (int v = 0; v < N_VARIANTS; v++) {
            f->runs_s[v][r] = o->runs / s[v][r].drain_s;
            f->admit_s[v][r] = o->runs / s[v][r].admit_s;
        }
        f->achieved[r] = o->runs / s[THROTTLE][r].window_s;
        for (int v = 0; v < N_VARIANTS; v++)
            f->ratio[v][r] = v == THROTTLE ? f->achieved[r] / o->throttle : f->runs_s[v][r] / f->runs_s[variants[v].to][r];
        f->runs_s[THROTTLE][r] = f->achieved[r]; /* its drain began with part of the slots already due */
        f->retry_ms[r] = (s[RETRY][r].drain_s - s[EXEC][r].drain_s) * 1000.0 / o->runs;
        f->retry_eq[r] = s[RETRY][r].drain_s / s[EXEC][r].drain_s - 1;
        /* Without the throttle its runs could not finish before admission and a baseline
         * drain of them are done; with it, not before their slots (runs / limit). */
        double unthrottled = o->runs / (s[THROTTLE][r].admit_s + s[BASELINE][r].drain_s);
        expected[r] = unthrottled < o->throttle ? unthrottled : o->throttle;
    }
    for (int v = 0; v < N_VARIANTS; v++) {
        f->med_runs[v] = median(f->runs_s[v], o->rounds);
        f->med_admit[v] = median(f->admit_s[v], o->rounds);
        f->med_ratio[v] = median(f->ratio[v], o->rounds);
    }
    f->med_achieved = median(f->achieved, o->rounds);
    f->med_retry_ms = median(f->retry_ms, o->rounds);
    f->med_retry_eq = median(f->retry_eq, o->rounds);
    f->med_expected = median(expected, o->rounds);
}

static const char *within(double ratio)
{
    return ratio >= 0.9 ? "PASS (within 10 %)" : "NOTE (more than 10 % lower; on a shared machine rerun with more --rounds)";
}

static void print_table(const rt_config *cfg, const flow_opts *o, const figures *f)
{
    printf("\n  %-14s %-10s %-38s %9s %9s %9s %7s  %s\n", "variant", "step", "flow control", "runs/s", "steps/s",
           "admit/s", "ratio", "to");
    for (int v = 0; v < N_VARIANTS; v++) {
        char what[64];
        snprintf(what, sizeof what, variants[v].what, o->throttle);
        char to[32];
        if (v == THROTTLE)
            snprintf(to, sizeof to, "its limit");
        else
            snprintf(to, sizeof to, "%s", variants[variants[v].to].name);
        printf("  %-14s %-10s %-38s %9.0f %9.0f %9.0f %7.3f  %s\n", variants[v].name, variants[v].step, what,
               f->med_runs[v], f->med_runs[v], f->med_admit[v], f->med_ratio[v], to);
    }
    printf("\n  medians over %d round%s; ratio = median of the per-round ratios of runs/s (steps/s: one step per run)\n",
           o->rounds, o->rounds == 1 ? "" : "s");
    printf("  admit/s: the preload, through run admission (throttle is decided there) and run creation\n");
    printf("  no flow-control key: priority-only / baseline = %.3f -> %s\n", f->med_ratio[PRIORITY],
           within(f->med_ratio[PRIORITY]));
    if (o->reference)
        printf("  baseline %.0f steps/s vs the reference %d steps/s = %.3f -> %s\n", f->med_runs[BASELINE], o->reference,
               f->med_runs[BASELINE] / o->reference, within(f->med_runs[BASELINE] / o->reference));
    printf("  throttle-open: GCRA slot taken per run (1000 keys, limit never reached): admission %.3f of baseline's, "
           "drain %.3f\n",
           f->med_admit[THROTTLE_OPEN] / f->med_admit[BASELINE], f->med_ratio[THROTTLE_OPEN]);
    printf("  throttle: meant to be the bottleneck; achieved %.0f runs/s from the first admission to the last "
           "completion = %.3f of its limit %d/s; expected at most %.0f/s = min(limit, runs / (its admission time + a "
           "baseline drain))%s\n",
           f->med_achieved, f->med_ratio[THROTTLE], o->throttle, f->med_expected,
           f->med_expected < o->throttle ? ": the limit is above what this machine admits and drains, lower --throttle"
                                         : "");
    printf("  concurrency: limits running slow steps (sql/exec/http), so it is compared with the same sql step without "
           "it: %.3f\n",
           f->med_ratio[CONCURRENCY]);
    printf("  retries: one retry (failed attempt recorded, requeued for 1 ms later, run again) adds %.2f ms of wall "
           "time per run at %d workers = %.2f executions of the same exec step\n",
           f->med_retry_ms, cfg->workers, f->med_retry_eq);
}

static json_t *rounds_json(const double *xs, int n, int digits)
{
    json_t *a = json_array();
    for (int r = 0; r < n; r++)
        json_array_append_new(a, json_real(rounded(xs[r], digits)));
    return a;
}

static void print_json(const rt_config *cfg, const flow_opts *o, const char *sync, const figures *f)
{
    json_t *vs = json_object();
    for (int v = 0; v < N_VARIANTS; v++) {
        char what[64];
        snprintf(what, sizeof what, variants[v].what, o->throttle);
        json_object_set_new(
            vs, variants[v].name,
            json_pack("{s:s, s:s, s:f, s:f, s:f, s:f, s:s, s:o, s:o}", "step", variants[v].step, "flow_control", what,
                      "runs_per_s", rounded(f->med_runs[v], 0), "steps_per_s", rounded(f->med_runs[v], 0),
                      "admit_per_s", rounded(f->med_admit[v], 0), "ratio", rounded(f->med_ratio[v], 3), "ratio_to",
                      v == THROTTLE ? "limit" : variants[variants[v].to].name, "rounds_runs_per_s",
                      rounds_json(f->runs_s[v], o->rounds, 0), "rounds_ratio", rounds_json(f->ratio[v], o->rounds, 3)));
    }
    json_t *out = json_pack(
        "{s:i, s:i, s:i, s:i, s:i, s:s, s:o, s:{s:f, s:b}, s:{s:i, s:f, s:f, s:f}, s:{s:f, s:f}, s:{s:f, s:f}}", "runs",
        o->runs, "rounds", o->rounds, "keys", KEYS, "workers", cfg->workers, "claim_batch", cfg->claim_batch,
        "synchronous_commit", sync, "variants", vs, "no_key_check", "ratio", rounded(f->med_ratio[PRIORITY], 3),
        "within_10pct", f->med_ratio[PRIORITY] >= 0.9, "throttle", "limit_per_s", o->throttle, "achieved_per_s",
        rounded(f->med_achieved, 0), "ratio_to_limit", rounded(f->med_ratio[THROTTLE], 3), "expected_max_per_s",
        rounded(f->med_expected, 0), "concurrency", "ratio_to_slow", rounded(f->med_ratio[CONCURRENCY], 3),
        "admit_ratio_to_slow", rounded(f->med_admit[CONCURRENCY] / f->med_admit[SLOW], 3), "retry",
        "extra_ms_per_retry", rounded(f->med_retry_ms, 3), "exec_equivalents_per_retry", rounded(f->med_retry_eq, 3));
    if (o->reference)
        json_object_set_new(out, "reference",
                            json_pack("{s:i, s:f, s:b}", "steps_per_s", o->reference, "ratio",
                                      rounded(f->med_runs[BASELINE] / o->reference, 3), "within_10pct",
                                      f->med_runs[BASELINE] / o->reference >= 0.9));
    char *text = json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(12));
    if (text)
        printf("%s\n", text);
    free(text);
    json_decref(out);
}

static const rt_arg_opt bench_flow_opts[] = {
    {"--runs", "N", "runs per variant and round (10..1000000, default 5000)"},
    {"--rounds", "N", "rounds (default 3)"},
    {"--throttle", "PER_S", "the throttled variant's rate (default 1000)"},
    {"--reference", "STEPS_PER_S", "a baseline to compare with"},
    {"--json", NULL, "print JSON"},
    {NULL, NULL, NULL},
};
static const rt_arg_cmd bench_flow_cmd = {"ratchet bench flow", NULL, 0,
                                          "flow-control cost: concurrency keys, a throttle, retries, vs a baseline",
                                          bench_flow_opts, true};

static int parse_args(rt_config *cfg, int argc, char **argv, int pos, flow_opts *o)
{
    static const rt_args_int_field ints[] = {
        {"--runs", offsetof(flow_opts, runs), 10, 1000000},
        {"--rounds", offsetof(flow_opts, rounds), 1, MAX_ROUNDS},
        {"--throttle", offsetof(flow_opts, throttle), 1, 1000000},
        {"--reference", offsetof(flow_opts, reference), 1, 100000000},
    };
    rt_args args;
    int rc;
    if (!rt_args_take(&bench_flow_cmd, cfg, argc, argv, pos, &args, &rc))
        return rc ? rc : -1; /* -1: --help was printed */
    rt_error ierr;
    if (rt_args_int_fields(&args, ints, sizeof ints / sizeof ints[0], o, &ierr) != RT_OK)
        return rt_args_usage(&bench_flow_cmd, "%s", ierr.msg);
    o->json = rt_args_given(&args, "--json");
    rt_error err;
    if (rt_config_require_database(cfg, &err) != RT_OK) {
        fprintf(stderr, "ratchet bench flow: %s\n", err.msg);
        return 2;
    }
    return 0;
}

int rt_bench_flow_main(rt_config *cfg, int argc, char **argv, int pos)
{
    flow_opts o = {.runs = 5000, .rounds = 3, .throttle = 1000};
    int rc = parse_args(cfg, argc, argv, pos, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    rt_log_configure(RT_LOG_WARN, false);
    rt_error err;
    rt_store *st = NULL;
    if (rt_store_open(cfg->database_url, &st, &err) != RT_OK) {
        fprintf(stderr, "ratchet bench flow: %s\n", err.msg);
        return 1;
    }
    char sync[64] = "?";
    rt_store_setting(st, "synchronous_commit", sync, sizeof sync, &err);
    rt_store_close(st);
    if (!o.json)
        printf("ratchet bench flow: %d runs of a one-step workflow per variant and round, %d round%s (variant order "
               "rotates), %d workers, claim batch %d, synchronous_commit=%s\n",
               o.runs, o.rounds, o.rounds == 1 ? "" : "s", cfg->workers, cfg->claim_batch, sync);
    fflush(stdout);

    sample samples[N_VARIANTS][MAX_ROUNDS] = {0};
    for (int r = 0; r < o.rounds; r++) {
        if (!o.json)
            printf("  round %d runs/s:", r + 1);
        for (int k = 0; k < N_VARIANTS; k++) {
            int v = (k + r) % N_VARIANTS;
            if (measure(cfg, v, &o, &samples[v][r], &err) != RT_OK) {
                fprintf(stderr, "%sratchet bench flow: %s\n", o.json ? "" : "\n", err.msg);
                return 1;
            }
            if (!o.json) {
                double w = v == THROTTLE ? samples[v][r].window_s : samples[v][r].drain_s;
                printf(" %s %.0f", variants[v].name, o.runs / w);
                fflush(stdout);
            }
        }
        if (!o.json)
            printf("\n");
    }
    figures f;
    compute(&o, samples, &f);
    if (o.json)
        print_json(cfg, &o, sync, &f);
    else
        print_table(cfg, &o, &f);
    fflush(stdout);
    return 0;
}
