/* bench_scale.c — `ratchet bench scale`: what work already done costs the work to come.
 * Three measures, each on its own scratch database of the configured server:
 *  1. drain rate of N one-step runs with a million finished runs already kept (made by one
 *     INSERT … SELECT generate_series, not by the engine) vs an empty database, in
 *     alternating rounds;
 *  2. resident memory (VmRSS) of a real `ratchet serve` process idle, then holding 100k
 *     sleeping runs;
 *  3. claims of due runs while 100k runs scheduled for later sit in the queue, vs none. */
#include "args.h"
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store_bench.h"
#include "util.h"

#define MAX_ROUNDS 9

typedef struct scale_opts {
    int runs, finished, sleeping, scheduled, due, rounds;
    bool json;
} scale_opts;

typedef struct scale_figures {
    double empty_rps[MAX_ROUNDS], full_rps[MAX_ROUNDS];
    double empty_median, full_median, ratio_median; /* ratio: median of per-round full/empty */
    double fill_s;
    long rss_idle_kb, rss_sleeping_kb, hwm_kb;
    double sleeping_s; /* preload + engine putting them to sleep */
    double claim_alone_p50, claim_alone_p99, claim_loaded_p50, claim_loaded_p99;
    double claim_alone_first, claim_loaded_first; /* the slowest first claim of a connection */
    double due_alone_s, due_loaded_s, first_alone_ms, first_loaded_ms;
} scale_figures;

static void pause_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
    double s[MAX_ROUNDS];
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static rt_status workflow_from(const char *text, rt_workflow **out, rt_error *err)
{
    json_error_t jerr;
    json_t *def = json_loads(text, 0, &jerr);
    if (!def)
        return rt_error_set(err, RT_ERR_INTERNAL, "bench workflow: %s", jerr.text);
    rt_status s = rt_workflow_from_json(def, NULL, out, err);
    json_decref(def);
    return s;
}

#define NOOP_WF "{\"id\": \"bench-noop-1\", \"steps\": [{\"id\": \"a\", \"uses\": \"transform\", \"with\": {\"value\": 0}}]}"
#define SLEEP_WF "{\"id\": \"bench-sleep\", \"steps\": [{\"id\": \"nap\", \"uses\": \"sleep\", \"with\": {\"duration\": \"1h\"}}]}"

/* Waits until `target` runs of wf_id have status (at most limit_s); *first_ms gets the
 * time (ms since start_us) at which the first one was seen, when first_ms is not NULL. */
static rt_status await_runs(rt_store *st, const char *wf_id, const char *status, int64_t target, int limit_s,
                            int64_t start_us, double *first_ms, rt_error *err)
{
    int64_t n = 0;
    rt_status s = RT_OK;
    if (first_ms)
        *first_ms = -1;
    while (s == RT_OK) {
        s = rt_store_bench_count_runs(st, wf_id, status, &n, err);
        if (s == RT_OK && n > 0 && first_ms && *first_ms < 0)
            *first_ms = (double)(rt_mono_us() - start_us) / 1000.0;
        if (s != RT_OK || n >= target)
            break;
        if (rt_mono_us() - start_us > (int64_t)limit_s * 1000000)
            return rt_error_set(err, RT_ERR_TIMEOUT, "%lld of %lld runs of %s %s after %d s", (long long)n,
                                (long long)target, wf_id, status, limit_s);
        pause_ms(first_ms && *first_ms < 0 ? 1 : 10);
    }
    return s;
}

/* ---- 1. drain with a million finished runs kept vs none ---- */

static rt_status drain_round(rt_bench_db *db, const rt_workflow *wf, int runs, double *rps, rt_error *err)
{
    rt_status s = rt_bench_preload(db->st, wf, runs, 0, err); /* not timed */
    int64_t t0 = 0, t1 = 0;
    rt_engine_stats stats;
    if (s == RT_OK)
        s = rt_bench_drain(&db->cfg, db->st, (uint64_t)runs, &t0, &t1, &stats, err);
    if (s == RT_OK)
        *rps = runs / ((double)(t1 - t0) / 1e6);
    return s;
}

