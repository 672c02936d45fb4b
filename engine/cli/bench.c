/* bench.c — `ratchet bench`: preloads N runs of a no-op workflow into a scratch database
 * it creates on the configured server, drains them with a real engine, and prints runs/s,
 * memoized steps/s and claim latency (each connection's first claim apart: it plans the
 * statement and is the first to read the preloaded rows). The scratch database is dropped afterwards. The
 * scratch database, preload and drain are shared with `ratchet bench flow` (bench.h). */
#include "bench.h"
#include "create.h"

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

/* ---- the shared machinery (bench.h) ---- */

rt_status rt_bench_db_open(rt_bench_db *db, const rt_config *base, const char *tag, rt_error *err)
{
    memset(db, 0, sizeof *db);
    snprintf(db->name, sizeof db->name, "ratchet_bench_%d_%s", (int)getpid(), tag);
    rt_status s = rt_store_open(base->database_url, &db->admin, err);
    if (s != RT_OK)
        return s;
    rt_error ignore;
    rt_store_drop_database(db->admin, db->name, &ignore); /* a leftover of a killed bench */
    s = rt_store_create_database(db->admin, db->name, err);
    if (s != RT_OK) {
        rt_store_close(db->admin);
        db->admin = NULL;
        return rt_error_prefix(err, "creating the scratch database %s", db->name);
    }
    db->cfg = *base;
    db->cfg.database_url = rt_url_with_database(base->database_url, db->name);
    /* sql steps of a bench query the scratch database, never the configured app database. */
    db->cfg.app_database_url = db->cfg.database_url;
    if (!db->cfg.database_url)
        s = rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    if (s == RT_OK)
        s = rt_store_open(db->cfg.database_url, &db->st, err);
    if (s == RT_OK)
        s = rt_store_migrate(db->st, NULL, err);
    if (s != RT_OK)
        rt_bench_db_close(db);
    return s;
}

void rt_bench_db_close(rt_bench_db *db)
{
    rt_store_close(db->st);
    db->st = NULL;
    if (db->admin) {
        rt_error ignore;
        rt_store_drop_database(db->admin, db->name, &ignore);
        rt_store_close(db->admin);
        db->admin = NULL;
    }
    free(db->cfg.database_url);
    db->cfg.database_url = db->cfg.app_database_url = NULL;
}

rt_status rt_bench_preload(rt_store *st, const rt_workflow *wf, int runs, int keys, rt_error *err)
{
    return rt_bench_preload_at(st, wf, runs, keys, 0, err);
}

rt_status rt_bench_preload_at(rt_store *st, const rt_workflow *wf, int runs, int keys, int64_t run_at_ms,
                              rt_error *err)
{
    enum { CHUNK = 1000 };
    rt_run_request *reqs = calloc(CHUNK, sizeof *reqs);
    json_t **events = calloc(CHUNK, sizeof *events);
    json_t *trigger = json_pack("{s:s}", "type", "manual");
    rt_status s = reqs && events && trigger ? RT_OK : rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    for (int done = 0; s == RT_OK && done < runs;) {
        int n = runs - done < CHUNK ? runs - done : CHUNK;
        for (int i = 0; i < n; i++) {
            char k[24];
            snprintf(k, sizeof k, "k%d", keys > 0 ? (done + i) % keys : 0);
            events[i] = keys > 0 ? json_pack("{s:s, s:{s:s}}", "name", "ratchet.manual", "data", "k", k)
                                 : json_pack("{s:s, s:{}}", "name", "ratchet.manual", "data");
            reqs[i] = (rt_run_request){.wf = wf, .trigger = trigger, .event = events[i], .run_at_ms = run_at_ms};
        }
        s = rt_run_create(st, reqs, (size_t)n, err);
        for (int i = 0; i < n; i++) {
            if (s == RT_OK && !reqs[i].id[0])
                s = rt_error_set(err, RT_ERR_INVALID, "preload: run %d of %s was not created: %s", done + i,
                                 wf->id, reqs[i].reason);
            json_decref(events[i]);
        }
        done += n;
    }
    json_decref(trigger);
    free(events);
    free(reqs);
    return s;
}

