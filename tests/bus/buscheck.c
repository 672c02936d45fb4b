/* buscheck.c — checks engine/bus/bus_amqp.c, engine/bus/bus_nats.c and engine/bus/consumer.c
 * against a real broker. Run by tests/integration/t_bus_amqp.sh and t_bus_nats.sh,
 * which start nothing themselves: they use the brokers scripts/dev.sh test started.
 *
 *   buscheck SCENARIO...     scenarios: basic throughput redeliver deadletter oversize
 *                            restart core (core: NATS without JetStream)
 *
 * Environment:
 *   BUSCHECK_URL        the broker (required)
 *   BUSCHECK_NS         a name unique to this run: NATS stream/subject/consumer names
 *                       are made from it (the NATS server is shared by parallel tests)
 *   BUSCHECK_STATS_CMD  prints "<ready> <unacked>" for the ingest queue or consumer, as
 *                       the broker's own tools see it; {Q} is replaced by the queue or
 *                       "<stream> <consumer>" ({Q} for NATS)
 *   BUSCHECK_DEAD_CMD   AMQP: prints the number of messages in ratchet.events.dead
 *   BUSCHECK_RESTART    restarts the broker (scenario restart)
 *
 * Every check prints what it expected and what it got; the exit status is 0 only when
 * all passed. Figures (msgs/s) are printed as "FIGURE name value unit". */
#include <jansson.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "consumer.h"
#include "log.h"
#include "util.h"

static int failures;
static const char *g_url, *g_ns, *g_stats_cmd, *g_dead_cmd, *g_restart_cmd;
static bool g_amqp;

#define CHECK(cond, ...)                                                                                             \
    do {                                                                                                             \
        if (!(cond)) {                                                                                               \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                          \
            fprintf(stderr, __VA_ARGS__);                                                                            \
            fprintf(stderr, "\n");                                                                                   \
            failures++;                                                                                              \
        }                                                                                                            \
    } while (0)

#define CHECK_EQ(exp, got, what)                                                                                     \
    do {                                                                                                             \
        long long e_ = (long long)(exp), g_ = (long long)(got);                                                      \
        if (e_ != g_) {                                                                                              \
            fprintf(stderr, "FAIL %s:%d: %s: expected %lld, got %lld\n", __FILE__, __LINE__, what, e_, g_);          \
            failures++;                                                                                              \
        }                                                                                                            \
    } while (0)

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("buscheck: ");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

/* --- per-scenario names ------------------------------------------------------------------ */

typedef struct names {
    char stream[96], prefix[96], consumer[96];
} names;

static void names_for(names *n, const char *scenario)
{
    snprintf(n->stream, sizeof n->stream, "BC_%s_%s", g_ns, scenario);
    snprintf(n->prefix, sizeof n->prefix, "bc%s.%s", g_ns, scenario);
    snprintf(n->consumer, sizeof n->consumer, "bc-%s-%s", g_ns, scenario);
}

static void options_for(rt_bus_options *o, const names *n)
{
    rt_bus_options_init(o);
    o->url = g_url;
    o->stream = n->stream;
    o->subject_prefix = n->prefix;
    o->consumer = n->consumer;
    o->connect_timeout_ms = 5000;
    if (getenv("BUSCHECK_PREFETCH"))
        o->prefetch = atoi(getenv("BUSCHECK_PREFETCH"));
}

static rt_bus *open_bus(const rt_bus_options *o)
{
    rt_bus *b;
    rt_error err;
    if (rt_bus_open(o, &b, &err) != RT_OK)
        die("rt_bus_open: %s", err.msg);
    return b;
}

static void connect_sub(rt_bus *b, const char *const *pats, size_t n)
{
    rt_error err;
    if (rt_bus_connect(b, &err) != RT_OK)
        die("connect: %s", err.msg);
    if (rt_bus_subscribe(b, pats, n, &err) != RT_OK)
        die("subscribe: %s", err.msg);
}

/* Fetches and acks everything left from an earlier run of the same scenario. */
static void drain(rt_bus *b)
{
    rt_bus_msg *msgs[256];
    size_t n, total = 0;
    rt_error err;
    do {
        if (rt_bus_fetch(b, msgs, 256, 200, &n, &err) != RT_OK)
            die("drain fetch: %s", err.msg);
        if (n && rt_bus_ack(b, msgs, n, &err) != RT_OK)
            die("drain ack: %s", err.msg);
        for (size_t i = 0; i < n; i++)
            rt_bus_msg_free(b, msgs[i]);
        total += n;
    } while (n);
    if (total)
        say("drained %zu messages left by an earlier run", total);
}

/* --- the broker's own view --------------------------------------------------------------- */

