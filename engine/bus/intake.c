/* intake.c — brokers to ingest. Each consumer thread owns one PostgreSQL connection;
 * a fetched batch is parsed, stored and its runs created in one transaction, and only
 * then acknowledged (the consumer acks on RT_INGEST_STORED). */
#include "intake.h"
#include "run_trace.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "consumer.h"
#include "event.h"
#include "expr.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "util.h"
#include "workflow_live.h"

typedef struct sink {
    struct rt_intake *in;
    const char *transport; /* "amqp" or "nats" */
    rt_store *store;
} sink;

struct rt_intake {
    const rt_config *cfg;
    const rt_workflow_set *set;
    rt_consumer *consumers[2 * RT_INGEST_CONSUMERS_MAX]; /* per broker, RATCHET_INGEST_CONSUMERS */
    sink sinks[2 * RT_INGEST_CONSUMERS_MAX];
    size_t n_consumers;
    json_t *patterns;      /* what the consumers subscribe to */
    rt_bus *publishers[2]; /* amqp, nats */
    pthread_t janitor;
    bool janitor_started;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stopping;
};

static void add_pattern(json_t *list, const char *p)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        if (strcmp(json_string_value(v), p) == 0)
            return;
    }
    json_array_append_new(list, json_string(p));
}

json_t *rt_intake_patterns(const rt_workflow_set *set)
{
    json_t *list = json_array();
    for (size_t w = 0; set && w < set->n; w++) {
        const rt_workflow *wf = set->items[w];
        for (size_t t = 0; t < wf->n_triggers; t++)
            if (wf->triggers[t].kind == RT_TRIGGER_EVENT)
                add_pattern(list, wf->triggers[t].event);
        size_t i;
        json_t *rule;
        json_array_foreach(wf->cancel_on, i, rule) {
            const char *p = json_string_value(json_object_get(rule, "event"));
            if (p)
                add_pattern(list, p);
        }
        for (size_t s = 0; s < wf->n_steps; s++) {
            if (wf->steps[s].type->wait != RT_STEP_WAIT_EVENT)
                continue;
            json_t *ev = json_object_get(wf->steps[s].with, "event");
            json_t *one = json_is_string(ev) ? json_pack("[O]", ev) : json_incref(ev);
            size_t k;
            json_t *name;
            json_array_foreach(one, k, name) {
                const char *n = json_string_value(name);
                /* A templated name is only known at run time: take everything. */
                add_pattern(list, n && !rt_template_present(n) ? n : ">");
            }
            json_decref(one);
        }
        if (rt_workflow_wants_decisions(wf)) /* decisions arrive on any transport */
            add_pattern(list, RT_APPROVAL_DECIDED_EVENT);
    }
    if (json_array_size(list) == 0)
        add_pattern(list, ">"); /* nothing listens yet: still store what arrives */
    return list;
}

/* Does the body's `name` match the routing key / subject it came on? A message with no
 * subject name (a transport that has none) agrees. */
static bool name_agrees(const rt_bus_msg *m, const rt_event *ev, rt_error *err)
{
    if (!m->name || !strcmp(m->name, ev->name))
        return true;
    rt_qbuf a, b;
    rt_error_set(err, RT_ERR_INVALID, "$.name: the body names event %s, but it arrived on %s (subject name %s)",
                 rt_quote(&a, ev->name), m->subject ? m->subject : "?", rt_quote(&b, m->name));
    return false;
}

/* Where an id in the engine's namespace ("ratchet:<instance>:...") comes from. */
typedef enum relay_kind {
    RELAY_NONE = 0, /* a producer's id */
    RELAY_OWN,      /* this deployment's: only the echo of an event it stored */
    RELAY_FOREIGN,  /* another deployment's engine sharing the broker: an ordinary event */
    RELAY_BAD,      /* "ratchet:" without an instance: nobody's */
} relay_kind;