static rt_status measure_drain(const rt_config *cfg, const scale_opts *o, scale_figures *f, rt_error *err)
{
    rt_bench_db empty, full;
    rt_workflow *wf = NULL;
    rt_status s = workflow_from(NOOP_WF, &wf, err);
    if (s != RT_OK)
        return s;
    s = rt_bench_db_open(&empty, cfg, "scale_empty", err);
    if (s != RT_OK) {
        rt_workflow_free(wf);
        return s;
    }
    s = rt_bench_db_open(&full, cfg, "scale_full", err);
    if (s != RT_OK) {
        rt_bench_db_close(&empty);
        rt_workflow_free(wf);
        return s;
    }
    int64_t t0 = rt_mono_us();
    s = rt_store_bench_fill_finished(full.st, wf, o->finished, err);
    f->fill_s = (double)(rt_mono_us() - t0) / 1e6;
    if (!o->json && s == RT_OK)
        printf("  %d finished runs made in %.1f s (one insert … select, then vacuum analyze)\n", o->finished,
               f->fill_s);
    double ratios[MAX_ROUNDS];
    for (int r = 0; s == RT_OK && r < o->rounds; r++) {
        /* Alternate which goes first, so a burst of noise falls on both alike. */
        bool full_first = r % 2;
        rt_bench_db *first = full_first ? &full : &empty, *second = full_first ? &empty : &full;
        double a = 0, b = 0;
        s = drain_round(first, wf, o->runs, &a, err);
        if (s == RT_OK)
            s = drain_round(second, wf, o->runs, &b, err);
        f->empty_rps[r] = full_first ? b : a;
        f->full_rps[r] = full_first ? a : b;
        ratios[r] = f->full_rps[r] / f->empty_rps[r];
        if (!o->json && s == RT_OK) {
            printf("  round %d: empty %.0f runs/s, with %d finished %.0f runs/s (%.2fx)\n", r + 1, f->empty_rps[r],
                   o->finished, f->full_rps[r], ratios[r]);
            fflush(stdout);
        }
    }
    if (s == RT_OK) {
        f->empty_median = median(f->empty_rps, o->rounds);
        f->full_median = median(f->full_rps, o->rounds);
        f->ratio_median = median(ratios, o->rounds);
    }
    rt_bench_db_close(&full);
    rt_bench_db_close(&empty);
    rt_workflow_free(wf);
    return s;
}

/* ---- 2. RSS of `ratchet serve` ---- */

/* VmRSS and VmHWM of pid in kB (0 when unreadable). */
static void read_rss(pid_t pid, long *rss, long *hwm)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    *rss = *hwm = 0;
    FILE *fp = fopen(path, "r");
    if (!fp)
        return;
    while (fgets(line, sizeof line, fp)) {
        if (!strncmp(line, "VmRSS:", 6))
            *rss = strtol(line + 6, NULL, 10);
        else if (!strncmp(line, "VmHWM:", 6))
            *hwm = strtol(line + 6, NULL, 10);
    }
    fclose(fp);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Starts this binary as `ratchet serve` on the scratch database, without brokers, with
 * dir/workflows as its workflows and dir/serve.log as its output. */
static rt_status spawn_serve(const rt_config *cfg, const char *dir, pid_t *pid, rt_error *err)
{
    char log_path[512], wf_dir[512], addr[64], workers[16];
    snprintf(log_path, sizeof log_path, "%s/serve.log", dir);
    snprintf(wf_dir, sizeof wf_dir, "%s/workflows", dir);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", free_port());
    snprintf(workers, sizeof workers, "%d", cfg->workers);
    *pid = fork();
    if (*pid < 0)
        return rt_error_set(err, RT_ERR_INTERNAL, "fork: %s", strerror(errno));
    if (*pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        setenv("RATCHET_DATABASE_URL", cfg->database_url, 1);
        setenv("RATCHET_WORKFLOWS", wf_dir, 1);
        setenv("RATCHET_HTTP_ADDR", addr, 1);
        setenv("RATCHET_WORKERS", workers, 1);
        setenv("RATCHET_LOG_LEVEL", "info", 1);
        unsetenv("RATCHET_AMQP_URL");
        unsetenv("RATCHET_NATS_URL");
        execl("/proc/self/exe", "ratchet", "serve", (char *)NULL);
        _exit(127);
    }
    /* Ready once the API (the last part to start) says where it listens. */
    char line[1024];
    for (int64_t t0 = rt_mono_ms(); rt_mono_ms() - t0 < 60000; pause_ms(50)) {
        int status;
        if (waitpid(*pid, &status, WNOHANG) == *pid) {
            *pid = 0;
            return rt_error_set(err, RT_ERR_UNAVAILABLE, "ratchet serve exited at start (see %s)", log_path);
        }
        FILE *fp = fopen(log_path, "r");
        bool ready = false;
        while (fp && !ready && fgets(line, sizeof line, fp))
            ready = strstr(line, "API ") && strstr(line, "http://"); /* with or without tokens */
        if (fp)
            fclose(fp);
        if (ready)
            return RT_OK;
    }
    return rt_error_set(err, RT_ERR_TIMEOUT, "ratchet serve not ready after 60 s (see %s)", log_path);
}

