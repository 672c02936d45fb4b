/* bus.h — one interface over the two event brokers (RabbitMQ in bus_amqp.c, NATS and
 * JetStream in bus_nats.c): connect, subscribe, fetch, ack, nack, dead-letter, publish.
 *
 * A bus is a vtable (rt_bus_type, the shape of redis' ConnectionType) reached through the
 * small inline wrappers below; callers never see which broker they talk to except in
 * rt_bus_msg.position, which is only for logs.
 *
 * Two independent sides share one rt_bus:
 *  - the consuming side (connect, subscribe, fetch, ack, nack, dead_letter, close) is
 *    used by one thread at a time (the consumer thread, engine/bus/consumer.c);
 *  - the publishing side (publish) is thread-safe, needs no rt_bus_connect: it opens
 *    its own connection on first use and reopens it after a failure.
 *
 * Library errors (rabbitmq-c, cnats) are translated here into rt_status with their own
 * text kept: RT_ERR_UNAVAILABLE when the broker cannot be reached or the connection was
 * lost (reconnect and try again), RT_ERR_TIMEOUT when it did not answer in time,
 * RT_ERR_INVALID for bad URLs, patterns or settings and for refusals that a retry will
 * not fix (e.g. a payload over the broker's limit). URLs are logged without credentials.
 */
#ifndef RT_BUS_H
#define RT_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

struct rt_config;

/* Names the DESIGN fixes (§5). */
#define RT_BUS_AMQP_EXCHANGE "ratchet.events"
#define RT_BUS_AMQP_QUEUE "ratchet.ingest"
#define RT_BUS_AMQP_DLX "ratchet.events.dlx"
#define RT_BUS_AMQP_DEAD_QUEUE "ratchet.events.dead"
#define RT_BUS_NATS_STREAM "RATCHET_EVENTS"
#define RT_BUS_NATS_PREFIX "events"
#define RT_BUS_NATS_CONSUMER "ratchet-ingest"

#define RT_BUS_POSITION_MAX 160
#define RT_BUS_SUBJECT_MAX 256 /* event names are <= 200 bytes (workflow.c) */

/* TLS for amqps:// and tls:// URLs (ignored for plain URLs). Paths are PEM files. */
typedef struct rt_bus_tls {
    const char *ca_file;   /* trusted CAs; NULL = the system's default store */
    const char *cert_file; /* client certificate (mutual TLS), with key_file */
    const char *key_file;
    bool verify; /* verify the server's certificate and host name (default true) */
} rt_bus_tls;

/* How to reach and shape a broker. Strings are copied by rt_bus_open. Zero/NULL fields
 * take the defaults named here; rt_bus_options_from_config fills one from the settings. */
typedef struct rt_bus_options {
    const char *url;       /* amqp://, amqps://, nats://, tls:// (required) */
    rt_bus_tls tls;
    int prefetch;          /* AMQP basic.qos, and the largest batch a fetch returns (256) */
    int connect_timeout_ms; /* (5000) */
    /* NATS */
    bool jetstream;        /* use JetStream when the server has it (rt_bus_options_init: true) */
    int max_ack_pending;   /* JetStream consumer MaxAckPending (1024) */
    int64_t ack_wait_ms;   /* JetStream AckWait: redelivery of an unacked message (30 s) */
    int64_t stream_max_age_ms; /* JetStream stream MaxAge (7 days; <0 = unlimited) */
    const char *stream;    /* JetStream stream (RATCHET_EVENTS) */
    const char *subject_prefix; /* subjects are "<prefix>.<event name>" ("events") */
    const char *consumer;  /* JetStream durable and core-NATS queue group (ratchet-ingest) */
    /* AMQP */
    const char *queue;     /* (ratchet.ingest); the exchange, DLX and dead queue are fixed */
    const char *client_name; /* shown by the broker's tools ("ratchet") */
} rt_bus_options;

/* One received message. Owned by the caller of rt_bus_fetch until rt_bus_msg_free; the
 * transport keeps its own bookkeeping (delivery tag, JetStream reply subject) behind it. */
typedef struct rt_bus_msg {
    const unsigned char *body;
    size_t len;
    const char *subject; /* AMQP routing key, or the NATS subject ("events.invoice.paid") */
    const char *name;    /* the event name the subject carries ("invoice.paid") */
    bool redelivered;    /* the broker delivered it before (AMQP flag, JetStream count > 1) */
    const char *traceparent; /* the "traceparent" header, unchecked, or NULL (W3C Trace Context) */
    size_t traceparent_len;
    const char *tracestate;  /* the "tracestate" header, unchecked, or NULL */
    size_t tracestate_len;
    char position[RT_BUS_POSITION_MAX]; /* "amqp queue ratchet.ingest delivery-tag 17" */
} rt_bus_msg;

