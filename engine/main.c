/* main.c — the ratchet binary: wires the layers' implementations in (the approval gate
 * into run creation), then hands argv to the CLI. */
#include "bus.h"
#include "cli.h"
#include "create.h"
#include "approval.h"
#include "ingest.h"

int main(int argc, char **argv)
{
    rt_run_gate_set(rt_approval_hold_new_runs); /* DESIGN §6: the gate comes first, on every path */
    rt_ingest_hook_set(rt_approval_ingest);     /* signed decisions arrive as events */
    int rc = rt_cli_main(argc, argv);
    rt_bus_shutdown(); /* cnats' process-wide state, after every bus is freed */
    return rc;
}
