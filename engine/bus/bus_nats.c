/* bus_nats.c — the NATS transport (cnats 3.4): subjects "<prefix>.<event name>"; with
 * JetStream, stream RATCHET_EVENTS on "<prefix>.>" and a durable pull consumer fetched in
 * batches and acked after commit; without it, core queue subscriptions (at-most-once).
 *
 * cnats reconnects on its own unless told not to; here it is told not to, so that a lost
 * connection surfaces as an error and the consumer's backoff loop owns reconnection. */
#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "bus.h"
#include "log.h"
#include "util.h"

#define CORE_QUEUE_MAX 65536 /* messages buffered between cnats' delivery and fetch */
#define PUB_MAX_PENDING 4096

/* Core subscriptions deliver on cnats' threads into this queue. It lives apart from the
 * bus so that a callback running while the bus closes never touches freed memory: the
 * last subscription to complete (natsSubscription_SetOnCompleteCB) frees it. */
typedef struct core_queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    natsMsg **items;
    size_t head, len, cap;
    int refs;    /* the bus, plus each subscription whose completion has not run */
    bool closed; /* the bus let go: callbacks destroy what they get */
} core_queue;

typedef struct nats_bus {
    rt_bus base;
    /* consuming side */
    natsConnection *nc;
    jsCtx *js;
    natsSubscription *pull;
    natsSubscription **subs;
    size_t n_subs;
    core_queue *cq;
    bool jetstream_on;
    bool subscribed;
    bool broken;
    uint64_t gen;
    /* publishing side: readers publish, a writer (re)connects */
    pthread_rwlock_t pub_lock;
    natsConnection *pnc;
    jsCtx *pjs;
    bool pub_js;
    uint64_t pub_gen;
} nats_bus;

typedef struct nats_msg {
    rt_bus_msg m;
    natsMsg *msg;
    uint64_t gen;
} nats_msg;

static nats_bus *N(rt_bus *b) { return (nats_bus *)b; }

/* --- errors ----------------------------------------------------------------------------- */

static rt_status status_code(natsStatus s)
{
    switch (s) {
    case NATS_OK:
        return RT_OK;
    case NATS_TIMEOUT:
        return RT_ERR_TIMEOUT;
    case NATS_NO_MEMORY:
        return RT_ERR_NOMEM;
    case NATS_CONNECTION_AUTH_FAILED:
    case NATS_NOT_PERMITTED:
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
    case NATS_INVALID_QUEUE_NAME:
    case NATS_MAX_PAYLOAD:
    case NATS_SECURE_CONNECTION_WANTED:
    case NATS_SECURE_CONNECTION_REQUIRED:
    case NATS_SSL_ERROR:
    case NATS_ADDRESS_MISSING:
        return RT_ERR_INVALID;
    default:
        return RT_ERR_UNAVAILABLE;
    }
}

/* Keeps cnats' own text: the status name and the thread's last error detail. */
static rt_status nats_err(rt_error *err, natsStatus s, jsErrCode jerr, const char *url, const char *what)
{
    const char *detail = nats_GetLastError(NULL);
    const char *text = natsStatus_GetText(s);
    if (detail && *detail == '(') { /* "(conn.c:2088): text": drop the source position */
        const char *p = strstr(detail, "): ");
        if (p)
            detail = p + 3;
    }
    char js[48] = "";
    if (jerr)
        snprintf(js, sizeof js, " (jetstream error %d)", (int)jerr);
    if (detail && *detail && strcmp(detail, text) != 0)
        return rt_error_set(err, status_code(s), "nats %s: %s: %s: %s%s", url, what, text, detail, js);
    return rt_error_set(err, status_code(s), "nats %s: %s: %s%s", url, what, text, js);
}

static bool url_is_tls(const char *url)
{
    for (const char *p = url; p && *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (strncasecmp(p, "tls://", 6) == 0)
            return true;
        p = strchr(p, ',');
    }
    return false;
}

/* --- connections ------------------------------------------------------------------------ */

/* Runs on cnats' own thread, possibly after the bus is gone: it touches nothing of ours,
 * nor the subscription, which libnats 3.4 hands over without a reference (it may have been
 * destroyed meanwhile: nats.c #659, fixed in 3.7). */
static void on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus s, void *closure)
{
    (void)nc;
    (void)closure;
    rt_log(RT_LOG_WARN, NULL, "nats: asynchronous error%s: %s", sub ? " on a subscription" : "", natsStatus_GetText(s));
}

