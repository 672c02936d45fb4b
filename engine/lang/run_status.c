/* run_status.c — the run and step status name tables (see run_status.h). */
#include "run_status.h"

#include <string.h>

static const char *const names[RT_RUN_STATUS_COUNT] = {
    [RT_RUN_QUEUED] = "queued",     [RT_RUN_AWAITING_APPROVAL] = "awaiting_approval",
    [RT_RUN_RUNNING] = "running",   [RT_RUN_SLEEPING] = "sleeping",
    [RT_RUN_WAITING] = "waiting",   [RT_RUN_COMPLETED] = "completed",
    [RT_RUN_PARTIAL] = "partial",   [RT_RUN_FAILED] = "failed",
    [RT_RUN_CANCELLED] = "cancelled", [RT_RUN_EXPIRED] = "expired",
    [RT_RUN_TIMED_OUT] = "timed_out", [RT_RUN_REJECTED] = "rejected",
};

const char *rt_run_status_name(rt_run_status s)
{
    return (unsigned)s < RT_RUN_STATUS_COUNT ? names[s] : NULL;
}

bool rt_run_status_parse(const char *name, rt_run_status *out)
{
    for (int i = 0; name && i < RT_RUN_STATUS_COUNT; i++) {
        if (!strcmp(names[i], name)) {
            *out = (rt_run_status)i;
            return true;
        }
    }
    return false;
}

bool rt_run_status_final(rt_run_status s)
{
    return s > RT_RUN_WAITING && s < RT_RUN_STATUS_COUNT;
}

const char *rt_run_status_list(void)
{
    return "queued, awaiting_approval, running, sleeping, waiting, completed, partial, failed, cancelled, expired, "
           "timed_out, rejected";
}

static const char *const step_names[RT_STEP_STATUS_COUNT] = {
    [RT_STEP_PENDING] = "pending",   [RT_STEP_RUNNING] = "running",   [RT_STEP_COMPLETED] = "completed",
    [RT_STEP_FAILED] = "failed",     [RT_STEP_SKIPPED] = "skipped",   [RT_STEP_RETRYING] = "retrying",
    [RT_STEP_SLEEPING] = "sleeping", [RT_STEP_WAITING] = "waiting",
};

const char *rt_step_status_name(rt_step_status s)
{
    return (unsigned)s < RT_STEP_STATUS_COUNT ? step_names[s] : NULL;
}

bool rt_step_status_parse(const char *name, rt_step_status *out)
{
    for (int i = 0; name && i < RT_STEP_STATUS_COUNT; i++) {
        if (!strcmp(step_names[i], name)) {
            *out = (rt_step_status)i;
            return true;
        }
    }
    return false;
}
