/* otel.c — OTLP/HTTP JSON span export: a bounded queue filled by any thread, drained by
 * one export thread in batches (the OpenTelemetry batch span processor's shape). The
 * collector's headers are secrets: they go on the wire only, never into a log or error. */
#include "otel.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "curl_once.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

typedef enum { S_ALWAYS_ON, S_ALWAYS_OFF, S_RATIO } root_sampler;

/* The exporter is process-wide, like the metrics registry: spans come from workers,
 * consumers and API threads that share no context object. */
static struct {
    bool on;
    char *url;
    struct curl_slist *headers; /* Content-Type and OTEL_EXPORTER_OTLP_HEADERS */
    json_t *resource;           /* OTLP Resource */
    root_sampler root;
    bool parent_based;
    uint64_t ratio_bound;       /* traceidratio: sampled when the id's low 8 bytes < this */
    bool ratio_all;
    int cap, batch, delay_ms, timeout_ms;

    pthread_mutex_t mu; /* guards the ring and stop */
    pthread_cond_t cv;
    json_t **ring;
    int head, n;
    bool stop;
    pthread_t thread;
    int64_t last_warn_ms;
} X = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

bool rt_otel_enabled(void)
{
    return X.on;
}

/* ---- settings ----------------------------------------------------------------------- */

static int hexval(char c)
{
    return rt_hex_value(c);
}

/* The URL for logs: user and password (if any) left out. */
static void url_safe(const char *url, char *out, size_t n)
{
    const char *scheme = strstr(url, "://");
    const char *host = scheme ? scheme + 3 : url;
    const char *at = strchr(host, '@'), *slash = strchr(host, '/');
    if (at && (!slash || at < slash))
        snprintf(out, n, "%.*s%s", (int)(host - url), url, at + 1);
    else
        snprintf(out, n, "%s", url);
}

/* Percent-decodes s[0..len) into a new string; NULL on a bad escape or a NUL. */
static char *pct_decode(const char *s, size_t len)
{
    char *out = malloc(len + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(out);
                return NULL;
            }
            *o++ = (char)(hi << 4 | lo);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

static char *trim_dup(const char *s, size_t len)
{
    while (len && (*s == ' ' || *s == '\t'))
        s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    return strndup(s, len);
}

typedef rt_status (*pair_fn)(void *arg, const char *key, const char *value, rt_error *err);

/* "k=v,k2=v2" (W3C Baggage-like, values URL-encoded), as the OTEL_* lists are written.
 * what names the setting in errors; show_values false keeps values out of them. */
static rt_status parse_pairs(const char *list, const char *what, pair_fn fn, void *arg, rt_error *err)
{
    const char *p = list;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        char *key = eq ? trim_dup(p, (size_t)(eq - p)) : NULL;
        char *raw = eq ? trim_dup(eq + 1, len - (size_t)(eq - p) - 1) : NULL;
        char *value = raw ? pct_decode(raw, strlen(raw)) : NULL;
        rt_status s = RT_OK;
        if (len == 0 || (eq == NULL && strspn(p, " \t") == len)) {
            /* an empty member: allowed, as in the specification's examples */
        } else if (!key || !*key || !value) {
            s = rt_error_set(err, RT_ERR_INVALID, "%s: member %d is not key=value (URL-encoded)", what,
                             (int)(p - list));
        } else {
            s = fn(arg, key, value, err);
        }
        free(key);
        free(raw);
        free(value);
        if (s != RT_OK)
            return s;
        p = end ? end + 1 : NULL;
    }
    return RT_OK;
}

static rt_status add_header(void *arg, const char *key, const char *value, rt_error *err)
{
    (void)arg;
    for (const char *k = key; *k; k++) /* an HTTP token */
        if (!(((*k | 0x20) >= 'a' && (*k | 0x20) <= 'z') || (*k >= '0' && *k <= '9') || strchr("!#$%&'*+-.^_`|~", *k)))
            return rt_error_set(err, RT_ERR_INVALID, "OTEL_EXPORTER_OTLP_HEADERS: \"%.64s\" is not a header name", key);
    for (const char *v = value; *v; v++)
        if (*v == '\r' || *v == '\n')
            return rt_error_set(err, RT_ERR_INVALID,
                                "OTEL_EXPORTER_OTLP_HEADERS: the value of %.64s holds a line break", key);
    size_t n = strlen(key) + strlen(value) + 3;
    char *line = malloc(n);
    if (!line)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    snprintf(line, n, "%s: %s", key, value);
    struct curl_slist *grown = curl_slist_append(X.headers, line);
    free(line);
    if (!grown)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    X.headers = grown;
    return RT_OK;
}

