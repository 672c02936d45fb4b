/* main.c — the ratchet binary: hands argv to the CLI. */
#include "cli.h"

int main(int argc, char **argv)
{
    return rt_cli_main(argc, argv);
}