static rt_status conn_open(nats_bus *b, natsConnection **out, rt_error *err)
{
    *out = NULL;
    const rt_bus_options *o = &b->base.opts;
    const char *url = b->base.url_safe;
    natsOptions *opts = NULL;
    natsStatus s = natsOptions_Create(&opts);
    const char *what = "options";
    if (s == NATS_OK)
        s = natsOptions_SetURL(opts, b->base.url);
    if (s == NATS_OK)
        s = natsOptions_SetName(opts, o->client_name);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(opts, o->connect_timeout_ms);
    if (s == NATS_OK)
        s = natsOptions_SetAllowReconnect(opts, false);
    if (s == NATS_OK)
        s = natsOptions_SetPingInterval(opts, 10000);
    if (s == NATS_OK)
        s = natsOptions_SetMaxPingsOut(opts, 3);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(opts, on_async_error, NULL);
    if (s == NATS_OK && url_is_tls(b->base.url)) {
        what = "TLS options";
        s = natsOptions_SetSecure(opts, true);
        if (s == NATS_OK && o->tls.ca_file) {
            what = "TLS CA file";
            s = natsOptions_LoadCATrustedCertificates(opts, o->tls.ca_file);
        }
        if (s == NATS_OK && o->tls.cert_file) {
            what = "TLS client certificate and key";
            s = natsOptions_LoadCertificatesChain(opts, o->tls.cert_file, o->tls.key_file);
        }
        if (s == NATS_OK && !o->tls.verify)
            s = natsOptions_SkipServerVerification(opts, true);
    }
    if (s != NATS_OK) {
        rt_status st = nats_err(err, s, 0, url, what);
        natsOptions_Destroy(opts);
        if (st == RT_ERR_UNAVAILABLE) /* bad options (files, ciphers) are not an outage */
            st = err ? (err->code = RT_ERR_INVALID) : RT_ERR_INVALID;
        return st;
    }
    natsConnection *nc = NULL;
    s = natsConnection_Connect(&nc, opts);
    natsOptions_Destroy(opts);
    if (s != NATS_OK)
        return nats_err(err, s, 0, url, "cannot connect");
    *out = nc;
    return RT_OK;
}

static void conn_destroy(natsConnection *nc)
{
    if (!nc)
        return;
    natsConnection_Close(nc);
    natsConnection_Destroy(nc);
}

static bool jetstream_missing(natsStatus s, jsErrCode jerr)
{
    return s == NATS_NO_RESPONDERS || jerr == JSNotEnabledForAccountErr || jerr == JSNotEnabledErr;
}

/* Creates the stream when it does not exist. An existing stream with another
 * configuration is used as it is (the operator's choice wins). *missing: no JetStream. */
