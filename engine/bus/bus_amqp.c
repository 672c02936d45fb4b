/* bus_amqp.c — the RabbitMQ transport (rabbitmq-c 0.11): durable topic exchange
 * ratchet.events, durable queue ratchet.ingest dead-lettering into ratchet.events.dlx /
 * ratchet.events.dead, manual acks after commit, and pipelined publisher confirms.
 *
 * rabbitmq-c connections are not thread-safe: the consuming connection belongs to the
 * consumer thread; publishing has its own connection, driven by one thread at a time
 * (group commit, below). */
#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <errno.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "bus.h"
#include "log.h"
#include "util.h"

#define CHANNEL 1
#define CONSUMER_HEARTBEAT_S 30
#define FRAME_MAX 131072
#define PUBLISH_DRAIN_EVERY 64 /* read confirms while publishing so no buffer fills up */

/* The publishing connection. A confirm round trip costs a broker fsync, so concurrent
 * publishers (worker threads running publish steps) share round trips: each queues its
 * request; whoever finds no leader becomes it, sends everything queued as one pipelined
 * batch, waits for the confirms once and wakes the others (group commit). Only the
 * leader touches conn and seq. */
typedef struct pub_slot {
    amqp_connection_state_t conn;
    uint64_t seq; /* the next publish sequence number on conn (confirm mode) */
} pub_slot;

typedef struct pub_req {
    const rt_bus_out *msgs;
    size_t n;
    int64_t deadline_ms;
    rt_status st;
    rt_error *err;
    bool done;
    struct pub_req *next;
} pub_req;

typedef struct amqp_bus {
    rt_bus base;
    /* consuming side (one thread) */
    amqp_connection_state_t conn;
    bool broken;      /* socket or protocol error seen: close without a handshake */
    bool consuming;
    bool queue_v1_noted; /* the ingest queue exists without x-queue-version 2: said once */
    uint64_t gen;     /* bumped on every connect: delivery tags are per channel */
    uint64_t *outstanding; /* delivered, not yet settled, ascending */
    size_t n_out, cap_out;
    /* publishing side */
    pthread_mutex_t pub_mu; /* guards the queue and the leader flag */
    pthread_cond_t pub_cv;
    pub_req *pq_head, *pq_tail;
    bool pub_leader;
    pub_slot pub;
} amqp_bus;

typedef struct amqp_msg {
    rt_bus_msg m;
    uint64_t tag;
    uint64_t gen;
} amqp_msg;

static amqp_bus *A(rt_bus *b) { return (amqp_bus *)b; }

static amqp_bytes_t bytes_of(const char *s) { return amqp_cstring_bytes(s); }


static struct timeval tv_ms(int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

/* --- errors ----------------------------------------------------------------------------- */

static rt_status lib_error(rt_error *err, int status, const char *url, const char *what)
{
    rt_status code = RT_ERR_UNAVAILABLE;
    if (status == AMQP_STATUS_TIMEOUT)
        code = RT_ERR_TIMEOUT;
    else if (status == AMQP_STATUS_SSL_PEER_VERIFY_FAILED || status == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED)
        code = RT_ERR_INVALID; /* a certificate problem: settings, not an outage */
    return rt_error_set(err, code, "amqp %s: %s: %s", url, what, amqp_error_string2(status));
}

/* Socket errors: rabbitmq-c's text says only "a socket error occurred"; errno says why. */
static rt_status socket_error(rt_error *err, int status, int saved_errno, const char *url, const char *what)
{
    if (status == AMQP_STATUS_SOCKET_ERROR && saved_errno && saved_errno != EINPROGRESS && saved_errno != EAGAIN)
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "amqp %s: %s: %s (%s)", url, what, amqp_error_string2(status),
                            strerror(saved_errno));
    return lib_error(err, status, url, what);
}

/* Translates an RPC reply; RT_OK for a normal one. A server exception closes the channel
 * (or the connection), so every error here marks the connection broken. */
static rt_status reply_error(amqp_rpc_reply_t r, const char *url, const char *what, rt_error *err)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return RT_OK;
    case AMQP_RESPONSE_NONE:
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "amqp %s: %s: no reply from the broker", url, what);
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        return lib_error(err, r.library_error, url, what);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *m = r.reply.decoded;
            rt_status code = (m->reply_code == 403 || m->reply_code == 530) ? RT_ERR_INVALID : RT_ERR_UNAVAILABLE;
            return rt_error_set(err, code, "amqp %s: %s: broker closed the connection: %u %.*s", url, what,
                                m->reply_code, (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        }
        if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const amqp_channel_close_t *m = r.reply.decoded;
            /* 403 access refused, 404 not found, 406 precondition failed (a queue that
             * exists with other arguments): a retry alone will not fix these. */
            rt_status code = (m->reply_code == 403 || m->reply_code == 404 || m->reply_code == 406)
                                 ? RT_ERR_INVALID
                                 : RT_ERR_UNAVAILABLE;
            return rt_error_set(err, code, "amqp %s: %s: broker closed the channel: %u %.*s", url, what,
                                m->reply_code, (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        }
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "amqp %s: %s: broker error (method 0x%08x)", url, what,
                            (unsigned)r.reply.id);
    }
    return rt_error_set(err, RT_ERR_INTERNAL, "amqp %s: %s: unknown reply type", url, what);
}

