/* bench.h — `ratchet bench`: throughput and claim latency of the engine on a scratch
 * database of the configured PostgreSQL server. */
#ifndef RT_BENCH_H
#define RT_BENCH_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "executor.h"
#include "store.h"
#include "workflow.h"

/* steps_filter: 0 = both cases (1 and 5 steps per run). Returns an exit code. */
int rt_bench_main(rt_config *cfg, int runs, int steps_filter, bool json);

/* `ratchet bench events`: ingest throughput and publish-to-first-step latency per broker
 * (bench_events.c). Returns an exit code. */
int rt_bench_events_main(rt_config *cfg, int events, bool json);

/* `ratchet bench scale`: drain rate with a million finished runs kept vs an empty database,
 * RSS of `ratchet serve` idle and with 100k sleeping runs, claims with 100k scheduled-later
 * runs queued (bench_scale.c). Returns an exit code. */
int rt_bench_scale_main(rt_config *cfg, int argc, char **argv, int pos);

/* The server URL with its database replaced by name (URI or key=value). Caller frees. */
char *rt_url_with_database(const char *url, const char *name);

/* ---- what the throughput benchmarks share (bench, bench flow) ---- */

/* A scratch database on the configured server, migrated, with a copy of the settings
 * (cfg) whose database_url (owned) and app_database_url (the same string) point at it. */
typedef struct rt_bench_db {
    char name[64];
    rt_store *admin; /* on the configured database: drops the scratch one at close */
    rt_store *st;    /* on the scratch database */
    rt_config cfg;   /* borrowed by engines started on it: outlives them */
} rt_bench_db;

/* Creates ratchet_bench_<pid>_<tag> (dropping a leftover first) and migrates it. On an
 * error nothing is left behind and db needs no close. */
rt_status rt_bench_db_open(rt_bench_db *db, const rt_config *base, const char *tag, rt_error *err);
/* Closes both connections and drops the scratch database. */
void rt_bench_db_close(rt_bench_db *db);

/* Creates `runs` manual runs of wf through rt_run_create, so through the gate and run admission
 * like any real run, 1,000 per transaction. Their event data is {} or, with keys > 0,
 * {"k": "k<i % keys>"}. A request admission does not turn into a new run is an error. */
rt_status rt_bench_preload(rt_store *st, const rt_workflow *wf, int runs, int keys, rt_error *err);
/* The same, due at run_at_ms (unix ms; 0 = now). */
rt_status rt_bench_preload_at(rt_store *st, const rt_workflow *wf, int runs, int keys, int64_t run_at_ms,
                              rt_error *err);

/* Starts an engine on cfg (borrowed), waits until the queue of st is empty (at most 10
 * minutes), stops it and gets its counters. *start_us (engine start) and *end_us (queue
 * seen empty) are rt_mono_us() times. A failed run is an error (it names the first).
 * expect_steps: the step executions the drain takes, when known (else 0): the queue is
 * then counted every 5 ms once the engine has run that many, and every 100 ms before,
 * instead of every 10 ms all along (the count is a scan of the queue: it competed with the
 * drain for the server's CPU, up to 5 % of it). */
rt_status rt_bench_drain(const rt_config *cfg, rt_store *st, uint64_t expect_steps, int64_t *start_us,
                         int64_t *end_us, rt_engine_stats *stats, rt_error *err);

#endif