static rt_status ensure_stream(nats_bus *b, jsCtx *js, bool *missing, rt_error *err)
{
    const rt_bus_options *o = &b->base.opts;
    *missing = false;
    char subj[RT_BUS_SUBJECT_MAX];
    snprintf(subj, sizeof subj, "%s.>", o->subject_prefix);
    const char *subjects[1] = {subj};
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = o->stream;
    cfg.Description = "ratchet events";
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Retention = js_LimitsPolicy;
    if (o->stream_max_age_ms > 0)
        cfg.MaxAge = o->stream_max_age_ms * 1000000LL;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_AddStream(&si, js, &cfg, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    if (s == NATS_OK)
        return RT_OK;
    if (jetstream_missing(s, jerr)) {
        *missing = true;
        return RT_OK;
    }
    if (jerr == JSStreamNameExistErr) {
        rt_log(RT_LOG_DEBUG, NULL, "nats %s: stream %s exists with another configuration; using it as it is",
               b->base.url_safe, o->stream);
        return RT_OK;
    }
    char what[128];
    snprintf(what, sizeof what, "create stream %s on %s", o->stream, subj);
    return nats_err(err, s, jerr, b->base.url_safe, what);
}

static rt_status ensure_consumer(nats_bus *b, rt_error *err)
{
    const rt_bus_options *o = &b->base.opts;
    char subj[RT_BUS_SUBJECT_MAX];
    snprintf(subj, sizeof subj, "%s.>", o->subject_prefix);
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = o->consumer;
    cc.Description = "ratchet ingest";
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = o->ack_wait_ms * 1000000LL;
    cc.MaxAckPending = o->max_ack_pending;
    cc.MaxDeliver = -1; /* poison is terminated by ratchet, never dropped by a count */
    cc.FilterSubject = subj;
    cc.DeliverPolicy = js_DeliverAll;
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_AddConsumer(&ci, b->js, o->stream, &cc, NULL, &jerr);
    jsConsumerInfo_Destroy(ci);
    ci = NULL;
    if (s == NATS_OK)
        return RT_OK;
    rt_error first;
    char what[160];
    snprintf(what, sizeof what, "create consumer %s on stream %s", o->consumer, o->stream);
    nats_err(&first, s, jerr, b->base.url_safe, what);
    /* It may exist with other settings (e.g. a changed max_ack_pending): update it, or
     * use it as it is when the server will not. */
    jsErrCode jerr2 = 0;
    if (js_GetConsumerInfo(&ci, b->js, o->stream, o->consumer, NULL, &jerr2) != NATS_OK) {
        *err = first;
        return first.code;
    }
    jsConsumerInfo_Destroy(ci);
    ci = NULL;
    if (js_UpdateConsumer(&ci, b->js, o->stream, &cc, NULL, &jerr2) != NATS_OK)
        rt_log(RT_LOG_WARN, NULL, "%s; using the existing consumer with its own settings", first.msg);
    jsConsumerInfo_Destroy(ci);
    return RT_OK;
}

/* --- core delivery queue ------------------------------------------------------------------ */

static core_queue *cq_new(void)
{
    core_queue *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->refs = 1; /* the bus' */
    return q;
}

static void cq_destroy(core_queue *q)
{
    while (q->len) {
        natsMsg_Destroy(q->items[q->head]);
        q->head = (q->head + 1) % q->cap;
        q->len--;
    }
    free(q->items);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

static void on_core_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    core_queue *q = closure;
    pthread_mutex_lock(&q->mu);
    while (!q->closed && q->len >= CORE_QUEUE_MAX)
        pthread_cond_wait(&q->cv, &q->mu); /* back-pressure into cnats' pending limits */
    if (q->closed) {
        pthread_mutex_unlock(&q->mu);
        natsMsg_Destroy(msg);
        return;
    }
    if (q->len == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 1024;
        natsMsg **items = malloc(cap * sizeof *items);
        if (!items) {
            pthread_mutex_unlock(&q->mu);
            natsMsg_Destroy(msg);
            return;
        }
        for (size_t i = 0; i < q->len; i++)
            items[i] = q->items[(q->head + i) % q->cap];
        free(q->items);
        q->items = items;
        q->head = 0;
        q->cap = cap;
    }
    q->items[(q->head + q->len) % q->cap] = msg;
    q->len++;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* Drops one reference; whoever drops the last frees the queue. */
static void cq_release(core_queue *q)
{
    pthread_mutex_lock(&q->mu);
    bool last = --q->refs == 0;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    if (last)
        cq_destroy(q);
}

static void on_sub_complete(void *closure)
{
    cq_release(closure);
}

/* --- consuming side --------------------------------------------------------------------- */

static void n_close(rt_bus *bb)
{
    nats_bus *b = N(bb);
    core_queue *q = b->cq;
    if (q) {
        pthread_mutex_lock(&q->mu);
        q->closed = true;
        pthread_cond_broadcast(&q->cv);
        pthread_mutex_unlock(&q->mu);
    }
    /* The connection is closed first: that joins its read thread, so no message is being
     * delivered to a subscription while it is destroyed (libnats 3.4, which Debian 12
     * ships, could crash in natsConn_processMsg otherwise: nats.c #637, fixed in 3.6.1).
     * Subscriptions and the context keep their own reference to the connection. */
    if (b->nc)
        natsConnection_Close(b->nc);
    for (size_t i = 0; i < b->n_subs; i++)
        natsSubscription_Destroy(b->subs[i]);
    free(b->subs);
    b->subs = NULL;
    b->n_subs = 0;
    natsSubscription_Destroy(b->pull);
    b->pull = NULL;
    jsCtx_Destroy(b->js);
    b->js = NULL;
    natsConnection_Destroy(b->nc);
    b->nc = NULL;
    if (q) {
        cq_release(q); /* subscriptions still completing hold their own references */
        b->cq = NULL;
    }
    b->subscribed = false;
    b->broken = false;
    b->jetstream_on = false;
}

static rt_status n_connect(rt_bus *bb, rt_error *err)
{
    nats_bus *b = N(bb);
    const rt_bus_options *o = &bb->opts;
    n_close(bb);
    b->cq = cq_new();
    if (!b->cq)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    rt_status st = conn_open(b, &b->nc, err);
    if (st != RT_OK)
        goto fail;
    b->gen++;
    if (o->jetstream) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = o->connect_timeout_ms;
        natsStatus s = natsConnection_JetStream(&b->js, b->nc, &jo);
        if (s != NATS_OK) {
            st = nats_err(err, s, 0, bb->url_safe, "JetStream context");
            goto fail;
        }
        bool missing;
        if ((st = ensure_stream(b, b->js, &missing, err)) != RT_OK)
            goto fail;
        if (missing) {
            rt_log(RT_LOG_WARN, NULL,
                   "nats %s: the server has no JetStream; using core NATS subscriptions: delivery is at-most-once "
                   "(events published while ratchet is down or busy are lost)",
                   bb->url_safe);
            jsCtx_Destroy(b->js);
            b->js = NULL;
        } else {
            if ((st = ensure_consumer(b, err)) != RT_OK)
                goto fail;
            b->jetstream_on = true;
        }
    } else {
        rt_log(RT_LOG_WARN, NULL,
               "nats %s: RATCHET_NATS_JETSTREAM=false: core NATS subscriptions, delivery is at-most-once "
               "(events published while ratchet is down or busy are lost)",
               bb->url_safe);
    }
    return RT_OK;
fail:
    n_close(bb);
    return st;
}

static rt_status n_subscribe(rt_bus *bb, const char *const *patterns, size_t n, rt_error *err)
{
    nats_bus *b = N(bb);
    const rt_bus_options *o = &bb->opts;
    const char *url = bb->url_safe;
    if (!b->nc)
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "nats %s: not connected", url);
    for (size_t i = 0; i < n; i++) {
        rt_status st = rt_bus_pattern_check(patterns[i], err);
        if (st != RT_OK)
            return st;
    }
    if (b->jetstream_on) {
        /* The durable consumer takes every event under the prefix (the server's stream
         * holds them all anyway); the patterns only decide what runs, later. */
        if (b->pull)
            return RT_OK;
        char subj[RT_BUS_SUBJECT_MAX];
        snprintf(subj, sizeof subj, "%s.>", o->subject_prefix);
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Stream = o->stream;
        so.Consumer = o->consumer;
        jsErrCode jerr = 0;
        natsStatus s = js_PullSubscribe(&b->pull, b->js, subj, o->consumer, NULL, &so, &jerr);
        if (s != NATS_OK) {
            b->broken = true;
            return nats_err(err, s, jerr, url, "pull subscribe");
        }
        b->subscribed = true;
        return RT_OK;
    }
    natsSubscription **subs = realloc(b->subs, (b->n_subs + n) * sizeof *subs);
    if (!subs && n)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    b->subs = subs;
    for (size_t i = 0; i < n; i++) {
        char subj[RT_BUS_SUBJECT_MAX + 64];
        snprintf(subj, sizeof subj, "%s.%s", o->subject_prefix, patterns[i]);
        natsSubscription *sub = NULL;
        natsStatus s = natsConnection_QueueSubscribe(&sub, b->nc, subj, o->consumer, on_core_msg, b->cq);
        if (s == NATS_OK) {
            pthread_mutex_lock(&b->cq->mu);
            b->cq->refs++;
            pthread_mutex_unlock(&b->cq->mu);
            s = natsSubscription_SetOnCompleteCB(sub, on_sub_complete, b->cq);
            if (s != NATS_OK) /* the callback will never run: take its reference back */
                cq_release(b->cq);
        }
        if (s == NATS_OK)
            s = natsSubscription_SetPendingLimits(sub, CORE_QUEUE_MAX, 256 * 1024 * 1024);
        if (sub)
            b->subs[b->n_subs++] = sub;
        if (s != NATS_OK) {
            b->broken = true;
            char what[RT_BUS_SUBJECT_MAX + 80];
            snprintf(what, sizeof what, "subscribe %s (queue group %s)", subj, o->consumer);
            return nats_err(err, s, 0, url, what);
        }
    }
    if (n) {
        natsStatus s = natsConnection_FlushTimeout(b->nc, o->connect_timeout_ms);
        if (s != NATS_OK) {
            b->broken = true;
            return nats_err(err, s, 0, url, "flush subscriptions");
        }
    }
    b->subscribed = true;
    return RT_OK;
}

