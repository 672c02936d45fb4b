/* api_hooks.c — inbound webhooks (api_hooks.h): signature checks with OpenSSL's HMAC and
 * constant-time comparison, then the same group-commit ingest as POST /api/v1/events. */
#include "api_hooks.h"

#include <microhttpd.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "event.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#define STRIPE_SECRET_ENV "RATCHET_SECRET_STRIPE_WEBHOOK"
#define STRIPE_HEADER "Stripe-Signature"
#define GENERIC_HEADER "X-Ratchet-Signature"
#define SECRET_VAR_PREFIX "RATCHET_SECRET_HOOK_"
#define RESERVED_PREFIX "ratchet." /* the engine's events: approvals, alerts, manual runs, ... */
#define T_DIGITS_MAX 12
#define MAC_LEN 32

/* ------------------------------------------------------------------------------------
 * Signatures
 * ------------------------------------------------------------------------------------ */

const char *rt_hook_verdict_name(rt_hook_verdict v)
{
    switch (v) {
    case RT_HOOK_OK: return "ok";
    case RT_HOOK_MALFORMED: return "malformed";
    case RT_HOOK_BAD_SIGNATURE: return "bad_signature";
    case RT_HOOK_EXPIRED: return "expired";
    }
    return "unknown";
}

/* One "key=value" entry of a signature header, spaces around it trimmed. */
typedef struct sig_entry {
    const char *key, *val;
    size_t key_len, val_len;
    bool has_eq;
} sig_entry;

/* The next non-empty entry at *p (advanced past it); false at the end. */
static bool next_entry(const char **p, sig_entry *e)
{
    for (;;) {
        const char *s = *p;
        if (!*s)
            return false;
        const char *end = strchr(s, ',');
        if (!end)
            end = s + strlen(s);
        *p = *end ? end + 1 : end;
        while (s < end && (*s == ' ' || *s == '\t'))
            s++;
        const char *stop = end;
        while (stop > s && (stop[-1] == ' ' || stop[-1] == '\t'))
            stop--;
        if (s == stop)
            continue; /* "a,,b" or a trailing comma */
        const char *eq = memchr(s, '=', (size_t)(stop - s));
        e->has_eq = eq != NULL;
        e->key = s;
        e->key_len = eq ? (size_t)(eq - s) : (size_t)(stop - s);
        e->val = eq ? eq + 1 : stop;
        e->val_len = eq ? (size_t)(stop - eq - 1) : 0;
        return true;
    }
}

static bool key_is(const sig_entry *e, const char *k)
{
    return e->key_len == strlen(k) && memcmp(e->key, k, e->key_len) == 0;
}