rt_status rt_bench_drain(const rt_config *cfg, rt_store *st, uint64_t expect_steps, int64_t *start_us,
                         int64_t *end_us, rt_engine_stats *stats, rt_error *err)
{
    rt_engine *e = NULL;
    rt_status s = rt_engine_new(cfg, &e, err);
    *start_us = rt_mono_us();
    if (s == RT_OK)
        s = rt_engine_start(e, err);
    /* Steps are counted when they run, not at their commit: a batch rolled back and run
     * again counts twice, a step skipped not at all. So the count of the engine only says
     * when to look; the queue seen empty says when it is done. */
    int64_t left = 1, counted_us = *start_us;
    int64_t every_us = expect_steps ? 100 * 1000 : 10 * 1000;
    while (s == RT_OK && left > 0) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 2 * 1000000};
        nanosleep(&ts, NULL);
        int64_t now = rt_mono_us();
        if (now - *start_us > 600LL * 1000000) {
            s = rt_error_set(err, RT_ERR_TIMEOUT, "drain took over 10 minutes");
            break;
        }
        bool all_ran = expect_steps && rt_engine_steps_run(e) >= expect_steps;
        if (now - counted_us < (all_ran ? 5 * 1000 : every_us))
            continue;
        counted_us = now;
        s = rt_store_queue_size(st, &left, err);
    }
    *end_us = rt_mono_us();
    memset(stats, 0, sizeof *stats);
    if (e) {
        rt_engine_stop(e, 5000);
        rt_engine_stats_get(e, stats);
    }
    rt_engine_free(e);
    /* A run that failed was not measured doing its work. */
    json_t *failed = NULL;
    if (s == RT_OK)
        s = rt_store_list_runs(st, &(rt_run_filter){.status = "failed", .limit = 1}, &failed, err);
    json_t *f0 = json_array_get(failed, 0);
    if (s == RT_OK && f0) {
        const char *id = json_string_value(json_object_get(f0, "id"));
        const char *wf = json_string_value(json_object_get(f0, "workflow"));
        const char *why = json_string_value(json_object_get(f0, "error"));
        s = rt_error_set(err, RT_ERR_INVALID, "run %s of %s failed: %s", id ? id : "?", wf ? wf : "?",
                         why ? why : "no error recorded");
    }
    json_decref(failed);
    return s;
}

/* ---- `ratchet bench` ---- */

typedef struct bench_result {
    int runs, steps;
    double seconds;
    rt_engine_stats stats;
} bench_result;

static rt_status bench_one(const rt_config *base, int runs, int steps, bench_result *res, rt_error *err)
{
    char tag[16];
    snprintf(tag, sizeof tag, "%d", steps);
    rt_bench_db db;
    rt_status s = rt_bench_db_open(&db, base, tag, err);
    if (s != RT_OK)
        return s;
    rt_workflow *wf = NULL;
    int64_t t0 = 0, t1 = 0;
    s = build_workflow(steps, &wf, err);
    if (s == RT_OK)
        s = rt_bench_preload(db.st, wf, runs, 0, err); /* not timed */
    if (s == RT_OK)
        s = rt_bench_drain(&db.cfg, db.st, (uint64_t)runs * (uint64_t)steps, &t0, &t1, &res->stats, err);
    res->runs = runs;
    res->steps = steps;
    res->seconds = (double)(t1 - t0) / 1e6;
    rt_workflow_free(wf);
    rt_bench_db_close(&db);
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
        printf("ratchet bench: %d runs per case, %d workers (%d for quick steps), claim batch %d, "
               "synchronous_commit=%s\n",
               runs, cfg->workers, cfg->quick_workers, cfg->claim_batch, sync);
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
                   "\"claim_p50_ms\":%.2f,\"claim_p99_ms\":%.2f,\"claim_first_ms\":%.2f,\"claims\":%llu,"
                   "\"workers\":%d,\"quick_workers\":%d,\"synchronous_commit\":\"%s\"}\n",
                   r.runs, r.steps, r.seconds, runs_s, steps_s, r.stats.claim_p50_ms, r.stats.claim_p99_ms,
                   r.stats.claim_first_ms, (unsigned long long)r.stats.claims, cfg->workers, cfg->quick_workers,
                   sync);
        } else {
            printf("  %d no-op transform step%s per run: drained in %.2f s -> %.0f runs/s, %.0f memoized steps/s; "
                   "claim latency p50 %.2f ms, p99 %.2f ms (%llu claims; a connection's first, cold: "
                   "up to %.0f ms)\n",
                   r.steps, r.steps == 1 ? "" : "s", r.seconds, runs_s, steps_s, r.stats.claim_p50_ms,
                   r.stats.claim_p99_ms, (unsigned long long)r.stats.claims, r.stats.claim_first_ms);
        }
        fflush(stdout);
    }
    return 0;
}