/* A method frame that arrived where none was expected (channel.close, connection.close,
 * basic.cancel) as an error; RT_OK for frames that may be ignored. */
static rt_status unexpected_method(const amqp_frame_t *f, const char *url, rt_error *err)
{
    if (f->frame_type != AMQP_FRAME_METHOD)
        return RT_OK;
    switch (f->payload.method.id) {
    case AMQP_CHANNEL_CLOSE_METHOD: {
        const amqp_channel_close_t *m = f->payload.method.decoded;
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "amqp %s: broker closed the channel: %u %.*s", url,
                            m->reply_code, (int)m->reply_text.len, (const char *)m->reply_text.bytes);
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        const amqp_connection_close_t *m = f->payload.method.decoded;
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "amqp %s: broker closed the connection: %u %.*s", url,
                            m->reply_code, (int)m->reply_text.len, (const char *)m->reply_text.bytes);
    }
    case AMQP_BASIC_CANCEL_METHOD:
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "amqp %s: broker cancelled the consumer (queue deleted?)",
                            url);
    default:
        return RT_OK;
    }
}

/* --- connections ------------------------------------------------------------------------ */

static void conn_destroy(amqp_connection_state_t c, bool graceful)
{
    if (!c)
        return;
    if (graceful) {
        /* The RPC timeout set at open bounds these. */
        amqp_channel_close(c, CHANNEL, AMQP_REPLY_SUCCESS);
        amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    }
    amqp_destroy_connection(c);
}

static rt_status tls_setup(amqp_bus *b, amqp_socket_t *sock, rt_error *err)
{
    const rt_bus_tls *t = &b->base.opts.tls;
    const char *url = b->base.url_safe;
    amqp_ssl_socket_set_verify_peer(sock, t->verify);
    amqp_ssl_socket_set_verify_hostname(sock, t->verify);
    const char *ca = t->ca_file;
    if (!ca && t->verify) {
        /* rabbitmq-c 0.11 trusts nothing by default: use OpenSSL's default bundle. */
        ca = getenv(X509_get_default_cert_file_env());
        if (!ca || !*ca)
            ca = X509_get_default_cert_file();
        if (access(ca, R_OK) != 0)
            ca = "/etc/ssl/certs/ca-certificates.crt";
    }
    if (ca) {
        int st = amqp_ssl_socket_set_cacert(sock, ca);
        if (st != AMQP_STATUS_OK)
            return rt_error_set(err, RT_ERR_INVALID, "amqp %s: TLS CA file %s: %s", url, ca, amqp_error_string2(st));
    }
    if (t->cert_file) {
        int st = amqp_ssl_socket_set_key(sock, t->cert_file, t->key_file);
        if (st != AMQP_STATUS_OK)
            return rt_error_set(err, RT_ERR_INVALID, "amqp %s: TLS client certificate %s / key %s: %s", url,
                                t->cert_file, t->key_file, amqp_error_string2(st));
    }
    return RT_OK;
}

/* Opens a connection with channel 1. The URL's vhost "" (a trailing slash) means "/". */
static rt_status conn_open(amqp_bus *b, int heartbeat, amqp_connection_state_t *out, rt_error *err)
{
    *out = NULL;
    const char *url = b->base.url_safe;
    char *buf = strdup(b->base.url);
    if (!buf)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    struct amqp_connection_info ci;
    int st = amqp_parse_url(buf, &ci);
    if (st != AMQP_STATUS_OK) {
        free(buf);
        return rt_error_set(err, RT_ERR_INVALID,
                            "amqp URL %s: %s (expected amqp[s]://user:password@host:port/vhost, no query)", url,
                            amqp_error_string2(st));
    }
    const char *vhost = *ci.vhost ? ci.vhost : "/";
    amqp_connection_state_t c = amqp_new_connection();
    if (!c) {
        free(buf);
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    }
    rt_status rs = RT_OK;
    amqp_socket_t *sock = ci.ssl ? amqp_ssl_socket_new(c) : amqp_tcp_socket_new(c);
    if (!sock) {
        rs = rt_error_set(err, RT_ERR_NOMEM, "amqp %s: cannot create a socket", url);
        goto fail;
    }
    if (ci.ssl && (rs = tls_setup(b, sock, err)) != RT_OK)
        goto fail;
    struct timeval tv = tv_ms(b->base.opts.connect_timeout_ms);
    errno = 0;
    st = amqp_socket_open_noblock(sock, ci.host, ci.port, &tv);
    if (st != AMQP_STATUS_OK) {
        rs = socket_error(err, st, errno, url, "cannot connect");
        goto fail;
    }
    amqp_set_handshake_timeout(c, &tv);
    amqp_set_rpc_timeout(c, &tv);
    amqp_table_entry_t props_e[1];
    props_e[0].key = bytes_of("connection_name");
    props_e[0].value.kind = AMQP_FIELD_KIND_UTF8;
    props_e[0].value.value.bytes = bytes_of(b->base.opts.client_name);
    amqp_table_t props = {.num_entries = 1, .entries = props_e};
    amqp_rpc_reply_t r = amqp_login_with_properties(c, vhost, 0, FRAME_MAX, heartbeat, &props,
                                                    AMQP_SASL_METHOD_PLAIN, ci.user, ci.password);
    if ((rs = reply_error(r, url, "login", err)) != RT_OK)
        goto fail;
    amqp_channel_open(c, CHANNEL);
    if ((rs = reply_error(amqp_get_rpc_reply(c), url, "channel.open", err)) != RT_OK)
        goto fail;
    free(buf);
    *out = c;
    return RT_OK;
fail:
    free(buf);
    conn_destroy(c, false);
    return rs;
}