static json_t *attr(const char *key, json_t *value /* stolen */)
{
    json_t *v = NULL;
    if (json_is_string(value))
        v = json_pack("{s:O}", "stringValue", value);
    else if (json_is_integer(value)) {
        char buf[32];
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(value));
        v = json_pack("{s:s}", "intValue", buf); /* int64 is a string in OTLP JSON */
    } else if (json_is_boolean(value))
        v = json_pack("{s:b}", "boolValue", json_is_true(value));
    else if (json_is_real(value))
        v = json_pack("{s:f}", "doubleValue", json_real_value(value));
    json_decref(value);
    return v ? json_pack("{s:s, s:o}", "key", key, "value", v) : NULL;
}

static rt_status add_resource_attr(void *arg, const char *key, const char *value, rt_error *err)
{
    json_t *attrs = arg;
    json_object_set_new(attrs, key, json_string(value));
    return RT_OK;
}

static json_t *attr_list(json_t *obj)
{
    json_t *list = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        json_t *a = attr(k, json_incref(v));
        if (a)
            json_array_append_new(list, a);
    }
    return list;
}

static rt_status parse_sampler(const rt_config *cfg, rt_error *err)
{
    const char *s = cfg->otel_sampler ? cfg->otel_sampler : "parentbased_always_on";
    X.parent_based = strncmp(s, "parentbased_", 12) == 0;
    const char *root = X.parent_based ? s + 12 : s;
    if (!strcmp(root, "always_on"))
        X.root = S_ALWAYS_ON;
    else if (!strcmp(root, "always_off"))
        X.root = S_ALWAYS_OFF;
    else if (!strcmp(root, "traceidratio"))
        X.root = S_RATIO;
    else
        return rt_error_set(err, RT_ERR_INVALID,
                            "OTEL_TRACES_SAMPLER=%.64s: expected always_on, always_off, traceidratio, "
                            "parentbased_always_on, parentbased_always_off or parentbased_traceidratio",
                            s);
    double ratio = 1.0;
    if (X.root == S_RATIO && cfg->otel_sampler_arg && *cfg->otel_sampler_arg) {
        char *end;
        errno = 0;
        ratio = strtod(cfg->otel_sampler_arg, &end);
        if (errno || *end || !(ratio >= 0.0 && ratio <= 1.0))
            return rt_error_set(err, RT_ERR_INVALID, "OTEL_TRACES_SAMPLER_ARG=%.64s: expected a ratio from 0 to 1",
                                cfg->otel_sampler_arg);
    }
    X.ratio_all = ratio >= 1.0;
    X.ratio_bound = (uint64_t)ldexp(ratio, 64) ;
    if (ratio >= 1.0)
        X.ratio_bound = UINT64_MAX;
    return RT_OK;
}

bool rt_otel_sample(const rt_trace_ctx *parent, const uint8_t trace_id[16])
{
    if (parent && X.parent_based)
        return (parent->flags & RT_TRACE_FLAG_SAMPLED) != 0;
    switch (X.root) {
    case S_ALWAYS_ON: return true;
    case S_ALWAYS_OFF: return false;
    case S_RATIO: {
        if (X.ratio_all)
            return true;
        uint64_t low = 0;
        for (int i = 8; i < 16; i++)
            low = low << 8 | trace_id[i];
        return low < X.ratio_bound;
    }
    }
    return false;
}

/* ---- the request body ----------------------------------------------------------------- */

json_t *rt_otel_request_json(json_t *const *spans, size_t n)
{
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append(list, spans[i]);
    return json_pack("{s:[{s:O, s:[{s:{s:s, s:s}, s:o}]}]}", "resourceSpans", "resource",
                     X.resource ? X.resource : json_pack("{s:[]}", "attributes"), "scopeSpans", "scope", "name",
                     "ratchet", "version", RATCHET_VERSION, "spans", list);
}

static json_t *span_json(const rt_span *s)
{
    char tid[33], sid[17], pid[17], start[32], end[32];
    rt_trace_hex(s->trace_id, 16, tid);
    rt_trace_hex(s->span_id, 8, sid);
    snprintf(start, sizeof start, "%lld000000", (long long)s->start_ms);
    snprintf(end, sizeof end, "%lld000000", (long long)(s->end_ms >= s->start_ms ? s->end_ms : s->start_ms));
    json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s}", "traceId", tid, "spanId", sid, "name",
                          s->name ? s->name : "span", "kind", (int)s->kind, "startTimeUnixNano", start,
                          "endTimeUnixNano", end);
    if (!j)
        return NULL;
    if (s->has_parent) {
        rt_trace_hex(s->parent_span_id, 8, pid);
        json_object_set_new(j, "parentSpanId", json_string(pid));
    }
    if (s->trace_state && *s->trace_state)
        json_object_set_new(j, "traceState", json_string(s->trace_state));
    if (s->attributes)
        json_object_set_new(j, "attributes", attr_list(s->attributes));
    if (s->error)
        json_object_set_new(j, "status", json_pack("{s:i, s:s}", "code", 2, "message",
                                                   s->error_msg ? s->error_msg : ""));
    return j;
}