/* One message to publish. */
typedef struct rt_bus_out {
    const char *name;    /* event name: AMQP routing key, NATS subject "<prefix>.<name>" */
    const char *id;      /* optional: event id, sent as AMQP message-id / Nats-Msg-Id so the
                          * broker can drop a re-publish (JetStream duplicate window) */
    const void *body;
    size_t len;
    const char *traceparent; /* optional: sent as the "traceparent" header */
} rt_bus_out;

typedef struct rt_bus rt_bus;

/* The transport vtable. Every function returns RT_OK or an error with err filled. */
typedef struct rt_bus_type {
    const char *name; /* "amqp" or "nats" */
    rt_status (*create)(rt_bus **out, rt_error *err);
    /* Opens the consuming connection and declares what the transport needs (exchange,
     * queues, DLX; stream and durable consumer). A connected bus is closed first. */
    rt_status (*connect)(rt_bus *b, rt_error *err);
    /* Patterns are event-name patterns (NATS style: '.' tokens, '*' one, '>' the rest). */
    rt_status (*subscribe)(rt_bus *b, const char *const *patterns, size_t n, rt_error *err);
    /* Up to max messages, waiting up to timeout_ms for the first; *n may be 0. */
    rt_status (*fetch)(rt_bus *b, rt_bus_msg **msgs, size_t max, int timeout_ms, size_t *n, rt_error *err);
    rt_status (*ack)(rt_bus *b, rt_bus_msg *const *msgs, size_t n, rt_error *err);
    rt_status (*nack)(rt_bus *b, rt_bus_msg *const *msgs, size_t n, rt_error *err);
    rt_status (*dead_letter)(rt_bus *b, rt_bus_msg *msg, const char *reason, rt_error *err);
    void (*msg_free)(rt_bus *b, rt_bus_msg *msg);
    rt_status (*publish)(rt_bus *b, const rt_bus_out *msgs, size_t n, int timeout_ms, rt_error *err);
    /* The server's view of this bus' queue or consumer: messages ready and unacked. */
    rt_status (*backlog)(rt_bus *b, int64_t *ready, int64_t *unacked, rt_error *err);
    /* Deletes this bus' own queue (AMQP) or stream (JetStream) with what it holds: for
     * scratch names only (`ratchet bench events`). Needs a connected bus. */
    rt_status (*drop)(rt_bus *b, rt_error *err);
    bool (*is_connected)(rt_bus *b);
    const char *(*mode)(rt_bus *b); /* "amqp", "jetstream", "nats-core" (after connect) */
    void (*close)(rt_bus *b);       /* the consuming side only; the bus stays usable */
    void (*free)(rt_bus *b);        /* both sides */
} rt_bus_type;

/* The common head of every transport's bus (their structs start with it). */
struct rt_bus {
    const rt_bus_type *type;
    rt_bus_options opts;   /* deep copy, defaults applied */
    char *url;             /* owned copy (holds credentials: never log it) */
    char *url_safe;        /* the URL without credentials, for logs and errors */
};

extern const rt_bus_type rt_bus_amqp_type;
extern const rt_bus_type rt_bus_nats_type;

/* Defaults: jetstream true, tls.verify true, everything else 0/NULL (= the defaults). */
void rt_bus_options_init(rt_bus_options *o);
/* Fills o from the settings for url (borrowed from cfg: cfg must outlive o). */
void rt_bus_options_from_config(rt_bus_options *o, const struct rt_config *cfg, const char *url);

/* Picks the transport by the URL's scheme (amqp, amqps -> RabbitMQ; nats, tls -> NATS)
 * and creates an unconnected bus. RT_ERR_INVALID for an unknown scheme or bad options. */
rt_status rt_bus_open(const rt_bus_options *o, rt_bus **out, rt_error *err);
/* Closes both sides and frees; NULL is fine. Every fetched message must be freed first. */
void rt_bus_free(rt_bus *b);

/* "amqp" or "nats" — the broker, for logs and the `via` of the publish step. */
static inline const char *rt_bus_name(const rt_bus *b) { return b->type->name; }
/* The URL without user and password. */
static inline const char *rt_bus_url_safe(const rt_bus *b) { return b->url_safe; }