static rt_status declare_exchange(amqp_connection_state_t c, const char *url, const char *name, const char *type,
                                  rt_error *err)
{
    amqp_exchange_declare(c, CHANNEL, bytes_of(name), bytes_of(type), 0, 1, 0, 0, amqp_empty_table);
    char what[128];
    snprintf(what, sizeof what, "declare exchange %s", name);
    return reply_error(amqp_get_rpc_reply(c), url, what, err);
}

static rt_status declare_queue(amqp_connection_state_t c, const char *url, const char *name, amqp_table_t args,
                               rt_error *err)
{
    amqp_queue_declare(c, CHANNEL, bytes_of(name), 0, 1, 0, 0, args);
    char what[160];
    snprintf(what, sizeof what, "declare queue %s", name);
    return reply_error(amqp_get_rpc_reply(c), url, what, err);
}

/* True for the broker's refusal to re-declare a queue because of its x-queue-version. */
static bool refused_queue_version(amqp_rpc_reply_t r)
{
    if (r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION || r.reply.id != AMQP_CHANNEL_CLOSE_METHOD)
        return false;
    const amqp_channel_close_t *m = r.reply.decoded;
    static const char key[] = "x-queue-version";
    const char *text = m->reply_text.bytes;
    size_t len = m->reply_text.len, k = sizeof key - 1;
    if (m->reply_code != 406)
        return false;
    for (size_t i = 0; i + k <= len; i++)
        if (memcmp(text + i, key, k) == 0)
            return true;
    return false;
}

/* The ingest queue, dead-lettering into ratchet.events.dlx, declared as a classic queue
 * of version 2 (RabbitMQ >= 3.10): it stores and confirms persistent messages with less
 * work than version 1, RabbitMQ 3.10's default (bench/README.md has the figures;
 * older brokers ignore the argument). A queue's version is fixed when it is made, and the
 * broker refuses (406) a declaration whose x-queue-version differs from the queue's, so a
 * queue that already exists without it (made by an earlier ratchet or by its operator) is
 * kept as it is: the refused channel is reopened and the queue declared as before. The
 * operator can convert such a queue in place with a policy (queue-version: 2). */
static rt_status declare_ingest_queue(amqp_bus *b, rt_error *err)
{
    amqp_connection_state_t c = b->conn;
    const char *url = b->base.url_safe, *queue = b->base.opts.queue;
    amqp_table_entry_t qargs_e[2];
    qargs_e[0].key = bytes_of("x-dead-letter-exchange");
    qargs_e[0].value.kind = AMQP_FIELD_KIND_UTF8;
    qargs_e[0].value.value.bytes = bytes_of(RT_BUS_AMQP_DLX);
    qargs_e[1].key = bytes_of("x-queue-version");
    qargs_e[1].value.kind = AMQP_FIELD_KIND_I8;
    qargs_e[1].value.value.i8 = 2;
    amqp_table_t qargs = {.num_entries = 2, .entries = qargs_e};
    amqp_queue_declare(c, CHANNEL, bytes_of(queue), 0, 1, 0, 0, qargs);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
    if (!refused_queue_version(r)) {
        char what[160];
        snprintf(what, sizeof what, "declare queue %s", queue);
        return reply_error(r, url, what, err);
    }
    amqp_channel_close_ok_t close_ok = {0};
    int sst = amqp_send_method(c, CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD, &close_ok);
    if (sst != AMQP_STATUS_OK)
        return lib_error(err, sst, url, "channel.close-ok");
    amqp_channel_open(c, CHANNEL);
    rt_status st = reply_error(amqp_get_rpc_reply(c), url, "channel.open", err);
    if (st != RT_OK)
        return st;
    if (!b->queue_v1_noted) {
        b->queue_v1_noted = true;
        rt_log(RT_LOG_WARN, NULL,
               "amqp %s: queue %s was declared without x-queue-version 2 (by an earlier ratchet?) and is "
               "kept as it is: a version 1 queue unless a policy sets queue-version 2, which converts it "
               "(persistent messages are confirmed faster)",
               url, queue);
    }
    qargs.num_entries = 1;
    return declare_queue(c, url, queue, qargs, err);
}

/* --- consuming side --------------------------------------------------------------------- */

static void a_close(rt_bus *bb)
{
    amqp_bus *b = A(bb);
    if (b->conn) {
        conn_destroy(b->conn, !b->broken);
        b->conn = NULL;
    }
    b->broken = false;
    b->consuming = false;
    b->n_out = 0;
}

static rt_status fail_conn(amqp_bus *b, rt_status st)
{
    b->broken = true;
    return st;
}