/* ---- the queue and the export thread ---------------------------------------------------- */

static void dropped(const char *reason, size_t n)
{
    rt_metrics_counter_add("ratchet_otel_spans_dropped_total", "reason", reason, (uint64_t)n);
}

void rt_otel_emit(const rt_span *span)
{
    if (!X.on)
        return;
    json_t *j = span_json(span);
    if (!j)
        return;
    pthread_mutex_lock(&X.mu);
    bool full = X.n >= X.cap || X.stop;
    if (!full) {
        X.ring[(X.head + X.n) % X.cap] = j;
        X.n++;
        if (X.n >= X.batch)
            pthread_cond_signal(&X.cv);
    }
    pthread_mutex_unlock(&X.mu);
    if (full) {
        json_decref(j);
        dropped("queue_full", 1);
    }
}

static size_t discard_body(void *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

/* One POST. The collector's answer is not logged (it may echo headers); only its status. */
static void export_batch(CURL *curl, json_t **spans, size_t n)
{
    json_t *req = rt_otel_request_json(spans, n);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    long code = 0;
    CURLcode rc = CURLE_OUT_OF_MEMORY;
    if (body) {
        curl_easy_reset(curl);
        curl_easy_setopt(curl, CURLOPT_URL, X.url);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, X.headers);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)X.timeout_ms);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)X.timeout_ms);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_body);
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
        rc = curl_easy_perform(curl);
        if (rc == CURLE_OK)
            curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    }
    free(body);
    if (rc == CURLE_OK && code >= 200 && code < 300) {
        rt_metrics_counter_add("ratchet_otel_spans_exported_total", (uint64_t)n);
        return;
    }
    dropped("export_failed", n);
    char where[512];
    url_safe(X.url, where, sizeof where);
    int64_t now = rt_mono_ms();
    if (now - X.last_warn_ms >= 60000 || X.last_warn_ms == 0) { /* at most once a minute */
        X.last_warn_ms = now;
        if (rc != CURLE_OK)
            rt_log(RT_LOG_WARN, NULL, "otel: %zu span(s) dropped: the collector at %s: %s", n, where,
                   curl_easy_strerror(rc));
        else
            rt_log(RT_LOG_WARN, NULL, "otel: %zu span(s) dropped: the collector at %s answered HTTP %ld", n, where,
                   code);
    }
}

static void *export_main(void *arg)
{
    (void)arg;
    CURL *curl = curl_easy_init();
    json_t **batch = calloc((size_t)X.batch, sizeof *batch);
    int64_t stop_deadline = 0;
    for (;;) {
        pthread_mutex_lock(&X.mu);
        if (!X.stop && X.n < X.batch) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += X.delay_ms / 1000;
            ts.tv_nsec += (long)(X.delay_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&X.cv, &X.mu, &ts);
        }
        size_t k = 0;
        while (X.n > 0 && k < (size_t)X.batch) {
            batch[k++] = X.ring[X.head];
            X.head = (X.head + 1) % X.cap;
            X.n--;
        }
        bool stop = X.stop;
        pthread_mutex_unlock(&X.mu);
        if (stop && !stop_deadline)
            stop_deadline = rt_mono_ms() + X.timeout_ms;
        if (k > 0 && curl && batch) {
            if (stop && rt_mono_ms() > stop_deadline)
                dropped("export_failed", k);
            else
                export_batch(curl, batch, k);
        } else if (k > 0) {
            dropped("export_failed", k);
        }
        for (size_t i = 0; i < k; i++)
            json_decref(batch[i]);
        if (stop && k == 0)
            break;
    }
    free(batch);
    curl_easy_cleanup(curl);
    return NULL;
}

static void reset(void)
{
    free(X.url);
    X.url = NULL;
    curl_slist_free_all(X.headers);
    X.headers = NULL;
    json_decref(X.resource);
    X.resource = NULL;
    free(X.ring);
    X.ring = NULL;
    X.head = X.n = 0;
    X.on = false;
}