/* 64 hex digits into 32 bytes; false for anything else. */
static bool hex_decode_mac(const char *s, size_t len, unsigned char out[MAC_LEN])
{
    if (len != 2 * MAC_LEN)
        return false;
    for (size_t i = 0; i < MAC_LEN; i++) {
        int hi = rt_hex_value(s[2 * i]), lo = rt_hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

/* HMAC-SHA256(secret, t "." body), streamed: the body is not copied. */
static bool signed_mac(const char *secret, const char *t, const void *body, size_t len, unsigned char out[MAC_LEN])
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t n = 0;
    bool ok = ctx && EVP_MAC_init(ctx, (const unsigned char *)secret, strlen(secret), params) == 1 &&
              EVP_MAC_update(ctx, (const unsigned char *)t, strlen(t)) == 1 &&
              EVP_MAC_update(ctx, (const unsigned char *)".", 1) == 1 &&
              EVP_MAC_update(ctx, (const unsigned char *)body, len) == 1 && EVP_MAC_final(ctx, out, &n, MAC_LEN) == 1 &&
              n == MAC_LEN;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ok;
}

rt_hook_verdict rt_hook_verify(const char *header, const void *body, size_t len, const char *secret, int64_t now_ms,
                               int64_t tolerance_ms, char *t_text, char *why, size_t why_len)
{
    t_text[0] = '\0';
    if (!header) {
        snprintf(why, why_len, "the header is missing");
        return RT_HOOK_MALFORMED;
    }
    /* First pass: the form (one t=, at least one v1=), nothing computed yet. */
    const char *p = header;
    const char *t = NULL;
    size_t t_len = 0, n_v1 = 0;
    sig_entry e;
    while (next_entry(&p, &e)) {
        if (!e.has_eq || e.key_len == 0) {
            snprintf(why, why_len, "every entry must be key=value");
            return RT_HOOK_MALFORMED;
        }
        if (key_is(&e, "t")) {
            if (t) {
                snprintf(why, why_len, "more than one t= entry");
                return RT_HOOK_MALFORMED;
            }
            t = e.val;
            t_len = e.val_len;
        } else if (key_is(&e, "v1")) {
            n_v1++;
        }
    }
    if (!t) {
        snprintf(why, why_len, "no t=<unix seconds> entry");
        return RT_HOOK_MALFORMED;
    }
    bool digits = t_len >= 1 && t_len <= T_DIGITS_MAX;
    for (size_t i = 0; digits && i < t_len; i++)
        digits = t[i] >= '0' && t[i] <= '9';
    if (!digits) {
        snprintf(why, why_len, "t= must be unix seconds (1 to %d digits)", T_DIGITS_MAX);
        return RT_HOOK_MALFORMED;
    }
    if (n_v1 == 0) {
        snprintf(why, why_len, "no v1=<hex HMAC-SHA256> entry");
        return RT_HOOK_MALFORMED;
    }
    char tbuf[RT_HOOK_T_MAX];
    memcpy(tbuf, t, t_len);
    tbuf[t_len] = '\0';

    /* Second pass: any v1 may match (a sender rotating its secret signs with both). */
    unsigned char want[MAC_LEN];
    if (!signed_mac(secret, tbuf, body, len, want)) {
        rt_log(RT_LOG_ERROR, NULL, "webhook: HMAC-SHA256 failed in OpenSSL");
        snprintf(why, why_len, "the signature could not be computed");
        return RT_HOOK_BAD_SIGNATURE;
    }
    bool match = false;
    p = header;
    while (next_entry(&p, &e)) {
        unsigned char got[MAC_LEN];
        if (key_is(&e, "v1") && hex_decode_mac(e.val, e.val_len, got) && CRYPTO_memcmp(got, want, MAC_LEN) == 0)
            match = true;
    }
    OPENSSL_cleanse(want, sizeof want);
    if (!match) {
        snprintf(why, why_len,
                 "no v1 signature matches the body (wrong secret, or the body was changed after signing)");
        return RT_HOOK_BAD_SIGNATURE;
    }
    int64_t t_ms = strtoll(tbuf, NULL, 10) * 1000;
    int64_t age = now_ms - t_ms;
    if (age > tolerance_ms || -age > tolerance_ms) {
        snprintf(why, why_len, "timestamp outside the tolerance: t is %lld s in the %s (tolerance %lld s)",
                 (long long)((age < 0 ? -age : age) / 1000), age < 0 ? "future" : "past",
                 (long long)(tolerance_ms / 1000));
        return RT_HOOK_EXPIRED;
    }
    memcpy(t_text, tbuf, t_len + 1);
    return RT_HOOK_OK;
}

bool rt_hook_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > RT_HOOK_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || c != '_'))
            return false;
    }
    return true;
}

