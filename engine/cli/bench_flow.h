/* bench_flow.h — `ratchet bench flow`: throughput with flow control (concurrency keys, a
 * throttle, retries) against a no-op baseline measured in the same invocation. */
#ifndef RT_BENCH_FLOW_H
#define RT_BENCH_FLOW_H

#include "config.h"

/* argv[pos..] are the arguments after "bench flow". Returns the exit code. */
int rt_bench_flow_main(rt_config *cfg, int argc, char **argv, int pos);

#endif