static relay_kind relay_of(const char *id, const char *instance)
{
    if (!rt_event_id_reserved(id))
        return RELAY_NONE;
    const char *p = id + strlen(RT_EVENT_ENGINE_ID_PREFIX);
    if (strspn(p, "0123456789abcdef") != 16 || p[16] != ':')
        return RELAY_BAD;
    return strncmp(p, instance, 16) == 0 ? RELAY_OWN : RELAY_FOREIGN;
}

/* Events in this deployment's namespace are its own coming back through its outbox:
 * acknowledged as the duplicates they are when stored, dead-lettered (reserved_id) when
 * not, since no producer may use such an id (DESIGN §6); so are "ratchet:" ids that name
 * no instance. Returns how many events are left for ingest; the dropped ones are freed.
 * On a database error the verdicts stay RT_INGEST_RETRY. */
static size_t drop_relayed(sink *k, rt_bus_msg *const *msgs, rt_event **events, size_t *index, size_t m,
                           rt_ingest_verdict *verdicts)
{
    bool any = false;
    for (size_t j = 0; j < m && !any; j++)
        any = rt_event_id_reserved(events[j]->id);
    if (!any)
        return m;
    char instance[17] = "";
    rt_error err;
    rt_status s = rt_store_instance_id(k->store, instance, &err);
    json_t *ids = json_array();
    for (size_t j = 0; s == RT_OK && j < m; j++)
        if (relay_of(events[j]->id, instance) == RELAY_OWN)
            json_array_append_new(ids, json_string(events[j]->id));
    json_t *stored = NULL;
    if (s == RT_OK && json_array_size(ids) > 0)
        s = rt_store_events_existing(k->store, ids, &stored, &err);
    size_t kept = 0;
    for (size_t j = 0; j < m; j++) {
        relay_kind kind = relay_of(events[j]->id, instance);
        /* Another deployment's ratchet.approval.requested is nothing this one acts on (and
         * its instance part is a producer's word): dropped like an unknown id of ours. */
        if (kind == RELAY_NONE || (kind == RELAY_FOREIGN && !rt_event_name_reserved(events[j]->name))) {
            events[kept] = events[j];
            index[kept++] = index[j];
            continue;
        }
        bool known = false;
        size_t x;
        json_t *id;
        json_array_foreach(stored, x, id) known = known || !strcmp(json_string_value(id), events[j]->id);
        rt_ingest_verdict *v = &verdicts[index[j]];
        if (s != RT_OK) {
            /* stays RT_INGEST_RETRY */
        } else if (known) {
            v->outcome = RT_INGEST_STORED;
        } else {
            v->outcome = RT_INGEST_POISON;
            snprintf(v->reason, sizeof v->reason, "reserved_id: id \"%.64s\" is in the engine's namespace",
                     events[j]->id);
            rt_log(RT_LOG_WARN, NULL, "message dead-lettered (%s): %s", msgs[index[j]]->position, v->reason);
            rt_metrics_counter_add("ratchet_events_dead_lettered_total", "transport", k->transport, "reason",
                                   "reserved_id", 1);
        }
        rt_event_free(events[j]);
    }
    if (s != RT_OK)
        rt_log(RT_LOG_WARN, NULL, "%s ingest: %s (messages will be redelivered)", k->transport, err.msg);
    json_decref(stored);
    json_decref(ids);
    return kept;
}

