/* bench.h — `ratchet bench`: throughput and claim latency of the engine on a scratch
 * database of the configured PostgreSQL server. */
#ifndef RT_BENCH_H
#define RT_BENCH_H

#include <stdbool.h>

#include "config.h"

/* steps_filter: 0 = both cases (1 and 5 steps per run). Returns an exit code. */
int rt_bench_main(rt_config *cfg, int runs, int steps_filter, bool json);

/* `ratchet bench events`: ingest throughput and publish-to-first-step latency per broker
 * (bench_events.c). Returns an exit code. */
int rt_bench_events_main(rt_config *cfg, int events, bool json);

/* The server URL with its database replaced by name (URI or key=value). Caller frees. */
char *rt_url_with_database(const char *url, const char *name);

#endif
