/* main.c — the ratchet binary: hands argv to the CLI. */
#include "bus.h"
#include "cli.h"

int main(int argc, char **argv)
{
    int rc = rt_cli_main(argc, argv);
    rt_bus_shutdown(); /* cnats' process-wide state, after every bus is freed */
    return rc;
}