void rt_hook_secret_var(const char *name, char *out, size_t len)
{
    size_t o = (size_t)snprintf(out, len, "%s", SECRET_VAR_PREFIX);
    for (const char *c = name; *c && o + 1 < len; c++)
        out[o++] = (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
    if (o < len)
        out[o] = '\0';
}

void rt_hook_derived_id(const char *name, const char *t_text, const void *body, size_t len, char *out, size_t out_len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
              EVP_DigestUpdate(ctx, t_text, strlen(t_text)) == 1 && EVP_DigestUpdate(ctx, ".", 1) == 1 &&
              EVP_DigestUpdate(ctx, body, len) == 1 && EVP_DigestFinal_ex(ctx, md, &md_len) == 1;
    EVP_MD_CTX_free(ctx);
    char hex[2 * EVP_MAX_MD_SIZE + 1] = "";
    for (unsigned i = 0; ok && i < md_len; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    if (!ok) /* out of memory in OpenSSL: a fresh id, so the delivery is at worst not de-duplicated */
        rt_uuid7(hex);
    snprintf(out, out_len, "hook:%s:%s", name, hex);
}

/* ------------------------------------------------------------------------------------
 * Handlers
 * ------------------------------------------------------------------------------------ */

/* What a delivery keeps while its event is in the batcher (r->state). */
typedef struct hook_state {
    rt_event *ev;
    rt_ingest_result res;
    char hook[RT_HOOK_NAME_MAX + 16]; /* the metric label: "stripe" or "generic/<name>" */
} hook_state;

static void hook_state_free(void *p)
{
    hook_state *hs = p;
    if (!hs)
        return;
    rt_ingest_results_clear(&hs->res, 1);
    rt_event_free(hs->ev);
    free(hs);
}

/* Answers a refused delivery: counted, logged at warn (never with the secret or the
 * signature), nothing stored. */
static void refuse(rt_api_req *r, const char *hook, const char *reason, int status, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void refuse(rt_api_req *r, const char *hook, const char *reason, int status, const char *fmt, ...)
{
    char msg[RT_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rt_metrics_counter_add("ratchet_webhook_refused_total", "hook", hook, "reason", reason, 1);
    rt_log(RT_LOG_WARN, NULL, "webhook %s: %s %s refused (%s, %d): %s", hook, r->method, r->safe_path, reason, status,
           msg);
    rt_api_reply_error(r, status, "%s", msg);
}

/* Checks the signature header; false after answering 400. */
static bool verified(rt_api_req *r, const char *hook, const char *header_name, const char *secret, char *t_text)
{
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, header_name);
    char why[256];
    rt_hook_verdict v = rt_hook_verify(h, r->body, r->body_len, secret, rt_now_ms(), r->cfg->webhook_tolerance_ms,
                                       t_text, why, sizeof why);
    if (v == RT_HOOK_OK)
        return true;
    if (v == RT_HOOK_MALFORMED)
        refuse(r, hook, rt_hook_verdict_name(v), 400, "%s: %s (expected t=<unix seconds>,v1=<hex HMAC-SHA256>)",
               header_name, why);
    else
        refuse(r, hook, rt_hook_verdict_name(v), 400, "%s: %s", header_name, why);
    return false;
}

/* The signed body as a JSON object; NULL after answering 400. */
static json_t *body_object(rt_api_req *r, const char *hook)
{
    json_error_t jerr;
    json_t *doc = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!doc) {
        refuse(r, hook, "bad_body", 400, "body is not valid JSON: line %d, column %d: %s", jerr.line, jerr.column,
               jerr.text);
        return NULL;
    }
    if (!json_is_object(doc)) {
        refuse(r, hook, "bad_body", 400, "$: expected a JSON object, not %s", rt_json_type_phrase(doc));
        json_decref(doc);
        return NULL;
    }
    return doc;
}

static void hook_done(rt_api_req *r)
{
    hook_state *hs = r->state;
    if (r->async_status != RT_OK) {
        rt_api_reply_status(r, &r->async_err); /* 503 when the database is away: the sender retries */
        return;
    }
    rt_metrics_counter_add("ratchet_webhook_received_total", "hook", hs->hook, 1);
    rt_log(RT_LOG_DEBUG, NULL, "webhook %s: event %s id %s%s", hs->hook, hs->ev->name, hs->ev->id,
           hs->res.duplicate ? " (duplicate)" : "");
    json_t *runs = hs->res.run_ids ? json_incref(hs->res.run_ids) : json_array();
    rt_api_reply_json(r, 200, json_pack("{s:s, s:s, s:b, s:o}", "id", hs->ev->id, "name", hs->ev->name, "duplicate",
                                        hs->res.duplicate, "runs", runs));
}

/* Builds the event from doc (taken) and hands it to the batcher; answers either way. */
static void ingest_doc(rt_api_req *r, const char *hook, json_t *doc)
{
    hook_state *hs = doc ? calloc(1, sizeof *hs) : NULL;
    if (!hs) {
        json_decref(doc);
        rt_api_reply_error(r, 500, "out of memory");
        return;
    }
    snprintf(hs->hook, sizeof hs->hook, "%s", hook);
    rt_error err;
    rt_status s = rt_event_from_json(doc, rt_now_ms(), &hs->ev, &err);
    json_decref(doc); /* the event holds its own references to what it shares */
    if (s != RT_OK) {
        hook_state_free(hs);
        if (s == RT_ERR_NOMEM)
            rt_api_reply_error(r, 500, "out of memory");
        else
            refuse(r, hook, "bad_body", 400, "%s", err.msg);
        return;
    }
    r->state = hs;
    r->state_free = hook_state_free;
    /* Stored by the batcher like POST /api/v1/events; hook_done answers after the commit. */
    r->transport = "webhook";
    rt_api_ingest_deferred(r, &hs->ev, 1, &hs->res, hook_done);
}

/* A non-empty string member; NULL otherwise. */
static const char *string_member(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s && *s ? s : NULL;
}

/* POST /hooks/stripe: a Stripe event object becomes the event stripe.<type> with Stripe's
 * id (a redelivery is a duplicate), ts from `created`, the whole object as data and actor
 * {type: service, id: stripe}. */
void rt_api_post_stripe_hook(rt_api_req *r)
{
    const char *hook = "stripe";
    const char *secret = getenv(STRIPE_SECRET_ENV);
    if (!secret || !*secret) {
        refuse(r, hook, "not_configured", 404, "no webhook named \"stripe\" is configured");
        return;
    }
    char t[RT_HOOK_T_MAX];
    if (!verified(r, hook, STRIPE_HEADER, secret, t))
        return;
    json_t *body = body_object(r, hook);
    if (!body)
        return;
    const char *id = string_member(body, "id"), *type = string_member(body, "type");
    if (!id || !type) {
        json_t *v = json_object_get(body, id ? "type" : "id");
        refuse(r, hook, "bad_body", 400, "$.%s: a Stripe event needs a non-empty string, not %s", id ? "type" : "id",
               v ? rt_json_type_phrase(v) : "nothing");
        json_decref(body);
        return;
    }
    char name[300];
    rt_error err;
    if ((size_t)snprintf(name, sizeof name, "stripe.%s", type) >= sizeof name ||
        rt_event_name_check(name, &err) != RT_OK) {
        refuse(r, hook, "bad_body", 400, "$.type: %s",
               strlen(type) >= sizeof name - 7 ? "too long for an event name" : err.msg);
        json_decref(body);
        return;
    }
    json_t *doc = json_pack("{s:s, s:s, s:O, s:{s:s, s:s}}", "name", name, "id", id, "data", body, "actor", "type",
                            "service", "id", "stripe");
    json_t *created = json_object_get(body, "created");
    if (doc && json_is_integer(created) && json_integer_value(created) > 0 &&
        json_integer_value(created) <= RT_EVENT_TS_MAX / 1000)
        json_object_set_new(doc, "ts", json_integer(json_integer_value(created) * 1000));
    json_decref(body); /* doc holds its own reference */
    ingest_doc(r, hook, doc);
}

/* Is body a ratchet event envelope rather than a payload? Yes when its "name" is a string
 * and every key is one an envelope has (name, id, ts, data, actor, entity_id, v, x-...). */
static bool is_envelope(json_t *body)
{
    static const char *const keys[] = {"name", "id", "ts", "data", "actor", "entity_id", "v", NULL};
    if (!json_is_string(json_object_get(body, "name")))
        return false;
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) {
        bool known = strncmp(k, "x-", 2) == 0;
        for (size_t i = 0; !known && keys[i]; i++)
            known = strcmp(k, keys[i]) == 0;
        if (!known)
            return false;
    }
    return true;
}

/* POST /hooks/generic/{name}: an envelope (is_envelope) is stored as it is; any other
 * object becomes the data of the event hook.<name>. The id is the envelope's, else
 * rt_hook_derived_id: only signed bytes choose it (an id from a header could be changed
 * by whoever replays a captured delivery); the actor, when the body names none,
 * {type: service, id: hook:<name>}. */
void rt_api_post_generic_hook(rt_api_req *r)
{
    const char *name = r->params[0];
    const char *secret = NULL;
    if (!rt_hook_name_valid(name)) {
        rt_qbuf q;
        refuse(r, "generic", "not_configured", 404,
               "%s is not a hook name: names are 1 to %d of [a-z0-9_], starting with a letter or digit, so that "
               "each has its own RATCHET_SECRET_HOOK_<NAME>",
               rt_quote(&q, name), RT_HOOK_NAME_MAX);
        return;
    }
    char var[96];
    rt_hook_secret_var(name, var, sizeof var);
    secret = getenv(var);
    if (!secret || !*secret) {
        rt_qbuf q;
        /* label "generic": the name is the caller's, and unknown names must not grow /metrics */
        refuse(r, "generic", "not_configured", 404, "no webhook named %s is configured", rt_quote(&q, name));
        return;
    }
    char hook[RT_HOOK_NAME_MAX + 16];
    snprintf(hook, sizeof hook, "generic/%s", name);
    char t[RT_HOOK_T_MAX];
    if (!verified(r, hook, GENERIC_HEADER, secret, t))
        return;
    json_t *body = body_object(r, hook);
    if (!body)
        return;
    char id[RT_EVENT_ID_MAX + 1], actor_id[RT_HOOK_NAME_MAX + 8];
    rt_hook_derived_id(name, t, r->body, r->body_len, id, sizeof id);
    snprintf(actor_id, sizeof actor_id, "hook:%s", name);
    json_t *doc;
    if (is_envelope(body)) {
        const char *ev_name = json_string_value(json_object_get(body, "name"));
        if (!strncasecmp(ev_name, RESERVED_PREFIX, strlen(RESERVED_PREFIX))) {
            rt_qbuf q;
            refuse(r, hook, "reserved_name", 400,
                   "$.name: \"ratchet.\" names are the engine's own (%s): a webhook cannot send them",
                   rt_quote(&q, ev_name));
            json_decref(body);
            return;
        }
        doc = body;
        json_t *own = json_object_get(doc, "id");
        if (!own || json_is_null(own))
            json_object_set_new(doc, "id", json_string(id));
        /* The hook speaks for itself (docs/approvals-and-security.md "Who requested a run"): its actor.id is
         * hook:<name>, so that no sender can name a person as the requester of a run. */
        json_t *actor = json_object_get(doc, "actor");
        json_t *aid = json_object_get(actor, "id");
        if (!actor || json_is_null(actor)) {
            json_object_set_new(doc, "actor", json_pack("{s:s, s:s}", "type", "service", "id", actor_id));
        } else if (json_is_object(actor) && (!aid || json_is_null(aid))) {
            json_object_set_new(actor, "id", json_string(actor_id));
        } else if (json_is_string(aid) && strcmp(json_string_value(aid), actor_id) != 0) {
            rt_qbuf q;
            refuse(r, hook, "bad_body", 400, "$.actor.id: a webhook's events speak for \"%s\", not %s", actor_id,
                   rt_quote(&q, json_string_value(aid)));
            json_decref(doc);
            return;
        }
    } else {
        char ev_name[RT_HOOK_NAME_MAX + 8];
        snprintf(ev_name, sizeof ev_name, "hook.%s", name);
        doc = json_pack("{s:s, s:s, s:O, s:{s:s, s:s}}", "name", ev_name, "id", id, "data", body, "actor", "type",
                        "service", "id", actor_id);
        json_decref(body); /* doc holds its own reference */
    }
    ingest_doc(r, hook, doc);
}