static char *expand(const char *tmpl, const char *q)
{
    size_t cap = strlen(tmpl) + 8 * strlen(q) + 1;
    char *out = malloc(cap), *o = out;
    for (const char *p = tmpl; *p;) {
        if (strncmp(p, "{Q}", 3) == 0) {
            o += sprintf(o, "%s", q);
            p += 3;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

static bool run_cmd(const char *cmd, char *out, size_t len)
{
    FILE *f = popen(cmd, "r");
    if (!f)
        return false;
    size_t n = fread(out, 1, len - 1, f);
    out[n] = '\0';
    return pclose(f) == 0;
}

/* Polls the broker's tools until ready == 0 and unacked == want_unacked (its statistics
 * lag a little behind). */
static void check_broker_backlog(const names *n, long long want_ready, long long want_unacked, const char *when)
{
    if (!g_stats_cmd)
        die("BUSCHECK_STATS_CMD is not set: cannot ask the broker for its backlog");
    char q[256];
    if (g_amqp)
        snprintf(q, sizeof q, "%s", RT_BUS_AMQP_QUEUE);
    else
        snprintf(q, sizeof q, "%s %s", n->stream, n->consumer);
    char *cmd = expand(g_stats_cmd, q);
    long long ready = -1, unacked = -1;
    char out[512] = "";
    for (int i = 0; i < 100; i++) { /* up to 10 s */
        if (run_cmd(cmd, out, sizeof out) && sscanf(out, "%lld %lld", &ready, &unacked) == 2 && ready == want_ready &&
            unacked == want_unacked)
            break;
        usleep(100000);
    }
    say("%s: broker says ready=%lld unacked=%lld", when, ready, unacked);
    CHECK(ready == want_ready && unacked == want_unacked, "%s: expected ready=%lld unacked=%lld, got [%s] (%s)", when,
          want_ready, want_unacked, out, cmd);
    free(cmd);
}

static long long dead_count(void)
{
    if (!g_dead_cmd)
        die("BUSCHECK_DEAD_CMD is not set");
    char out[128] = "";
    long long v = -1;
    if (run_cmd(g_dead_cmd, out, sizeof out))
        sscanf(out, "%lld", &v);
    return v;
}

static void delete_stream(const names *n)
{
    if (g_amqp)
        return;
    natsConnection *nc = NULL;
    natsOptions *opts = NULL;
    jsCtx *js = NULL;
    natsOptions_Create(&opts);
    natsOptions_SetURL(opts, g_url);
    if (strncmp(g_url, "tls://", 6) == 0) {
        natsOptions_SetSecure(opts, true);
        if (getenv("BUSCHECK_TLS_CA"))
            natsOptions_LoadCATrustedCertificates(opts, getenv("BUSCHECK_TLS_CA"));
    }
    if (natsConnection_Connect(&nc, opts) == NATS_OK && natsConnection_JetStream(&js, nc, NULL) == NATS_OK)
        js_DeleteStream(js, n->stream, NULL, NULL);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(opts);
}

/* --- messages ------------------------------------------------------------------------------ */

static char *envelope(const char *name, const char *id, size_t pad)
{
    char *fill = malloc(pad + 1);
    memset(fill, 'x', pad);
    fill[pad] = '\0';
    json_t *j = json_pack("{s:s,s:s,s:I,s:{s:s},s:s}", "name", name, "id", id, "ts", (json_int_t)rt_now_ms(), "data",
                          "pad", fill, "v", "1");
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    free(fill);
    return s;
}

/* The "id" of a message body (caller frees), or NULL. */
static char *body_id(const rt_bus_msg *m)
{
    json_t *j = json_loadb((const char *)m->body, m->len, 0, NULL);
    const char *id = json_string_value(json_object_get(j, "id"));
    char *r = id ? strdup(id) : NULL;
    json_decref(j);
    return r;
}

typedef struct outbox {
    rt_bus_out *outs;
    char **bodies;
    char **ids;
    char **names;
    size_t n;
} outbox;

static void outbox_make(outbox *ob, size_t n, const char *run, const char *const *names_cycle, size_t n_names,
                        size_t pad)
{
    ob->n = n;
    ob->outs = calloc(n, sizeof *ob->outs);
    ob->bodies = calloc(n, sizeof *ob->bodies);
    ob->ids = calloc(n, sizeof *ob->ids);
    ob->names = calloc(n, sizeof *ob->names);
    for (size_t i = 0; i < n; i++) {
        char id[96];
        snprintf(id, sizeof id, "%s-%06zu", run, i);
        ob->ids[i] = strdup(id);
        ob->names[i] = strdup(names_cycle[i % n_names]);
        ob->bodies[i] = envelope(ob->names[i], id, pad);
        ob->outs[i] = (rt_bus_out){.name = ob->names[i], .id = ob->ids[i], .body = ob->bodies[i],
                                   .len = strlen(ob->bodies[i])};
    }
}

static void outbox_free(outbox *ob)
{
    for (size_t i = 0; i < ob->n; i++) {
        free(ob->bodies[i]);
        free(ob->ids[i]);
        free(ob->names[i]);
    }
    free(ob->outs);
    free(ob->bodies);
    free(ob->ids);
    free(ob->names);
}

/* A set of ids seen (sorted array; small enough here). */
typedef struct idset {
    char **v;
    size_t n, cap;
    size_t dups;
    pthread_mutex_t mu;
} idset;

static void idset_init(idset *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
}

static bool idset_add(idset *s, const char *id)
{
    pthread_mutex_lock(&s->mu);
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(s->v[mid], id);
        if (c == 0) {
            s->dups++;
            pthread_mutex_unlock(&s->mu);
            return false;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
    }
    memmove(s->v + lo + 1, s->v + lo, (s->n - lo) * sizeof *s->v);
    s->v[lo] = strdup(id);
    s->n++;
    pthread_mutex_unlock(&s->mu);
    return true;
}

static size_t idset_size(idset *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void idset_free(idset *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    pthread_mutex_destroy(&s->mu);
}

static void run_tag(char *buf, size_t len)
{
    snprintf(buf, len, "%s-%lld", g_ns, (long long)rt_now_ms());
}

/* Fetch until want unique ids arrived (or the deadline); acks each batch after the
 * "commit" (adding to the set). Returns the number of messages received. */
static size_t fetch_all(rt_bus *b, idset *seen, size_t want, int64_t deadline_ms, const char *must_match,
                        size_t *mismatched)
{
    rt_bus_msg *msgs[1024];
    size_t total = 0, max = 128; /* what the consumer takes by default: half the prefetch */
    if (getenv("BUSCHECK_BATCH"))
        max = (size_t)atoi(getenv("BUSCHECK_BATCH"));
    if (max < 1 || max > 1024)
        max = 128;
    rt_error err;
    while (idset_size(seen) < want && rt_mono_ms() < deadline_ms) {
        size_t n;
        if (rt_bus_fetch(b, msgs, max, 500, &n, &err) != RT_OK)
            die("fetch: %s", err.msg);
        for (size_t i = 0; i < n; i++) {
            char *id = body_id(msgs[i]);
            if (!id)
                die("a message without an id at %s", msgs[i]->position);
            idset_add(seen, id); /* the simulated commit */
            free(id);
            if (must_match && mismatched && !rt_bus_pattern_match(must_match, msgs[i]->name))
                (*mismatched)++;
        }
        if (n && rt_bus_ack(b, msgs, n, &err) != RT_OK)
            die("ack: %s", err.msg);
        for (size_t i = 0; i < n; i++)
            rt_bus_msg_free(b, msgs[i]);
        total += n;
    }
    return total;
}

static double rate(size_t n, int64_t us)
{
    return us > 0 ? (double)n * 1e6 / (double)us : 0;
}

/* --- scenarios ------------------------------------------------------------------------------ */

/* Wildcard subscription, 1,000 messages with confirms, fetch, ack after the "commit",
 * the broker shows nothing ready or unacked. Non-matching names never arrive (AMQP). */
static void scenario_basic(void)
{
    names nm;
    names_for(&nm, "basic");
    rt_bus_options o;
    options_for(&o, &nm);
    rt_bus *b = open_bus(&o);
    const char *pats[] = {"basic.*.created", "basic.x.>"};
    connect_sub(b, pats, 2);
    drain(b);
    say("basic: %s mode %s, subscribed to basic.*.created and basic.x.>", rt_bus_url_safe(b), rt_bus_mode(b));

    char run[64];
    run_tag(run, sizeof run);
    const char *match_names[] = {"basic.invoice.created", "basic.x.y", "basic.x.y.z", "basic.order.created"};
    outbox ob;
    outbox_make(&ob, 1000, run, match_names, 4, 64);
    rt_error err;
    int64_t t0 = rt_mono_us();
    rt_status st = rt_bus_publish(b, ob.outs, ob.n, 30000, &err);
    int64_t us = rt_mono_us() - t0;
    CHECK(st == RT_OK, "publish 1000: %s", err.msg);
    say("basic: published 1000 with confirms in %.1f ms", us / 1000.0);
    printf("FIGURE %s_publish_1000_batch %.0f msgs/s\n", rt_bus_name(b), rate(1000, us));

    /* Names that match no pattern: AMQP never routes them to the queue. */
    const char *other_names[] = {"basic.invoice.created.late", "basic.y.z", "other.thing"};
    outbox other;
    char run2[80];
    snprintf(run2, sizeof run2, "%s-other", run);
    outbox_make(&other, 30, run2, other_names, 3, 8);
    if (g_amqp) {
        st = rt_bus_publish(b, other.outs, other.n, 10000, &err);
        CHECK(st == RT_OK, "publish others: %s", err.msg);
    }

    idset seen;
    idset_init(&seen);
    size_t mismatched = 0;
    size_t got = fetch_all(b, &seen, 1000, rt_mono_ms() + 30000, NULL, NULL);
    for (size_t i = 0; i < seen.n; i++) {
        if (strstr(seen.v[i], "-other-"))
            mismatched++;
    }
    CHECK_EQ(1000, idset_size(&seen), "unique ids received");
    CHECK_EQ(0, mismatched, "messages whose name matches no pattern");
    CHECK_EQ(1000, got, "messages received (no duplicates expected)");
    /* Nothing else may arrive. */
    rt_bus_msg *extra[8];
    size_t n = 0;
    CHECK(rt_bus_fetch(b, extra, 8, 500, &n, &err) == RT_OK, "fetch: %s", err.msg);
    CHECK_EQ(0, n, "messages after all 1000 (non-matching names must not be routed)");
    for (size_t i = 0; i < n; i++)
        rt_bus_msg_free(b, extra[i]);
    check_broker_backlog(&nm, 0, 0, "basic: after ack, still connected");
    if (!g_amqp) {
        int64_t ready, unacked;
        CHECK(rt_bus_backlog(b, &ready, &unacked, &err) == RT_OK, "backlog: %s", err.msg);
        CHECK(ready == 0 && unacked == 0, "rt_bus_backlog: ready %lld unacked %lld", (long long)ready,
              (long long)unacked);
    }
    idset_free(&seen);
    outbox_free(&ob);
    outbox_free(&other);
    rt_bus_free(b);
    delete_stream(&nm);
}

typedef struct single_pub {
    rt_bus *b;
    outbox *ob;
    size_t from, to;
    int errors;
} single_pub;

static void *single_publisher(void *arg)
{
    single_pub *sp = arg;
    for (size_t i = sp->from; i < sp->to; i++) {
        rt_error err;
        if (rt_bus_publish(sp->b, &sp->ob->outs[i], 1, 60000, &err) != RT_OK) {
            if (!sp->errors++)
                fprintf(stderr, "single publish: %s\n", err.msg);
        }
    }
    return NULL;
}

/* Figures: pipelined batches vs one message per call (1 and 4 threads), and the rate
 * at which the consumer side fetches and acks. */
static void scenario_throughput(void)
{
    names nm;
    names_for(&nm, "tput");
    rt_bus_options o;
    options_for(&o, &nm);
    rt_bus *b = open_bus(&o);
    const char *pats[] = {"tput.>"};
    connect_sub(b, pats, 1);
    drain(b);
    const char *nms[] = {"tput.a.created", "tput.b.updated"};
    char run[64];
    run_tag(run, sizeof run);
    const size_t nbatch = 20000, batch = 1000, nsingle = 2000;
    outbox ob;
    outbox_make(&ob, nbatch + 3 * nsingle, run, nms, 2, 200);
    rt_error err;

    int64_t t0 = rt_mono_us();
    for (size_t i = 0; i < nbatch; i += batch) {
        if (rt_bus_publish(b, ob.outs + i, batch, 30000, &err) != RT_OK)
            die("publish batch: %s", err.msg);
    }
    int64_t us = rt_mono_us() - t0;
    say("throughput: %zu messages (~%zu bytes) in batches of %zu with confirms: %.1f ms, %.0f msgs/s", nbatch,
        ob.outs[0].len, batch, us / 1000.0, rate(nbatch, us));
    printf("FIGURE %s_publish_pipelined_batch%zu %.0f msgs/s\n", rt_bus_name(b), batch, rate(nbatch, us));

    single_pub sp = {.b = b, .ob = &ob, .from = nbatch, .to = nbatch + nsingle};
    t0 = rt_mono_us();
    single_publisher(&sp);
    us = rt_mono_us() - t0;
    CHECK_EQ(0, sp.errors, "single publish errors");
    say("throughput: %zu single-message publishes, each confirmed (1 thread): %.0f msgs/s", nsingle,
        rate(nsingle, us));
    printf("FIGURE %s_publish_single_1thread %.0f msgs/s\n", rt_bus_name(b), rate(nsingle, us));

    /* Many publishers at once (worker threads running publish steps). */
    const int nthreads[2] = {4, 16};
    for (int k = 0; k < 2; k++) {
        int nt = nthreads[k];
        pthread_t th[16];
        single_pub sps[16];
        size_t per = nsingle / (size_t)nt, base = nbatch + nsingle * (size_t)(k + 1);
        t0 = rt_mono_us();
        for (int i = 0; i < nt; i++) {
            sps[i] = (single_pub){.b = b, .ob = &ob, .from = base + i * per, .to = base + (i + 1) * per};
            pthread_create(&th[i], NULL, single_publisher, &sps[i]);
        }
        for (int i = 0; i < nt; i++) {
            pthread_join(th[i], NULL);
            CHECK_EQ(0, sps[i].errors, "single publish errors (threads)");
        }
        us = rt_mono_us() - t0;
        say("throughput: %zu single-message publishes from %d threads: %.0f msgs/s", per * nt, nt,
            rate(per * nt, us));
        printf("FIGURE %s_publish_single_%dthreads %.0f msgs/s\n", rt_bus_name(b), nt, rate(per * nt, us));
    }

    idset seen;
    idset_init(&seen);
    t0 = rt_mono_us();
    size_t got = fetch_all(b, &seen, ob.n, rt_mono_ms() + 60000, NULL, NULL);
    us = rt_mono_us() - t0;
    CHECK_EQ(ob.n, idset_size(&seen), "unique ids received");
    say("throughput: fetched and acked %zu in %.1f ms: %.0f msgs/s", got, us / 1000.0, rate(got, us));
    printf("FIGURE %s_fetch_ack %.0f msgs/s\n", rt_bus_name(b), rate(got, us));
    check_broker_backlog(&nm, 0, 0, "throughput: after ack");
    idset_free(&seen);
    outbox_free(&ob);
    rt_bus_free(b);
    delete_stream(&nm);
}

/* Messages fetched but not acked come again after a reconnect. */
static void scenario_redeliver(void)
{
    names nm;
    names_for(&nm, "redeliver");
    rt_bus_options o;
    options_for(&o, &nm);
    o.ack_wait_ms = 3000; /* JetStream redelivers unacked messages after this */
    rt_bus *b = open_bus(&o);
    const char *pats[] = {"redeliver.*"};
    connect_sub(b, pats, 1);
    drain(b);
    const char *nms[] = {"redeliver.me"};
    char run[64];
    run_tag(run, sizeof run);
    outbox ob;
    outbox_make(&ob, 5, run, nms, 1, 16);
    rt_error err;
    CHECK(rt_bus_publish(b, ob.outs, ob.n, 10000, &err) == RT_OK, "publish: %s", err.msg);
    rt_bus_msg *msgs[16];
    size_t n = 0, got = 0;
    while (got < 5) {
        if (rt_bus_fetch(b, msgs + got, 16 - got, 2000, &n, &err) != RT_OK)
            die("fetch: %s", err.msg);
        if (!n)
            break;
        got += n;
    }
    CHECK_EQ(5, got, "first delivery");
    for (size_t i = 0; i < got; i++)
        CHECK(!msgs[i]->redelivered, "first delivery flagged redelivered at %s", msgs[i]->position);
    say("redeliver: got 5 (first at %s); reconnecting without ack", got ? msgs[0]->position : "-");
    /* Acking a message of the old connection after reconnecting must be harmless. */
    rt_bus_msg *stale = got ? msgs[0] : NULL;
    for (size_t i = 1; i < got; i++)
        rt_bus_msg_free(b, msgs[i]);
    rt_bus_close(b);
    connect_sub(b, pats, 1);
    if (stale) {
        CHECK(rt_bus_ack(b, &stale, 1, &err) == RT_OK, "ack of a stale message: %s", err.msg);
        rt_bus_msg_free(b, stale);
    }
    if (!g_amqp) {
        /* JetStream redelivers after AckWait or a Nak; the old connection's messages
         * cannot be Nak'd now, so this waits for AckWait. */
        say("redeliver: JetStream redelivers after AckWait (3 s here)");
    }
    idset seen;
    idset_init(&seen);
    size_t redelivered = 0;
    int64_t deadline = rt_mono_ms() + 60000;
    while (idset_size(&seen) < 5 && rt_mono_ms() < deadline) {
        if (rt_bus_fetch(b, msgs, 16, 500, &n, &err) != RT_OK)
            die("fetch: %s", err.msg);
        for (size_t i = 0; i < n; i++) {
            char *id = body_id(msgs[i]);
            idset_add(&seen, id);
            free(id);
            redelivered += msgs[i]->redelivered;
        }
        if (n)
            CHECK(rt_bus_ack(b, msgs, n, &err) == RT_OK, "ack: %s", err.msg);
        for (size_t i = 0; i < n; i++)
            rt_bus_msg_free(b, msgs[i]);
    }
    CHECK_EQ(5, idset_size(&seen), "redelivered unique ids");
    CHECK_EQ(5, redelivered, "messages flagged redelivered");
    for (size_t i = 0; i < 5 && i < seen.n; i++)
        CHECK(strncmp(seen.v[i], run, strlen(run)) == 0, "unexpected id %s", seen.v[i]);
    say("redeliver: all 5 came again, flagged redelivered");

    /* Nack: given back at once, delivered again on the same connection. (A new id: the
     * broker may drop a re-publish of a known one — JetStream's duplicate window.) */
    outbox ob2;
    char run2[80];
    snprintf(run2, sizeof run2, "%s-nack", run);
    outbox_make(&ob2, 1, run2, nms, 1, 16);
    CHECK(rt_bus_publish(b, ob2.outs, 1, 10000, &err) == RT_OK, "publish: %s", err.msg);
    got = 0;
    for (int i = 0; i < 10 && !got; i++)
        CHECK(rt_bus_fetch(b, msgs, 1, 1000, &got, &err) == RT_OK, "fetch: %s", err.msg);
    CHECK_EQ(1, got, "fetched for nack");
    if (got) {
        CHECK(rt_bus_nack(b, msgs, 1, &err) == RT_OK, "nack: %s", err.msg);
        rt_bus_msg_free(b, msgs[0]);
        got = 0;
        for (int i = 0; i < 10 && !got; i++)
            CHECK(rt_bus_fetch(b, msgs, 1, 1000, &got, &err) == RT_OK, "fetch: %s", err.msg);
        CHECK_EQ(1, got, "delivered again after nack");
        if (got) {
            CHECK(msgs[0]->redelivered, "nacked message flagged redelivered");
            CHECK(rt_bus_ack(b, msgs, 1, &err) == RT_OK, "ack: %s", err.msg);
            rt_bus_msg_free(b, msgs[0]);
        }
    }
    check_broker_backlog(&nm, 0, 0, "redeliver: after ack");
    idset_free(&seen);
    outbox_free(&ob);
    outbox_free(&ob2);
    rt_bus_free(b);
    delete_stream(&nm);
}

/* Dead-lettering: AMQP puts it in ratchet.events.dead; JetStream never redelivers it. */
static void scenario_deadletter(void)
{
    names nm;
    names_for(&nm, "dead");
    rt_bus_options o;
    options_for(&o, &nm);
    o.ack_wait_ms = 1000; /* a Term'd message must not come back even after AckWait */
    rt_bus *b = open_bus(&o);
    const char *pats[] = {"dead.>"};
    connect_sub(b, pats, 1);
    drain(b);
    long long dead0 = g_amqp ? dead_count() : 0;
    const char *nms[] = {"dead.letter", "dead.ok"};
    char run[64];
    run_tag(run, sizeof run);
    outbox ob;
    outbox_make(&ob, 2, run, nms, 2, 8);
    rt_error err;
    CHECK(rt_bus_publish(b, ob.outs, 2, 10000, &err) == RT_OK, "publish: %s", err.msg);
    rt_bus_msg *msgs[4];
    size_t got = 0, n;
    while (got < 2) {
        CHECK(rt_bus_fetch(b, msgs + got, 4 - got, 2000, &n, &err) == RT_OK, "fetch: %s", err.msg);
        if (!n)
            break;
        got += n;
    }
    CHECK_EQ(2, got, "fetched");
    for (size_t i = 0; i < got; i++) {
        if (strcmp(msgs[i]->name, "dead.letter") == 0) {
            CHECK(rt_bus_dead_letter(b, msgs[i], "test: poison", &err) == RT_OK, "dead_letter: %s", err.msg);
            say("deadletter: dead-lettered %s", msgs[i]->position);
        } else {
            CHECK(rt_bus_ack(b, &msgs[i], 1, &err) == RT_OK, "ack: %s", err.msg);
        }
        rt_bus_msg_free(b, msgs[i]);
    }
    if (g_amqp) {
        long long dead = -1;
        for (int i = 0; i < 50; i++) {
            dead = dead_count();
            if (dead == dead0 + 1)
                break;
            usleep(100000);
        }
        CHECK_EQ(dead0 + 1, dead, "messages in " RT_BUS_AMQP_DEAD_QUEUE);
        say("deadletter: %s holds %lld (was %lld)", RT_BUS_AMQP_DEAD_QUEUE, dead, dead0);
    } else {
        usleep(2500 * 1000); /* past AckWait */
    }
    CHECK(rt_bus_fetch(b, msgs, 4, 1000, &n, &err) == RT_OK, "fetch: %s", err.msg);
    CHECK_EQ(0, n, "messages delivered again after dead-lettering");
    for (size_t i = 0; i < n; i++)
        rt_bus_msg_free(b, msgs[i]);
    check_broker_backlog(&nm, 0, 0, "deadletter: after");
    outbox_free(&ob);
    rt_bus_free(b);
    delete_stream(&nm);
}

/* --- consumer scenarios ------------------------------------------------------------------- */

typedef struct ingest_state {
    idset stored;
    atomic_int retry_batches; /* answer RETRY to this many batches first */
    atomic_size_t poison_seen;
    atomic_size_t calls;
} ingest_state;

static void ingest(void *arg, rt_bus_msg *const *msgs, size_t n, rt_ingest_verdict *v)
{
    ingest_state *s = arg;
    atomic_fetch_add(&s->calls, 1);
    if (atomic_load(&s->retry_batches) > 0) {
        atomic_fetch_sub(&s->retry_batches, 1);
        return; /* verdicts stay RT_INGEST_RETRY: "the database is down" */
    }
    for (size_t i = 0; i < n; i++) {
        char *id = body_id(msgs[i]);
        if (!id) {
            v[i].outcome = RT_INGEST_POISON;
            snprintf(v[i].reason, sizeof v[i].reason, "not JSON or no id");
            atomic_fetch_add(&s->poison_seen, 1);
            continue;
        }
        idset_add(&s->stored, id); /* the commit */
        free(id);
        v[i].outcome = RT_INGEST_STORED;
    }
}

static rt_consumer *start_consumer(const rt_bus_options *o, const char *const *pats, size_t np, size_t max_bytes,
                                   ingest_state *st)
{
    rt_consumer_options co = {0};
    co.bus = *o;
    co.patterns = pats;
    co.n_patterns = np;
    co.max_event_bytes = max_bytes;
    co.ingest = ingest;
    co.ingest_arg = st;
    rt_consumer *c;
    rt_error err;
    if (rt_consumer_start(&co, &c, &err) != RT_OK)
        die("consumer start: %s", err.msg);
    return c;
}

static bool wait_stored(ingest_state *st, size_t want, int secs)
{
    int64_t deadline = rt_mono_ms() + secs * 1000LL;
    while (idset_size(&st->stored) < want && rt_mono_ms() < deadline)
        usleep(20000);
    return idset_size(&st->stored) >= want;
}

/* A 10 MiB payload is dead-lettered by the consumer; the next good message still runs. */
static void scenario_oversize(void)
{
    names nm;
    names_for(&nm, "oversize");
    rt_bus_options o;
    options_for(&o, &nm);
    rt_bus *pub = open_bus(&o);
    const char *pats[] = {"oversize.>"};
    {
        rt_bus *d = open_bus(&o); /* declare and drain first */
        connect_sub(d, pats, 1);
        drain(d);
        rt_bus_free(d);
    }
    long long dead0 = g_amqp ? dead_count() : 0;
    ingest_state st = {0};
    idset_init(&st.stored);
    size_t limit = 1u << 20;
    size_t big = 10u << 20;
    char run[64];
    run_tag(run, sizeof run);
    char id_big[96], id_ok[96], id_bad[96];
    snprintf(id_big, sizeof id_big, "%s-big", run);
    snprintf(id_ok, sizeof id_ok, "%s-ok", run);
    snprintf(id_bad, sizeof id_bad, "%s-bad", run);
    char *body_big = envelope("oversize.big", id_big, big);
    char *body_ok = envelope("oversize.ok", id_ok, 16);
    const char *not_json = "{not json";
    rt_error err;
    if (!g_amqp) {
        /* A default nats-server takes at most 1 MiB per message: a 10 MiB publish is refused
         * at the client with the server's limit, before anything reaches a stream. */
        rt_bus_out out = {.name = "oversize.big", .id = id_big, .body = body_big, .len = strlen(body_big)};
        rt_status s = rt_bus_publish(pub, &out, 1, 10000, &err);
        CHECK(s == RT_ERR_INVALID, "10 MiB publish on NATS: expected RT_ERR_INVALID, got %s: %s", rt_status_name(s),
              err.msg);
        say("oversize: 10 MiB publish to NATS refused as expected: %s", err.msg);
        /* So prove the consumer's own check with a lower limit: 64 KiB, message 512 KiB. */
        free(body_big);
        limit = 64u << 10;
        big = 512u << 10;
        body_big = envelope("oversize.big", id_big, big);
    }
    rt_bus_out outs[3] = {
        {.name = "oversize.big", .id = id_big, .body = body_big, .len = strlen(body_big)},
        {.name = "oversize.bad", .id = id_bad, .body = not_json, .len = strlen(not_json)},
        {.name = "oversize.ok", .id = id_ok, .body = body_ok, .len = strlen(body_ok)},
    };
    CHECK(rt_bus_publish(pub, outs, 3, 30000, &err) == RT_OK, "publish: %s", err.msg);
    rt_consumer *c = start_consumer(&o, pats, 1, limit, &st);
    CHECK(wait_stored(&st, 1, 30), "the good message after the oversized one was not stored");
    rt_consumer_stats s;
    for (int i = 0; i < 600; i++) { /* the counters may trail the store: up to 60 s on a loaded machine */
        rt_consumer_stats_get(c, &s);
        if (s.dead_lettered >= 2 && s.acked >= 1)
            break;
        usleep(100000);
    }
    CHECK_EQ(1, s.oversized, "oversized (dead-lettered by the consumer)");
    CHECK_EQ(2, s.dead_lettered, "dead-lettered (oversized + not JSON)");
    CHECK_EQ(1, atomic_load(&st.poison_seen), "poison verdicts");
    CHECK_EQ(1, s.acked, "acked");
    CHECK_EQ(1, idset_size(&st.stored), "stored");
    CHECK(st.stored.n == 1 && strcmp(st.stored.v[0], id_ok) == 0, "stored the good one");
    say("oversize: %zu-byte message dead-lettered, not-JSON dead-lettered, good one stored", outs[0].len);
    check_broker_backlog(&nm, 0, 0, "oversize: consumer running");
    rt_consumer_stop(c);
    if (g_amqp) {
        long long dead = dead_count();
        CHECK_EQ(dead0 + 2, dead, "messages in " RT_BUS_AMQP_DEAD_QUEUE);
    }
    check_broker_backlog(&nm, 0, 0, "oversize: consumer stopped");
    free(body_big);
    free(body_ok);
    idset_free(&st.stored);
    rt_bus_free(pub);
    delete_stream(&nm);
}

typedef struct pub_thread {
    rt_bus *b;
    outbox *ob;
    size_t batch;
    useconds_t pause_us;
    atomic_size_t confirmed;
    atomic_size_t failures;
    atomic_bool restarted; /* set once the restart command returned */
} pub_thread;

static void *publisher_main(void *arg)
{
    pub_thread *p = arg;
    for (size_t i = 0; i < p->ob->n;) {
        size_t k = p->ob->n - i < p->batch ? p->ob->n - i : p->batch;
        rt_error err;
        int64_t give_up = rt_mono_ms() + 120000;
        while (rt_bus_publish(p->b, p->ob->outs + i, k, 5000, &err) != RT_OK) {
            if (!atomic_fetch_add(&p->failures, 1) || atomic_load(&p->failures) % 20 == 0)
                fprintf(stderr, "buscheck: publish failed (retrying the batch): %s\n", err.msg);
            if (rt_mono_ms() > give_up)
                die("publisher gave up: %s", err.msg);
            usleep(200000);
        }
        atomic_fetch_add(&p->confirmed, k);
        i += k;
        usleep(p->pause_us); /* a stream over time, so the restart lands in the middle */
        /* Keep the last quarter until the broker is back, however long a loaded machine
         * takes to restart it: the stream must go on after the restart. */
        while (i >= p->ob->n * 3 / 4 && i < p->ob->n && !atomic_load(&p->restarted))
            usleep(10000);
    }
    return NULL;
}

/* The broker restarts while events stream in and the consumer ingests them (the first
 * batches see "database down" and are given back): every id arrives, none is lost. */
static void scenario_restart(void)
{
    if (!g_restart_cmd)
        die("BUSCHECK_RESTART is not set: cannot restart the broker");
    names nm;
    names_for(&nm, "restart");
    rt_bus_options o;
    options_for(&o, &nm);
    const char *pats[] = {"restart.*.done", "restart.poison"};
    {
        rt_bus *d = open_bus(&o);
        connect_sub(d, pats, 2);
        drain(d);
        rt_bus_free(d);
    }
    ingest_state st = {0};
    idset_init(&st.stored);
    atomic_store(&st.retry_batches, 3);
    rt_consumer *c = start_consumer(&o, pats, 2, 0, &st);

    const size_t total = 3000;
    char run[64];
    run_tag(run, sizeof run);
    const char *nms[] = {"restart.a.done", "restart.b.done", "restart.c.done"};
    outbox ob;
    outbox_make(&ob, total, run, nms, 3, 100);
    /* Three poison messages among them: not JSON. */
    for (size_t i = 500; i < total; i += 1000) {
        free(ob.bodies[i]);
        ob.bodies[i] = strdup("this is not JSON");
        free(ob.names[i]);
        ob.names[i] = strdup("restart.poison");
        ob.outs[i].name = ob.names[i];
        ob.outs[i].body = ob.bodies[i];
        ob.outs[i].len = strlen(ob.bodies[i]);
    }
    rt_bus *pub = open_bus(&o);
    pub_thread pt = {.b = pub, .ob = &ob, .batch = 25, .pause_us = 100000}; /* ~250/s: 12 s */
    pthread_t th;
    pthread_create(&th, NULL, publisher_main, &pt);
    while (atomic_load(&pt.confirmed) < total / 4)
        usleep(10000);
    say("restart: %zu confirmed, %zu stored; restarting the broker", atomic_load(&pt.confirmed),
        idset_size(&st.stored));
    int64_t t0 = rt_mono_ms();
    int rc = system(g_restart_cmd);
    CHECK(rc == 0, "restart command failed (%d): %s", rc, g_restart_cmd);
    size_t confirmed_at_restart = atomic_load(&pt.confirmed);
    atomic_store(&pt.restarted, true);
    say("restart: broker back after %.1f s; %zu confirmed, %zu stored", (rt_mono_ms() - t0) / 1000.0,
        confirmed_at_restart, idset_size(&st.stored));
    CHECK(confirmed_at_restart < total, "the stream ended before the broker came back");
    pthread_join(th, NULL);
    size_t good = total - 3;
    CHECK(wait_stored(&st, good, 120), "stored %zu of %zu", idset_size(&st.stored), good);
    for (int i = 0; i < 300; i++) {
        rt_consumer_stats s;
        rt_consumer_stats_get(c, &s);
        if (s.dead_lettered >= 3 && s.connected)
            break;
        usleep(100000);
    }
    rt_consumer_stats s;
    rt_consumer_stats_get(c, &s);
    say("restart: stored %zu unique of %zu (duplicates de-duplicated: %zu); received %llu, acked %llu, "
        "dead-lettered %llu, given back %llu, reconnects %llu, connect failures %llu, publish retries %zu",
        idset_size(&st.stored), good, st.stored.dups, (unsigned long long)s.received, (unsigned long long)s.acked,
        (unsigned long long)s.dead_lettered, (unsigned long long)s.retried, (unsigned long long)s.reconnects,
        (unsigned long long)s.connect_failures, atomic_load(&pt.failures));
    CHECK_EQ(good, idset_size(&st.stored), "unique ids stored (no loss)");
    CHECK(s.reconnects >= 1, "the consumer never reconnected (reconnects %llu)", (unsigned long long)s.reconnects);
    CHECK(s.retried > 0, "no batch was given back");
    CHECK_EQ(3, s.dead_lettered, "dead-lettered poison messages");
    CHECK(s.connected, "consumer connected at the end");
    for (size_t i = 0; i < ob.n; i++) {
        if (strcmp(ob.names[i], "restart.poison") == 0)
            continue;
        pthread_mutex_lock(&st.stored.mu);
        bool found = false;
        size_t lo = 0, hi = st.stored.n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            int cmp = strcmp(st.stored.v[mid], ob.ids[i]);
            if (!cmp) {
                found = true;
                break;
            }
            if (cmp < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        pthread_mutex_unlock(&st.stored.mu);
        if (!found) {
            CHECK(found, "id %s was lost", ob.ids[i]);
            break;
        }
    }
    check_broker_backlog(&nm, 0, 0, "restart: consumer running, all stored");
    rt_consumer_stop(c);
    rt_bus_free(pub);
    outbox_free(&ob);
    idset_free(&st.stored);
    delete_stream(&nm);
}

/* Core NATS (JetStream off): queue subscriptions on the patterns; at-most-once. */
static void scenario_core(void)
{
    if (g_amqp)
        die("scenario core is for NATS");
    names nm;
    names_for(&nm, "core");
    rt_bus_options o;
    options_for(&o, &nm);
    o.jetstream = false;
    rt_bus *b = open_bus(&o);
    const char *pats[] = {"core.*.created", "core.x.>"};
    connect_sub(b, pats, 2);
    CHECK(strcmp(rt_bus_mode(b), "nats-core") == 0, "mode %s", rt_bus_mode(b));
    char run[64];
    run_tag(run, sizeof run);
    const char *nms[] = {"core.a.created", "core.x.y.z"};
    outbox ob;
    outbox_make(&ob, 1000, run, nms, 2, 32);
    const char *other_names[] = {"core.a.created.late", "core.y"};
    outbox other;
    char run2[80];
    snprintf(run2, sizeof run2, "%s-other", run);
    outbox_make(&other, 20, run2, other_names, 2, 8);
    rt_error err;
    int64_t t0 = rt_mono_us();
    CHECK(rt_bus_publish(b, ob.outs, ob.n, 10000, &err) == RT_OK, "publish: %s", err.msg);
    int64_t us = rt_mono_us() - t0;
    printf("FIGURE nats_core_publish_1000_flush %.0f msgs/s\n", rate(1000, us));
    CHECK(rt_bus_publish(b, other.outs, other.n, 10000, &err) == RT_OK, "publish: %s", err.msg);
    idset seen;
    idset_init(&seen);
    fetch_all(b, &seen, 1000, rt_mono_ms() + 60000, NULL, NULL);
    rt_bus_msg *extra[8];
    size_t n = 0;
    CHECK(rt_bus_fetch(b, extra, 8, 300, &n, &err) == RT_OK, "fetch: %s", err.msg);
    for (size_t i = 0; i < n; i++)
        rt_bus_msg_free(b, extra[i]);
    size_t mismatched = n;
    for (size_t i = 0; i < seen.n; i++)
        mismatched += strstr(seen.v[i], "-other-") != NULL;
    CHECK_EQ(1000, idset_size(&seen), "core: unique ids");
    CHECK_EQ(0, mismatched, "core: messages matching no pattern");
    say("core: 1000 received through queue subscriptions, nothing unmatched");
    /* Close and reopen: nothing left behind (no leaks under ASan). */
    rt_bus_close(b);
    connect_sub(b, pats, 2);
    rt_bus_close(b);
    idset_free(&seen);
    outbox_free(&ob);
    outbox_free(&other);
    rt_bus_free(b);
}

/* TLS: connect with RATCHET_TLS_CA-style options (BUSCHECK_TLS_CA, BUSCHECK_TLS_VERIFY);
 * publish, fetch and ack 10 messages. BUSCHECK_EXPECT_FAIL=1: the connection must be
 * refused (wrong CA), with an error that names the cause and no password. */
static void scenario_tls(void)
{
    names nm;
    names_for(&nm, "tls");
    rt_bus_options o;
    options_for(&o, &nm);
    o.tls.ca_file = getenv("BUSCHECK_TLS_CA");
    const char *verify = getenv("BUSCHECK_TLS_VERIFY");
    o.tls.verify = !verify || strcmp(verify, "0") != 0;
    const char *expect_fail = getenv("BUSCHECK_EXPECT_FAIL");
    rt_bus *b = open_bus(&o);
    rt_error err;
    rt_status st = rt_bus_connect(b, &err);
    if (expect_fail && !strcmp(expect_fail, "1")) {
        CHECK(st != RT_OK, "TLS connect succeeded but should have been refused");
        if (st != RT_OK)
            say("tls: refused as expected (%s): %s", rt_status_name(st), err.msg);
        CHECK(!strstr(err.msg, "s3cret"), "password in the error: %s", err.msg);
        rt_bus_out out = {.name = "tls.x", .body = "{}", .len = 2};
        st = rt_bus_publish(b, &out, 1, 3000, &err);
        CHECK(st != RT_OK, "TLS publish succeeded but should have been refused");
        rt_bus_free(b);
        return;
    }
    CHECK(st == RT_OK, "TLS connect: %s", err.msg);
    if (st != RT_OK) {
        rt_bus_free(b);
        return;
    }
    const char *pats[] = {"tls.>"};
    CHECK(rt_bus_subscribe(b, pats, 1, &err) == RT_OK, "subscribe: %s", err.msg);
    char run[64];
    run_tag(run, sizeof run);
    const char *nms[] = {"tls.ping"};
    outbox ob;
    outbox_make(&ob, 10, run, nms, 1, 16);
    CHECK(rt_bus_publish(b, ob.outs, ob.n, 10000, &err) == RT_OK, "publish over TLS: %s", err.msg);
    idset seen;
    idset_init(&seen);
    fetch_all(b, &seen, 10, rt_mono_ms() + 60000, NULL, NULL);
    CHECK_EQ(10, idset_size(&seen), "received over TLS");
    say("tls: %s (%s): 10 published, fetched and acked over TLS", rt_bus_url_safe(b), rt_bus_mode(b));
    idset_free(&seen);
    outbox_free(&ob);
    rt_bus_free(b);
    delete_stream(&nm);
}

int main(int argc, char **argv)
{
    g_url = getenv("BUSCHECK_URL");
    g_ns = getenv("BUSCHECK_NS");
    g_stats_cmd = getenv("BUSCHECK_STATS_CMD");
    g_dead_cmd = getenv("BUSCHECK_DEAD_CMD");
    g_restart_cmd = getenv("BUSCHECK_RESTART");
    if (!g_url || !*g_url)
        die("BUSCHECK_URL is not set (a broker URL); run through tests/integration/t_bus_*.sh");
    if (!g_ns || !*g_ns)
        g_ns = "x";
    g_amqp = strncmp(g_url, "amqp", 4) == 0;
    rt_log_configure(RT_LOG_INFO, false);
    if (argc < 2)
        die("usage: buscheck SCENARIO... (basic throughput redeliver deadletter oversize restart core)");
    for (int i = 1; i < argc; i++) {
        int before = failures;
        int64_t t0 = rt_mono_ms();
        say("=== %s (%s)", argv[i], g_amqp ? "amqp" : "nats");
        if (!strcmp(argv[i], "basic"))
            scenario_basic();
        else if (!strcmp(argv[i], "throughput"))
            scenario_throughput();
        else if (!strcmp(argv[i], "redeliver"))
            scenario_redeliver();
        else if (!strcmp(argv[i], "deadletter"))
            scenario_deadletter();
        else if (!strcmp(argv[i], "oversize"))
            scenario_oversize();
        else if (!strcmp(argv[i], "restart"))
            scenario_restart();
        else if (!strcmp(argv[i], "core"))
            scenario_core();
        else if (!strcmp(argv[i], "tls"))
            scenario_tls();
        else
            die("unknown scenario %s", argv[i]);
        say("=== %s: %s (%.1f s)", argv[i], failures == before ? "ok" : "FAILED", (rt_mono_ms() - t0) / 1000.0);
    }
    rt_bus_shutdown();
    if (failures)
        fprintf(stderr, "buscheck: %d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
