/* cli_schedules.h — `ratchet schedules [list] [--json]`, `ratchet schedules pause WORKFLOW`
 * and `ratchet schedules resume WORKFLOW`. */
#ifndef RT_CLI_SCHEDULES_H
#define RT_CLI_SCHEDULES_H

#include "config.h"

/* argv[pos..] are the arguments after "schedules". Returns the exit code: 0 ok, 1 failure
 * (unknown workflow, database error), 2 usage or configuration error. */
int rt_cli_schedules(rt_config *cfg, int argc, char **argv, int pos);

#endif