static nats_msg *wrap(nats_bus *b, natsMsg *msg)
{
    nats_msg *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->msg = msg;
    m->gen = b->gen;
    m->m.body = (const unsigned char *)natsMsg_GetData(msg);
    m->m.len = (size_t)natsMsg_GetDataLength(msg);
    if (!m->m.body)
        m->m.body = (const unsigned char *)"";
    m->m.subject = natsMsg_GetSubject(msg);
    const char *hv = NULL; /* W3C Trace Context headers live as long as msg */
    if (natsMsgHeader_Get(msg, "traceparent", &hv) == NATS_OK && hv) {
        m->m.traceparent = hv;
        m->m.traceparent_len = strlen(hv);
    }
    if (natsMsgHeader_Get(msg, "tracestate", &hv) == NATS_OK && hv) {
        m->m.tracestate = hv;
        m->m.tracestate_len = strlen(hv);
    }
    size_t pl = strlen(b->base.opts.subject_prefix);
    m->m.name = (strncmp(m->m.subject, b->base.opts.subject_prefix, pl) == 0 && m->m.subject[pl] == '.')
                    ? m->m.subject + pl + 1
                    : m->m.subject;
    if (b->jetstream_on) {
        jsMsgMetaData *meta = NULL;
        if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
            m->m.redelivered = meta->NumDelivered > 1;
            snprintf(m->m.position, sizeof m->m.position, "jetstream stream %s seq %llu%s", meta->Stream,
                     (unsigned long long)meta->Sequence.Stream, m->m.redelivered ? " (redelivered)" : "");
            jsMsgMetaData_Destroy(meta);
        } else {
            snprintf(m->m.position, sizeof m->m.position, "jetstream stream %s subject %s", b->base.opts.stream,
                     m->m.subject);
        }
    } else {
        snprintf(m->m.position, sizeof m->m.position, "nats subject %s (core, no sequence)", m->m.subject);
    }
    return m;
}