static void ingest_batch(void *arg, rt_bus_msg *const *msgs, size_t n, rt_ingest_verdict *verdicts)
{
    sink *k = arg;
    rt_error err;
    if (!k->store || !rt_store_healthy(k->store)) {
        rt_status s = k->store ? rt_store_reconnect(k->store, &err)
                               : rt_store_open(k->in->cfg->database_url, &k->store, &err);
        if (s != RT_OK) {
            rt_log(RT_LOG_WARN, NULL, "%s ingest: %s (messages will be redelivered)", k->transport, err.msg);
            return; /* every verdict stays RT_INGEST_RETRY */
        }
    }
    rt_event **events = calloc(n, sizeof *events);
    size_t *index = calloc(n, sizeof *index);
    size_t m = 0;
    int64_t now = rt_now_ms();
    for (size_t i = 0; i < n; i++) {
        rt_event_fault fault = RT_EVENT_FAULT_NONE;
        rt_status ps = rt_event_parse_relay(msgs[i]->body, msgs[i]->len, (size_t)k->in->cfg->max_event_bytes, now,
                                            &events[m], &err, &fault);
        if (ps == RT_OK && !name_agrees(msgs[i], events[m], &err)) {
            /* Broker permissions are per subject: a body may not name another event. */
            rt_event_free(events[m]);
            events[m] = NULL;
            fault = RT_EVENT_FAULT_NAME_MISMATCH;
            ps = RT_ERR_INVALID;
        } else if (ps == RT_OK && rt_event_name_reserved(events[m]->name) && !rt_event_id_reserved(events[m]->id)) {
            /* Only the engine makes these (its own come back with its ids, below). */
            rt_error_set(&err, RT_ERR_INVALID, "$.name: \"%s\" is reserved for events the engine makes",
                         events[m]->name);
            rt_event_free(events[m]);
            events[m] = NULL;
            fault = RT_EVENT_FAULT_RESERVED_NAME;
            ps = RT_ERR_INVALID;
        }
        if (ps != RT_OK) {
            verdicts[i].outcome = RT_INGEST_POISON;
            snprintf(verdicts[i].reason, sizeof verdicts[i].reason, "%s: %s", rt_event_fault_name(fault), err.msg);
            rt_log(RT_LOG_WARN, NULL, "poison message dead-lettered (%s): %s", msgs[i]->position, err.msg);
            rt_metrics_counter_add("ratchet_events_dead_lettered_total", "transport", k->transport, "reason",
                                   rt_event_fault_name(fault), 1);
            rt_metrics_counter_add("ratchet_bad_input_total", "kind", "event", 1);
            continue;
        }
        rt_run_trace_adopt(&events[m], msgs[i]->traceparent, msgs[i]->traceparent_len, msgs[i]->tracestate,
                           msgs[i]->tracestate_len);
        index[m++] = i;
    }
    m = drop_relayed(k, msgs, events, index, m, verdicts);
    if (m > 0) {
        int64_t t0 = rt_mono_us();
        const rt_workflow_set *set = rt_workflow_set_acquire(k->in->set); /* this batch's workflows */
        rt_status is = rt_ingest_events(set, k->store, events, m, k->transport, NULL, &err);
        rt_workflow_set_release(set);
        rt_log(RT_LOG_DEBUG, NULL, "%s ingest: %zu event(s) in %lld us", k->transport, m,
               (long long)(rt_mono_us() - t0));
        if (is == RT_OK) {
            int64_t end = rt_now_ms();
            for (size_t j = 0; j < m; j++) {
                verdicts[index[j]].outcome = RT_INGEST_STORED;
                rt_run_trace_ingest_span(events[j], k->transport, now, end);
            }
        } else {
            rt_log(RT_LOG_WARN, NULL, "%s ingest of %zu event(s) failed, they will be redelivered: %s", k->transport,
                   m, err.msg);
        }
    }
    for (size_t j = 0; j < m; j++)
        rt_event_free(events[j]);
    free(events);
    free(index);
}

/* Publishes the outbox (events the engine made and stored in the transaction that caused
 * them) to every configured broker, then clears their mark; a crash in between publishes
 * them again, which consumers de-duplicate by id. Returns false when the store broke. */
