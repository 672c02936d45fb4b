/* bench_events.c — `ratchet bench events`: per configured broker, on a scratch database
 * and private broker names (queue, stream):
 *  (1) the bench's own publisher alone (consumer stopped; several connections, batches
 *      pipelined with publisher confirms), so it is known not to be the limit;
 *  (2) ingest alone, from that backlog: events/s stored with their runs created,
 *      acknowledged only after the commit;
 *  (3) end to end: publishing and ingesting at once;
 *  (4) latency from publish to the first step committed, at a steady 1,000 events/s
 *      (after one second at that rate, not counted);
 *  (5) latency of a single event on an idle engine, publish to first step committed. */
#include "bench.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/select.h>
#include <unistd.h>

#include "bus.h"
#include "executor.h"
#include "intake.h"
#include "log.h"
#include "store.h"
#include "util.h"
#include "workflow.h"

#define PUBLISHERS 4      /* connections publishing at once in the throughput phases */
#define PUBLISH_BATCH 500 /* messages per pipelined publish (confirms awaited once) */
#define IDLE_EVENTS 40    /* single events of the idle-latency case */
#define LATENCY_EVENTS 5000 /* events of the 1,000/s latency case (5 s) */
#define WARMUP_EVENTS 1000  /* published at 1,000/s before it, not counted */

typedef struct pub_job {
    const rt_config *cfg;
    const char *via;
    size_t from, count; /* message numbers from, from + stride, ... (count of them) */
    size_t stride;      /* 1, or (paced) the number of publishers, which take turns */
    int rate;           /* events/s; 0 = as fast as the broker confirms */
    size_t batch;       /* messages per publish call */
    char tag[32];
    int64_t t0_us;      /* pacing origin (wall clock) */
    rt_status status;
    rt_error err;
} pub_job;

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_us(int64_t us)
{
    if (us <= 0)
        return;
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Event i's body; its id is unique per job tag, data.sent_us is the publisher's clock. */
static char *bench_body(const pub_job *j, size_t i, char *id, size_t id_len)
{
    if (j->rate > 0) /* pace: message i leaves at t0 + i / rate */
        sleep_us(j->t0_us + (int64_t)((double)i * 1e6 / j->rate) - wall_us());
    snprintf(id, id_len, "%s-%zu", j->tag, i);
    char *body = NULL;
    if (asprintf(&body, "{\"name\":\"bench.%s\",\"id\":\"%s\",\"data\":{\"sent_us\":%lld}}", j->via, id,
                 (long long)wall_us()) < 0)
        return NULL;
    return body;
}

/* One connection of its own, batches pipelined (all sent, then the confirms awaited). */
static void *publisher(void *arg)
{
    pub_job *j = arg;
    char name[64];
    snprintf(name, sizeof name, "bench.%s", j->via);
    rt_bus_options o;
    rt_bus_options_from_config(&o, j->cfg, strcmp(j->via, "amqp") == 0 ? j->cfg->amqp_url : j->cfg->nats_url);
    rt_bus *bus = NULL;
    j->status = rt_bus_open(&o, &bus, &j->err);
    size_t per = j->batch ? j->batch : PUBLISH_BATCH;
    rt_bus_out *out = calloc(per, sizeof *out);
    char **bodies = calloc(per, sizeof *bodies);
    char (*ids)[64] = calloc(per, sizeof *ids);
    if (j->status == RT_OK && (!out || !bodies || !ids))
        j->status = rt_error_set(&j->err, RT_ERR_NOMEM, "out of memory");
    for (size_t done = 0; j->status == RT_OK && done < j->count;) {
        size_t n = j->count - done < per ? j->count - done : per;
        for (size_t i = 0; i < n; i++) {
            bodies[i] = bench_body(j, j->from + (done + i) * j->stride, ids[i], sizeof ids[i]);
            out[i] = (rt_bus_out){.name = name, .id = ids[i], .body = bodies[i], .len = bodies[i] ? strlen(bodies[i]) : 0};
        }
        /* A failed batch is sent again whole: the ids make the repeats harmless. */
        for (int attempt = 0; attempt < 20; attempt++) {
            j->status = rt_bus_publish(bus, out, n, 10000, &j->err);
            if (j->status == RT_OK)
                break;
            sleep_us(200000);
        }
        for (size_t i = 0; i < n; i++)
            free(bodies[i]);
        done += n;
    }
    free(out);
    free(bodies);
    free(ids);
    rt_bus_free(bus);
    return NULL;
}

/* Publishes count events numbered from `from` on `threads` connections; returns the
 * seconds it took, or < 0 with err set. Unpaced (rate 0), each connection sends a block of
 * the numbers; paced, they take turns (message i on connection i % threads), so a slow
 * confirm on one does not hold the schedule back. */
static double publish_events(const rt_config *cfg, const char *via, const char *tag, size_t from, size_t count,
                             int threads, int rate, size_t batch, rt_error *err)
{
    pub_job jobs[PUBLISHERS];
    pthread_t th[PUBLISHERS];
    if (threads > PUBLISHERS)
        threads = PUBLISHERS;
    int64_t t0 = rt_mono_us(), t0_wall = wall_us();
    size_t share = count / (size_t)threads, at = from;
    for (int i = 0; i < threads; i++) {
        jobs[i] = (pub_job){.cfg = cfg, .via = via, .from = at, .rate = rate, .batch = batch, .t0_us = t0_wall,
                            .stride = 1};
        jobs[i].count = i + 1 == threads ? from + count - at : share;
        if (rate > 0) {
            jobs[i].from = from + (size_t)i;
            jobs[i].stride = (size_t)threads;
            jobs[i].count = (count - (size_t)i + (size_t)threads - 1) / (size_t)threads;
        }
        at += jobs[i].count;
        snprintf(jobs[i].tag, sizeof jobs[i].tag, "%s", tag);
        pthread_create(&th[i], NULL, publisher, &jobs[i]);
    }
    rt_status s = RT_OK;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        if (jobs[i].status != RT_OK && s == RT_OK) {
            s = jobs[i].status;
            *err = jobs[i].err;
        }
    }
    return s == RT_OK ? (double)(rt_mono_us() - t0) / 1e6 : -1;
}