static rt_status build_url(const rt_config *cfg, rt_error *err)
{
    const char *base = cfg->otel_traces_endpoint && *cfg->otel_traces_endpoint ? cfg->otel_traces_endpoint : NULL;
    if (base) {
        X.url = strdup(base);
    } else {
        size_t n = strlen(cfg->otel_endpoint);
        while (n > 0 && cfg->otel_endpoint[n - 1] == '/')
            n--;
        X.url = malloc(n + sizeof "/v1/traces");
        if (X.url)
            snprintf(X.url, n + sizeof "/v1/traces", "%.*s/v1/traces", (int)n, cfg->otel_endpoint);
    }
    if (!X.url)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    if (strncmp(X.url, "http://", 7) != 0 && strncmp(X.url, "https://", 8) != 0)
        return rt_error_set(err, RT_ERR_INVALID, "%s: expected an http:// or https:// URL",
                            base ? "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" : "OTEL_EXPORTER_OTLP_ENDPOINT");
    return RT_OK;
}

static rt_status configure(const rt_config *cfg, rt_error *err)
{
    rt_status s = build_url(cfg, err);
    if (s == RT_OK)
        s = parse_sampler(cfg, err);
    X.headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (s == RT_OK && cfg->otel_headers)
        s = parse_pairs(cfg->otel_headers, "OTEL_EXPORTER_OTLP_HEADERS", add_header, NULL, err);
    json_t *attrs = json_object();
    if (s == RT_OK && cfg->otel_resource_attributes)
        s = parse_pairs(cfg->otel_resource_attributes, "OTEL_RESOURCE_ATTRIBUTES", add_resource_attr, attrs, err);
    if (cfg->otel_service_name && *cfg->otel_service_name)
        json_object_set_new(attrs, "service.name", json_string(cfg->otel_service_name));
    else if (!json_object_get(attrs, "service.name"))
        json_object_set_new(attrs, "service.name", json_string("ratchet"));
    if (!json_object_get(attrs, "service.version"))
        json_object_set_new(attrs, "service.version", json_string(RATCHET_VERSION));
    json_object_set_new(attrs, "telemetry.sdk.name", json_string("ratchet"));
    json_object_set_new(attrs, "telemetry.sdk.language", json_string("c"));
    X.resource = json_pack("{s:o}", "attributes", attr_list(attrs));
    json_decref(attrs);
    X.cap = cfg->otel_queue_size > 0 ? cfg->otel_queue_size : 2048;
    X.batch = cfg->otel_batch_size > 0 ? cfg->otel_batch_size : 512;
    if (X.batch > X.cap)
        X.batch = X.cap;
    X.delay_ms = cfg->otel_schedule_delay_ms > 0 ? cfg->otel_schedule_delay_ms : 1000;
    X.timeout_ms = cfg->otel_export_timeout_ms > 0 ? cfg->otel_export_timeout_ms : 10000;
    X.ring = calloc((size_t)X.cap, sizeof *X.ring);
    if (s == RT_OK && (!X.ring || !X.headers || !X.resource))
        s = rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    return s;
}

rt_status rt_otel_start(const rt_config *cfg, rt_error *err)
{
    if (X.on)
        return RT_OK;
    bool have = (cfg->otel_endpoint && *cfg->otel_endpoint) ||
                (cfg->otel_traces_endpoint && *cfg->otel_traces_endpoint);
    if (!have) {
        /* The sampler still decides what ratchet propagates (traceparent flags). */
        return parse_sampler(cfg, err);
    }
    rt_status s = configure(cfg, err);
    if (s != RT_OK) {
        reset();
        return s;
    }
    if (rt_curl_init() != CURLE_OK) {
        reset();
        return rt_error_set(err, RT_ERR_INTERNAL, "otel: libcurl failed to initialise");
    }
    X.stop = false;
    X.last_warn_ms = 0;
    if (pthread_create(&X.thread, NULL, export_main, NULL) != 0) {
        reset();
        return rt_error_set(err, RT_ERR_INTERNAL, "otel: cannot start the export thread");
    }
    X.on = true;
    char where[512];
    url_safe(X.url, where, sizeof where);
    rt_log(RT_LOG_INFO, NULL, "otel: exporting spans to %s (OTLP/HTTP JSON)", where);
    return RT_OK;
}

void rt_otel_stop(void)
{
    if (!X.on)
        return;
    pthread_mutex_lock(&X.mu);
    X.stop = true;
    pthread_cond_signal(&X.cv);
    pthread_mutex_unlock(&X.mu);
    pthread_join(X.thread, NULL);
    reset();
}
