/* bench_cron.c — `ratchet bench cron`, on scratch databases of the configured server:
 *  1. lateness: three scheduler instances (threads with a connection each, as three
 *     processes would have) and an engine running the runs, one per-second schedule, for
 *     --ticks ticks; reports run created_at minus tick time (p50/p99/max) and checks that
 *     every tick has exactly one run;
 *  2. cost: one scheduler with --schedules schedules (one workflow each) firing once a
 *     minute each, spread over the seconds, for --seconds; reports the scheduler thread's
 *     CPU per minute (CLOCK_THREAD_CPUTIME_ID), the RSS it adds, the sync time and the
 *     lateness under that load (after a 2 s start-up); then the same number of schedules that do not fire (the
 *     idle cost). Figures only, no assertions. */
#include "bench_cron.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "executor.h"
#include "log.h"
#include "scheduler.h"
#include "store.h"
#include "util.h"
#include "workflow.h"

#define N_SCHEDULERS 3

typedef struct bench_opts {
    int ticks;
    int schedules;
    int seconds;
    bool json;
} bench_opts;

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* The connection string of url with its database replaced by name (URI or key=value). */
static char *conninfo_with_database(const char *url, const char *name)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &perr);
    PQfreemem(perr);
    if (!opts)
        return NULL;
    size_t cap = strlen(url) * 2 + strlen(name) * 2 + 64, len = 0;
    char *out = malloc(cap);
    for (PQconninfoOption *o = opts; out && o->keyword; o++) {
        const char *v = !strcmp(o->keyword, "dbname") ? name : o->val;
        if (!v)
            continue;
        size_t need = len + strlen(o->keyword) + 2 * strlen(v) + 8;
        if (need > cap) {
            cap = need * 2;
            char *grown = realloc(out, cap);
            if (!grown) {
                free(out);
                out = NULL;
                break;
            }
            out = grown;
        }
        len += (size_t)sprintf(out + len, "%s%s='", len ? " " : "", o->keyword);
        for (const char *p = v; *p; p++) {
            if (*p == '\'' || *p == '\\')
                out[len++] = '\\';
            out[len++] = *p;
        }
        out[len++] = '\'';
        out[len] = '\0';
    }
    PQconninfoFree(opts);
    return out;
}

typedef struct scratch {
    char name[64];
    char *url;
    rt_store *admin;
} scratch;

static rt_status scratch_open(const rt_config *cfg, const char *suffix, scratch *sc, rt_error *err)
{
    memset(sc, 0, sizeof *sc);
    snprintf(sc->name, sizeof sc->name, "ratchet_bench_cron_%d_%s", (int)getpid(), suffix);
    rt_status s = rt_store_open(cfg->database_url, &sc->admin, err);
    if (s != RT_OK)
        return s;
    rt_error ignore;
    rt_store_drop_database(sc->admin, sc->name, &ignore);
    s = rt_store_create_database(sc->admin, sc->name, err);
    if (s != RT_OK)
        return rt_error_prefix(err, "creating the scratch database %s", sc->name);
    sc->url = conninfo_with_database(cfg->database_url, sc->name);
    if (!sc->url)
        return rt_error_set(err, RT_ERR_INVALID, "cannot rewrite the database URL");
    rt_store *st = NULL;
    s = rt_store_open(sc->url, &st, err);
    if (s == RT_OK)
        s = rt_store_migrate(st, NULL, err);
    rt_store_close(st);
    return s;
}

static void scratch_close(scratch *sc)
{
    rt_error ignore;
    if (sc->admin && sc->name[0])
        rt_store_drop_database(sc->admin, sc->name, &ignore);
    rt_store_close(sc->admin);
    free(sc->url);
    memset(sc, 0, sizeof *sc);
}

