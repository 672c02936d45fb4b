/* bench_cron.h — `ratchet bench cron`: fire lateness of per-second schedules with three
 * schedulers on one scratch database, and the cost of 10,000 schedules. */
#ifndef RT_BENCH_CRON_H
#define RT_BENCH_CRON_H

#include "config.h"

/* argv[pos..] are the arguments after "bench cron". Returns the exit code. */
int rt_bench_cron_main(rt_config *cfg, int argc, char **argv, int pos);

#endif
