/* run_status.h — the run and step statuses (DESIGN §7): one enum each, one name table each,
 * and the SQL lists the store's statements use, so C, SQL and the API agree (a unit test
 * checks the migrations' check constraints against the tables). */
#ifndef RT_RUN_STATUS_H
#define RT_RUN_STATUS_H

#include <stdbool.h>

typedef enum rt_run_status {
    RT_RUN_QUEUED = 0,
    RT_RUN_AWAITING_APPROVAL,
    RT_RUN_RUNNING,
    RT_RUN_SLEEPING,
    RT_RUN_WAITING, /* the last unfinished status: every later one is final */
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
#define RT_RUN_UNFINISHED_SQL "('queued', 'awaiting_approval', 'running', 'sleeping', 'waiting')"
#define RT_RUN_UNFINISHED_ARRAY "array['queued', 'awaiting_approval', 'running', 'sleeping', 'waiting']"

/* "queued", "awaiting_approval", ...; NULL out of range. */
const char *rt_run_status_name(rt_run_status s);
/* The reverse; false for an unknown word. */
bool rt_run_status_parse(const char *name, rt_run_status *out);
/* Has a run with this status ended? */
bool rt_run_status_final(rt_run_status s);
/* "queued, awaiting_approval, ..." for error messages. */
const char *rt_run_status_list(void);

/* A step's row in ratchet.steps (001_core.sql's check constraint, same words). */
typedef enum rt_step_status {
    RT_STEP_PENDING = 0,
    RT_STEP_RUNNING,
    RT_STEP_COMPLETED,
    RT_STEP_FAILED,
    RT_STEP_SKIPPED,
    RT_STEP_RETRYING,
    RT_STEP_SLEEPING,
    RT_STEP_WAITING,
    RT_STEP_STATUS_COUNT
} rt_step_status;

/* "pending", "running", ...; NULL out of range. */
const char *rt_step_status_name(rt_step_status s);
/* The reverse; false for an unknown word (or NULL: a step with no row yet). */
bool rt_step_status_parse(const char *name, rt_step_status *out);

#endif