static rt_status make_set(int n, const char *id_prefix, const char *cron_fmt, rt_workflow_set **out, rt_error *err)
{
    rt_workflow_set *set = calloc(1, sizeof *set);
    if (!set || !(set->items = calloc((size_t)n, sizeof *set->items))) {
        free(set);
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        char id[64], cron[64];
        snprintf(id, sizeof id, "%s-%05d", id_prefix, i);
        snprintf(cron, sizeof cron, cron_fmt, i % 60); /* "%d": the second it fires at */
        json_t *def = json_pack("{s:s, s:[{s:s, s:s}], s:[{s:s, s:s, s:{s:i}}]}", "id", id, "triggers", "cron", cron,
                                "catch_up", "all", "steps", "id", "a", "uses", "transform", "with", "value", i);
        rt_status s = rt_workflow_from_json(def, NULL, &set->items[i], err);
        json_decref(def);
        if (s != RT_OK) {
            rt_workflow_set_free(set);
            return s;
        }
        set->n++;
    }
    *out = set;
    return RT_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct lateness {
    size_t n;
    double p50, p99, max;
    long long distinct, first, last; /* ticks (unix s) */
} lateness;

/* Lateness of the cron runs of ticks from since_s on: created_at minus the tick in the
 * dedupe key, in ms. */
static rt_status measure_lateness(const char *url, int64_t since_s, lateness *out, rt_error *err)
{
    memset(out, 0, sizeof *out);
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        rt_status s = rt_error_set(err, RT_ERR_UNAVAILABLE, "%s", PQerrorMessage(c));
        PQfinish(c);
        return s;
    }
    char since[32];
    snprintf(since, sizeof since, "%lld", (long long)since_s * 1000);
    const char *params[] = {since};
    PGresult *r = PQexecParams(c,
                               "select extract(epoch from created_at) * 1000 - split_part(dedupe_key, ':', 3)::bigint,"
                               " split_part(dedupe_key, ':', 3)::bigint / 1000 from ratchet.runs"
                               " where dedupe_key like 'cron:%' and split_part(dedupe_key, ':', 3)::bigint >= $1::bigint"
                               " order by 2",
                               1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rt_status s = rt_error_set(err, RT_ERR_INTERNAL, "%s", PQerrorMessage(c));
        PQclear(r);
        PQfinish(c);
        return s;
    }
    size_t n = (size_t)PQntuples(r);
    double *v = malloc((n ? n : 1) * sizeof *v);
    long long prev = -1;
    for (size_t i = 0; v && i < n; i++) {
        v[i] = strtod(PQgetvalue(r, (int)i, 0), NULL);
        long long t = strtoll(PQgetvalue(r, (int)i, 1), NULL, 10);
        out->distinct += t != prev;
        prev = t;
        if (i == 0)
            out->first = t;
        out->last = t;
    }
    PQclear(r);
    PQfinish(c);
    if (!v)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    qsort(v, n, sizeof *v, cmp_double);
    out->n = n;
    if (n) {
        out->p50 = v[n / 2];
        out->p99 = v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
        out->max = v[n - 1];
    }
    free(v);
    return RT_OK;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            kib = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kib;
}

/* Waits until every scheduler synced (up to 60 s). */
static bool wait_synced(rt_scheduler **s, int n)
{
    for (int tries = 0; tries < 6000; tries++) {
        int ok = 0;
        for (int i = 0; i < n; i++) {
            rt_scheduler_stats st;
            rt_scheduler_stats_get(s[i], &st);
            ok += st.synced;
        }
        if (ok == n)
            return true;
        sleep_ms(10);
    }
    return false;
}

/* ---------- 1. lateness with three schedulers ---------- */

typedef struct lateness_result {
    lateness lat;
    uint64_t claims[N_SCHEDULERS];
    double seconds;
} lateness_result;

