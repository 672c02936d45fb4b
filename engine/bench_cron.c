/* bench_cron.c — `ratchet bench cron` (being written). */
#include "bench_cron.h"

#include <stdio.h>

int rt_bench_cron_main(rt_config *cfg, int argc, char **argv, int pos)
{
    (void)cfg;
    (void)argc;
    (void)argv;
    (void)pos;
    fprintf(stderr, "ratchet bench cron: not yet\n");
    return 1;
}
