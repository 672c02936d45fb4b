/* main.c — the ratchet binary: wires the layers' implementations in (the approval gate
 * into run creation), then hands argv to the CLI. */
#include "bus.h"
#include "cli.h"
#include "approval.h"
#include "gate.h"

int main(int argc, char **argv)
{
    rt_run_gate_set(&rt_approval_gate); /* DESIGN §6: the gate comes first, on every path */
    int rc = rt_cli_main(argc, argv);
    rt_bus_shutdown(); /* cnats' process-wide state, after every bus is freed */
    return rc;
}