static rt_status bench_lateness(const rt_config *base, const bench_opts *o, lateness_result *res, rt_error *err)
{
    memset(res, 0, sizeof *res);
    scratch sc;
    rt_status s = scratch_open(base, "late", &sc, err);
    rt_config cfg = *base;
    cfg.database_url = sc.url;
    cfg.scheduler_enabled = true;
    rt_workflow_set *set = NULL;
    if (s == RT_OK)
        s = make_set(1, "bench-tick", "* * * * * *", &set, err);
    rt_engine *e = NULL;
    if (s == RT_OK && (s = rt_engine_new(&cfg, &e, err)) == RT_OK)
        s = rt_engine_start(e, err);
    rt_scheduler *sched[N_SCHEDULERS] = {0};
    for (int i = 0; s == RT_OK && i < N_SCHEDULERS; i++) {
        s = rt_scheduler_new(&cfg, set, &sched[i], err);
        if (s == RT_OK)
            s = rt_scheduler_start(sched[i], err);
    }
    if (s == RT_OK && !wait_synced(sched, N_SCHEDULERS))
        s = rt_error_set(err, RT_ERR_TIMEOUT, "schedulers did not sync within 60 s");
    int64_t t0 = rt_mono_ms();
    /* Ticks are one per second: wait for them on the clock, printing progress. */
    if (s == RT_OK && !o->json)
        fprintf(stderr, "  lateness: %d ticks with %d schedulers, about %d s ...\n", o->ticks, N_SCHEDULERS, o->ticks);
    while (s == RT_OK) {
        uint64_t runs = 0;
        for (int i = 0; i < N_SCHEDULERS; i++) {
            rt_scheduler_stats st;
            rt_scheduler_stats_get(sched[i], &st);
            runs += st.runs;
        }
        if (runs >= (uint64_t)o->ticks)
            break;
        if (rt_mono_ms() - t0 > (int64_t)o->ticks * 2000 + 60000) {
            s = rt_error_set(err, RT_ERR_TIMEOUT, "only %llu of %d ticks fired", (unsigned long long)runs, o->ticks);
            break;
        }
        sleep_ms(200);
    }
    res->seconds = (double)(rt_mono_ms() - t0) / 1000.0;
    for (int i = 0; i < N_SCHEDULERS; i++) {
        rt_scheduler_stop(sched[i]);
        rt_scheduler_stats st;
        rt_scheduler_stats_get(sched[i], &st);
        res->claims[i] = st.claims;
        rt_scheduler_free(sched[i]);
    }
    if (e) {
        rt_engine_stop(e, 5000);
        rt_engine_free(e);
    }
    if (s == RT_OK)
        s = measure_lateness(sc.url, 0, &res->lat, err);
    rt_workflow_set_free(set);
    scratch_close(&sc);
    return s;
}

/* ---------- 2. the cost of many schedules ---------- */

typedef struct cost_result {
    int schedules;
    double sync_ms;
    double cpu_ms_per_min;
    uint64_t runs, wakeups;
    double seconds;
    long set_rss, sched_rss; /* KiB of RSS growth: building the definitions, running the scheduler */
    long rss_kib;
    lateness lat;
    double idle_cpu_ms_per_min;
    uint64_t idle_wakeups;
    double idle_seconds;
} cost_result;

/* One scheduler over set for `seconds`: CPU, wakeups, runs during the window. */
static rt_status run_one(const rt_config *cfg, const rt_workflow_set *set, int seconds, double *cpu_ms_per_min,
                         uint64_t *wakeups, uint64_t *runs, double *elapsed, long *rss_growth, int64_t *window_s,
                         rt_error *err)
{
    long r0 = rss_kib();
    rt_scheduler *sched = NULL;
    rt_status s = rt_scheduler_new(cfg, set, &sched, err);
    if (s == RT_OK)
        s = rt_scheduler_start(sched, err);
    if (s == RT_OK && !wait_synced(&sched, 1))
        s = rt_error_set(err, RT_ERR_TIMEOUT, "the scheduler did not sync within 60 s");
    if (s == RT_OK) {
        rt_scheduler_stats a, b;
        /* Start the window after the first fires: the start-up (sync, first claim) is not the
         * steady state being measured. */
        sleep_ms(2000);
        rt_scheduler_stats_get(sched, &a);
        *window_s = rt_now_ms() / 1000 + 1;
        int64_t t0 = rt_mono_ms();
        sleep_ms((int64_t)seconds * 1000);
        rt_scheduler_stats_get(sched, &b);
        *elapsed = (double)(rt_mono_ms() - t0) / 1000.0;
        *cpu_ms_per_min = (double)(b.cpu_ns - a.cpu_ns) / 1e6 * 60.0 / *elapsed;
        *wakeups = b.wakeups - a.wakeups;
        *runs = b.runs - a.runs;
        if (rss_growth)
            *rss_growth = rss_kib() - r0;
    }
    rt_scheduler_free(sched);
    return s;
}

