/* cli.h — the command line: serve, migrate, validate, run, runs, show, version, help.
 * Settings come from RATCHET_* environment variables and matching flags. */
#ifndef RT_CLI_H
#define RT_CLI_H

/* Returns the process exit code: 0 ok, 1 failure, 2 usage or configuration error. */
int rt_cli_main(int argc, char **argv);

#endif