static inline rt_status rt_bus_connect(rt_bus *b, rt_error *err) { return b->type->connect(b, err); }
static inline rt_status rt_bus_subscribe(rt_bus *b, const char *const *patterns, size_t n, rt_error *err)
{
    return b->type->subscribe(b, patterns, n, err);
}
static inline rt_status rt_bus_fetch(rt_bus *b, rt_bus_msg **msgs, size_t max, int timeout_ms, size_t *n,
                                     rt_error *err)
{
    return b->type->fetch(b, msgs, max, timeout_ms, n, err);
}
/* Acknowledge after the caller committed what the messages caused. AMQP batches
 * contiguous delivery tags with `multiple`; JetStream acks each and flushes once. A
 * message from an earlier connection cannot be acked any more (the broker redelivers
 * it): it is skipped, not an error. */
static inline rt_status rt_bus_ack(rt_bus *b, rt_bus_msg *const *msgs, size_t n, rt_error *err)
{
    return b->type->ack(b, msgs, n, err);
}
/* Give messages back for redelivery (AMQP basic.nack requeue; JetStream Nak). Core NATS
 * cannot: the messages are gone (at-most-once). */
static inline rt_status rt_bus_nack(rt_bus *b, rt_bus_msg *const *msgs, size_t n, rt_error *err)
{
    return b->type->nack(b, msgs, n, err);
}
/* Never deliver it again: AMQP basic.reject (requeue=false) into ratchet.events.dlx and
 * its queue ratchet.events.dead; JetStream Term. The reason is for the caller's log. */
static inline rt_status rt_bus_dead_letter(rt_bus *b, rt_bus_msg *msg, const char *reason, rt_error *err)
{
    return b->type->dead_letter(b, msg, reason, err);
}
static inline void rt_bus_msg_free(rt_bus *b, rt_bus_msg *msg)
{
    if (msg)
        b->type->msg_free(b, msg);
}
/* Thread-safe. Returns RT_OK only when the broker took every message (RabbitMQ
 * publisher confirms; JetStream publish acks; core NATS: written and flushed). The batch
 * is pipelined: all messages are sent, then the confirmations awaited. Concurrent callers
 * share round trips (RabbitMQ: one caller sends everything queued as one batch; JetStream:
 * single messages go in parallel), so a failure may be reported to every caller of that
 * round. On error, any subset may have been taken: publish again with the same ids.
 * timeout_ms <= 0: 10 s. */
static inline rt_status rt_bus_publish(rt_bus *b, const rt_bus_out *msgs, size_t n, int timeout_ms,
                                       rt_error *err)
{
    return b->type->publish(b, msgs, n, timeout_ms, err);
}
static inline rt_status rt_bus_backlog(rt_bus *b, int64_t *ready, int64_t *unacked, rt_error *err)
{
    return b->type->backlog(b, ready, unacked, err);
}
static inline rt_status rt_bus_drop(rt_bus *b, rt_error *err)
{
    return b->type->drop(b, err);
}
static inline bool rt_bus_is_connected(rt_bus *b) { return b->type->is_connected(b); }
static inline const char *rt_bus_mode(rt_bus *b) { return b->type->mode(b); }
static inline void rt_bus_close(rt_bus *b) { b->type->close(b); }

/* Event-name patterns (NATS style). */
rt_status rt_bus_pattern_check(const char *pattern, rt_error *err);
/* '*' stays '*', '>' becomes '#'. buf gets the AMQP binding key; RT_ERR_INVALID when the
 * pattern is bad or does not fit. */
rt_status rt_bus_pattern_to_amqp(const char *pattern, char *buf, size_t len, rt_error *err);
/* Does the name match the pattern? ("a.*" matches "a.b", not "a.b.c"; "a.>" both.) */
bool rt_bus_pattern_match(const char *pattern, const char *name);

/* Copies url into buf without user information ("amqp://h:5672/v"). */
void rt_bus_url_redact(const char *url, char *buf, size_t len);

/* Releases the NATS library's global state; call once at exit, after every bus is freed
 * (the leak checker counts it otherwise). */
void rt_bus_shutdown(void);

/* For transports: fills the common head (copies, defaults, redacted URL). */
rt_status rt_bus_init_common(rt_bus *b, const rt_bus_type *type, const rt_bus_options *o, rt_error *err);
void rt_bus_free_common(rt_bus *b);

#endif
