/* cli_workflows.h — `ratchet workflows` (docs/cli.md): list the registry, apply files,
 * remove, pause and resume workflows, and show a workflow's history with diffs. */
#ifndef RT_CLI_WORKFLOWS_H
#define RT_CLI_WORKFLOWS_H

#include "config.h"

/* argv[pos..] are the arguments after "workflows". Returns the exit code: 0 ok, 1 failure
 * (a bad file, an unknown workflow, a database error), 2 usage or configuration error. */
int rt_cli_workflows(rt_config *cfg, int argc, char **argv, int pos);

#endif