static rt_status a_connect(rt_bus *bb, rt_error *err)
{
    amqp_bus *b = A(bb);
    const char *url = bb->url_safe;
    a_close(bb);
    amqp_connection_state_t c;
    rt_status st = conn_open(b, CONSUMER_HEARTBEAT_S, &c, err);
    if (st != RT_OK)
        return st;
    b->conn = c;
    b->gen++;
    /* Idempotent declarations: the same arguments every time (a queue that exists with
     * other arguments makes the broker refuse with 406, reported as it is). */
    if ((st = declare_exchange(c, url, RT_BUS_AMQP_EXCHANGE, "topic", err)) != RT_OK ||
        (st = declare_exchange(c, url, RT_BUS_AMQP_DLX, "fanout", err)) != RT_OK ||
        (st = declare_queue(c, url, RT_BUS_AMQP_DEAD_QUEUE, amqp_empty_table, err)) != RT_OK)
        goto fail;
    amqp_queue_bind(c, CHANNEL, bytes_of(RT_BUS_AMQP_DEAD_QUEUE), bytes_of(RT_BUS_AMQP_DLX), bytes_of("#"),
                    amqp_empty_table);
    if ((st = reply_error(amqp_get_rpc_reply(c), url, "bind " RT_BUS_AMQP_DEAD_QUEUE, err)) != RT_OK)
        goto fail;
    if ((st = declare_ingest_queue(b, err)) != RT_OK)
        goto fail;
    amqp_basic_qos(c, CHANNEL, 0, (uint16_t)bb->opts.prefetch, 0);
    if ((st = reply_error(amqp_get_rpc_reply(c), url, "basic.qos", err)) != RT_OK)
        goto fail;
    return RT_OK;
fail:
    b->broken = true;
    a_close(bb);
    return st;
}

static rt_status a_subscribe(rt_bus *bb, const char *const *patterns, size_t n, rt_error *err)
{
    amqp_bus *b = A(bb);
    const char *url = bb->url_safe;
    if (!b->conn)
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "amqp %s: not connected", url);
    for (size_t i = 0; i < n; i++) {
        char key[RT_BUS_SUBJECT_MAX];
        rt_status st = rt_bus_pattern_to_amqp(patterns[i], key, sizeof key, err);
        if (st != RT_OK)
            return st;
        amqp_queue_bind(b->conn, CHANNEL, bytes_of(bb->opts.queue), bytes_of(RT_BUS_AMQP_EXCHANGE), bytes_of(key),
                        amqp_empty_table);
        char what[RT_BUS_SUBJECT_MAX + 64];
        snprintf(what, sizeof what, "bind %s to %s", key, bb->opts.queue);
        if ((st = reply_error(amqp_get_rpc_reply(b->conn), url, what, err)) != RT_OK)
            return fail_conn(b, st);
    }
    if (!b->consuming) {
        amqp_basic_consume(b->conn, CHANNEL, bytes_of(bb->opts.queue), amqp_empty_bytes, 0, 0, 0,
                           amqp_empty_table);
        rt_status st = reply_error(amqp_get_rpc_reply(b->conn), url, "basic.consume", err);
        if (st != RT_OK)
            return fail_conn(b, st);
        b->consuming = true;
    }
    return RT_OK;
}

static rt_status track(amqp_bus *b, uint64_t tag, rt_error *err)
{
    if (b->n_out == b->cap_out) {
        size_t cap = b->cap_out ? b->cap_out * 2 : 256;
        uint64_t *p = realloc(b->outstanding, cap * sizeof *p);
        if (!p)
            return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
        b->outstanding = p;
        b->cap_out = cap;
    }
    b->outstanding[b->n_out++] = tag; /* tags grow on a channel: stays sorted */
    return RT_OK;
}

/* A string header's value (AMQP longstr or bytes), or empty. */
static amqp_bytes_t header_value(const amqp_envelope_t *env, const char *name)
{
    amqp_bytes_t none = {0, NULL};
    const amqp_basic_properties_t *p = &env->message.properties;
    if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
        return none;
    size_t nl = strlen(name);
    for (int i = 0; i < p->headers.num_entries; i++) {
        const amqp_table_entry_t *e = &p->headers.entries[i];
        if (e->key.len == nl && strncasecmp(e->key.bytes, name, nl) == 0 &&
            (e->value.kind == AMQP_FIELD_KIND_UTF8 || e->value.kind == AMQP_FIELD_KIND_BYTES))
            return e->value.value.bytes;
    }
    return none;
}

