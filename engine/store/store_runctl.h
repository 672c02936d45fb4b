/* store_runctl.h — the SQL of run control beyond cancel: pausing and resuming one run, and
 * selecting runs by filter in bounded pages for bulk cancel/replay. Same rules as store.h:
 * one rt_store per thread at a time, every statement parameterized, no policy here. */
#ifndef RT_STORE_RUNCTL_H
#define RT_STORE_RUNCTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "status.h"
#include "store.h"

/* While a run is paused its idle queue items sit this far in the future (and are pulled
 * back by the same amount on resume), so the waker never sees them due: 1000 years, far
 * past the 100 years of a step that waits to be woken (executor.c NEVER_MS). */
#define RT_RUN_PAUSE_SHIFT_MS (INT64_C(1000) * 365 * 86400000)
/* The same, as SQL text for statements that make an item due (RT_DUE_NOW_SQL,
 * store_internal.h). */
#define RT_RUN_PAUSE_SHIFT_MS_SQL "31536000000000"

/* Inside the caller's transaction. Pauses run_id when it is queued, running, sleeping or
 * waiting: its idle queue items are shifted by RT_RUN_PAUSE_SHIFT_MS, then its status
 * becomes paused. *was gets the status it had (RT_ERR_NOT_FOUND when there is no such
 * run); *changed is false when it was not pausable — then roll back. */
rt_status rt_store_run_pause(rt_store *st, const char *run_id, char was[24], bool *changed, rt_error *err);
/* Inside the caller's transaction. Resumes a paused run: its items come back (those whose
 * time passed meanwhile are due at once), its status becomes what its steps say (sleeping,
 * waiting, running, or queued when nothing ran yet), idle workers are woken at commit.
 * *now gets the status after (or the unchanged one when *changed is false). */
rt_status rt_store_run_resume(rt_store *st, const char *run_id, char now[24], bool *changed, rt_error *err);

/* Inside the caller's transaction: locks the run's row (FOR UPDATE) and gives its status,
 * so that what the transaction then does to the run is decided on what it is now.
 * RT_ERR_NOT_FOUND when there is no such run. */
rt_status rt_store_run_lock(rt_store *st, const char *run_id, char status[24], rt_error *err);

/* A filter over runs (bulk actions). NULL / 0 = any. */
typedef struct rt_run_select {
    const char *workflow;
    const char *status;       /* one run status word */
    const char *entity_id;
    const char *error_contains; /* case-insensitive substring of the run's error */
    int64_t since_ms;         /* created at or after */
    int64_t until_ms;         /* created at or before */
    bool unfinished;          /* only runs that have not ended */
} rt_run_select;

/* How many runs match, and how many of them belong to system workflows. One statement. */
rt_status rt_store_runs_count(rt_store *st, const rt_run_select *f, int64_t *matched, int64_t *system,
                              rt_error *err);
/* One page of matching runs, oldest first, after the keyset cursor (*cursor_us, cursor_id;
 * start with *cursor_us = INT64_MIN and cursor_id ""), at most limit of them:
 * *out = [{id, workflow, status, entity_id, system}] (new reference); the cursor moves to
 * the last one. */
rt_status rt_store_runs_page(rt_store *st, const rt_run_select *f, int limit, int64_t *cursor_us,
                             char cursor_id[37], json_t **out, rt_error *err);

#endif
