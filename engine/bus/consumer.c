/* consumer.c — the consumer thread: connect with backoff, subscribe, fetch, ingest,
 * settle by verdict, and start over when the broker goes away. */
#include "consumer.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "util.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define BACKOFF_LOG_EVERY_MS 60000 /* at the cap, remind once a minute */
#define DEFAULT_FETCH_TIMEOUT_MS 500
#define DEFAULT_MAX_EVENT_BYTES (1u << 20)

struct rt_consumer {
    rt_bus *bus;
    char **patterns;
    size_t n_patterns;
    size_t max_bytes;
    size_t batch;
    int fetch_timeout_ms;
    rt_ingest_fn ingest;
    void *ingest_arg;

    pthread_t thread;
    bool started;
    pthread_mutex_t mu; /* guards only the stop wake-up */
    pthread_cond_t cv;
    atomic_bool stop;

    atomic_uint_fast64_t received, acked, dead_lettered, oversized, retried, reconnects, connect_failures, batches;
    atomic_bool connected;
};

/* Sleeps up to ms, returns early (true) when asked to stop. */
static bool sleep_or_stop(rt_consumer *c, int64_t ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    int64_t ns = dl.tv_nsec + ms * 1000000LL;
    dl.tv_sec += ns / 1000000000LL;
    dl.tv_nsec = ns % 1000000000LL;
    pthread_mutex_lock(&c->mu);
    while (!atomic_load(&c->stop)) {
        if (pthread_cond_timedwait(&c->cv, &c->mu, &dl) == ETIMEDOUT)
            break;
    }
    bool stop = atomic_load(&c->stop);
    pthread_mutex_unlock(&c->mu);
    return stop;
}

static int64_t backoff_next(int64_t cur)
{
    if (cur <= 0)
        return BACKOFF_MIN_MS;
    return cur * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : cur * 2;
}

typedef struct backoff {
    int64_t delay_ms;       /* the next wait; 0 = none yet */
    int64_t logged_ms;      /* the step last logged */
    int64_t last_log_mono;  /* when it was logged */
    uint64_t attempts;
} backoff;

/* Logs a failure at most once per backoff step (and once a minute at the cap). */
static void backoff_log(backoff *bo, const char *what, const rt_consumer *c, const rt_error *e)
{
    int64_t now = rt_mono_ms();
    bool at_cap = bo->delay_ms == BACKOFF_MAX_MS && bo->logged_ms == BACKOFF_MAX_MS;
    if (bo->delay_ms != bo->logged_ms || (at_cap && now - bo->last_log_mono >= BACKOFF_LOG_EVERY_MS)) {
        rt_log(RT_LOG_WARN, NULL, "%s consumer: %s: %s; retrying in %lld ms (attempt %llu)", rt_bus_name(c->bus), what,
               e->msg, (long long)bo->delay_ms, (unsigned long long)bo->attempts);
        bo->logged_ms = bo->delay_ms;
        bo->last_log_mono = now;
    }
}

static bool connect_and_subscribe(rt_consumer *c, rt_error *err)
{
    if (rt_bus_connect(c->bus, err) != RT_OK)
        return false;
    if (rt_bus_subscribe(c->bus, (const char *const *)c->patterns, c->n_patterns, err) != RT_OK) {
        rt_bus_close(c->bus);
        return false;
    }
    return true;
}

/* Settles one fetched batch. Returns false when the connection is gone (the caller
 * reconnects; whatever was not settled comes again). */
