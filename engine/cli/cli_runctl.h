/* cli_runctl.h — `ratchet pause RUN`, `resume RUN`, and `cancel` / `replay` of one run, of
 * several, or of every run a filter matches (with --dry-run to count first). */
#ifndef RT_CLI_RUNCTL_H
#define RT_CLI_RUNCTL_H

#include "config.h"

/* cmd is "pause", "resume", "cancel" or "replay"; argv[pos..] its arguments. Returns the
 * exit code: 0 ok, 1 failure (unknown run, conflict, database error), 2 usage error. */
int rt_cli_runctl(const char *cmd, rt_config *cfg, int argc, char **argv, int pos);

#endif
