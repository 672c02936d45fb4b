/* bench.h — `ratchet bench`: throughput and claim latency of the engine on a scratch
 * database of the configured PostgreSQL server. */
#ifndef RT_BENCH_H
#define RT_BENCH_H

#include <stdbool.h>

#include "config.h"

/* steps_filter: 0 = both cases (1 and 5 steps per run). Returns an exit code. */
int rt_bench_main(rt_config *cfg, int runs, int steps_filter, bool json);

#endif