static bool handle_batch(rt_consumer *c, rt_bus_msg **msgs, size_t n, rt_bus_msg **pass, rt_ingest_verdict *verdicts,
                         rt_bus_msg **group, int64_t *retry_backoff)
{
    rt_bus *bus = c->bus;
    const char *broker = rt_bus_name(bus);
    rt_error err;
    atomic_fetch_add(&c->received, n);

    /* Oversized messages never reach the callback. */
    size_t np = 0;
    for (size_t i = 0; i < n; i++) {
        if (msgs[i]->len > c->max_bytes) {
            char reason[RT_INGEST_REASON_MAX];
            snprintf(reason, sizeof reason, "message of %zu bytes is over RATCHET_MAX_EVENT_BYTES=%zu", msgs[i]->len,
                     c->max_bytes);
            if (rt_bus_dead_letter(bus, msgs[i], reason, &err) != RT_OK) {
                rt_log(RT_LOG_WARN, NULL, "%s consumer: dead-letter failed: %s", broker, err.msg);
                return false;
            }
            atomic_fetch_add(&c->oversized, 1);
            atomic_fetch_add(&c->dead_lettered, 1);
            rt_log(RT_LOG_WARN, NULL, "%s consumer: dead-lettered %s (subject %s): %s", broker, msgs[i]->position,
                   msgs[i]->subject, reason);
        } else {
            pass[np++] = msgs[i];
        }
    }
    if (!np)
        return true;

    for (size_t i = 0; i < np; i++) {
        verdicts[i].outcome = RT_INGEST_RETRY;
        verdicts[i].reason[0] = '\0';
    }
    c->ingest(c->ingest_arg, pass, np, verdicts);
    atomic_fetch_add(&c->batches, 1);

    /* Rejects first (they leave the outstanding set), then one ack for the stored, so
     * contiguous delivery tags collapse into a `multiple` ack. */
    size_t ng = 0;
    for (size_t i = 0; i < np; i++) {
        if (verdicts[i].outcome != RT_INGEST_POISON)
            continue;
        verdicts[i].reason[RT_INGEST_REASON_MAX - 1] = '\0';
        const char *why = verdicts[i].reason[0] ? verdicts[i].reason : "refused by ingest";
        if (rt_bus_dead_letter(bus, pass[i], why, &err) != RT_OK) {
            rt_log(RT_LOG_WARN, NULL, "%s consumer: dead-letter failed: %s", broker, err.msg);
            return false;
        }
        atomic_fetch_add(&c->dead_lettered, 1);
        rt_log(RT_LOG_WARN, NULL, "%s consumer: dead-lettered %s (subject %s, %zu bytes): %s", broker,
               pass[i]->position, pass[i]->subject, pass[i]->len, why);
    }
    for (size_t i = 0; i < np; i++) {
        if (verdicts[i].outcome == RT_INGEST_STORED)
            group[ng++] = pass[i];
    }
    if (ng) {
        if (rt_bus_ack(bus, group, ng, &err) != RT_OK) {
            rt_log(RT_LOG_WARN, NULL, "%s consumer: ack of %zu stored messages failed (they will be redelivered and "
                                      "de-duplicated): %s",
                   broker, ng, err.msg);
            return false;
        }
        atomic_fetch_add(&c->acked, ng);
    }
    ng = 0;
    for (size_t i = 0; i < np; i++) {
        if (verdicts[i].outcome != RT_INGEST_STORED && verdicts[i].outcome != RT_INGEST_POISON)
            group[ng++] = pass[i];
    }
    if (!ng) {
        *retry_backoff = 0;
        return true;
    }
    /* Not stored (the database is away): wait, then give them back. Waiting first keeps
     * a broker from handing the same messages straight back in a tight loop. */
    *retry_backoff = backoff_next(*retry_backoff);
    if (*retry_backoff == BACKOFF_MIN_MS || *retry_backoff == BACKOFF_MAX_MS)
        rt_log(RT_LOG_WARN, NULL, "%s consumer: %zu messages not stored; giving them back in %lld ms", broker, ng,
               (long long)*retry_backoff);
    sleep_or_stop(c, *retry_backoff);
    atomic_fetch_add(&c->retried, ng);
    if (rt_bus_nack(bus, group, ng, &err) != RT_OK) {
        rt_log(RT_LOG_WARN, NULL, "%s consumer: nack failed (the broker redelivers anyway): %s", broker, err.msg);
        return false;
    }
    return true;
}

static void *consumer_main(void *arg)
{
    rt_consumer *c = arg;
    rt_bus *bus = c->bus;
    const char *broker = rt_bus_name(bus);
    rt_bus_msg **msgs = calloc(c->batch, sizeof *msgs);
    rt_bus_msg **pass = calloc(c->batch, sizeof *pass);
    rt_bus_msg **group = calloc(c->batch, sizeof *group);
    rt_ingest_verdict *verdicts = calloc(c->batch, sizeof *verdicts);
    if (!msgs || !pass || !group || !verdicts) {
        rt_log(RT_LOG_ERROR, NULL, "%s consumer: out of memory; not consuming", broker);
        goto out;
    }
    backoff bo = {0};
    bool ever_connected = false;
    int64_t retry_backoff = 0;
    while (!atomic_load(&c->stop)) {
        if (!atomic_load(&c->connected)) {
            rt_error err;
            bo.attempts++;
            if (!connect_and_subscribe(c, &err)) {
                atomic_fetch_add(&c->connect_failures, 1);
                rt_metrics_gauge_set("ratchet_broker_up", "transport", broker, 0);
                bo.delay_ms = backoff_next(bo.delay_ms);
                backoff_log(&bo, ever_connected ? "cannot reconnect" : "cannot connect", c, &err);
                sleep_or_stop(c, bo.delay_ms);
                continue;
            }
            if (ever_connected)
                atomic_fetch_add(&c->reconnects, 1);
            rt_log(RT_LOG_INFO, NULL, "%s consumer: %s %s (%s), %zu pattern%s%s", broker,
                   ever_connected ? "reconnected to" : "connected to", rt_bus_url_safe(bus), rt_bus_mode(bus),
                   c->n_patterns, c->n_patterns == 1 ? "" : "s",
                   bo.attempts > 1 ? " after retrying" : "");
            ever_connected = true;
            atomic_store(&c->connected, true);
            rt_metrics_gauge_set("ratchet_broker_up", "transport", broker, 1);
            bo.attempts = 0;
            bo.logged_ms = 0;
        }
        size_t n = 0;
        rt_error err;
        if (rt_bus_fetch(bus, msgs, c->batch, c->fetch_timeout_ms, &n, &err) != RT_OK) {
            rt_log(RT_LOG_WARN, NULL, "%s consumer: lost the connection: %s", broker, err.msg);
            rt_bus_close(bus);
            atomic_store(&c->connected, false);
            rt_metrics_gauge_set("ratchet_broker_up", "transport", broker, 0);
            /* Wait before the first reconnect too: a broker that accepts and then drops
             * us must not make this a tight loop. The delay resets after a good fetch. */
            bo.delay_ms = backoff_next(bo.delay_ms);
            sleep_or_stop(c, bo.delay_ms);
            continue;
        }
        bo.delay_ms = 0;
        if (!n)
            continue;
        bool ok = handle_batch(c, msgs, n, pass, verdicts, group, &retry_backoff);
        for (size_t i = 0; i < n; i++)
            rt_bus_msg_free(bus, msgs[i]);
        if (!ok) {
            rt_bus_close(bus);
            atomic_store(&c->connected, false);
            rt_metrics_gauge_set("ratchet_broker_up", "transport", broker, 0);
            bo.delay_ms = backoff_next(bo.delay_ms);
            sleep_or_stop(c, bo.delay_ms);
        }
    }
out:
    rt_bus_close(bus);
    atomic_store(&c->connected, false);
    free(msgs);
    free(pass);
    free(group);
    free(verdicts);
    return NULL;
}

