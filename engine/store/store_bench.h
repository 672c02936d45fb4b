/* store_bench.h — the SQL only benchmarks use (`ratchet bench scale`): a database made to
 * look long-lived (a million finished runs) in one statement, and counts to await. */
#ifndef RT_STORE_BENCH_H
#define RT_STORE_BENCH_H

#include <stdint.h>

#include "status.h"
#include "store.h"
#include "workflow.h"

/* Stores wf (its definition) and n finished runs of it with their memoized step rows (each
 * of wf's steps completed), created over the 7 days before now with time-ordered ids like
 * the engine's, in ONE insert … select generate_series statement (no engine involved), then
 * VACUUM ANALYZEs runs and steps as autovacuum would have by then. Autocommits. */
rt_status rt_store_bench_fill_finished(rt_store *st, const rt_workflow *wf, int64_t n, rt_error *err);
/* How many runs of workflow_id have status. */
rt_status rt_store_bench_count_runs(rt_store *st, const char *workflow_id, const char *status, int64_t *n,
                                    rt_error *err);

#endif