static void n_msg_free(rt_bus *bb, rt_bus_msg *mm)
{
    (void)bb;
    nats_msg *m = (nats_msg *)mm;
    natsMsg_Destroy(m->msg);
    free(m);
}

static rt_status fetch_core(nats_bus *b, rt_bus_msg **msgs, size_t max, int timeout_ms, size_t *n, rt_error *err)
{
    core_queue *q = b->cq;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    int64_t ns = dl.tv_nsec + (int64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000LL;
    dl.tv_sec += ns / 1000000000LL;
    dl.tv_nsec = ns % 1000000000LL;
    pthread_mutex_lock(&q->mu);
    while (!q->len && timeout_ms > 0) {
        if (pthread_cond_timedwait(&q->cv, &q->mu, &dl) != 0)
            break;
    }
    rt_status st = RT_OK;
    while (*n < max && q->len) {
        natsMsg *msg = q->items[q->head];
        nats_msg *m = wrap(b, msg);
        if (!m) {
            st = rt_error_set(err, RT_ERR_NOMEM, "out of memory");
            break;
        }
        q->head = (q->head + 1) % q->cap;
        q->len--;
        msgs[(*n)++] = &m->m;
    }
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    if (st == RT_OK && !*n && natsConnection_IsClosed(b->nc)) {
        b->broken = true;
        st = rt_error_set(err, RT_ERR_UNAVAILABLE, "nats %s: connection closed", b->base.url_safe);
    }
    return st;
}

/* One pull: first "what is there now, up to max" (no_wait: the server answers at once, so
 * a backlog comes in large batches); when nothing is, wait up to timeout_ms for ONE
 * message, so the request is complete as soon as it arrives (natsSubscription_Fetch's
 * waiting request asks for the whole batch, which leaves its completion to the client's
 * and server's handling of a partly filled pull). NATS_NOT_FOUND / NATS_TIMEOUT with no
 * message: nothing came. */
static natsStatus fetch_adaptive(nats_bus *b, natsMsgList *list, int max, int timeout_ms, jsErrCode *jerr)
{
    /* cnats wants a positive expiry; the no_wait one only bounds the wait for the answer. */
    int64_t wait_ms = timeout_ms > 0 ? timeout_ms : 1;
    *jerr = 0; /* FetchRequest reports the server's refusals through its status */
    jsFetchRequest req;
    jsFetchRequest_Init(&req);
    req.Batch = max;
    req.NoWait = true;
    req.Expires = wait_ms * 1000000LL;
    natsStatus s = natsSubscription_FetchRequest(list, b->pull, &req);
    if (list->Count > 0 || (s != NATS_NOT_FOUND && s != NATS_TIMEOUT) || timeout_ms <= 0)
        return list->Count > 0 ? NATS_OK : s;
    natsMsgList_Destroy(list);
    memset(list, 0, sizeof *list);
    jsFetchRequest_Init(&req);
    req.Batch = 1;
    req.Expires = wait_ms * 1000000LL;
    s = natsSubscription_FetchRequest(list, b->pull, &req);
    return list->Count > 0 ? NATS_OK : s;
}

static rt_status n_fetch(rt_bus *bb, rt_bus_msg **msgs, size_t max, int timeout_ms, size_t *n, rt_error *err)
{
    nats_bus *b = N(bb);
    const char *url = bb->url_safe;
    *n = 0;
    if (!b->nc || b->broken)
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "nats %s: not connected", url);
    if (!b->subscribed)
        return rt_error_set(err, RT_ERR_INVALID, "nats %s: fetch before subscribe", url);
    if (!max)
        return RT_OK;
    if (!b->jetstream_on)
        return fetch_core(b, msgs, max, timeout_ms, n, err);
    if (max > (size_t)bb->opts.max_ack_pending)
        max = (size_t)bb->opts.max_ack_pending;
    natsMsgList list = {0};
    jsErrCode jerr = 0;
    natsStatus s = fetch_adaptive(b, &list, (int)max, timeout_ms, &jerr);
    if ((s == NATS_TIMEOUT || s == NATS_NOT_FOUND) && list.Count == 0)
        return RT_OK;
    if (s != NATS_OK && list.Count == 0) {
        b->broken = true;
        return nats_err(err, s, jerr, url, "fetch");
    }
    rt_status st = RT_OK;
    for (int i = 0; i < list.Count; i++) {
        nats_msg *m = st == RT_OK ? wrap(b, list.Msgs[i]) : NULL;
        if (!m) {
            natsMsg_Destroy(list.Msgs[i]);
            if (st == RT_OK)
                st = rt_error_set(err, RT_ERR_NOMEM, "out of memory");
        } else {
            msgs[(*n)++] = &m->m;
        }
        list.Msgs[i] = NULL; /* ours now */
    }
    natsMsgList_Destroy(&list);
    if (st != RT_OK) {
        for (size_t i = 0; i < *n; i++)
            n_msg_free(bb, msgs[i]);
        *n = 0;
    }
    return st;
}