static bool publish_outbox(rt_intake *in, rt_store *st)
{
    if (!in->publishers[0] && !in->publishers[1])
        return true;
    rt_error err;
    json_t *rows = NULL;
    rt_status s = rt_store_begin(st, &err);
    if (s == RT_OK)
        s = rt_store_outbox_take(st, 200, &rows, &err);
    json_t *ids = json_array();
    size_t n = json_array_size(rows);
    for (int b = 0; s == RT_OK && n > 0 && b < 2; b++) {
        if (!in->publishers[b])
            continue;
        rt_bus_out *out = calloc(n, sizeof *out);
        char **bodies = calloc(n, sizeof *bodies);
        for (size_t i = 0; i < n; i++) {
            json_t *r = json_array_get(rows, i);
            bodies[i] = json_dumps(json_object_get(r, "envelope"), JSON_COMPACT);
            out[i] = (rt_bus_out){.name = json_string_value(json_object_get(r, "name")),
                                  .id = json_string_value(json_object_get(r, "id")),
                                  .body = bodies[i],
                                  .len = bodies[i] ? strlen(bodies[i]) : 0,
                                  .traceparent = json_string_value(json_object_get(
                                      json_object_get(r, "envelope"), RT_EVENT_TRACEPARENT_KEY))};
        }
        s = rt_bus_publish(in->publishers[b], out, n, 10000, &err);
        for (size_t i = 0; i < n; i++)
            free(bodies[i]);
        free(bodies);
        free(out);
    }
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) json_array_append(ids, json_object_get(r, "id"));
    if (s == RT_OK)
        s = rt_store_outbox_done(st, ids, &err);
    if (s == RT_OK)
        s = rt_store_commit(st, &err);
    if (s != RT_OK) {
        rt_store_rollback(st);
        rt_log(RT_LOG_WARN, NULL, "outbox: %s (will retry)", err.msg);
    } else if (n > 0) {
        rt_log(RT_LOG_DEBUG, NULL, "outbox: published %zu event(s)", n);
    }
    json_decref(ids);
    json_decref(rows);
    return rt_store_healthy(st);
}

typedef rt_status (*delete_fn)(rt_store *st, int64_t older_than_ms, int batch, int *deleted, rt_error *err);

/* Deletes rows past their retention, 1,000 per statement (0 = keep forever). Returns
 * false when the connection broke. */
static bool expire(rt_intake *in, rt_store *st, const char *what, delete_fn fn, int64_t retention_ms)
{
    int deleted = 0, total = 0;
    rt_error err;
    do {
        if (retention_ms <= 0)
            return true;
        if (fn(st, retention_ms, 1000, &deleted, &err) != RT_OK) {
            rt_log(RT_LOG_WARN, NULL, "%s retention: %s", what, err.msg);
            return rt_store_healthy(st);
        }
        total += deleted;
    } while (deleted == 1000 && !in->stopping);
    if (total > 0)
        rt_log(RT_LOG_INFO, NULL, "%s retention: deleted %d %s(s)", what, total, what);
    return true;
}

/* Every second: the outbox. Every minute: deletes events and finished runs past their
 * retention. */