static rt_status bench_cost(const rt_config *base, const bench_opts *o, cost_result *res, rt_error *err)
{
    memset(res, 0, sizeof *res);
    res->schedules = o->schedules;
    scratch sc;
    rt_status s = scratch_open(base, "cost", &sc, err);
    rt_config cfg = *base;
    cfg.database_url = sc.url;
    cfg.scheduler_enabled = true;
    long r0 = rss_kib();
    rt_workflow_set *set = NULL, *idle = NULL;
    if (s == RT_OK)
        s = make_set(o->schedules, "bench-cost", "%d * * * * *", &set, err);
    res->set_rss = rss_kib() - r0;
    /* The first sync inserts every row: timed on its own. */
    rt_store *st = NULL;
    if (s == RT_OK)
        s = rt_store_open(sc.url, &st, err);
    if (s == RT_OK) {
        rt_schedule_sync_result r;
        int64_t t0 = rt_mono_us();
        s = rt_schedules_sync(st, set, &r, err);
        res->sync_ms = (double)(rt_mono_us() - t0) / 1000.0;
    }
    rt_store_close(st);
    int64_t window = 0;
    if (s == RT_OK && !o->json)
        fprintf(stderr, "  cost: %d schedules firing once a minute each, %d s ...\n", o->schedules, o->seconds);
    if (s == RT_OK)
        s = run_one(&cfg, set, o->seconds, &res->cpu_ms_per_min, &res->wakeups, &res->runs, &res->seconds,
                    &res->sched_rss, &window, err);
    res->rss_kib = rss_kib();
    if (s == RT_OK)
        s = measure_lateness(sc.url, window, &res->lat, err);
    scratch_close(&sc);

    /* Idle: as many schedules that do not fire (Feb 29 at 00:00:S). */
    if (s == RT_OK)
        s = scratch_open(base, "idle", &sc, err);
    cfg.database_url = sc.url;
    if (s == RT_OK)
        s = make_set(o->schedules, "bench-idle", "%d 0 0 29 2 *", &idle, err);
    int idle_s = o->seconds / 3 > 5 ? o->seconds / 3 : 5;
    uint64_t idle_runs = 0;
    if (s == RT_OK && !o->json)
        fprintf(stderr, "  idle: %d schedules that do not fire, %d s ...\n", o->schedules, idle_s);
    if (s == RT_OK)
        s = run_one(&cfg, idle, idle_s, &res->idle_cpu_ms_per_min, &res->idle_wakeups, &idle_runs,
                    &res->idle_seconds, NULL, &window, err);
    scratch_close(&sc);
    rt_workflow_set_free(set);
    rt_workflow_set_free(idle);
    return s;
}

static const rt_arg_opt bench_cron_opts[] = {
    {"--ticks", "N", "fire ticks per scheduler (5..100000, default 200)"},
    {"--schedules", "N", "schedules for the cost measurement (1..1000000, default 10000)"},
    {"--seconds", "N", "how long the cost measurement runs (5..3600, default 60)"},
    {"--json", NULL, "print JSON"},
    {NULL, NULL, NULL},
};
static const rt_arg_cmd bench_cron_cmd = {"ratchet bench cron", NULL, 0,
                                          "cron fire lateness (3 schedulers) and the cost of many schedules",
                                          bench_cron_opts, true};