typedef enum { SETTLE_ACK, SETTLE_NAK, SETTLE_TERM } settle_kind;

static rt_status settle(nats_bus *b, rt_bus_msg *const *msgs, size_t n, settle_kind kind, rt_error *err)
{
    const char *url = b->base.url_safe;
    if (!n || !b->jetstream_on)
        return RT_OK; /* core NATS: nothing to settle (and nothing will come again) */
    if (!b->nc || b->broken)
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "nats %s: not connected (JetStream will redeliver)", url);
    size_t sent = 0;
    for (size_t i = 0; i < n; i++) {
        nats_msg *m = (nats_msg *)msgs[i];
        if (m->gen != b->gen)
            continue;
        natsStatus s = kind == SETTLE_ACK   ? natsMsg_Ack(m->msg, NULL)
                       : kind == SETTLE_NAK ? natsMsg_Nak(m->msg, NULL)
                                            : natsMsg_Term(m->msg, NULL);
        if (s == NATS_ILLEGAL_STATE)
            continue; /* already settled */
        if (s != NATS_OK) {
            b->broken = true;
            return nats_err(err, s, 0, url, kind == SETTLE_ACK ? "ack" : kind == SETTLE_NAK ? "nak" : "term");
        }
        sent++;
    }
    if (!sent)
        return RT_OK;
    /* One round trip makes sure the server has every ack of the batch. */
    natsStatus s = natsConnection_FlushTimeout(b->nc, b->base.opts.connect_timeout_ms);
    if (s != NATS_OK) {
        b->broken = true;
        return nats_err(err, s, 0, url, "flush acks");
    }
    return RT_OK;
}

static rt_status n_ack(rt_bus *bb, rt_bus_msg *const *msgs, size_t n, rt_error *err)
{
    return settle(N(bb), msgs, n, SETTLE_ACK, err);
}

static rt_status n_nack(rt_bus *bb, rt_bus_msg *const *msgs, size_t n, rt_error *err)
{
    return settle(N(bb), msgs, n, SETTLE_NAK, err);
}

static rt_status n_dead_letter(rt_bus *bb, rt_bus_msg *msg, const char *reason, rt_error *err)
{
    (void)reason; /* Term carries none; the caller logs it */
    return settle(N(bb), &msg, 1, SETTLE_TERM, err);
}

static bool n_is_connected(rt_bus *bb)
{
    nats_bus *b = N(bb);
    return b->nc && !b->broken && !natsConnection_IsClosed(b->nc);
}

static const char *n_mode(rt_bus *bb)
{
    nats_bus *b = N(bb);
    return b->jetstream_on ? "jetstream" : "nats-core";
}

/* --- publishing side -------------------------------------------------------------------- */

static void pub_close(nats_bus *b)
{
    jsCtx_Destroy(b->pjs);
    b->pjs = NULL;
    conn_destroy(b->pnc);
    b->pnc = NULL;
}

/* Holding the write lock. */
static rt_status pub_open(nats_bus *b, rt_error *err)
{
    const rt_bus_options *o = &b->base.opts;
    rt_status st = conn_open(b, &b->pnc, err);
    if (st != RT_OK)
        return st;
    b->pub_gen++;
    b->pub_js = false;
    if (!o->jetstream)
        return RT_OK;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = o->connect_timeout_ms;
    natsStatus s = natsConnection_JetStream(&b->pjs, b->pnc, &jo);
    if (s != NATS_OK) {
        st = nats_err(err, s, 0, b->base.url_safe, "JetStream context");
        pub_close(b);
        return st;
    }
    /* The stream must exist before the first event, or JetStream would not keep it. */
    bool missing;
    if ((st = ensure_stream(b, b->pjs, &missing, err)) != RT_OK) {
        pub_close(b);
        return st;
    }
    if (missing) {
        rt_log(RT_LOG_WARN, NULL, "nats %s: the server has no JetStream; publishing with core NATS (at-most-once)",
               b->base.url_safe);
        jsCtx_Destroy(b->pjs);
        b->pjs = NULL;
    } else {
        b->pub_js = true;
    }
    return RT_OK;
}

typedef struct pub_batch {
    size_t failed;
    natsStatus first_status;
    jsErrCode first_code;
    char first_text[256];
} pub_batch;

