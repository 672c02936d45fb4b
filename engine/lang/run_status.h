/* run_status.h — the run statuses (DESIGN §7): one enum, one name table, and the SQL lists
 * the store's statements use, so C, SQL and the API agree (a unit test checks the
 * migrations' check constraint against the table). */
#ifndef RT_RUN_STATUS_H
#define RT_RUN_STATUS_H

#include <stdbool.h>

typedef enum rt_run_status {
    RT_RUN_QUEUED = 0,
    RT_RUN_AWAITING_APPROVAL,
    RT_RUN_RUNNING,
    RT_RUN_SLEEPING,
    RT_RUN_WAITING,
    RT_RUN_PAUSED, /* the last unfinished status: every later one is final */
    RT_RUN_COMPLETED,
    RT_RUN_PARTIAL,
    RT_RUN_FAILED,
    RT_RUN_CANCELLED,
    RT_RUN_EXPIRED,
    RT_RUN_TIMED_OUT,
    RT_RUN_REJECTED,
    RT_RUN_STATUS_COUNT
} rt_run_status;

/* The statuses of a run that has not ended, as an SQL list for `status in ...` and as an
 * array literal for `unnest(array[...])`. Kept next to the enum: same order. */
#define RT_RUN_UNFINISHED_SQL "('queued', 'awaiting_approval', 'running', 'sleeping', 'waiting', 'paused')"
#define RT_RUN_UNFINISHED_ARRAY "array['queued', 'awaiting_approval', 'running', 'sleeping', 'waiting', 'paused']"

/* "queued", "awaiting_approval", ...; NULL out of range. */
const char *rt_run_status_name(rt_run_status s);
/* The reverse; false for an unknown word. */
bool rt_run_status_parse(const char *name, rt_run_status *out);
/* Has a run with this status ended? */
bool rt_run_status_final(rt_run_status s);
/* "queued, awaiting_approval, ..." for error messages. */
const char *rt_run_status_list(void);

#endif