static void consumer_free(rt_consumer *c)
{
    if (!c)
        return;
    rt_bus_free(c->bus);
    for (size_t i = 0; i < c->n_patterns; i++)
        free(c->patterns[i]);
    free(c->patterns);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

rt_status rt_consumer_start(const rt_consumer_options *o, rt_consumer **out, rt_error *err)
{
    *out = NULL;
    if (!o->ingest)
        return rt_error_set(err, RT_ERR_INVALID, "consumer: no ingest callback");
    for (size_t i = 0; i < o->n_patterns; i++) {
        rt_status st = rt_bus_pattern_check(o->patterns[i], err);
        if (st != RT_OK)
            return st;
    }
    rt_consumer *c = calloc(1, sizeof *c);
    if (!c)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    rt_status st = rt_bus_open(&o->bus, &c->bus, err);
    if (st != RT_OK) {
        consumer_free(c);
        return st;
    }
    c->patterns = calloc(o->n_patterns ? o->n_patterns : 1, sizeof *c->patterns);
    if (!c->patterns) {
        consumer_free(c);
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < o->n_patterns; i++) {
        if (!(c->patterns[i] = strdup(o->patterns[i]))) {
            consumer_free(c);
            return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
        }
        c->n_patterns++;
    }
    c->max_bytes = o->max_event_bytes ? o->max_event_bytes : DEFAULT_MAX_EVENT_BYTES;
    /* Half the prefetch: the broker keeps sending the other half while a batch is stored. */
    c->batch = o->batch ? o->batch : (size_t)(c->bus->opts.prefetch > 1 ? c->bus->opts.prefetch / 2 : 1);
    if (c->batch > 4096)
        c->batch = 4096;
    c->fetch_timeout_ms = o->fetch_timeout_ms > 0 ? o->fetch_timeout_ms : DEFAULT_FETCH_TIMEOUT_MS;
    c->ingest = o->ingest;
    c->ingest_arg = o->ingest_arg;
    int rc = pthread_create(&c->thread, NULL, consumer_main, c);
    if (rc != 0) {
        consumer_free(c);
        return rt_error_set(err, RT_ERR_INTERNAL, "consumer: cannot start a thread: %s", strerror(rc));
    }
    c->started = true;
    *out = c;
    return RT_OK;
}

void rt_consumer_request_stop(rt_consumer *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    atomic_store(&c->stop, true);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

void rt_consumer_stop(rt_consumer *c)
{
    if (!c)
        return;
    rt_consumer_request_stop(c);
    if (c->started)
        pthread_join(c->thread, NULL);
    consumer_free(c);
}

void rt_consumer_stats_get(const rt_consumer *c, rt_consumer_stats *out)
{
    rt_consumer *m = (rt_consumer *)c; /* atomics are read-only here */
    out->received = atomic_load(&m->received);
    out->acked = atomic_load(&m->acked);
    out->dead_lettered = atomic_load(&m->dead_lettered);
    out->oversized = atomic_load(&m->oversized);
    out->retried = atomic_load(&m->retried);
    out->reconnects = atomic_load(&m->reconnects);
    out->connect_failures = atomic_load(&m->connect_failures);
    out->batches = atomic_load(&m->batches);
    out->connected = atomic_load(&m->connected);
}

const char *rt_consumer_broker(const rt_consumer *c)
{
    return rt_bus_name(c->bus);
}
