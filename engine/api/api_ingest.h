/* api_ingest.h — group commit for POST /api/v1/events: requests hand their parsed events
 * to a few batcher threads, each with its own PostgreSQL connection, which store the
 * events of every request waiting at that moment in one rt_ingest_events transaction and
 * then tell each request. A request is answered only after the commit that holds its
 * events, exactly as with one transaction per request, but hundreds of concurrent clients
 * cost a few commits instead of hundreds. */
#ifndef RT_API_INGEST_H
#define RT_API_INGEST_H

#include <stddef.h>

#include "config.h"
#include "event.h"
#include "ingest.h"
#include "status.h"
#include "workflow.h"

#define RT_API_INGEST_THREADS 2
#define RT_API_INGEST_BATCH_MAX 2000 /* events per transaction (a request is never split) */

typedef struct rt_api_batcher rt_api_batcher;

/* One request's events. The submitter owns it; it must stay valid until done runs. */
typedef struct rt_api_ingest_job {
    rt_event *const *events;    /* borrowed */
    size_t n;
    rt_ingest_result *results;  /* n entries, zeroed; filled (owned by the submitter) */
    const char *transport;      /* stored with the events and in metrics: NULL = "api" */
    rt_status status;           /* set before done runs */
    rt_error err;
    void (*done)(void *arg);    /* runs once, on a batcher thread (or the submitter's, when
                                 * the batcher is stopping); the job is not touched after */
    void *arg;
    struct rt_api_ingest_job *next;
} rt_api_ingest_job;

/* cfg and set are borrowed and must outlive the batcher. Connections open on first use. */
rt_status rt_api_batcher_start(const rt_config *cfg, const rt_workflow_set *set, rt_api_batcher **out,
                               rt_error *err);
/* Queues a job. Once the batcher is stopping, the job fails at once (RT_ERR_UNAVAILABLE). */
void rt_api_batcher_submit(rt_api_batcher *b, rt_api_ingest_job *job);
/* Finishes every queued job and joins the threads; later submits fail at once. */
void rt_api_batcher_stop(rt_api_batcher *b);
/* Frees a stopped batcher (once no thread may submit any more). NULL is a no-op. */
void rt_api_batcher_free(rt_api_batcher *b);

#endif
