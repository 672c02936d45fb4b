/* bench.c — `ratchet bench`: preloads N runs of a no-op workflow into a scratch database
 * it creates on the configured server, drains them with a real engine, and prints runs/s,
 * memoized steps/s and claim latency. The scratch database is dropped afterwards. */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "executor.h"
#include "log.h"
#include "store.h"
#include "util.h"
#include "workflow.h"

/* The server URL with its database replaced by name. Handles URIs and key=value strings. */
char *rt_url_with_database(const char *url, const char *name)
{
    size_t len = strlen(url) + strlen(name) + 16;
    char *out = malloc(len);
    if (!out)
        return NULL;
    const char *scheme = strstr(url, "://");
    if (!scheme) {
        snprintf(out, len, "%s dbname=%s", url, name);
        return out;
    }
    const char *host = scheme + 3;
    const char *slash = strchr(host, '/');
    const char *query = strchr(host, '?');
    if (slash && query && query < slash)
        slash = NULL;
    size_t head = slash ? (size_t)(slash - url) : query ? (size_t)(query - url) : strlen(url);
    snprintf(out, len, "%.*s/%s%s", (int)head, url, name, query ? query : "");
    return out;
}

static rt_status build_workflow(int steps, rt_workflow **out, rt_error *err)
{
    json_t *list = json_array();
    for (int i = 0; i < steps; i++)
        json_array_append_new(list, json_pack("{s:s, s:s, s:{s:i}}", "id", (char[]){(char)('a' + i), 0}, "uses",
                                              "transform", "with", "value", i));
    char id[32];
    snprintf(id, sizeof id, "bench-noop-%d", steps);
    json_t *def = json_pack("{s:s, s:o}", "id", id, "steps", list);
    rt_status s = rt_workflow_from_json(def, NULL, out, err);
    json_decref(def);
    return s;
}

typedef struct bench_result {
    int runs, steps;
    double seconds;
    rt_engine_stats stats;
} bench_result;

static rt_status bench_one(const rt_config *base, int runs, int steps, bench_result *res, rt_error *err)
{
    char name[64];
    snprintf(name, sizeof name, "ratchet_bench_%d_%d", (int)getpid(), steps);
    rt_store *admin = NULL;
    rt_status s = rt_store_open(base->database_url, &admin, err);
    if (s != RT_OK)
        return s;
    rt_error ignore;
    rt_store_drop_database(admin, name, &ignore);
    s = rt_store_create_database(admin, name, err);
    if (s != RT_OK) {
        rt_store_close(admin);
        return rt_error_prefix(err, "creating the scratch database %s", name);
    }
    rt_config cfg = *base;
    cfg.database_url = rt_url_with_database(base->database_url, name);
    rt_store *st = NULL;
    rt_workflow *wf = NULL;
    rt_engine *e = NULL;
    s = rt_store_open(cfg.database_url, &st, err);
    if (s == RT_OK)
        s = rt_store_migrate(st, NULL, err);
    if (s == RT_OK)
        s = build_workflow(steps, &wf, err);

    /* Preload, not timed. */
    json_t *trigger = json_pack("{s:s}", "type", "manual");
    json_t *event = json_pack("{s:s, s:{}}", "name", "ratchet.manual", "data");
    enum { CHUNK = 1000 };
    rt_run_request *reqs = calloc(CHUNK, sizeof *reqs);
    for (int done = 0; s == RT_OK && done < runs;) {
        int n = runs - done < CHUNK ? runs - done : CHUNK;
        for (int i = 0; i < n; i++)
            reqs[i] = (rt_run_request){.wf = wf, .trigger = trigger, .event = event};
        s = rt_store_create_runs(st, reqs, (size_t)n, err);
        done += n;
    }
    free(reqs);
    json_decref(trigger);
    json_decref(event);
    if (s == RT_OK)
        s = rt_engine_new(&cfg, &e, err);
    int64_t t0 = rt_mono_us();
    if (s == RT_OK)
        s = rt_engine_start(e, err);
    int64_t left = 1;
    while (s == RT_OK && left > 0) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000000};
        nanosleep(&ts, NULL);
        s = rt_store_queue_size(st, &left, err);
        if (rt_mono_us() - t0 > 600LL * 1000000)
            s = rt_error_set(err, RT_ERR_TIMEOUT, "drain took over 10 minutes");
    }
    int64_t t1 = rt_mono_us();
    if (e) {
        rt_engine_stop(e, 5000);
        rt_engine_stats_get(e, &res->stats);
    }
    res->runs = runs;
    res->steps = steps;
    res->seconds = (double)(t1 - t0) / 1e6;
    rt_engine_free(e);
    rt_workflow_free(wf);
    rt_store_close(st);
    rt_store_drop_database(admin, name, &ignore);
    rt_store_close(admin);
    free(cfg.database_url);
    return s;
}

int rt_bench_main(rt_config *cfg, int runs, int steps_filter, bool json)
{
    rt_log_configure(RT_LOG_WARN, false);
    rt_store *st = NULL;
    rt_error err;
    if (rt_store_open(cfg->database_url, &st, &err) != RT_OK) {
        fprintf(stderr, "ratchet bench: %s\n", err.msg);
        return 1;
    }
    char sync[64] = "?";
    rt_store_setting(st, "synchronous_commit", sync, sizeof sync, &err);
    rt_store_close(st);
    if (!json)
        printf("ratchet bench: %d runs per case, %d workers, claim batch %d, synchronous_commit=%s\n", runs,
               cfg->workers, cfg->claim_batch, sync);
    int cases[] = {1, 5};
    for (size_t i = 0; i < 2; i++) {
        if (steps_filter && cases[i] != steps_filter)
            continue;
        bench_result r = {0};
        if (bench_one(cfg, runs, cases[i], &r, &err) != RT_OK) {
            fprintf(stderr, "ratchet bench: %s\n", err.msg);
            return 1;
        }
        double runs_s = r.runs / r.seconds, steps_s = (double)r.runs * r.steps / r.seconds;
        if (json) {
            printf("{\"runs\":%d,\"steps_per_run\":%d,\"seconds\":%.3f,\"runs_per_s\":%.0f,\"steps_per_s\":%.0f,"
                   "\"claim_p50_ms\":%.2f,\"claim_p99_ms\":%.2f,\"claims\":%llu,\"workers\":%d,"
                   "\"synchronous_commit\":\"%s\"}\n",
                   r.runs, r.steps, r.seconds, runs_s, steps_s, r.stats.claim_p50_ms, r.stats.claim_p99_ms,
                   (unsigned long long)r.stats.claims, cfg->workers, sync);
        } else {
            printf("  %d no-op transform step%s per run: drained in %.2f s -> %.0f runs/s, %.0f memoized steps/s; "
                   "claim latency p50 %.2f ms, p99 %.2f ms (%llu claims)\n",
                   r.steps, r.steps == 1 ? "" : "s", r.seconds, runs_s, steps_s, r.stats.claim_p50_ms,
                   r.stats.claim_p99_ms, (unsigned long long)r.stats.claims);
        }
        fflush(stdout);
    }
    return 0;
}
