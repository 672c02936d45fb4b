/* api_ingest.c — the batcher threads behind POST /api/v1/events. */
#include "api_ingest.h"
#include "workflow_live.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "store.h"

#define CONFLICT_RETRIES 3

struct rt_api_batcher {
    const rt_config *cfg;
    const rt_workflow_set *set;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rt_api_ingest_job *head, *tail;
    bool stopping;
    pthread_t threads[RT_API_INGEST_THREADS];
    int n_threads;
};

static void finish(rt_api_ingest_job *job, rt_status s, const rt_error *err)
{
    job->status = s;
    if (s != RT_OK && err)
        job->err = *err;
    job->done(job->arg); /* the job may be gone after this */
}

static const char *job_transport(const rt_api_ingest_job *job)
{
    return job->transport ? job->transport : "api";
}

/* One transaction for the jobs' events together; retried on deadlocks and, once, on a
 * connection that broke (the ids are fixed, so a commit that did happen makes the events
 * duplicates, never doubles). */
static rt_status ingest(rt_api_batcher *b, rt_store **st, rt_event **events, size_t n, const char *transport,
                        rt_ingest_result *results, rt_error *err)
{
    rt_status s = RT_OK;
    bool reconnected = false;
    for (int attempt = 0; attempt <= CONFLICT_RETRIES; attempt++) {
        if (!*st)
            s = rt_store_open(b->cfg->database_url, st, err);
        else if (!rt_store_healthy(*st))
            s = rt_store_reconnect(*st, err);
        if (s != RT_OK)
            break;
        rt_ingest_results_clear(results, n);
        const rt_workflow_set *set = rt_workflow_set_acquire(b->set); /* this batch's workflows */
        s = rt_ingest_events(set, *st, events, n, transport, results, err);
        rt_workflow_set_release(set);
        if (s == RT_OK)
            return s;
        if (!rt_store_healthy(*st) && !reconnected) {
            reconnected = true;
            continue;
        }
        if (s != RT_ERR_CONFLICT)
            break;
    }
    if (!*st || !rt_store_healthy(*st))
        rt_metrics_gauge_set("ratchet_db_up", 0);
    return s;
}

static void run_jobs(rt_api_batcher *b, rt_store **st, rt_api_ingest_job *jobs)
{
    size_t total = 0;
    for (rt_api_ingest_job *j = jobs; j; j = j->next)
        total += j->n;
    rt_event **events = malloc(total * sizeof *events);
    rt_ingest_result *results = calloc(total, sizeof *results);
    rt_error err = {0};
    rt_status s;
    if (!events || !results) {
        s = rt_error_set(&err, RT_ERR_NOMEM, "out of memory");
    } else {
        size_t k = 0;
        for (rt_api_ingest_job *j = jobs; j; j = j->next)
            for (size_t i = 0; i < j->n; i++)
                events[k++] = j->events[i];
        s = ingest(b, st, events, total, job_transport(jobs), results, &err);
    }
    if (s != RT_OK && jobs->next) {
        /* Whatever failed the batch, let each request fail or succeed on its own. */
        rt_log(RT_LOG_WARN, NULL, "api: a batch of %zu event(s) failed (%s); storing its requests one by one", total,
               err.msg);
        free(events);
        rt_ingest_results_clear(results, total);
        free(results);
        for (rt_api_ingest_job *j = jobs, *next; j; j = next) {
            next = j->next;
            rt_error e = {0};
            rt_status js = ingest(b, st, (rt_event **)j->events, j->n, job_transport(j), j->results, &e);
            finish(j, js, &e);
        }
        return;
    }
    size_t k = 0;
    for (rt_api_ingest_job *j = jobs, *next; j; j = next) {
        next = j->next;
        for (size_t i = 0; i < j->n; i++, k++) {
            if (s == RT_OK) {
                /* The run id arrays move to the request. */
                j->results[i] = results[k];
                results[k].run_ids = NULL;
            }
        }
        finish(j, s, &err);
    }
    rt_ingest_results_clear(results, total);
    free(results);
    free(events);
}

static void *batcher_main(void *arg)
{
    rt_api_batcher *b = arg;
    rt_store *st = NULL;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->head && !b->stopping)
            pthread_cond_wait(&b->cv, &b->mu);
        if (!b->head)
            break; /* stopping, and nothing left */
        /* Everything waiting, up to the batch limit (at least one request), that came by
         * the same transport (API or a webhook). */
        rt_api_ingest_job *jobs = b->head, *last = b->head;
        size_t n = last->n;
        while (last->next && n + last->next->n <= RT_API_INGEST_BATCH_MAX &&
               strcmp(job_transport(last->next), job_transport(jobs)) == 0) {
            last = last->next;
            n += last->n;
        }
        b->head = last->next;
        if (!b->head)
            b->tail = NULL;
        last->next = NULL;
        if (b->head)
            pthread_cond_signal(&b->cv); /* more work: wake another batcher */
        pthread_mutex_unlock(&b->mu);
        run_jobs(b, &st, jobs);
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    rt_store_close(st);
    return NULL;
}

rt_status rt_api_batcher_start(const rt_config *cfg, const rt_workflow_set *set, rt_api_batcher **out,
                               rt_error *err)
{
    rt_api_batcher *b = calloc(1, sizeof *b);
    if (!b)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    b->cfg = cfg;
    b->set = set;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    for (int i = 0; i < RT_API_INGEST_THREADS; i++) {
        if (pthread_create(&b->threads[i], NULL, batcher_main, b) != 0) {
            rt_api_batcher_free(b);
            return rt_error_set(err, RT_ERR_INTERNAL, "cannot start the API's ingest threads");
        }
        b->n_threads++;
    }
    *out = b;
    return RT_OK;
}

void rt_api_batcher_submit(rt_api_batcher *b, rt_api_ingest_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&b->mu);
    if (b->stopping) {
        pthread_mutex_unlock(&b->mu);
        rt_error err;
        rt_error_set(&err, RT_ERR_UNAVAILABLE, "the server is shutting down");
        finish(job, err.code, &err);
        return;
    }
    if (b->tail)
        b->tail->next = job;
    else
        b->head = job;
    b->tail = job;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

void rt_api_batcher_stop(rt_api_batcher *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    b->stopping = true;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    for (int i = 0; i < b->n_threads; i++)
        pthread_join(b->threads[i], NULL);
    b->n_threads = 0;
}

void rt_api_batcher_free(rt_api_batcher *b)
{
    if (!b)
        return;
    rt_api_batcher_stop(b);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
}