static amqp_msg *msg_from_envelope(amqp_bus *b, const amqp_envelope_t *env)
{
    size_t klen = env->routing_key.len, blen = env->message.body.len;
    /* W3C Trace Context headers, copied (unchecked: ingest parses them strictly) */
    amqp_bytes_t tp = header_value(env, "traceparent"), ts = header_value(env, "tracestate");
    if (tp.len > 256)
        tp.len = 256; /* longer than any valid one: kept long enough to be refused */
    if (ts.len > 1024)
        ts.len = 0;
    amqp_msg *m = malloc(sizeof *m + klen + 1 + blen + 1 + tp.len + 1 + ts.len + 1);
    if (!m)
        return NULL;
    memset(m, 0, sizeof *m);
    char *key = (char *)(m + 1);
    memcpy(key, env->routing_key.bytes, klen);
    key[klen] = '\0';
    unsigned char *body = (unsigned char *)key + klen + 1;
    if (blen)
        memcpy(body, env->message.body.bytes, blen);
    body[blen] = '\0';
    char *tpc = (char *)body + blen + 1, *tsc = tpc + tp.len + 1;
    if (tp.bytes) {
        memcpy(tpc, tp.bytes, tp.len);
        m->m.traceparent = tpc;
        m->m.traceparent_len = tp.len;
    }
    tpc[tp.len] = '\0';
    if (ts.bytes && ts.len) {
        memcpy(tsc, ts.bytes, ts.len);
        m->m.tracestate = tsc;
        m->m.tracestate_len = ts.len;
    }
    tsc[ts.len] = '\0';
    m->m.body = body;
    m->m.len = blen;
    m->m.subject = key;
    m->m.name = key;
    m->m.redelivered = env->redelivered;
    m->tag = env->delivery_tag;
    m->gen = b->gen;
    snprintf(m->m.position, sizeof m->m.position, "amqp queue %s delivery-tag %llu%s", b->base.opts.queue,
             (unsigned long long)env->delivery_tag, env->redelivered ? " (redelivered)" : "");
    return m;
}

static void a_msg_free(rt_bus *bb, rt_bus_msg *m)
{
    (void)bb;
    free(m);
}

static rt_status a_fetch(rt_bus *bb, rt_bus_msg **msgs, size_t max, int timeout_ms, size_t *n, rt_error *err)
{
    amqp_bus *b = A(bb);
    const char *url = bb->url_safe;
    *n = 0;
    if (!b->conn || b->broken)
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "amqp %s: not connected", url);
    if (!b->consuming)
        return rt_error_set(err, RT_ERR_INVALID, "amqp %s: fetch before subscribe", url);
    rt_status st = RT_OK;
    while (*n < max) {
        /* Wait for the first message only; then take what has already arrived, without
         * waiting: a lone message goes straight to ingest, and under a backlog the prefetch
         * window keeps the socket full, so batches are large on their own (and while one
         * batch commits, the next one piles up: the commit rate never caps the ingest). */
        struct timeval tv = tv_ms(*n == 0 && timeout_ms > 0 ? timeout_ms : 0);
        amqp_envelope_t env;
        amqp_maybe_release_buffers(b->conn);
        amqp_rpc_reply_t r = amqp_consume_message(b->conn, &env, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_NORMAL) {
            amqp_msg *m = msg_from_envelope(b, &env);
            amqp_destroy_envelope(&env);
            if (!m) {
                st = rt_error_set(err, RT_ERR_NOMEM, "out of memory");
                goto fail;
            }
            msgs[(*n)++] = &m->m;
            if ((st = track(b, m->tag, err)) != RT_OK)
                goto fail;
            continue;
        }
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
            break;
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            /* Not a delivery: a method the broker sent on its own. */
            amqp_frame_t f;
            int fs = amqp_simple_wait_frame(b->conn, &f);
            if (fs != AMQP_STATUS_OK) {
                st = lib_error(err, fs, url, "reading a frame");
                goto fail;
            }
            if ((st = unexpected_method(&f, url, err)) != RT_OK)
                goto fail;
            if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_RETURN_METHOD) {
                amqp_message_t ret;
                amqp_rpc_reply_t rr = amqp_read_message(b->conn, f.channel, &ret, 0);
                if ((st = reply_error(rr, url, "reading a returned message", err)) != RT_OK)
                    goto fail;
                amqp_destroy_message(&ret);
            }
            continue;
        }
        st = reply_error(r, url, "consume", err);
        goto fail;
    }
    return RT_OK;
fail:
    /* The connection is gone or unusable: what it delivered will come again. */
    b->broken = true;
    for (size_t i = 0; i < *n; i++)
        free(msgs[i]);
    *n = 0;
    return st;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

enum settle_kind { SETTLE_ACK, SETTLE_NACK, SETTLE_REJECT };

/* Acks (or nacks) a set of delivery tags: the longest run of the oldest outstanding tags
 * that is wholly in the set goes as one frame with `multiple`, the rest one by one. */