int rt_bench_cron_main(rt_config *cfg, int argc, char **argv, int pos)
{
    bench_opts o = {.ticks = 200, .schedules = 10000, .seconds = 60};
    rt_args args;
    int rc;
    if (!rt_args_take(&bench_cron_cmd, cfg, argc, argv, pos, &args, &rc))
        return rc;
    static const struct {
        const char *name;
        size_t off;
        long lo, hi;
    } ints[] = {
        {"--ticks", offsetof(bench_opts, ticks), 5, 100000},
        {"--schedules", offsetof(bench_opts, schedules), 1, 1000000},
        {"--seconds", offsetof(bench_opts, seconds), 5, 3600},
    };
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        int *field = (int *)((char *)&o + ints[k].off);
        long v = *field;
        rt_error ierr;
        if (rt_args_int(&args, ints[k].name, ints[k].lo, ints[k].hi, &v, &ierr) != RT_OK)
            return rt_args_usage(&bench_cron_cmd, "%s", ierr.msg);
        *field = (int)v;
    }
    o.json = rt_args_given(&args, "--json");
    rt_error err;
    if (rt_config_require_database(cfg, &err) != RT_OK) {
        fprintf(stderr, "ratchet bench cron: %s\n", err.msg);
        return 2;
    }
    rt_log_configure(RT_LOG_WARN, false);
    if (!o.json)
        printf("ratchet bench cron: %d schedulers x 1 per-second schedule for %d ticks; %d schedules for the cost "
               "(%d s); %ld CPU(s)\n",
               N_SCHEDULERS, o.ticks, o.schedules, o.seconds, sysconf(_SC_NPROCESSORS_ONLN));
    fflush(stdout);

    lateness_result lr;
    if (bench_lateness(cfg, &o, &lr, &err) != RT_OK) {
        fprintf(stderr, "ratchet bench cron: lateness: %s\n", err.msg);
        return 1;
    }
    long long span = lr.lat.n ? lr.lat.last - lr.lat.first + 1 : 0;
    if (!o.json) {
        printf("  fire lateness (run created_at - tick), %zu ticks, 3 schedulers: p50 %.2f ms, p99 %.2f ms, max %.2f "
               "ms; ticks %lld..%lld: %lld distinct, %lld missing, %lld doubled; claims per scheduler %llu/%llu/%llu\n",
               lr.lat.n, lr.lat.p50, lr.lat.p99, lr.lat.max, lr.lat.first, lr.lat.last, lr.lat.distinct,
               span - lr.lat.distinct, (long long)lr.lat.n - lr.lat.distinct, (unsigned long long)lr.claims[0],
               (unsigned long long)lr.claims[1], (unsigned long long)lr.claims[2]);
        fflush(stdout);
    }
    cost_result cr;
    if (bench_cost(cfg, &o, &cr, &err) != RT_OK) {
        fprintf(stderr, "ratchet bench cron: cost: %s\n", err.msg);
        return 1;
    }
    if (o.json) {
        printf("{\"lateness\":{\"ticks\":%zu,\"schedulers\":%d,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
               "\"missing\":%lld,\"doubled\":%lld},"
               "\"cost\":{\"schedules\":%d,\"sync_ms\":%.1f,\"cpu_ms_per_min\":%.1f,\"runs_per_min\":%.0f,"
               "\"wakeups_per_min\":%.0f,\"scheduler_rss_growth_kib\":%ld,\"definitions_rss_kib\":%ld,\"rss_kib\":%ld,"
               "\"lateness_p50_ms\":%.2f,\"lateness_p99_ms\":%.2f,\"idle_cpu_ms_per_min\":%.2f,"
               "\"idle_wakeups_per_min\":%.1f}}\n",
               lr.lat.n, N_SCHEDULERS, lr.lat.p50, lr.lat.p99, lr.lat.max, span - lr.lat.distinct,
               (long long)lr.lat.n - lr.lat.distinct, cr.schedules, cr.sync_ms, cr.cpu_ms_per_min,
               (double)cr.runs * 60.0 / cr.seconds, (double)cr.wakeups * 60.0 / cr.seconds, cr.sched_rss,
               cr.set_rss, cr.rss_kib, cr.lat.p50, cr.lat.p99, cr.idle_cpu_ms_per_min,
               (double)cr.idle_wakeups * 60.0 / cr.idle_seconds);
    } else {
        printf("  %d schedules firing once a minute each (spread over the seconds): first sync %.0f ms; scheduler "
               "thread CPU %.1f ms per minute for %.0f runs/min (%.0f wake-ups/min); fire lateness p50 %.2f ms, p99 "
               "%.2f ms\n",
               cr.schedules, cr.sync_ms, cr.cpu_ms_per_min, (double)cr.runs * 60.0 / cr.seconds,
               (double)cr.wakeups * 60.0 / cr.seconds, cr.lat.p50, cr.lat.p99);
        printf("  memory: RSS grew %ld KiB while the scheduler ran (its connection, caches, id map, thread); the %d "
               "parsed workflow definitions take %ld KiB; process RSS %ld KiB\n",
               cr.sched_rss, cr.schedules, cr.set_rss, cr.rss_kib);
        printf("  %d idle schedules: scheduler thread CPU %.2f ms per minute (%.1f wake-ups/min)\n", cr.schedules,
               cr.idle_cpu_ms_per_min, (double)cr.idle_wakeups * 60.0 / cr.idle_seconds);
    }
    return 0;
}
