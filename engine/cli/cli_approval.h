/* cli_approval.h — the commands of approvals and the audit log: `keygen`, `approve`,
 * `reject`, `approvals`, `audit` and `audit verify`. */
#ifndef RT_CLI_APPROVAL_H
#define RT_CLI_APPROVAL_H

#include "config.h"

/* cmd is the command name ("keygen", "approve", "reject", "approvals", "audit");
 * argv[pos..] are its arguments. Returns the exit code: 0 ok, 1 failure (a refused
 * decision, a broken chain, a database error), 2 usage or configuration error. */
int rt_cli_approval(const char *cmd, rt_config *cfg, int argc, char **argv, int pos);

#endif
