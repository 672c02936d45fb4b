/* bench_events.c — `ratchet bench events`: per configured broker, on a scratch database
 * and private broker names (queue, stream), (1) ingest throughput: events/s stored with
 * their runs created, acknowledged only after the commit; (2) latency from publish to the
 * first step starting, at a steady 1,000 events/s. */
#include "bench.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/select.h>
#include <unistd.h>

#include "executor.h"
#include "intake.h"
#include "log.h"
#include "store.h"
#include "util.h"
#include "workflow.h"

typedef struct pub_job {
    const rt_config *cfg;
    const char *via;
    size_t count;
    int rate;          /* events/s; 0 = as fast as the broker confirms */
    char tag[32];
    rt_status status;
    rt_error err;
    double seconds;
} pub_job;

typedef struct body_ctx {
    pub_job *job;
    int64_t t0_us;
    char id[64];
} body_ctx;

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static char *bench_body(void *arg, size_t i, const char **id)
{
    body_ctx *b = arg;
    if (b->job->rate > 0) {
        /* Pace: message i leaves at t0 + i / rate. */
        int64_t due = b->t0_us + (int64_t)((double)i * 1e6 / b->job->rate);
        int64_t now = wall_us();
        if (due > now) {
            struct timespec ts = {.tv_sec = (due - now) / 1000000, .tv_nsec = ((due - now) % 1000000) * 1000};
            nanosleep(&ts, NULL);
        }
    }
    *id = NULL;
    char *body = NULL;
    if (asprintf(&body, "{\"name\":\"bench.%s\",\"id\":\"%s-%zu\",\"data\":{\"sent_us\":%lld}}", b->job->via,
                 b->job->tag, i, (long long)wall_us()) < 0)
        return NULL;
    return body;
}

static void *publisher(void *arg)
{
    pub_job *j = arg;
    body_ctx b = {.job = j, .t0_us = wall_us()};
    char name[64];
    snprintf(name, sizeof name, "bench.%s", j->via);
    int64_t t0 = rt_mono_us();
    /* Paced runs publish 10 at a time so the publisher's own batching adds at most 10 ms. */
    j->status = rt_intake_publish(j->cfg, j->via, name, j->count, j->rate ? 10 : 0, bench_body, &b, &j->err);
    j->seconds = (double)(rt_mono_us() - t0) / 1e6;
    return NULL;
}

