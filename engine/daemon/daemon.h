/* daemon.h — `ratchet serve` as one sequence: the components start in order (database and
 * workflows, brokers, engine, scheduler, alerts, HTTP API) and stop in exactly the reverse
 * order, from one table; and the process-wide wiring of the layers' implementations. */
#ifndef RT_DAEMON_H
#define RT_DAEMON_H

#include "config.h"

/* Installs the implementations that lower layers reach through hooks (the approval gate
 * into run creation, DESIGN §6). Every command needs it: call once, first, in main. */
void rt_daemon_wire(void);
/* Process-wide teardown after every command (cnats' global state): last, in main. */
void rt_daemon_unwire(void);

/* Runs serve with cfg (logging applied, database URL checked) until SIGTERM or SIGINT;
 * SIGHUP reloads the API's tokens. Returns the process exit status: 0, 1 on a runtime
 * failure, 2 on a configuration error (printed or logged before it returns). */
int rt_daemon_run(const rt_config *cfg);

#endif