static rt_status settle(amqp_bus *b, rt_bus_msg *const *msgs, size_t n, enum settle_kind kind, rt_error *err)
{
    const char *url = b->base.url_safe;
    if (!n)
        return RT_OK;
    if (!b->conn || b->broken)
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "amqp %s: not connected (the broker will redeliver)", url);
    uint64_t *tags = malloc(n * sizeof *tags);
    if (!tags)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const amqp_msg *m = (const amqp_msg *)msgs[i];
        if (m->gen == b->gen) /* older connections' tags mean nothing on this channel */
            tags[k++] = m->tag;
    }
    qsort(tags, k, sizeof *tags, cmp_u64);
    size_t prefix = 0;
    while (prefix < k && prefix < b->n_out && b->outstanding[prefix] == tags[prefix])
        prefix++;
    int st = AMQP_STATUS_OK;
    size_t i = 0;
    if (kind != SETTLE_REJECT && prefix > 1) {
        st = kind == SETTLE_ACK ? amqp_basic_ack(b->conn, CHANNEL, tags[prefix - 1], 1)
                                : amqp_basic_nack(b->conn, CHANNEL, tags[prefix - 1], 1, 1);
        i = prefix;
    }
    for (; i < k && st == AMQP_STATUS_OK; i++) {
        switch (kind) {
        case SETTLE_ACK:
            st = amqp_basic_ack(b->conn, CHANNEL, tags[i], 0);
            break;
        case SETTLE_NACK:
            st = amqp_basic_nack(b->conn, CHANNEL, tags[i], 0, 1);
            break;
        case SETTLE_REJECT:
            st = amqp_basic_reject(b->conn, CHANNEL, tags[i], 0);
            break;
        }
    }
    /* Drop the settled tags from the outstanding list (both sorted). */
    size_t w = 0, t = 0;
    for (size_t r = 0; r < b->n_out; r++) {
        while (t < k && tags[t] < b->outstanding[r])
            t++;
        if (t < k && tags[t] == b->outstanding[r])
            continue;
        b->outstanding[w++] = b->outstanding[r];
    }
    b->n_out = w;
    free(tags);
    if (st != AMQP_STATUS_OK) {
        b->broken = true;
        return lib_error(err, st,
                         url, kind == SETTLE_ACK ? "basic.ack" : kind == SETTLE_NACK ? "basic.nack" : "basic.reject");
    }
    return RT_OK;
}

static rt_status a_ack(rt_bus *bb, rt_bus_msg *const *msgs, size_t n, rt_error *err)
{
    return settle(A(bb), msgs, n, SETTLE_ACK, err);
}

static rt_status a_nack(rt_bus *bb, rt_bus_msg *const *msgs, size_t n, rt_error *err)
{
    return settle(A(bb), msgs, n, SETTLE_NACK, err);
}

static rt_status a_dead_letter(rt_bus *bb, rt_bus_msg *msg, const char *reason, rt_error *err)
{
    (void)reason; /* basic.reject carries none; the broker adds x-death (reason "rejected") */
    return settle(A(bb), &msg, 1, SETTLE_REJECT, err);
}

static bool a_is_connected(rt_bus *bb)
{
    amqp_bus *b = A(bb);
    return b->conn && !b->broken;
}

static const char *a_mode(rt_bus *bb)
{
    (void)bb;
    return "amqp";
}

/* --- publishing side -------------------------------------------------------------------- */

static void pub_close(pub_slot *p, bool graceful)
{
    conn_destroy(p->conn, graceful);
    p->conn = NULL;
}

static rt_status pub_open(amqp_bus *b, pub_slot *p, rt_error *err)
{
    /* No heartbeat: an idle publisher is not dropped; a dead connection shows up as a
     * failed publish, which reconnects and retries once. */
    amqp_connection_state_t c;
    rt_status st = conn_open(b, 0, &c, err);
    if (st != RT_OK)
        return st;
    const char *url = b->base.url_safe;
    amqp_confirm_select(c, CHANNEL);
    if ((st = reply_error(amqp_get_rpc_reply(c), url, "confirm.select", err)) != RT_OK ||
        (st = declare_exchange(c, url, RT_BUS_AMQP_EXCHANGE, "topic", err)) != RT_OK) {
        conn_destroy(c, false);
        return st;
    }
    p->conn = c;
    p->seq = 1;
    return RT_OK;
}

typedef struct confirm_state {
    uint64_t first, last; /* publish sequence numbers of this batch */
    unsigned char *seen;  /* per message: confirmed (ack or nack) */
    size_t confirmed, nacked;
    uint64_t floor;       /* everything <= floor is confirmed (multiple acks) */
} confirm_state;

static void confirm_mark(confirm_state *cs, uint64_t tag, bool multiple, bool nack)
{
    uint64_t lo = multiple ? (cs->floor + 1 > cs->first ? cs->floor + 1 : cs->first) : tag;
    if (multiple && tag > cs->floor)
        cs->floor = tag;
    for (uint64_t t = lo; t <= tag; t++) {
        if (t < cs->first || t > cs->last)
            continue;
        unsigned char *s = &cs->seen[t - cs->first];
        if (!*s) {
            *s = 1;
            cs->confirmed++;
            if (nack)
                cs->nacked++;
        }
    }
}

/* Reads confirms until all arrived or the deadline passed. deadline_ms 0: only what is
 * already there (never blocks). */
