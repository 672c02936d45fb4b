/* main.c — the ratchet binary: wires the layers' implementations in (daemon.h: the
 * approval gate into run creation), then hands argv to the CLI. */
#include "cli.h"
#include "daemon.h"

int main(int argc, char **argv)
{
    rt_daemon_wire();
    int rc = rt_cli_main(argc, argv);
    rt_daemon_unwire();
    return rc;
}
