/* alerts.h — alert events (DESIGN §8): a thread that checks, every RATCHET_ALERT_INTERVAL,
 * the failure rate over a window, the age of the oldest runnable step and steps running
 * past their timeout, and publishes ratchet.alert.failure_rate_high, .queue_backlog and
 * .execution_timeout events when a threshold is crossed. */
#ifndef RT_ALERTS_H
#define RT_ALERTS_H

#include "config.h"
#include "status.h"
#include "workflow.h"

typedef struct rt_alerts rt_alerts;

/* Starts the checker (does nothing, *out NULL, when RATCHET_ALERTS is false). */
rt_status rt_alerts_start(const rt_config *cfg, const rt_workflow_set *set, rt_alerts **out, rt_error *err);
/* Stops and frees it; NULL is fine. */
void rt_alerts_stop(rt_alerts *a);

#endif