static rt_status read_confirms(amqp_bus *b, pub_slot *p, confirm_state *cs, int64_t deadline_ms, rt_error *err)
{
    const char *url = b->base.url_safe;
    size_t want = (size_t)(cs->last - cs->first + 1);
    while (cs->confirmed < want) {
        int64_t left = deadline_ms ? deadline_ms - rt_mono_ms() : 0;
        if (left < 0)
            left = 0;
        if (deadline_ms && left == 0)
            return rt_error_set(err, RT_ERR_TIMEOUT, "amqp %s: %zu of %zu publisher confirms not received in time",
                                url, want - cs->confirmed, want);
        struct timeval tv = tv_ms((int)left);
        amqp_frame_t f;
        amqp_maybe_release_buffers(p->conn);
        int st = amqp_simple_wait_frame_noblock(p->conn, &f, &tv);
        if (st == AMQP_STATUS_TIMEOUT) {
            if (!deadline_ms)
                return RT_OK;
            continue;
        }
        if (st != AMQP_STATUS_OK)
            return lib_error(err, st, url, "waiting for publisher confirms");
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        switch (f.payload.method.id) {
        case AMQP_BASIC_ACK_METHOD: {
            const amqp_basic_ack_t *a = f.payload.method.decoded;
            confirm_mark(cs, a->delivery_tag, a->multiple, false);
            break;
        }
        case AMQP_BASIC_NACK_METHOD: {
            const amqp_basic_nack_t *a = f.payload.method.decoded;
            confirm_mark(cs, a->delivery_tag, a->multiple, true);
            break;
        }
        case AMQP_BASIC_RETURN_METHOD: {
            amqp_message_t ret;
            rt_status rs = reply_error(amqp_read_message(p->conn, f.channel, &ret, 0), url,
                                       "reading a returned message", err);
            if (rs != RT_OK)
                return rs;
            amqp_destroy_message(&ret);
            break;
        }
        default: {
            rt_status rs = unexpected_method(&f, url, err);
            if (rs != RT_OK)
                return rs;
            break; /* connection.blocked and the like: keep waiting until the deadline */
        }
        }
    }
    return RT_OK;
}

static rt_status publish_batch(amqp_bus *b, pub_slot *p, const rt_bus_out *msgs, size_t n, int64_t deadline_ms,
                               rt_error *err)
{
    const char *url = b->base.url_safe;
    confirm_state cs = {.first = p->seq, .last = p->seq + n - 1, .floor = p->seq - 1};
    cs.seen = calloc(n, 1);
    if (!cs.seen)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    rt_status rs = RT_OK;
    for (size_t i = 0; i < n; i++) {
        amqp_basic_properties_t props;
        memset(&props, 0, sizeof props);
        props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_TIMESTAMP_FLAG;
        props.content_type = bytes_of("application/json");
        props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
        props.timestamp = (uint64_t)(rt_now_ms() / 1000);
        if (msgs[i].id && *msgs[i].id) {
            props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
            props.message_id = bytes_of(msgs[i].id);
        }
        amqp_table_entry_t trace_e[1];
        if (msgs[i].traceparent) { /* W3C Trace Context */
            trace_e[0].key = bytes_of("traceparent");
            trace_e[0].value.kind = AMQP_FIELD_KIND_UTF8;
            trace_e[0].value.value.bytes = bytes_of(msgs[i].traceparent);
            props._flags |= AMQP_BASIC_HEADERS_FLAG;
            props.headers = (amqp_table_t){.num_entries = 1, .entries = trace_e};
        }
        amqp_bytes_t body = {.len = msgs[i].len, .bytes = (void *)msgs[i].body};
        int st = amqp_basic_publish(p->conn, CHANNEL, bytes_of(RT_BUS_AMQP_EXCHANGE), bytes_of(msgs[i].name), 0, 0,
                                    &props, body);
        if (st != AMQP_STATUS_OK) {
            rs = lib_error(err, st, url, "basic.publish");
            goto out;
        }
        p->seq++;
        if ((i + 1) % PUBLISH_DRAIN_EVERY == 0 && (rs = read_confirms(b, p, &cs, 0, err)) != RT_OK)
            goto out;
    }
    if ((rs = read_confirms(b, p, &cs, deadline_ms, err)) != RT_OK)
        goto out;
    if (cs.nacked)
        rs = rt_error_set(err, RT_ERR_UNAVAILABLE, "amqp %s: the broker refused %zu of %zu messages (basic.nack)", url,
                          cs.nacked, n);
out:
    free(cs.seen);
    return rs;
}

/* The leader's work: one pipelined batch on the publishing connection, reopened once
 * when it turns out to have died while idle. */
static rt_status publish_once(amqp_bus *b, const rt_bus_out *msgs, size_t n, int64_t deadline, rt_error *err)
{
    pub_slot *p = &b->pub;
    rt_status st = RT_OK;
    for (int attempt = 0; attempt < 2; attempt++) {
        bool fresh = false;
        if (!p->conn) {
            if ((st = pub_open(b, p, err)) != RT_OK)
                break;
            fresh = true;
        }
        st = publish_batch(b, p, msgs, n, deadline, err);
        if (st == RT_OK)
            break;
        /* Unconfirmed messages stay unconfirmed on this channel: start afresh. */
        pub_close(p, false);
        if (fresh || st != RT_ERR_UNAVAILABLE || rt_mono_ms() >= deadline)
            break;
    }
    return st;
}

