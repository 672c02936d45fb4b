/* consumer.h — one thread per configured broker: connect (with backoff, forever),
 * subscribe, fetch batches, hand them to the ingest callback, then ack, dead-letter or
 * give back each message by the callback's verdict; reconnect when the broker goes away.
 *
 * Nothing is acknowledged before the callback says it is stored, so a crash or a lost
 * connection only ever causes a redelivery, which the event id de-duplicates. */
#ifndef RT_CONSUMER_H
#define RT_CONSUMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "status.h"

typedef enum rt_ingest_outcome {
    RT_INGEST_RETRY = 0, /* not stored (database unavailable): do not ack; redeliver later */
    RT_INGEST_STORED,    /* committed: ack */
    RT_INGEST_POISON,    /* can never be stored (not JSON, no name, ...): dead-letter */
} rt_ingest_outcome;

#define RT_INGEST_REASON_MAX 256

typedef struct rt_ingest_verdict {
    rt_ingest_outcome outcome;
    char reason[RT_INGEST_REASON_MAX]; /* RT_INGEST_POISON: why (logged) */
} rt_ingest_verdict;

/* Called on the consumer thread with a batch of n >= 1 messages (borrowed: valid during
 * the call only). It must fill verdicts[0..n-1]; they arrive set to RT_INGEST_RETRY with
 * an empty reason, so a verdict left alone is never acked. Store the whole batch in one
 * transaction and commit before returning RT_INGEST_STORED. */
typedef void (*rt_ingest_fn)(void *arg, rt_bus_msg *const *msgs, size_t n, rt_ingest_verdict *verdicts);

typedef struct rt_consumer_options {
    rt_bus_options bus;          /* copied by rt_bus_open */
    const char *const *patterns; /* event-name patterns to subscribe to (copied) */
    size_t n_patterns;
    size_t max_event_bytes;      /* larger messages are dead-lettered here (0: 1 MiB) */
    size_t batch;                /* most messages per fetch (0: half the bus prefetch) */
    int fetch_timeout_ms;        /* how long one fetch waits (0: 500 ms); bounds stop time */
    rt_ingest_fn ingest;
    void *ingest_arg;
} rt_consumer_options;

typedef struct rt_consumer rt_consumer;

/* Counters since start (monotonic; read with rt_consumer_stats). */
typedef struct rt_consumer_stats {
    uint64_t received;      /* messages fetched (redeliveries count again) */
    uint64_t acked;
    uint64_t dead_lettered; /* oversized + poison */
    uint64_t oversized;
    uint64_t retried;       /* given back for redelivery (RT_INGEST_RETRY) */
    uint64_t reconnects;    /* successful connects after the first */
    uint64_t connect_failures;
    uint64_t batches;       /* ingest callback calls */
    bool connected;
} rt_consumer_stats;

/* Starts the thread; returns at once (connecting happens on the thread, with backoff
 * 100 ms .. 5 s, forever). RT_ERR_INVALID for bad options (URL scheme, patterns). */
rt_status rt_consumer_start(const rt_consumer_options *o, rt_consumer **out, rt_error *err);

/* Asks the thread to stop and returns at once (for stopping several in parallel). */
void rt_consumer_request_stop(rt_consumer *c);
/* Stops the thread and waits for it: the batch in hand is finished and settled first.
 * Then frees everything. NULL is fine. */
void rt_consumer_stop(rt_consumer *c);

void rt_consumer_stats_get(const rt_consumer *c, rt_consumer_stats *out);
/* "amqp" or "nats". */
const char *rt_consumer_broker(const rt_consumer *c);

#endif