static void on_pub_error(jsCtx *js, jsPubAckErr *pae, void *closure)
{
    (void)js;
    pub_batch *pb = closure;
    if (!pb->failed++) {
        pb->first_status = pae->Err;
        pb->first_code = pae->ErrCode;
        snprintf(pb->first_text, sizeof pb->first_text, "%s", pae->ErrText ? pae->ErrText : "");
    }
}

/* A message with a "traceparent" header when out has one (W3C Trace Context), else NULL:
 * the caller publishes the plain body. */
static natsMsg *traced_msg(const char *subj, const rt_bus_out *out)
{
    if (!out->traceparent)
        return NULL;
    natsMsg *m = NULL;
    if (natsMsg_Create(&m, subj, NULL, out->body, (int)out->len) != NATS_OK)
        return NULL;
    if (natsMsgHeader_Set(m, "traceparent", out->traceparent) != NATS_OK) {
        natsMsg_Destroy(m);
        return NULL;
    }
    return m;
}

static rt_status publish_once(nats_bus *b, const rt_bus_out *msgs, size_t n, int64_t deadline, rt_error *err)
{
    const char *url = b->base.url_safe;
    const char *prefix = b->base.opts.subject_prefix;
    char subj[RT_BUS_SUBJECT_MAX + 64];
    int64_t left = deadline - rt_mono_ms();
    if (left <= 0)
        return rt_error_set(err, RT_ERR_TIMEOUT, "nats %s: publish timed out", url);
    if (!b->pub_js) {
        for (size_t i = 0; i < n; i++) {
            snprintf(subj, sizeof subj, "%s.%s", prefix, msgs[i].name);
            natsMsg *hm = traced_msg(subj, &msgs[i]);
            natsStatus s = hm ? natsConnection_PublishMsg(b->pnc, hm)
                              : natsConnection_Publish(b->pnc, subj, msgs[i].body, (int)msgs[i].len);
            natsMsg_Destroy(hm);
            if (s != NATS_OK)
                return nats_err(err, s, 0, url, "publish");
        }
        natsStatus s = natsConnection_FlushTimeout(b->pnc, left);
        return s == NATS_OK ? RT_OK : nats_err(err, s, 0, url, "flush");
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = left;
    po.ExpectStream = b->base.opts.stream;
    if (n == 1) {
        /* One message: a plain request-reply, with no shared state between threads. */
        snprintf(subj, sizeof subj, "%s.%s", prefix, msgs[0].name);
        po.MsgId = msgs[0].id && *msgs[0].id ? msgs[0].id : NULL;
        jsErrCode jerr = 0;
        natsMsg *hm = traced_msg(subj, &msgs[0]);
        natsStatus s = hm ? js_PublishMsg(NULL, b->pjs, hm, &po, &jerr)
                          : js_Publish(NULL, b->pjs, subj, msgs[0].body, (int)msgs[0].len, &po, &jerr);
        natsMsg_Destroy(hm);
        return s == NATS_OK ? RT_OK : nats_err(err, s, jerr, url, "JetStream publish");
    }
    /* A batch: its own context, so that pending acks and failures are this call's. */
    pub_batch pb = {0};
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = left;
    jo.PublishAsync.MaxPending = PUB_MAX_PENDING;
    jo.PublishAsync.StallWait = left;
    jo.PublishAsync.ErrHandler = on_pub_error;
    jo.PublishAsync.ErrHandlerClosure = &pb;
    jsCtx *js = NULL;
    natsStatus s = natsConnection_JetStream(&js, b->pnc, &jo);
    if (s != NATS_OK)
        return nats_err(err, s, 0, url, "JetStream context");
    rt_status st = RT_OK;
    for (size_t i = 0; i < n && st == RT_OK; i++) {
        snprintf(subj, sizeof subj, "%s.%s", prefix, msgs[i].name);
        po.MsgId = msgs[i].id && *msgs[i].id ? msgs[i].id : NULL;
        s = js_PublishAsync(js, subj, msgs[i].body, (int)msgs[i].len, &po);
        if (s != NATS_OK)
            st = nats_err(err, s, 0, url, "JetStream publish");
    }
    jsPubOptions cpo;
    jsPubOptions_Init(&cpo);
    cpo.MaxWait = deadline - rt_mono_ms();
    if (cpo.MaxWait < 1)
        cpo.MaxWait = 1;
    s = js_PublishAsyncComplete(js, &cpo);
    if (s != NATS_OK && st == RT_OK)
        st = nats_err(err, s, 0, url, "waiting for JetStream publish acks");
    if (s != NATS_OK) {
        natsMsgList pending = {0};
        if (js_PublishAsyncGetPendingList(&pending, js) == NATS_OK)
            natsMsgList_Destroy(&pending);
    }
    jsCtx_Destroy(js);
    if (st == RT_OK && pb.failed) {
        st = rt_error_set(err, status_code(pb.first_status) == RT_OK ? RT_ERR_UNAVAILABLE : status_code(pb.first_status),
                          "nats %s: JetStream refused %zu of %zu messages: %s%s%s (jetstream error %d)", url, pb.failed,
                          n, natsStatus_GetText(pb.first_status), *pb.first_text ? ": " : "", pb.first_text,
                          (int)pb.first_code);
    }
    return st;
}

static rt_status n_publish(rt_bus *bb, const rt_bus_out *msgs, size_t n, int timeout_ms, rt_error *err)
{
    nats_bus *b = N(bb);
    if (!n)
        return RT_OK;
    for (size_t i = 0; i < n; i++) {
        rt_error perr;
        if (!msgs[i].name || rt_bus_pattern_check(msgs[i].name, &perr) != RT_OK || strchr(msgs[i].name, '*') ||
            strchr(msgs[i].name, '>'))
            return rt_error_set(err, RT_ERR_INVALID, "nats publish: '%s' is not an event name",
                                msgs[i].name ? msgs[i].name : "");
        if (msgs[i].len > (size_t)INT32_MAX)
            return rt_error_set(err, RT_ERR_INVALID, "nats publish: payload of %zu bytes is too large", msgs[i].len);
    }
    int64_t deadline = rt_mono_ms() + (timeout_ms > 0 ? timeout_ms : 10000);
    bool reopened = false;
    for (;;) {
        pthread_rwlock_rdlock(&b->pub_lock);
        uint64_t gen = b->pub_gen;
        bool have = b->pnc && !natsConnection_IsClosed(b->pnc);
        rt_status st = have ? publish_once(b, msgs, n, deadline, err) : RT_OK;
        pthread_rwlock_unlock(&b->pub_lock);
        /* Done, a refusal a new connection will not change, or already on a new one. */
        if (have && (st != RT_ERR_UNAVAILABLE || reopened))
            return st;
        /* No connection yet, or it died: reopen it (once, not once per thread). */
        pthread_rwlock_wrlock(&b->pub_lock);
        st = RT_OK;
        if (b->pub_gen == gen) {
            pub_close(b);
            st = pub_open(b, err);
        }
        pthread_rwlock_unlock(&b->pub_lock);
        if (st != RT_OK)
            return st;
        reopened = true;
        if (rt_mono_ms() >= deadline)
            return rt_error_set(err, RT_ERR_TIMEOUT, "nats %s: publish timed out", bb->url_safe);
    }
}

static rt_status n_backlog(rt_bus *bb, int64_t *ready, int64_t *unacked, rt_error *err)
{
    nats_bus *b = N(bb);
    *ready = *unacked = -1;
    if (!b->js)
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "nats %s: no JetStream consumer (core NATS keeps no backlog)",
                            bb->url_safe);
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetConsumerInfo(&ci, b->js, bb->opts.stream, bb->opts.consumer, NULL, &jerr);
    if (s != NATS_OK)
        return nats_err(err, s, jerr, bb->url_safe, "consumer info");
    *ready = (int64_t)ci->NumPending;
    *unacked = ci->NumAckPending;
    jsConsumerInfo_Destroy(ci);
    return RT_OK;
}

