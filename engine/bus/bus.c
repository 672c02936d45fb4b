/* bus.c — what both transports share: options and their defaults, opening a bus by URL
 * scheme, event-name pattern rules and their AMQP translation, URL redaction. */
#include "bus.h"

#include <nats/nats.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "workflow.h"

#define DEFAULT_PREFETCH 256
#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_MAX_ACK_PENDING 1024
#define DEFAULT_ACK_WAIT_MS 30000
#define DEFAULT_STREAM_MAX_AGE_MS (7LL * 24 * 3600 * 1000)

void rt_bus_options_init(rt_bus_options *o)
{
    memset(o, 0, sizeof *o);
    o->jetstream = true;
    o->tls.verify = true;
}

void rt_bus_options_from_config(rt_bus_options *o, const rt_config *cfg, const char *url)
{
    rt_bus_options_init(o);
    o->url = url;
    o->tls.ca_file = cfg->tls_ca;
    o->tls.cert_file = cfg->tls_cert;
    o->tls.key_file = cfg->tls_key;
    o->tls.verify = cfg->tls_verify;
    o->prefetch = cfg->amqp_prefetch;
    o->jetstream = cfg->nats_jetstream;
    o->max_ack_pending = cfg->nats_max_ack_pending;
    o->ack_wait_ms = cfg->nats_ack_wait_ms;
    o->stream_max_age_ms = cfg->nats_stream_max_age_ms;
    o->stream = cfg->nats_stream;
    o->subject_prefix = cfg->nats_subject_prefix;
    o->consumer = cfg->nats_consumer;
    o->queue = cfg->amqp_queue;
}

static bool scheme_is(const char *url, const char *scheme)
{
    size_t n = strlen(scheme);
    return strncasecmp(url, scheme, n) == 0 && strncmp(url + n, "://", 3) == 0;
}

rt_status rt_bus_open(const rt_bus_options *o, rt_bus **out, rt_error *err)
{
    *out = NULL;
    if (!o || !o->url || !*o->url)
        return rt_error_set(err, RT_ERR_INVALID, "broker URL is empty");
    const rt_bus_type *type;
    if (scheme_is(o->url, "amqp") || scheme_is(o->url, "amqps")) {
        type = &rt_bus_amqp_type;
    } else if (scheme_is(o->url, "nats") || scheme_is(o->url, "tls")) {
        type = &rt_bus_nats_type;
    } else {
        char safe[256];
        rt_bus_url_redact(o->url, safe, sizeof safe);
        return rt_error_set(err, RT_ERR_INVALID,
                            "broker URL %s: unknown scheme (expected amqp://, amqps://, nats:// or tls://)", safe);
    }
    rt_bus *b = NULL;
    rt_status st = type->create(&b, err);
    if (st != RT_OK)
        return st;
    st = rt_bus_init_common(b, type, o, err);
    if (st != RT_OK) {
        type->free(b);
        return st;
    }
    *out = b;
    return RT_OK;
}

void rt_bus_free(rt_bus *b)
{
    if (b)
        b->type->free(b);
}

static char *dup_or(const char *s, const char *def)
{
    const char *v = (s && *s) ? s : def;
    return v ? strdup(v) : NULL;
}

/* Stream, durable and queue-group names: JetStream refuses '.', '*', '>' and spaces. */
static bool nats_name_ok(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s == '.' || *s == '*' || *s == '>' || *s == ' ' || *s == '\t' || (unsigned char)*s < 0x20)
            return false;
    }
    return true;
}

rt_status rt_bus_init_common(rt_bus *b, const rt_bus_type *type, const rt_bus_options *o, rt_error *err)
{
    b->type = type;
    b->opts = *o;
    b->url = strdup(o->url);
    b->url_safe = malloc(strlen(o->url) + 1);
    if (b->url_safe)
        rt_bus_url_redact(o->url, b->url_safe, strlen(o->url) + 1);
    rt_bus_options *p = &b->opts;
    p->url = b->url;
    p->tls.ca_file = dup_or(o->tls.ca_file, NULL);
    p->tls.cert_file = dup_or(o->tls.cert_file, NULL);
    p->tls.key_file = dup_or(o->tls.key_file, NULL);
    p->stream = dup_or(o->stream, RT_BUS_NATS_STREAM);
    p->subject_prefix = dup_or(o->subject_prefix, RT_BUS_NATS_PREFIX);
    p->consumer = dup_or(o->consumer, RT_BUS_NATS_CONSUMER);
    p->queue = dup_or(o->queue, RT_BUS_AMQP_QUEUE);
    p->client_name = dup_or(o->client_name, "ratchet");
    if (!b->url || !b->url_safe || !p->stream || !p->subject_prefix || !p->consumer || !p->queue ||
        !p->client_name)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    if (p->prefetch <= 0)
        p->prefetch = DEFAULT_PREFETCH;
    if (p->prefetch > 65535)
        p->prefetch = 65535;
    if (p->connect_timeout_ms <= 0)
        p->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    if (p->max_ack_pending <= 0)
        p->max_ack_pending = DEFAULT_MAX_ACK_PENDING;
    if (p->ack_wait_ms <= 0)
        p->ack_wait_ms = DEFAULT_ACK_WAIT_MS;
    if (p->stream_max_age_ms == 0)
        p->stream_max_age_ms = DEFAULT_STREAM_MAX_AGE_MS;
    if (!nats_name_ok(p->stream))
        return rt_error_set(err, RT_ERR_INVALID, "NATS stream name '%s' must not contain '.', '*', '>' or spaces",
                            p->stream);
    if (!nats_name_ok(p->consumer))
        return rt_error_set(err, RT_ERR_INVALID,
                            "NATS consumer name '%s' must not contain '.', '*', '>' or spaces", p->consumer);
    rt_error perr;
    if (rt_bus_pattern_check(p->subject_prefix, &perr) != RT_OK || strchr(p->subject_prefix, '*') ||
        strchr(p->subject_prefix, '>'))
        return rt_error_set(err, RT_ERR_INVALID,
                            "NATS subject prefix '%s' must be dot-separated tokens without wildcards",
                            p->subject_prefix);
    if ((p->tls.cert_file == NULL) != (p->tls.key_file == NULL))
        return rt_error_set(err, RT_ERR_INVALID, "TLS client certificate and key must be given together "
                                                 "(RATCHET_TLS_CERT and RATCHET_TLS_KEY)");
    return RT_OK;
}