static void *janitor_main(void *arg)
{
    rt_intake *in = arg;
    rt_store *st = NULL;
    int64_t next_retention = 0;
    pthread_mutex_lock(&in->mu);
    while (!in->stopping) {
        pthread_mutex_unlock(&in->mu);
        rt_error err;
        if (st || rt_store_open(in->cfg->database_url, &st, &err) == RT_OK) {
            if (!publish_outbox(in, st)) {
                rt_store_close(st);
                st = NULL;
            }
        }
        if (st && rt_mono_ms() >= next_retention) {
            next_retention = rt_mono_ms() + 60000;
            if (!expire(in, st, "event", rt_store_delete_old_events, in->cfg->event_retention_ms) ||
                !expire(in, st, "run", rt_store_delete_old_runs, in->cfg->run_retention_ms)) {
                rt_store_close(st);
                st = NULL;
            }
        }
        pthread_mutex_lock(&in->mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        while (!in->stopping && pthread_cond_timedwait(&in->cond, &in->mu, &ts) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&in->mu);
    rt_store_close(st);
    return NULL;
}

/* RATCHET_INGEST_CONSUMERS consumers per configured broker (each with its own broker and
 * database connections, so batches are stored in parallel), subscribed to patterns (a JSON
 * array of strings). The broker shares the messages out among them: a queue's consumers
 * (AMQP), one durable pull consumer or queue group (NATS). */
static rt_status start_consumers(rt_intake *in, json_t *patterns, rt_error *err)
{
    const rt_config *cfg = in->cfg;
    size_t np = json_array_size(patterns);
    const char **pats = calloc(np ? np : 1, sizeof *pats);
    if (!pats)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < np; i++)
        pats[i] = json_string_value(json_array_get(patterns, i));
    const char *urls[2] = {cfg->amqp_url, cfg->nats_url};
    const char *names[2] = {"amqp", "nats"};
    int per = cfg->ingest_consumers < 1 ? 1 : cfg->ingest_consumers > RT_INGEST_CONSUMERS_MAX ? RT_INGEST_CONSUMERS_MAX
                                                                                             : cfg->ingest_consumers;
    rt_status s = RT_OK;
    in->n_consumers = 0;
    for (int b = 0; b < 2 && s == RT_OK; b++) {
        if (!urls[b] || !*urls[b])
            continue;
        for (int c = 0; c < per && s == RT_OK; c++) {
            rt_consumer_options o = {0};
            rt_bus_options_from_config(&o.bus, cfg, urls[b]);
            o.patterns = pats;
            o.n_patterns = np;
            o.max_event_bytes = (size_t)cfg->max_event_bytes;
            o.ingest = ingest_batch;
            sink *k = &in->sinks[in->n_consumers];
            k->in = in;
            k->transport = names[b];
            o.ingest_arg = k;
            s = rt_consumer_start(&o, &in->consumers[in->n_consumers], err);
            if (s == RT_OK)
                in->n_consumers++;
        }
    }
    free(pats);
    if (s == RT_OK && in->n_consumers) {
        char list[512] = "";
        for (size_t i = 0; i < np; i++) {
            size_t used = strlen(list);
            snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", json_string_value(json_array_get(patterns, i)));
        }
        rt_log(RT_LOG_INFO, NULL, "consuming events matching: %s", list);
    }
    return s;
}

uint64_t rt_intake_acked(const rt_intake *in)
{
    uint64_t acked = 0;
    for (size_t i = 0; in && i < in->n_consumers; i++) {
        rt_consumer_stats cs;
        rt_consumer_stats_get(in->consumers[i], &cs);
        acked += cs.acked;
    }
    return acked;
}

static void stop_consumers(rt_intake *in)
{
    for (size_t i = 0; i < in->n_consumers; i++)
        rt_consumer_request_stop(in->consumers[i]);
    for (size_t i = 0; i < in->n_consumers; i++) {
        rt_consumer_stop(in->consumers[i]);
        in->consumers[i] = NULL;
    }
}

rt_status rt_intake_start(const rt_config *cfg, const rt_workflow_set *set, rt_intake **out, rt_error *err)
{
    rt_intake *in = calloc(1, sizeof *in);
    if (!in)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    in->cfg = cfg;
    in->set = set;
    pthread_mutex_init(&in->mu, NULL);
    pthread_cond_init(&in->cond, NULL);
    const rt_workflow_set *snap = rt_workflow_set_acquire(set);
    in->patterns = rt_intake_patterns(snap);
    rt_workflow_set_release(snap);
    rt_status s = start_consumers(in, in->patterns, err);
    const char *urls[2] = {cfg->amqp_url, cfg->nats_url};
    for (int b = 0; b < 2 && s == RT_OK; b++) {
        if (!urls[b] || !*urls[b])
            continue;
        rt_bus_options pub;
        rt_bus_options_from_config(&pub, cfg, urls[b]);
        s = rt_bus_open(&pub, &in->publishers[b], err);
    }
    if (s == RT_OK && pthread_create(&in->janitor, NULL, janitor_main, in) == 0)
        in->janitor_started = true;
    if (s != RT_OK) {
        rt_intake_stop(in);
        return s;
    }
    *out = in;
    return RT_OK;
}

rt_status rt_intake_refresh(rt_intake *in, rt_error *err)
{
    if (!in)
        return RT_OK;
    const rt_workflow_set *snap = rt_workflow_set_acquire(in->set);
    json_t *patterns = rt_intake_patterns(snap);
    rt_workflow_set_release(snap);
    if (json_equal(patterns, in->patterns)) {
        json_decref(patterns);
        return RT_OK;
    }
    /* Unacknowledged messages in hand go back to the broker and come again. */
    stop_consumers(in);
    json_decref(in->patterns);
    in->patterns = patterns;
    return start_consumers(in, patterns, err);
}

rt_bus *rt_intake_publisher(rt_intake *in, const char *broker)
{
    if (!in)
        return NULL;
    return in->publishers[strcmp(broker, "amqp") == 0 ? 0 : 1];
}

void rt_intake_stop(rt_intake *in)
{
    if (!in)
        return;
    stop_consumers(in);
    for (size_t i = 0; i < sizeof in->sinks / sizeof in->sinks[0]; i++)
        rt_store_close(in->sinks[i].store);
    json_decref(in->patterns);
    pthread_mutex_lock(&in->mu);
    in->stopping = true;
    pthread_cond_broadcast(&in->cond);
    pthread_mutex_unlock(&in->mu);
    if (in->janitor_started)
        pthread_join(in->janitor, NULL);
    for (int b = 0; b < 2; b++)
        rt_bus_free(in->publishers[b]);
    pthread_mutex_destroy(&in->mu);
    pthread_cond_destroy(&in->cond);
    free(in);
}

rt_status rt_intake_publish(const rt_config *cfg, const char *via, const char *name, size_t count, size_t batch,
                            rt_body_fn make_body, void *arg, rt_error *err)
{
    const char *url = strcmp(via, "amqp") == 0 ? cfg->amqp_url : cfg->nats_url;
    if (!url || !*url)
        return rt_error_set(err, RT_ERR_INVALID, "--via %s: %s is not set", via,
                            strcmp(via, "amqp") == 0 ? "RATCHET_AMQP_URL" : "RATCHET_NATS_URL");
    rt_bus_options o;
    rt_bus_options_from_config(&o, cfg, url);
    rt_bus *bus = NULL;
    rt_status s = rt_bus_open(&o, &bus, err);
    size_t per = batch ? batch : 500;
    rt_bus_out *out = calloc(per, sizeof *out);
    char **bodies = calloc(per, sizeof *bodies);
    for (size_t done = 0; s == RT_OK && done < count;) {
        size_t n = count - done < per ? count - done : per;
        for (size_t i = 0; i < n; i++) {
            const char *id = NULL;
            bodies[i] = make_body(arg, done + i, &id);
            out[i] = (rt_bus_out){.name = name, .id = id, .body = bodies[i], .len = strlen(bodies[i])};
        }
        /* A failed batch is sent again whole: the ids make the repeats harmless. */
        for (int attempt = 0; attempt < 90; attempt++) {
            s = rt_bus_publish(bus, out, n, 10000, err);
            if (s == RT_OK)
                break;
            rt_log(RT_LOG_WARN, NULL, "publish via %s failed (attempt %d), retrying: %s", via, attempt + 1, err->msg);
            struct timespec ts = {.tv_sec = 0, .tv_nsec = 500 * 1000000};
            nanosleep(&ts, NULL);
        }
        for (size_t i = 0; i < n; i++)
            free(bodies[i]);
        done += n;
    }
    free(out);
    free(bodies);
    rt_bus_free(bus);
    return s;
}