static void stop_serve(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    int status;
    for (int i = 0; i < 600 && waitpid(pid, &status, WNOHANG) == 0; i++)
        pause_ms(50);
    if (waitpid(pid, &status, WNOHANG) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
}

static rt_status write_file(const char *path, const char *text, rt_error *err)
{
    FILE *fp = fopen(path, "w");
    if (!fp || fputs(text, fp) < 0) {
        if (fp)
            fclose(fp);
        return rt_error_set(err, RT_ERR_INTERNAL, "writing %s: %s", path, strerror(errno));
    }
    fclose(fp);
    return RT_OK;
}

static rt_status measure_rss(const rt_config *cfg, const scale_opts *o, scale_figures *f, rt_error *err)
{
    char dir[] = "/tmp/ratchet-bench-scale-XXXXXX", path[512];
    if (!mkdtemp(dir))
        return rt_error_set(err, RT_ERR_INTERNAL, "mkdtemp: %s", strerror(errno));
    snprintf(path, sizeof path, "%s/workflows", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/workflows/bench-sleep.json", dir);
    rt_status s = write_file(path, SLEEP_WF "\n", err);
    rt_bench_db db;
    if (s == RT_OK)
        s = rt_bench_db_open(&db, cfg, "scale_rss", err);
    if (s != RT_OK)
        return s;
    rt_workflow *wf = NULL;
    pid_t pid = 0;
    s = workflow_from(SLEEP_WF, &wf, err);
    if (s == RT_OK)
        s = spawn_serve(&db.cfg, dir, &pid, err);
    if (s == RT_OK) {
        pause_ms(2000); /* idle: let start-up allocations settle */
        read_rss(pid, &f->rss_idle_kb, &f->hwm_kb);
        int64_t t0 = rt_mono_us();
        s = rt_bench_preload(db.st, wf, o->sleeping, 0, err);
        if (s == RT_OK)
            s = await_runs(db.st, wf->id, "sleeping", o->sleeping, 600, t0, NULL, err);
        f->sleeping_s = (double)(rt_mono_us() - t0) / 1e6;
        pause_ms(1000);
        read_rss(pid, &f->rss_sleeping_kb, &f->hwm_kb);
    }
    stop_serve(pid);
    if (s == RT_OK) { /* keep the log of a failure for the reader */
        snprintf(path, sizeof path, "%s/serve.log", dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/workflows/bench-sleep.json", dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/workflows", dir);
        rmdir(path);
        rmdir(dir);
    }
    rt_workflow_free(wf);
    rt_bench_db_close(&db);
    return s;
}

/* ---- 3. claims with 100k scheduled-later runs queued ---- */

/* Creates `due` runs due now, starts an engine, times until all completed; claim latency
 * from the engine's own samples (p[0] p50, p[1] p99, p[2] the slowest first claim of a
 * connection, which the percentiles leave out). */
static rt_status due_round(rt_bench_db *db, const rt_workflow *wf, int due, int64_t done_before, double *secs,
                           double *first_ms, double *p[3], rt_error *err)
{
    rt_status s = rt_bench_preload(db->st, wf, due, 0, err);
    rt_engine *e = NULL;
    if (s == RT_OK)
        s = rt_engine_new(&db->cfg, &e, err);
    int64_t t0 = rt_mono_us();
    if (s == RT_OK)
        s = rt_engine_start(e, err);
    if (s == RT_OK)
        s = await_runs(db->st, wf->id, "completed", done_before + due, 600, t0, first_ms, err);
    *secs = (double)(rt_mono_us() - t0) / 1e6;
    rt_engine_stats stats = {0};
    if (e) {
        rt_engine_stop(e, 5000);
        rt_engine_stats_get(e, &stats);
    }
    rt_engine_free(e);
    *p[0] = stats.claim_p50_ms;
    *p[1] = stats.claim_p99_ms;
    *p[2] = stats.claim_first_ms;
    return s;
}

static rt_status measure_claims(const rt_config *cfg, const scale_opts *o, scale_figures *f, rt_error *err)
{
    rt_bench_db db;
    rt_status s = rt_bench_db_open(&db, cfg, "scale_sched", err);
    if (s != RT_OK)
        return s;
    rt_workflow *wf = NULL;
    s = workflow_from(NOOP_WF, &wf, err);
    if (s == RT_OK)
        s = due_round(&db, wf, o->due, 0, &f->due_alone_s, &f->first_alone_ms,
                      (double *[3]){&f->claim_alone_p50, &f->claim_alone_p99, &f->claim_alone_first}, err);
    if (s == RT_OK) /* due in a day: queued, never claimed during the bench */
        s = rt_bench_preload_at(db.st, wf, o->scheduled, 0, rt_now_ms() + 86400000LL, err);
    if (s == RT_OK)
        s = rt_store_exec_simple(db.st, "vacuum analyze ratchet.queue, ratchet.runs, ratchet.steps", err);
    if (s == RT_OK)
        s = due_round(&db, wf, o->due, o->due, &f->due_loaded_s, &f->first_loaded_ms,
                      (double *[3]){&f->claim_loaded_p50, &f->claim_loaded_p99, &f->claim_loaded_first}, err);
    rt_workflow_free(wf);
    rt_bench_db_close(&db);
    return s;
}

/* ---- options and output ---- */

static const rt_arg_opt scale_arg_opts[] = {
    {"--runs", "N", "runs drained per round (0: skip the drain)"},
    {"--finished", "N", "finished runs kept in the tables for the full-database rounds"},
    {"--sleeping", "N", "sleeping runs for serve's memory (0: skip)"},
    {"--scheduled", "N", "runs scheduled later, queued before the claims (0: skip)"},
    {"--due", "N", "due runs claimed, alone and behind the scheduled ones"},
    {"--rounds", "N", "alternating rounds"},
    {"--json", NULL, "print JSON"},
    {NULL, NULL, NULL},
};
static const rt_arg_cmd scale_cmd = {"ratchet bench scale", NULL, 0,
                                     "cost as work grows: drain with 1 M finished runs, serve's memory, claims",
                                     scale_arg_opts, true};

static int parse_args(rt_config *cfg, int argc, char **argv, int pos, scale_opts *o)
{
    static const rt_args_int_field ints[] = {
        {"--runs", offsetof(scale_opts, runs), 0, 1000000},
        {"--finished", offsetof(scale_opts, finished), 1, 100000000},
        {"--sleeping", offsetof(scale_opts, sleeping), 0, 10000000},
        {"--scheduled", offsetof(scale_opts, scheduled), 0, 10000000},
        {"--due", offsetof(scale_opts, due), 0, 1000000},
        {"--rounds", offsetof(scale_opts, rounds), 1, MAX_ROUNDS},
    };
    rt_args args;
    int rc;
    if (!rt_args_take(&scale_cmd, cfg, argc, argv, pos, &args, &rc))
        return rc ? rc : -1; /* -1: --help was printed */
    rt_error ierr;
    if (rt_args_int_fields(&args, ints, sizeof ints / sizeof ints[0], o, &ierr) != RT_OK)
        return rt_args_usage(&scale_cmd, "%s", ierr.msg);
    o->json = rt_args_given(&args, "--json");
    rt_error err;
    if (rt_config_require_database(cfg, &err) != RT_OK) {
        fprintf(stderr, "ratchet bench scale: %s\n", err.msg);
        return 2;
    }
    return 0;
}

static void print_json(const rt_config *cfg, const scale_opts *o, const char *sync, const scale_figures *f)
{
    printf("{\"benchmark\":\"scale\",\"workers\":%d,\"synchronous_commit\":\"%s\",\"rounds\":%d,"
           "\"drain\":{\"runs\":%d,\"finished_kept\":%d,\"fill_s\":%.1f,\"empty_runs_per_s\":[",
           cfg->workers, sync, o->rounds, o->runs, o->finished, f->fill_s);
    for (int r = 0; r < o->rounds; r++)
        printf("%s%.0f", r ? "," : "", f->empty_rps[r]);
    printf("],\"full_runs_per_s\":[");
    for (int r = 0; r < o->rounds; r++)
        printf("%s%.0f", r ? "," : "", f->full_rps[r]);
    printf("],\"empty_median\":%.0f,\"full_median\":%.0f,\"ratio_full_over_empty\":%.3f},", f->empty_median,
           f->full_median, f->ratio_median);
    printf("\"rss\":{\"sleeping_runs\":%d,\"idle_kb\":%ld,\"sleeping_kb\":%ld,\"peak_kb\":%ld,\"sleeping_s\":%.1f},",
           o->sleeping, f->rss_idle_kb, f->rss_sleeping_kb, f->hwm_kb, f->sleeping_s);
    printf("\"claims\":{\"due\":%d,\"scheduled_later\":%d,\"alone\":{\"seconds\":%.3f,\"first_done_ms\":%.1f,"
           "\"claim_p50_ms\":%.2f,\"claim_p99_ms\":%.2f,\"claim_first_ms\":%.2f},\"loaded\":{\"seconds\":%.3f,"
           "\"first_done_ms\":%.1f,\"claim_p50_ms\":%.2f,\"claim_p99_ms\":%.2f,\"claim_first_ms\":%.2f}}}\n",
           o->due, o->scheduled, f->due_alone_s, f->first_alone_ms, f->claim_alone_p50, f->claim_alone_p99,
           f->claim_alone_first, f->due_loaded_s, f->first_loaded_ms, f->claim_loaded_p50, f->claim_loaded_p99,
           f->claim_loaded_first);
}

int rt_bench_scale_main(rt_config *cfg, int argc, char **argv, int pos)
{
    scale_opts o = {.runs = 20000, .finished = 1000000, .sleeping = 100000, .scheduled = 100000, .due = 1000,
                    .rounds = 3};
    int rc = parse_args(cfg, argc, argv, pos, &o);
    if (rc)
        return rc < 0 ? 0 : rc; /* -1: --help */
    rt_log_configure(RT_LOG_WARN, false);
    rt_error err;
    rt_store *st = NULL;
    if (rt_store_open(cfg->database_url, &st, &err) != RT_OK) {
        fprintf(stderr, "ratchet bench scale: %s\n", err.msg);
        return 1;
    }
    char sync[64] = "?";
    rt_store_setting(st, "synchronous_commit", sync, sizeof sync, &err);
    rt_store_close(st);
    scale_figures f = {0};
    if (!o.json) {
        printf("ratchet bench scale: %d workers, synchronous_commit=%s\n", cfg->workers, sync);
        printf("drain of %d one-step runs, empty database vs %d finished runs kept, %d rounds:\n", o.runs,
               o.finished, o.rounds);
        fflush(stdout);
    }
    rt_status s = o.runs > 0 ? measure_drain(cfg, &o, &f, &err) : RT_OK;
    if (s == RT_OK && !o.json && o.runs > 0)
        printf("  median: empty %.0f runs/s, with %d finished %.0f runs/s -> %.2fx (goal: >= 0.80x)\n",
               f.empty_median, o.finished, f.full_median, f.ratio_median);
    if (s == RT_OK && o.sleeping > 0) {
        if (!o.json) {
            printf("resident memory of `ratchet serve` (VmRSS):\n");
            fflush(stdout);
        }
        s = measure_rss(cfg, &o, &f, &err);
        if (s == RT_OK && !o.json)
            printf("  idle %.1f MB (goal <= 16 MB); with %d sleeping runs %.1f MB (goal <= 64 MB), peak %.1f MB; "
                   "%d runs created and put to sleep in %.1f s\n",
                   f.rss_idle_kb / 1024.0, o.sleeping, f.rss_sleeping_kb / 1024.0, f.hwm_kb / 1024.0, o.sleeping,
                   f.sleeping_s);
    }
    if (s == RT_OK && o.due > 0) {
        if (!o.json) {
            printf("claims of %d due one-step runs, alone vs with %d runs scheduled for later queued:\n", o.due,
                   o.scheduled);
            fflush(stdout);
        }
        s = measure_claims(cfg, &o, &f, &err);
        if (s == RT_OK && !o.json)
            printf("  alone: all done in %.3f s, first %.1f ms after engine start, claim p50 %.2f ms p99 %.2f ms "
                   "(a connection's first claim apart: up to %.1f ms)\n"
                   "  with %d scheduled: all done in %.3f s, first %.1f ms after engine start, claim p50 %.2f ms "
                   "p99 %.2f ms (first: up to %.1f ms)\n",
                   f.due_alone_s, f.first_alone_ms, f.claim_alone_p50, f.claim_alone_p99, f.claim_alone_first,
                   o.scheduled, f.due_loaded_s, f.first_loaded_ms, f.claim_loaded_p50, f.claim_loaded_p99,
                   f.claim_loaded_first);
    }
    if (s != RT_OK) {
        fprintf(stderr, "%sratchet bench scale: %s\n", o.json ? "" : "\n", err.msg);
        return 1;
    }
    if (o.json)
        print_json(cfg, &o, sync, &f);
    fflush(stdout);
    return 0;
}
