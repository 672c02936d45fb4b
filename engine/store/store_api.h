/* store_api.h — the SQL the HTTP API needs beyond store.h: keyset-paginated run lists
 * with an entity filter, what an access check needs to know about a run, idempotency-key
 * lookups, the queue gauges of /metrics and the /readyz ping. Same rules as store.h: one
 * rt_store per thread at a time; every statement parameterized. */
#ifndef RT_STORE_API_H
#define RT_STORE_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "event.h"
#include "status.h"
#include "store.h"

#define RT_API_RUNS_LIMIT_MAX 500

typedef struct rt_api_run_filter {
    const char *workflow;  /* NULL = any */
    const char *status;    /* NULL = any */
    const char *entity_id; /* NULL = any */
    int limit;             /* 1..RT_API_RUNS_LIMIT_MAX */
    bool has_cursor;       /* only runs older than (cursor_us, cursor_id) */
    int64_t cursor_us;     /* created_at in unix microseconds */
    char cursor_id[37];
} rt_api_run_filter;

/* Newest first (created_at, then id, both descending). *out is a new JSON array of the
 * `ratchet runs --json` elements with entity_id added. *more says whether older runs
 * match; then (*last_us, last_id) is the position of the last one returned (the next
 * page's cursor). */
rt_status rt_store_api_list_runs(rt_store *st, const rt_api_run_filter *f, json_t **out, bool *more,
                                 int64_t *last_us, char last_id[37], rt_error *err);

/* What an access decision needs about a run (RT_ERR_NOT_FOUND when there is none). */
typedef struct rt_api_run_info {
    char workflow_id[129];
    char status[24];
    bool has_entity;
    char entity_id[RT_EVENT_REF_MAX * 4 + 1];
    bool system; /* its pinned definition says "system": true */
} rt_api_run_info;
rt_status rt_store_api_run_info(rt_store *st, const char *run_id, rt_api_run_info *out, rt_error *err);

/* The run created earlier with (workflow_id, dedupe_key); RT_ERR_NOT_FOUND when none. */
rt_status rt_store_api_find_dedupe(rt_store *st, const char *workflow_id, const char *dedupe_key, char id[37],
                                   rt_error *err);

/* Runnable queue items not claimed yet, by priority (index = rt_priority), and the age in
 * seconds of the oldest of them (0 when none). One statement. */
rt_status rt_store_api_queue_stats(rt_store *st, int64_t depth[4], double *oldest_age_s, rt_error *err);

/* A round trip to the server ("select 1"). */
rt_status rt_store_api_ping(rt_store *st, rt_error *err);

#endif