void rt_bus_free_common(rt_bus *b)
{
    free(b->url);
    free(b->url_safe);
    free((char *)b->opts.tls.ca_file);
    free((char *)b->opts.tls.cert_file);
    free((char *)b->opts.tls.key_file);
    free((char *)b->opts.stream);
    free((char *)b->opts.subject_prefix);
    free((char *)b->opts.consumer);
    free((char *)b->opts.queue);
    free((char *)b->opts.client_name);
    memset(b, 0, sizeof *b);
}

/* --- patterns ------------------------------------------------------------------------- */

rt_status rt_bus_pattern_check(const char *pattern, rt_error *err)
{
    return rt_event_pattern_check(pattern, err); /* one checker for workflows, brokers and steps */
}

rt_status rt_bus_pattern_to_amqp(const char *pattern, char *buf, size_t len, rt_error *err)
{
    rt_status st = rt_bus_pattern_check(pattern, err);
    if (st != RT_OK)
        return st;
    size_t n = strlen(pattern);
    if (n + 1 > len)
        return rt_error_set(err, RT_ERR_INVALID, "event pattern '%s' is too long", pattern);
    for (size_t i = 0; i <= n; i++) {
        /* '>' can only be a whole last token here (checked above). */
        buf[i] = pattern[i] == '>' ? '#' : pattern[i];
    }
    return RT_OK;
}

bool rt_bus_pattern_match(const char *pattern, const char *name)
{
    const char *p = pattern, *s = name;
    for (;;) {
        const char *pe = strchr(p, '.');
        size_t pl = pe ? (size_t)(pe - p) : strlen(p);
        if (pl == 1 && *p == '>')
            return *s != '\0'; /* one or more tokens */
        if (!*s)
            return false;
        const char *se = strchr(s, '.');
        size_t sl = se ? (size_t)(se - s) : strlen(s);
        if (sl == 0)
            return false;
        if (!(pl == 1 && *p == '*') && (pl != sl || memcmp(p, s, pl) != 0))
            return false;
        if (!pe || !se)
            return !pe && !se;
        p = pe + 1;
        s = se + 1;
    }
}

/* --- URLs ----------------------------------------------------------------------------- */

void rt_bus_url_redact(const char *url, char *buf, size_t len)
{
    if (!len)
        return;
    buf[0] = '\0';
    if (!url)
        return;
    /* A NATS URL may list several servers separated by commas: redact each. */
    size_t o = 0;
    const char *p = url;
    while (*p && o + 1 < len) {
        const char *end = strchr(p, ',');
        size_t seg = end ? (size_t)(end - p) : strlen(p);
        const char *scheme_end = NULL;
        for (const char *q = p; q + 2 < p + seg; q++) {
            if (q[0] == ':' && q[1] == '/' && q[2] == '/') {
                scheme_end = q + 3;
                break;
            }
        }
        const char *host = scheme_end ? scheme_end : p;
        const char *auth_end = host;
        const char *at = NULL;
        while (auth_end < p + seg && *auth_end != '/' && *auth_end != '?' && *auth_end != '#') {
            if (*auth_end == '@')
                at = auth_end;
            auth_end++;
        }
        const char *parts[2][2] = {{p, host}, {at ? at + 1 : host, p + seg}};
        for (int k = 0; k < 2; k++) {
            for (const char *c = parts[k][0]; c < parts[k][1] && o + 1 < len; c++)
                buf[o++] = *c;
        }
        if (!end)
            break;
        if (o + 1 < len)
            buf[o++] = ',';
        p = end + 1;
    }
    buf[o] = '\0';
}

void rt_bus_shutdown(void)
{
    /* Waits for the library's threads to exit so that no allocation is left behind. */
    nats_CloseAndWait(5000);
}
