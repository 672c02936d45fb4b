/* cli.c — placeholder. */
#include <stdio.h>
#include "cli.h"
int rt_cli_main(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "ratchet: not implemented\n"); return 2; }