static rt_status n_drop(rt_bus *bb, rt_error *err)
{
    nats_bus *b = N(bb);
    if (!b->js) /* core NATS keeps nothing */
        return RT_OK;
    jsErrCode jerr = 0;
    natsStatus s = js_DeleteStream(b->js, bb->opts.stream, NULL, &jerr);
    return s == NATS_OK ? RT_OK : nats_err(err, s, jerr, bb->url_safe, "delete stream");
}

/* --- life cycle ------------------------------------------------------------------------- */

static rt_status n_create(rt_bus **out, rt_error *err)
{
    nats_bus *b = calloc(1, sizeof *b);
    if (!b)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    pthread_rwlock_init(&b->pub_lock, NULL);
    *out = &b->base;
    return RT_OK;
}

static void n_free(rt_bus *bb)
{
    nats_bus *b = N(bb);
    n_close(bb);
    pthread_rwlock_wrlock(&b->pub_lock);
    pub_close(b);
    pthread_rwlock_unlock(&b->pub_lock);
    pthread_rwlock_destroy(&b->pub_lock);
    rt_bus_free_common(bb);
    free(b);
}

const rt_bus_type rt_bus_nats_type = {
    .name = "nats",
    .create = n_create,
    .connect = n_connect,
    .subscribe = n_subscribe,
    .fetch = n_fetch,
    .ack = n_ack,
    .nack = n_nack,
    .dead_letter = n_dead_letter,
    .msg_free = n_msg_free,
    .publish = n_publish,
    .backlog = n_backlog,
    .drop = n_drop,
    .is_connected = n_is_connected,
    .mode = n_mode,
    .close = n_close,
    .free = n_free,
};