static rt_status publish_group(amqp_bus *b, pub_req *batch, rt_error *err)
{
    if (!batch->next) /* alone: no copying */
        return publish_once(b, batch->msgs, batch->n, batch->deadline_ms, err);
    size_t total = 0;
    int64_t deadline = 0;
    for (pub_req *r = batch; r; r = r->next) {
        total += r->n;
        if (r->deadline_ms > deadline)
            deadline = r->deadline_ms;
    }
    rt_bus_out *all = malloc(total * sizeof *all);
    if (!all)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    size_t k = 0;
    for (pub_req *r = batch; r; r = r->next) {
        memcpy(all + k, r->msgs, r->n * sizeof *all);
        k += r->n;
    }
    rt_status st = publish_once(b, all, total, deadline, err);
    free(all);
    return st;
}

static rt_status a_publish(rt_bus *bb, const rt_bus_out *msgs, size_t n, int timeout_ms, rt_error *err)
{
    amqp_bus *b = A(bb);
    if (!n)
        return RT_OK;
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].name || !*msgs[i].name || strlen(msgs[i].name) > 255)
            return rt_error_set(err, RT_ERR_INVALID, "amqp publish: event name must be 1..255 bytes");
    }
    pub_req me = {.msgs = msgs, .n = n, .deadline_ms = rt_mono_ms() + (timeout_ms > 0 ? timeout_ms : 10000),
                  .err = err};
    pthread_mutex_lock(&b->pub_mu);
    if (b->pq_tail)
        b->pq_tail->next = &me;
    else
        b->pq_head = &me;
    b->pq_tail = &me;
    while (!me.done) {
        if (b->pub_leader) {
            pthread_cond_wait(&b->pub_cv, &b->pub_mu);
            continue;
        }
        /* Lead: take everything queued (this request included) and send it as one. */
        b->pub_leader = true;
        pub_req *batch = b->pq_head;
        b->pq_head = b->pq_tail = NULL;
        pthread_mutex_unlock(&b->pub_mu);
        rt_error lerr;
        rt_status st = publish_group(b, batch, &lerr);
        pthread_mutex_lock(&b->pub_mu);
        for (pub_req *r = batch, *next; r; r = next) {
            next = r->next;
            r->st = st;
            if (st != RT_OK && r->err)
                *r->err = lerr;
            r->done = true; /* r may be gone as soon as its owner sees this */
        }
        b->pub_leader = false;
        pthread_cond_broadcast(&b->pub_cv);
    }
    pthread_mutex_unlock(&b->pub_mu);
    return me.st;
}

static rt_status a_backlog(rt_bus *bb, int64_t *ready, int64_t *unacked, rt_error *err)
{
    amqp_bus *b = A(bb);
    *ready = *unacked = -1;
    rt_status st = RT_OK;
    pub_slot *p = &b->pub;
    /* Take the leader's place so that nobody publishes meanwhile. */
    pthread_mutex_lock(&b->pub_mu);
    while (b->pub_leader)
        pthread_cond_wait(&b->pub_cv, &b->pub_mu);
    b->pub_leader = true;
    pthread_mutex_unlock(&b->pub_mu);
    if (!p->conn)
        st = pub_open(b, p, err);
    if (st == RT_OK) {
        amqp_queue_declare_ok_t *ok =
            amqp_queue_declare(p->conn, CHANNEL, bytes_of(bb->opts.queue), 1, 0, 0, 0, amqp_empty_table);
        st = reply_error(amqp_get_rpc_reply(p->conn), bb->url_safe, "queue.declare (passive)", err);
        if (st == RT_OK && ok)
            *ready = ok->message_count;
        else
            pub_close(p, false);
    }
    pthread_mutex_lock(&b->pub_mu);
    b->pub_leader = false;
    pthread_cond_broadcast(&b->pub_cv);
    pthread_mutex_unlock(&b->pub_mu);
    return st;
}

static rt_status a_drop(rt_bus *bb, rt_error *err)
{
    amqp_bus *b = A(bb);
    if (!b->conn)
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "amqp %s: not connected", bb->url_safe);
    amqp_queue_delete(b->conn, CHANNEL, bytes_of(bb->opts.queue), 0, 0);
    return reply_error(amqp_get_rpc_reply(b->conn), bb->url_safe, "queue.delete", err);
}

/* --- life cycle ------------------------------------------------------------------------- */

static rt_status a_create(rt_bus **out, rt_error *err)
{
    amqp_bus *b = calloc(1, sizeof *b);
    if (!b)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&b->pub_mu, NULL);
    pthread_cond_init(&b->pub_cv, NULL);
    *out = &b->base;
    return RT_OK;
}

static void a_free(rt_bus *bb)
{
    amqp_bus *b = A(bb);
    a_close(bb);
    pub_close(&b->pub, true); /* no publisher may still be running: the caller owns b */
    pthread_cond_destroy(&b->pub_cv);
    pthread_mutex_destroy(&b->pub_mu);
    free(b->outstanding);
    rt_bus_free_common(bb);
    free(b);
}

const rt_bus_type rt_bus_amqp_type = {
    .name = "amqp",
    .create = a_create,
    .connect = a_connect,
    .subscribe = a_subscribe,
    .fetch = a_fetch,
    .ack = a_ack,
    .nack = a_nack,
    .dead_letter = a_dead_letter,
    .msg_free = a_msg_free,
    .publish = a_publish,
    .backlog = a_backlog,
    .drop = a_drop,
    .is_connected = a_is_connected,
    .mode = a_mode,
    .close = a_close,
    .free = a_free,
};
