/* store_progress.h — writes steps' latest progress (run/progress.c). Same rules as
 * store.h: one rt_store per thread. */
#ifndef RT_STORE_PROGRESS_H
#define RT_STORE_PROGRESS_H

#include <jansson.h>

#include "status.h"
#include "store.h"

/* rows: a JSON array of {run_id, step_id, progress}; each step's row gets its progress and
 * progress_at = now(), in one statement. Steps that have no row are skipped. */
rt_status rt_store_progress_write(rt_store *st, json_t *rows, rt_error *err);

#endif
