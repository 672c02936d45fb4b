/* alerts.c — alert events (alerts.h). */
#include "alerts.h"

#include <stddef.h>

rt_status rt_alerts_start(const rt_config *cfg, const rt_workflow_set *set, rt_alerts **out, rt_error *err)
{
    (void)cfg;
    (void)set;
    (void)err;
    *out = NULL;
    return RT_OK;
}

void rt_alerts_stop(rt_alerts *a)
{
    (void)a;
}