static int wait_events(rt_store *st, const char *name, int64_t want, int timeout_s, rt_error *err)
{
    int64_t have = 0, deadline = rt_mono_ms() + timeout_s * 1000LL;
    while (have < want) {
        if (rt_store_count_events(st, name, &have, err) != RT_OK)
            return -1;
        if (rt_mono_ms() > deadline) {
            rt_error_set(err, RT_ERR_TIMEOUT, "only %lld of %lld events arrived", (long long)have, (long long)want);
            return -1;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 5 * 1000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

int rt_bench_events_main(rt_config *base, int events, bool json)
{
    rt_log_configure(RT_LOG_WARN, false);
    const char *vias[2] = {NULL, NULL};
    int n_via = 0;
    if (base->amqp_url && *base->amqp_url)
        vias[n_via++] = "amqp";
    if (base->nats_url && *base->nats_url)
        vias[n_via++] = "nats";
    if (n_via == 0) {
        fprintf(stderr, "ratchet bench events: set RATCHET_AMQP_URL and/or RATCHET_NATS_URL\n");
        return 2;
    }
    char dbname[64], tag[32];
    snprintf(dbname, sizeof dbname, "ratchet_bench_events_%d", (int)getpid());
    snprintf(tag, sizeof tag, "b%d", (int)getpid());
    rt_error err;
    rt_store *admin = NULL, *st = NULL;
    if (rt_store_open(base->database_url, &admin, &err) != RT_OK ||
        rt_store_create_database(admin, dbname, &err) != RT_OK) {
        fprintf(stderr, "ratchet bench events: %s\n", err.msg);
        rt_store_close(admin);
        return 1;
    }
    rt_config cfg = *base;
    char *url = rt_url_with_database(base->database_url, dbname);
    cfg.database_url = url;
    /* Private broker names: a serve on the same brokers does not compete with the bench. */
    char queue[64], stream[64], prefix[64], consumer[64];
    snprintf(queue, sizeof queue, "ratchet.bench.%s", tag);
    snprintf(stream, sizeof stream, "RATCHET_BENCH_%s", tag);
    snprintf(prefix, sizeof prefix, "bench%s", tag);
    snprintf(consumer, sizeof consumer, "bench-%s", tag);
    cfg.amqp_queue = queue;
    cfg.nats_stream = stream;
    cfg.nats_subject_prefix = prefix;
    cfg.nats_consumer = consumer;

    rt_workflow_set set = {0};
    rt_workflow *wf = NULL;
    json_t *def = json_pack("{s:s, s:[{s:s}], s:[{s:s, s:s, s:{s:s}}]}", "id", "bench-events", "triggers", "event",
                            "bench.>", "steps", "id", "first", "uses", "transform", "with", "value",
                            "${{ event.data.sent_us }}");
    int rc = 0;
    rt_intake *in = NULL;
    rt_engine *e = NULL;
    if (rt_store_open(url, &st, &err) != RT_OK || rt_store_migrate(st, NULL, &err) != RT_OK ||
        rt_workflow_from_json(def, NULL, &wf, &err) != RT_OK) {
        fprintf(stderr, "ratchet bench events: %s\n", err.msg);
        rc = 1;
        goto done;
    }
    set.items = &wf;
    set.n = 1;
    if (rt_intake_start(&cfg, &set, &in, &err) != RT_OK || rt_engine_new(&cfg, &e, &err) != RT_OK) {
        fprintf(stderr, "ratchet bench events: %s\n", err.msg);
        rc = 1;
        goto done;
    }
    rt_engine_set_workflows(e, &set);
    if (!json)
        printf("ratchet bench events: %d events per transport, ack after commit, scratch database %s\n", events,
               dbname);
    /* Let the consumers connect and declare their queue/stream before timing. */
    sleep(2);
    for (int v = 0; v < n_via && rc == 0; v++) {
        char name[64];
        snprintf(name, sizeof name, "bench.%s", vias[v]);
        /* (1) throughput: publish as fast as confirms allow; time until all are stored. */
        pub_job pj = {.cfg = &cfg, .via = vias[v], .count = (size_t)events, .rate = 0};
        snprintf(pj.tag, sizeof pj.tag, "%s-t-%s", tag, vias[v]);
        pthread_t th;
        int64_t t0 = rt_mono_us();
        pthread_create(&th, NULL, publisher, &pj);
        int w = wait_events(st, name, events, 300, &err);
        double secs = (double)(rt_mono_us() - t0) / 1e6;
        pthread_join(th, NULL);
        if (w != 0 || pj.status != RT_OK) {
            fprintf(stderr, "ratchet bench events (%s): %s\n", vias[v], w != 0 ? err.msg : pj.err.msg);
            rc = 1;
            break;
        }
        /* (2) latency at 1,000 events/s for 5 s, with the engine running the first step. */
        if (v == 0 && rt_engine_start(e, &err) != RT_OK) {
            fprintf(stderr, "ratchet bench events: %s\n", err.msg);
            rc = 1;
            break;
        }
        /* The throughput phase left its runs queued: let the engine drain them first, so
         * the latency phase measures a steady 1,000/s, not a backlog. */
        for (int64_t left = 1; left > 0;) {
            if (rt_store_queue_size(st, &left, &err) != RT_OK)
                break;
            struct timeval tv = {0, 20000};
            select(0, NULL, NULL, NULL, &tv);
        }
        int64_t lat_from = rt_now_ms();
        pub_job lj = {.cfg = &cfg, .via = vias[v], .count = 5000, .rate = 1000};
        snprintf(lj.tag, sizeof lj.tag, "%s-l-%s", tag, vias[v]);
        pthread_create(&th, NULL, publisher, &lj);
        pthread_join(th, NULL);
        double p50 = 0, p99 = 0;
        int64_t done_n = 0;
        for (int tries = 0; tries < 600 && done_n < 5000; tries++) {
            if (rt_store_bench_latency(st, lat_from, &done_n, &p50, &p99, &err) != RT_OK)
                break;
            if (done_n < 5000) {
                struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000000};
                nanosleep(&ts, NULL);
            }
        }
        if (json)
            printf("{\"transport\":\"%s\",\"events\":%d,\"ingest_seconds\":%.3f,\"ingest_events_per_s\":%.0f,"
                   "\"publish_events_per_s\":%.0f,\"latency_events\":%lld,\"latency_p50_ms\":%.2f,"
                   "\"latency_p99_ms\":%.2f}\n",
                   vias[v], events, secs, events / secs, events / pj.seconds, (long long)done_n, p50, p99);
        else
            printf("  %-4s ingest: %d events stored and acked in %.2f s -> %.0f events/s (publisher alone: %.0f/s); "
                   "publish -> first step started at 1,000/s: p50 %.2f ms, p99 %.2f ms (%lld events)\n",
                   vias[v], events, secs, events / secs, events / pj.seconds, p50, p99, (long long)done_n);
        fflush(stdout);
    }
done:
    if (e) {
        rt_engine_stop(e, 5000);
        rt_engine_free(e);
    }
    rt_intake_stop(in);
    rt_workflow_free(wf);
    json_decref(def);
    rt_store_close(st);
    rt_error ignore;
    rt_store_drop_database(admin, dbname, &ignore);
    rt_store_close(admin);
    free(url);
    return rc;
}
