/* store_wfstats.h — the health view of each workflow (GET /api/v1/stats/workflows, the
 * dashboard's workflows page) in one statement: runs, success rate and p50/p95 duration
 * over the last hour and day, unfinished runs, the last failure, the next cron fire. Same
 * rules as store.h: one rt_store per thread at a time. */
#ifndef RT_STORE_WFSTATS_H
#define RT_STORE_WFSTATS_H

#include <jansson.h>

#include "status.h"
#include "store.h"

/* workflows: a JSON array of ids to list even without runs (the loaded ones). *out is a
 * new object {now, workflows: [{workflow, windows: {"1h": W, "24h": W}, active,
 * last_failure: {run_id, status, error, finished_at} | null, next_fire_at | null,
 * schedule_paused}]} sorted by id, where W is {runs, completed, failed, cancelled, other,
 * success_rate (completed / (runs - cancelled), null when none), p50_s, p95_s (run
 * durations, started to finished, null when none)} over the runs that finished in it. */
rt_status rt_store_workflow_stats(rt_store *st, json_t *workflows, json_t **out, rt_error *err);

#endif