typedef struct pub_bg {
    const rt_config *cfg;
    const char *via, *tag;
    size_t from, count;
    int threads, rate;
    size_t batch;
    double seconds;
    rt_error err;
} pub_bg;

static void *publish_bg(void *arg)
{
    pub_bg *p = arg;
    p->seconds = publish_events(p->cfg, p->via, p->tag, p->from, p->count, p->threads, p->rate, p->batch, &p->err);
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

/* Waits until the consumers acknowledged `want` messages (each after its batch's commit):
 * read from their counters, so waiting puts no load on the database being measured. */
static int wait_acked(const rt_intake *in, uint64_t want, int timeout_s, rt_error *err)
{
    int64_t deadline = rt_mono_ms() + timeout_s * 1000LL;
    uint64_t have;
    while ((have = rt_intake_acked(in)) < want) {
        if (rt_mono_ms() > deadline) {
            rt_error_set(err, RT_ERR_TIMEOUT, "only %llu of %llu events were stored and acknowledged",
                         (unsigned long long)have, (unsigned long long)want);
            return -1;
        }
        sleep_us(1000);
    }
    return 0;
}

/* Waits until no queue item is left (the engine drained what ingest created). */
static void wait_drained(rt_store *st)
{
    rt_error err;
    for (int64_t left = 1; left > 0;) {
        if (rt_store_queue_size(st, &left, &err) != RT_OK)
            break;
        sleep_us(20000);
    }
}

/* Starts the consumer of one broker only (the other's URL cleared in *cfg_v). */
static rt_status intake_for(const rt_config *cfg_v, const rt_workflow_set *set, rt_intake **in, rt_error *err)
{
    rt_status s = rt_intake_start(cfg_v, set, in, err);
    if (s == RT_OK)
        sleep(2); /* let the consumer connect and declare its queue/stream before timing */
    return s;
}

typedef struct via_result {
    double pub_alone_s, backlog_s, e2e_s, e2e_pub_s;
    double p50, p99, idle_p50, idle_p99;
    double lat_pub_s; /* how long the 5,000 paced events took to publish (5 s if the rate held) */
    int64_t lat_n, idle_n;
} via_result;

/* Deletes the bench's private queue (AMQP) or stream (JetStream): left behind, a queue stays
 * bound to bench.# and every later run's events pile up in it unconsumed, slowing the
 * broker for good. */
static void drop_private(const rt_config *cfg_v, const char *via)
{
    rt_bus_options o;
    rt_bus_options_from_config(&o, cfg_v, strcmp(via, "amqp") == 0 ? cfg_v->amqp_url : cfg_v->nats_url);
    rt_bus *b = NULL;
    rt_error err;
    rt_status s = rt_bus_open(&o, &b, &err);
    if (s == RT_OK)
        s = rt_bus_connect(b, &err);
    if (s == RT_OK)
        s = rt_bus_drop(b, &err);
    if (s != RT_OK)
        fprintf(stderr, "ratchet bench events (%s): could not delete the bench's queue or stream: %s\n", via,
                err.msg);
    rt_bus_free(b);
}

/* (5) One event at a time on an idle engine: publish on a connection that is already open,
 * wait for its first step to be committed, let everything go idle again. The first event
 * only warms the connection up and is not counted. */
static rt_status idle_phase(const rt_config *cfg_v, rt_store *st, const char *via, const char *tag, const char *name,
                            via_result *out, rt_error *err)
{
    rt_bus *pub = NULL;
    rt_status rs = RT_ERR_INTERNAL;
    wait_drained(st);
    rt_bus_options o;
    rt_bus_options_from_config(&o, cfg_v, strcmp(via, "amqp") == 0 ? cfg_v->amqp_url : cfg_v->nats_url);
    if (rt_bus_open(&o, &pub, err) != RT_OK)
        goto done;
    int64_t idle_from = 0, stored = 0;
    if (rt_store_count_events(st, name, &stored, err) != RT_OK)
        goto done;
    for (int i = 0; i <= IDLE_EVENTS; i++) {
        if (i == 1)
            idle_from = rt_now_ms();
        pub_job one = {.via = via};
        snprintf(one.tag, sizeof one.tag, "%s-i-%s", tag, via);
        char id[64];
        char *body = bench_body(&one, (size_t)i, id, sizeof id);
        rt_bus_out m = {.name = name, .id = id, .body = body, .len = body ? strlen(body) : 0};
        rt_status ps = body ? rt_bus_publish(pub, &m, 1, 10000, err) : rt_error_set(err, RT_ERR_NOMEM, "oom");
        free(body);
        if (ps != RT_OK)
            goto done;
        int64_t want = i == 0 ? 0 : i, deadline = rt_mono_ms() + 30000;
        int64_t have = -1;
        do {
            sleep_us(5000); /* the figure is read from timestamps: polling faster only loads the server */
            if (i == 0) { /* the warm-up: wait for the queue to be empty again */
                if (wait_events(st, name, stored + 1, 30, err) != 0)
                    goto done;
                wait_drained(st);
                break;
            }
            if (rt_store_bench_latency(st, idle_from, true, &have, &out->idle_p50, &out->idle_p99, err) != RT_OK)
                goto done;
        } while (have < want && rt_mono_ms() < deadline);
        if (i > 0 && have < want) {
            rt_error_set(err, RT_ERR_TIMEOUT, "idle event %d: its first step did not complete within 30 s", i);
            goto done;
        }
        out->idle_n = i;
        sleep_us(150000); /* idle: workers and consumer back to waiting */
    }
    rs = RT_OK;
done:
    rt_bus_free(pub);
    return rs == RT_OK ? RT_OK : err->code;
}

/* The five phases for one broker. */
static int bench_via(const rt_config *cfg, const rt_workflow_set *set, rt_store *st, const char *via,
                     const char *tag, int events, via_result *out)
{
    rt_config cfg_v = *cfg;
    if (strcmp(via, "amqp") == 0)
        cfg_v.nats_url = NULL;
    else
        cfg_v.amqp_url = NULL;
    char name[64], t[48];
    snprintf(name, sizeof name, "bench.%s", via);
    rt_error err;
    rt_intake *in = NULL;
    rt_engine *e = NULL;
    int rc = 1;
    /* (1) publisher alone: the queue/stream exists, its consumer is stopped. */
    if (intake_for(&cfg_v, set, &in, &err) != RT_OK)
        goto fail;
    rt_intake_stop(in);
    in = NULL;
    snprintf(t, sizeof t, "%s-a-%s", tag, via);
    out->pub_alone_s = publish_events(&cfg_v, via, t, 0, (size_t)events, PUBLISHERS, 0, PUBLISH_BATCH, &err);
    if (out->pub_alone_s < 0)
        goto fail;
    /* (2) ingest alone, from the backlog. */
    int64_t t0 = rt_mono_us();
    if (rt_intake_start(&cfg_v, set, &in, &err) != RT_OK || wait_acked(in, (uint64_t)events, 300, &err) != 0)
        goto fail;
    out->backlog_s = (double)(rt_mono_us() - t0) / 1e6;
    /* (3) end to end: publishing and ingesting at once. */
    snprintf(t, sizeof t, "%s-t-%s", tag, via);
    pub_bg bg = {.cfg = &cfg_v, .via = via, .tag = t, .count = (size_t)events, .threads = PUBLISHERS,
                 .batch = PUBLISH_BATCH};
    pthread_t th;
    t0 = rt_mono_us();
    pthread_create(&th, NULL, publish_bg, &bg);
    int w = wait_acked(in, 2ULL * (uint64_t)events, 300, &err);
    out->e2e_s = (double)(rt_mono_us() - t0) / 1e6;
    pthread_join(th, NULL);
    out->e2e_pub_s = bg.seconds;
    if (w != 0 || bg.seconds < 0) {
        if (w == 0)
            err = bg.err;
        goto fail;
    }
    /* (4) latency at 1,000 events/s for 5 s, the engine running; the runs the phases
     * above left queued are drained first so this measures a steady rate, not a backlog. */
    if (rt_engine_new(cfg, &e, &err) != RT_OK)
        goto fail;
    rt_engine_set_workflows(e, set);
    if (rt_engine_start(e, &err) != RT_OK)
        goto fail;
    wait_drained(st);
    /* One second at the same rate first, not counted: the engine has just drained the runs
     * of phases 2 and 3, and the first second after that was the slowest of the phase (up
     * to 108 ms, against ~20 ms later, in one run). */
    snprintf(t, sizeof t, "%s-w-%s", tag, via);
    if (publish_events(&cfg_v, via, t, 0, WARMUP_EVENTS, PUBLISHERS, 1000, 1, &err) < 0 ||
        wait_acked(in, 2ULL * (uint64_t)events + WARMUP_EVENTS, 300, &err) != 0)
        goto fail;
    int64_t lat_from = rt_now_ms();
    /* One event per publish, each stamped as it leaves (batched, the first of ten would wait
     * 9 ms in the publisher for the other nine: 4.5 ms more on the median), on 4 connections
     * taking turns (one publish waits for its confirm: about 1 ms with RabbitMQ). */
    snprintf(t, sizeof t, "%s-l-%s", tag, via);
    out->lat_pub_s = publish_events(&cfg_v, via, t, 0, LATENCY_EVENTS, PUBLISHERS, 1000, 1, &err);
    if (out->lat_pub_s < 0)
        goto fail;
    for (int tries = 0; tries < 600 && out->lat_n < LATENCY_EVENTS; tries++) {
        if (rt_store_bench_latency(st, lat_from, true, &out->lat_n, &out->p50, &out->p99, &err) != RT_OK)
            goto fail;
        if (out->lat_n < LATENCY_EVENTS)
            sleep_us(50000);
    }
    if (idle_phase(&cfg_v, st, via, tag, name, out, &err) != RT_OK)
        goto fail;
    rc = 0;
fail:
    if (rc)
        fprintf(stderr, "ratchet bench events (%s): %s\n", via, err.msg);
    if (e) {
        rt_engine_stop(e, 5000);
        rt_engine_free(e);
    }
    rt_intake_stop(in);
    drop_private(&cfg_v, via);
    return rc;
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
    if (rt_store_open(url, &st, &err) != RT_OK || rt_store_migrate(st, NULL, &err) != RT_OK ||
        rt_workflow_from_json(def, NULL, &wf, &err) != RT_OK) {
        fprintf(stderr, "ratchet bench events: %s\n", err.msg);
        rc = 1;
        goto done;
    }
    set.items = &wf;
    set.n = 1;
    if (!json)
        printf("ratchet bench events: %d events per transport and phase, ack after commit, %d publisher "
               "connections, scratch database %s\n",
               events, PUBLISHERS, dbname);
    for (int v = 0; v < n_via && rc == 0; v++) {
        via_result r = {0};
        rc = bench_via(&cfg, &set, st, vias[v], tag, events, &r);
        if (rc)
            break;
        if (json)
            printf("{\"transport\":\"%s\",\"events\":%d,\"publishers\":%d,\"publish_alone_events_per_s\":%.0f,"
                   "\"ingest_backlog_events_per_s\":%.0f,\"ingest_seconds\":%.3f,\"ingest_events_per_s\":%.0f,"
                   "\"publish_events_per_s\":%.0f,\"latency_warmup_events\":%d,\"latency_events\":%lld,"
                   "\"latency_rate_events_per_s\":%.0f,"
                   "\"latency_p50_ms\":%.2f,\"latency_p99_ms\":%.2f,\"idle_events\":%lld,"
                   "\"idle_done_p50_ms\":%.2f,\"idle_done_p99_ms\":%.2f}\n",
                   vias[v], events, PUBLISHERS, events / r.pub_alone_s, events / r.backlog_s, r.e2e_s,
                   events / r.e2e_s, events / r.e2e_pub_s, WARMUP_EVENTS, (long long)r.lat_n,
                   LATENCY_EVENTS / r.lat_pub_s, r.p50, r.p99, (long long)r.idle_n, r.idle_p50, r.idle_p99);
        else
            printf("  %-4s publisher alone %.0f/s; ingest alone (from a backlog) %.0f/s; end to end (publishing "
                   "and ingesting at once) %.0f events/s stored and acked (publisher %.0f/s meanwhile)\n"
                   "       publish -> first step committed at 1,000/s after 1 s of warm-up (published at %.0f/s): "
                   "p50 %.2f ms, p99 %.2f ms "
                   "(%lld events); single event, idle: publish -> first step committed p50 %.2f ms, p99 %.2f ms "
                   "(%lld events)\n",
                   vias[v], events / r.pub_alone_s, events / r.backlog_s, events / r.e2e_s, events / r.e2e_pub_s,
                   LATENCY_EVENTS / r.lat_pub_s, r.p50, r.p99, (long long)r.lat_n, r.idle_p50, r.idle_p99,
                   (long long)r.idle_n);
        fflush(stdout);
    }
done:
    rt_workflow_free(wf);
    json_decref(def);
    rt_store_close(st);
    rt_error ignore;
    rt_store_drop_database(admin, dbname, &ignore);
    rt_store_close(admin);
    free(url);
    return rc;
}
