/* store_stats.h — the figures of GET /api/v1/stats (the dashboard's charts) in one
 * statement: queue depth by priority, unfinished runs by status, and runs finished per
 * minute. Same rules as store.h: one rt_store per thread at a time. */
#ifndef RT_STORE_STATS_H
#define RT_STORE_STATS_H

#include <jansson.h>

#include "status.h"
#include "store.h"

#define RT_STATS_MINUTES_MAX 1440

/* *out is a new object:
 *   now                    RFC 3339, the database's clock
 *   queue                  [{priority, runnable, scheduled, leased}] for critical, high,
 *                          normal, low: due now (never claimed, or lease expired), due
 *                          later, claimed under a live lease
 *   oldest_runnable_age_s  age of the oldest runnable item (0 when none)
 *   active                 {status: count} of unfinished runs (queued, awaiting_approval,
 *                          running, sleeping, waiting), every status present
 *   finished               {status: count} of runs finished in the window, every terminal
 *                          status present
 *   minutes                the window
 *   throughput             [{t, completed, failed, cancelled, other}], one per minute,
 *                          oldest first, the last one the current (partial) minute
 * minutes is 1..RT_STATS_MINUTES_MAX. */
rt_status rt_store_stats(rt_store *st, int minutes, json_t **out, rt_error *err);

#endif
