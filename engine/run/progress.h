/* progress.h — what long steps report while they run: each step's latest progress
 * ({done, total, message}, rt_step_ctx.progress) kept in memory and written to its step row
 * by one thread, at most once a second per step, so a step that reports often costs the
 * database nothing more; and the records_processed counter of completed steps' outputs. */
#ifndef RT_PROGRESS_H
#define RT_PROGRESS_H

#include <jansson.h>

#include "config.h"
#include "status.h"
#include "step.h"

typedef struct rt_progress rt_progress;

/* Starts the writer thread (its own database connection). */
rt_status rt_progress_start(const rt_config *cfg, rt_progress **out, rt_error *err);
/* Writes what is pending, stops the thread and frees p (NULL is fine). */
void rt_progress_stop(rt_progress *p);

/* The rt_step_ctx.progress hook: ctx->progress_arg is the rt_progress. Keeps a copy of
 * progress (borrowed) as the step's latest; never blocks on the database. */
void rt_progress_report(const rt_step_ctx *ctx, json_t *progress);

/* A completed step's output {"records_processed": N, ...} (N a number >= 0) adds N to
 * ratchet_records_processed_total{workflow}. Anything else counts nothing. */
void rt_progress_count_records(const char *workflow, const json_t *output);

#endif
