/* approval.c — approval gates: keys and signatures (OpenSSL EVP, Ed25519), the canonical
 * decision, the checks a decision passes in order, and the run transitions it makes. The
 * SQL is in store_approval.c; every decision and refusal is an audit record. */
#include "approval.h"
#include "run_trace.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admission.h"
#include "audit.h"
#include "gate.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "refusal.h"
#include "store_approval.h"
#include "util.h"

#define APPROVERS_MAX_BYTES (1u << 20)
#define COMMENT_MAX 4000

/* ---------- settings ---------- */

static pthread_mutex_t settings_mu = PTHREAD_MUTEX_INITIALIZER;
static bool settings_set;
static char *settings_file;
static int64_t settings_skew_ms = RT_APPROVAL_SKEW_DEFAULT_MS;

rt_status rt_approval_configure(const char *approvers_file, int64_t skew_ms, rt_error *err)
{
    pthread_mutex_lock(&settings_mu);
    free(settings_file);
    settings_file = approvers_file && *approvers_file ? strdup(approvers_file) : NULL;
    settings_skew_ms = skew_ms > 0 ? skew_ms : RT_APPROVAL_SKEW_DEFAULT_MS;
    settings_set = true;
    pthread_mutex_unlock(&settings_mu);
    if (!approvers_file || !*approvers_file)
        return RT_OK;
    rt_approvers *a = NULL;
    rt_status s = rt_approvers_load(approvers_file, &a, err);
    rt_approvers_free(a);
    if (s != RT_OK) {
        rt_error_prefix(err, "RATCHET_APPROVERS");
        err->code = RT_ERR_INVALID;
        return RT_ERR_INVALID;
    }
    return RT_OK;
}

/* *file: a copy the caller frees, or NULL when no approvers file is configured. */
static void settings_get(char **file, int64_t *skew_ms)
{
    pthread_mutex_lock(&settings_mu);
    if (settings_set) {
        *file = settings_file ? strdup(settings_file) : NULL;
        *skew_ms = settings_skew_ms;
        pthread_mutex_unlock(&settings_mu);
        return;
    }
    pthread_mutex_unlock(&settings_mu);
    const char *f = getenv("RATCHET_APPROVERS");
    *file = f && *f ? strdup(f) : NULL;
    *skew_ms = RT_APPROVAL_SKEW_DEFAULT_MS;
    const char *sk = getenv("RATCHET_APPROVAL_SKEW");
    rt_error e;
    int64_t ms;
    if (sk && *sk && rt_duration_parse(sk, &ms, &e) == RT_OK)
        *skew_ms = ms;
}

/* ---------- small helpers ---------- */

static rt_status ssl_error(rt_error *err, const char *what)
{
    char buf[256] = "";
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return rt_error_set(err, RT_ERR_INTERNAL, "%s%s%s", what, buf[0] ? ": " : "", buf);
}

bool rt_approver_id_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 128 || !isalnum((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!isalnum((unsigned char)c) && c != '.' && c != '_' && c != '-' && c != '@' && c != '+')
            return false;
    }
    return true;
}

/* Strict standard base64 of exactly want bytes (with padding). */
static bool b64_decode(const char *s, unsigned char *out, size_t want)
{
    size_t len = s ? strlen(s) : 0;
    if (len != 4 * ((want + 2) / 3))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool pad = c == '=' && i >= len - 2;
        if (!isalnum((unsigned char)c) && c != '+' && c != '/' && !pad)
            return false;
    }
    unsigned char buf[128];
    if (len / 4 * 3 > sizeof buf)
        return false;
    int n = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)len);
    if (n < 0)
        return false;
    size_t pads = (len >= 1 && s[len - 1] == '=') + (len >= 2 && s[len - 2] == '=');
    if ((size_t)n - pads != want)
        return false;
    memcpy(out, buf, want);
    return true;
}

static void b64_encode(const unsigned char *in, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

/* "type:id" of an event's actor (buf >= 256). */
static const char *actor_label(const json_t *actor, char *buf, size_t len)
{
    const char *type = json_string_value(json_object_get(actor, "type"));
    const char *id = json_string_value(json_object_get(actor, "id"));
    snprintf(buf, len, "%s:%s", type ? type : "service", id ? id : "-");
    return buf;
}

/* ---------- approvers file ---------- */

typedef struct approver_key {
    char id[129];
    unsigned char pub[32];
} approver_key;

struct rt_approvers {
    approver_key *keys;
    size_t n;
};

rt_status rt_approvers_parse(const char *text, size_t len, const char *file, rt_approvers **out, rt_error *err)
{
    rt_approvers *a = calloc(1, sizeof *a);
    if (!a)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    size_t cap = 0, line_no = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        line_no++;
        char line[512];
        size_t ll = (size_t)(le - p);
        if (ll >= sizeof line) {
            rt_approvers_free(a);
            return rt_error_set(err, RT_ERR_INVALID, "%s:%zu: line too long", file, line_no);
        }
        memcpy(line, p, ll);
        line[ll] = '\0';
        p = nl ? nl + 1 : end;
        char *save = NULL, *id = strtok_r(line, " \t\r", &save);
        if (!id || id[0] == '#')
            continue;
        char *key = strtok_r(NULL, " \t\r", &save);
        char *extra = key ? strtok_r(NULL, " \t\r", &save) : NULL;
        unsigned char pub[32];
        const char *bad = !rt_approver_id_valid(id) ? "the approver id must match ^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$"
                          : !key                 ? "expected `id public-key`"
                          : extra                ? "unexpected text after the public key"
                          : !b64_decode(key, pub, sizeof pub)
                              ? "the public key must be the base64 of 32 raw Ed25519 bytes (see `ratchet keygen`)"
                              : NULL;
        for (size_t i = 0; !bad && i < a->n; i++)
            if (!strcmp(a->keys[i].id, id))
                bad = "this approver id is listed twice";
        if (bad) {
            rt_approvers_free(a);
            return rt_error_set(err, RT_ERR_INVALID, "%s:%zu: %s", file, line_no, bad);
        }
        if (a->n == cap) {
            cap = cap ? cap * 2 : 8;
            approver_key *grown = realloc(a->keys, cap * sizeof *grown);
            if (!grown) {
                rt_approvers_free(a);
                return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
            }
            a->keys = grown;
        }
        snprintf(a->keys[a->n].id, sizeof a->keys[a->n].id, "%s", id);
        memcpy(a->keys[a->n].pub, pub, sizeof pub);
        a->n++;
    }
    *out = a;
    return RT_OK;
}

rt_status rt_approvers_load(const char *path, rt_approvers **out, rt_error *err)
{
    char *text = NULL;
    size_t len = 0;
    rt_status s = rt_file_read(path, APPROVERS_MAX_BYTES, &text, &len, err);
    if (s != RT_OK)
        return s;
    s = rt_approvers_parse(text, len, path, out, err);
    free(text);
    return s;
}

bool rt_approvers_find(const rt_approvers *a, const char *id, unsigned char pub[32])
{
    for (size_t i = 0; a && id && i < a->n; i++) {
        if (!strcmp(a->keys[i].id, id)) {
            memcpy(pub, a->keys[i].pub, 32);
            return true;
        }
    }
    return false;
}

size_t rt_approvers_count(const rt_approvers *a)
{
    return a ? a->n : 0;
}

void rt_approvers_free(rt_approvers *a)
{
    if (!a)
        return;
    OPENSSL_cleanse(a->keys, a->n * sizeof *a->keys);
    free(a->keys);
    free(a);
}

/* ---------- keys and signatures ---------- */

static rt_status sign_with(EVP_PKEY *pkey, const void *msg, size_t len, char *sig_b64, rt_error *err)
{
    unsigned char sig[64];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    /* Ed25519 is PureEdDSA: no digest (NULL), one-shot EVP_DigestSign. */
    bool ok = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
              EVP_DigestSign(ctx, sig, &siglen, msg, len) == 1 && siglen == sizeof sig;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return ssl_error(err, "Ed25519 signing failed");
    b64_encode(sig, sizeof sig, sig_b64);
    return RT_OK;
}

rt_status rt_approval_sign_file(const char *key_path, const void *msg, size_t len, char *sig_b64, rt_error *err)
{
    FILE *f = fopen(key_path, "r");
    if (!f)
        return rt_error_set(err, RT_ERR_IO, "%s: %s", key_path, strerror(errno));
    EVP_PKEY *pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!pkey)
        return ssl_error(err, "cannot read the private key (expected a PEM file written by `ratchet keygen`)");
    rt_status s;
    if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519)
        s = rt_error_set(err, RT_ERR_INVALID, "%s is not an Ed25519 private key", key_path);
    else
        s = sign_with(pkey, msg, len, sig_b64, err);
    EVP_PKEY_free(pkey);
    return s;
}

rt_status rt_approval_sign_raw(const unsigned char seed[32], const void *msg, size_t len, char *sig_b64,
                               char *pub_b64, rt_error *err)
{
    EVP_PKEY *pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
    if (!pkey)
        return ssl_error(err, "bad Ed25519 private key");
    rt_status s = sign_with(pkey, msg, len, sig_b64, err);
    if (s == RT_OK && pub_b64) {
        unsigned char pub[32];
        size_t pl = sizeof pub;
        if (EVP_PKEY_get_raw_public_key(pkey, pub, &pl) != 1 || pl != sizeof pub)
            s = ssl_error(err, "cannot derive the public key");
        else
            b64_encode(pub, sizeof pub, pub_b64);
    }
    EVP_PKEY_free(pkey);
    return s;
}

bool rt_approval_verify(const unsigned char pub[32], const void *msg, size_t len, const char *sig_b64)
{
    unsigned char sig[64];
    if (!b64_decode(sig_b64, sig, sizeof sig))
        return false;
    EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
    EVP_MD_CTX *ctx = pkey ? EVP_MD_CTX_new() : NULL;
    bool ok = ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
              EVP_DigestVerify(ctx, sig, sizeof sig, msg, len) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    ERR_clear_error(); /* a bad signature leaves an error on the queue */
    return ok;
}

rt_status rt_approval_keygen(const char *dir, const char *id, char *line, size_t len, rt_error *err)
{
    if (!rt_approver_id_valid(id))
        return rt_error_set(err, RT_ERR_INVALID,
                            "approver id \"%.64s\" must match ^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$", id);
    char key_path[4096], pub_path[4096];
    snprintf(key_path, sizeof key_path, "%s/%s.key", dir, id);
    snprintf(pub_path, sizeof pub_path, "%s/%s.pub", dir, id);
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    if (!pctx || EVP_PKEY_keygen_init(pctx) != 1 || EVP_PKEY_keygen(pctx, &pkey) != 1) {
        EVP_PKEY_CTX_free(pctx);
        return ssl_error(err, "Ed25519 key generation failed");
    }
    EVP_PKEY_CTX_free(pctx);
    unsigned char pub[32];
    size_t pl = sizeof pub;
    char pub_b64[48];
    rt_status s = RT_OK;
    if (EVP_PKEY_get_raw_public_key(pkey, pub, &pl) != 1 || pl != sizeof pub)
        s = ssl_error(err, "cannot read the public key");
    if (s == RT_OK) {
        b64_encode(pub, sizeof pub, pub_b64);
        snprintf(line, len, "%s %s", id, pub_b64);
        /* O_EXCL: a key is never overwritten; 0600 from the start (no window). */
        int fd = open(key_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (!f) {
            s = rt_error_set(err, errno == EEXIST ? RT_ERR_CONFLICT : RT_ERR_IO, "%s: %s%s", key_path, strerror(errno),
                             errno == EEXIST ? " (a key is never overwritten: remove it first)" : "");
            if (fd >= 0)
                close(fd);
        } else {
            bool ok = PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) == 1;
            ok = (fclose(f) == 0) && ok;
            if (!ok) {
                unlink(key_path);
                s = ssl_error(err, "writing the private key failed");
            }
        }
    }
    if (s == RT_OK) {
        FILE *f = fopen(pub_path, "w");
        if (!f || fprintf(f, "%s\n", line) < 0 || fclose(f) != 0) {
            if (f)
                fclose(f);
            s = rt_error_set(err, RT_ERR_IO, "%s: %s", pub_path, strerror(errno));
        }
    }
    EVP_PKEY_free(pkey);
    return s;
}

/* ---------- decisions ---------- */

static bool hex64(const char *s)
{
    if (!s || strlen(s) != 64)
        return false;
    for (size_t i = 0; i < 64; i++)
        if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
            return false;
    return true;
}

/* Control characters other than \n and \t are refused: JSON encoders disagree on how to
 * escape them (jansson writes \u001F, Python \u001f), and the signed bytes must be one. */
static bool clean_text(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 && *p != '\n' && *p != '\t')
            return false;
    return true;
}

rt_status rt_approval_decision_check(const json_t *d, rt_error *err)
{
    if (!json_is_object(d))
        return rt_error_set(err, RT_ERR_INVALID, "the decision (event data) must be an object");
    static const char *const known[] = {"run_id", "decision", "approver", "comment", "ts",
                                        "nonce",  "action_hash", "step_id", "sig", NULL};
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)d, key, v) {
        bool ok = false;
        for (size_t i = 0; known[i] && !ok; i++)
            ok = !strcmp(key, known[i]);
        if (!ok)
            return rt_error_set(err, RT_ERR_INVALID,
                                "$.data.%.40s: unknown key (known: run_id, decision, approver, comment, ts, nonce, "
                                "action_hash, step_id, sig)",
                                key);
    }
    static const char *const required[] = {"run_id", "decision", "approver", "ts", "nonce", "action_hash", "sig", NULL};
    for (size_t i = 0; required[i]; i++)
        if (!json_object_get(d, required[i]))
            return rt_error_set(err, RT_ERR_INVALID, "$.data.%s is required", required[i]);
    json_object_foreach((json_t *)d, key, v) {
        if (strcmp(key, "ts") != 0 && !json_is_string(v))
            return rt_error_set(err, RT_ERR_INVALID, "$.data.%s must be a string", key);
        if (json_is_string(v) && !clean_text(json_string_value(v)))
            return rt_error_set(err, RT_ERR_INVALID, "$.data.%s holds a control character", key);
    }
    const char *run_id = json_string_value(json_object_get(d, "run_id"));
    const char *decision = json_string_value(json_object_get(d, "decision"));
    const char *nonce = json_string_value(json_object_get(d, "nonce"));
    json_t *ts = json_object_get(d, "ts");
    json_t *step = json_object_get(d, "step_id");
    json_t *comment = json_object_get(d, "comment");
    if (!rt_uuid_valid(run_id))
        return rt_error_set(err, RT_ERR_INVALID, "$.data.run_id must be a run id (a UUID)");
    if (strcmp(decision, "approve") != 0 && strcmp(decision, "reject") != 0)
        return rt_error_set(err, RT_ERR_INVALID, "$.data.decision must be \"approve\" or \"reject\"");
    if (!rt_approver_id_valid(json_string_value(json_object_get(d, "approver"))))
        return rt_error_set(err, RT_ERR_INVALID, "$.data.approver must match ^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$");
    if (!json_is_integer(ts) || json_integer_value(ts) <= 0)
        return rt_error_set(err, RT_ERR_INVALID, "$.data.ts must be a positive integer (unix milliseconds)");
    size_t nl = strlen(nonce);
    if (nl < 8 || nl > 128 || strspn(nonce, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") != nl)
        return rt_error_set(err, RT_ERR_INVALID, "$.data.nonce must be 8..128 characters of [A-Za-z0-9_-]");
    if (!hex64(json_string_value(json_object_get(d, "action_hash"))))
        return rt_error_set(err, RT_ERR_INVALID, "$.data.action_hash must be 64 lowercase hex digits");
    if (step && !rt_workflow_id_valid(json_string_value(step)))
        return rt_error_set(err, RT_ERR_INVALID, "$.data.step_id is not a step id");
    if (comment && strlen(json_string_value(comment)) > COMMENT_MAX)
        return rt_error_set(err, RT_ERR_INVALID, "$.data.comment is longer than %d bytes", COMMENT_MAX);
    return RT_OK;
}

char *rt_approval_canonical(const json_t *decision, size_t *len)
{
    json_t *copy = json_copy((json_t *)decision);
    if (!copy)
        return NULL;
    json_object_del(copy, "sig");
    char *body = rt_json_canonical(copy);
    json_decref(copy);
    if (!body)
        return NULL;
    size_t pl = strlen(RT_APPROVAL_SIG_PREFIX), bl = strlen(body);
    char *out = malloc(pl + bl + 1);
    if (out) {
        memcpy(out, RT_APPROVAL_SIG_PREFIX, pl);
        memcpy(out + pl, body, bl + 1);
        if (len)
            *len = pl + bl;
    }
    free(body);
    return out;
}

void rt_approval_action_hash(const char *workflow_hash, const json_t *event, const char *step_id,
                             const json_t *with, char *hex)
{
    char *ev = rt_json_canonical(event ? event : json_null());
    char *w = step_id ? rt_json_canonical(with ? with : json_null()) : NULL;
    size_t n = strlen(workflow_hash) + 1 + (ev ? strlen(ev) : 0) + (step_id ? strlen(step_id) + 2 + (w ? strlen(w) : 0) : 0);
    char *buf = malloc(n + 1);
    if (!buf || !ev || (step_id && !w)) {
        snprintf(hex, 65, "%s", "out-of-memory");
    } else {
        if (step_id)
            snprintf(buf, n + 1, "%s\n%s\n%s\n%s", workflow_hash, ev, step_id, w);
        else
            snprintf(buf, n + 1, "%s\n%s", workflow_hash, ev);
        rt_sha256_hex(buf, n, hex);
    }
    free(buf);
    free(ev);
    free(w);
}

const char *rt_refusal_name(rt_refusal r)
{
    switch (r) {
    case RT_REFUSAL_NONE: return "none";
    case RT_REFUSAL_AGENT: return "agent";
    case RT_REFUSAL_INVALID: return "invalid";
    case RT_REFUSAL_UNKNOWN_APPROVER: return "unknown_approver";
    case RT_REFUSAL_BAD_SIGNATURE: return "bad_signature";
    case RT_REFUSAL_HASH_MISMATCH: return "hash_mismatch";
    case RT_REFUSAL_EXPIRED: return "expired";
    case RT_REFUSAL_NONCE_REUSED: return "nonce_reused";
    case RT_REFUSAL_SELF_APPROVAL: return "self_approval";
    case RT_REFUSAL_NOT_AWAITING: return "not_awaiting";
    case RT_REFUSAL_UNKNOWN_REQUESTER: return "unknown_requester";
    }
    return "?";
}

/* ---------- gates ---------- */


static json_t *initiator_of(const json_t *event)
{
    json_t *actor = json_object_get(event, "actor");
    return json_is_object(actor) ? json_deep_copy(actor) : json_pack("{s:s}", "type", "service");
}

/* Stores a ratchet.approval.requested event and starts the workflows of set triggered by
 * it (set may be NULL: none), in the caller's transaction, for a run gate (kind "run",
 * made while runs are created) and a step gate (kind "step") alike. A gate of a run that
 * such an event started itself starts nothing: an approver-paging workflow that needs
 * approval must not page about its own gate in a loop. */
static rt_status store_requested(rt_store *st, const rt_workflow_set *set, const json_t *run_event, json_t *data,
                                 const char *id, rt_error *err)
{
    const char *entity = json_string_value(json_object_get(run_event, "entity_id"));
    const char *cause = json_string_value(json_object_get(run_event, "name"));
    if (cause && !strcmp(cause, RT_APPROVAL_REQUESTED_EVENT))
        set = NULL;
    json_object_set_new(data, "entity_id", entity ? json_string(entity) : json_null());
    rt_event *ev = NULL;
    rt_status s = rt_event_new(RT_APPROVAL_REQUESTED_EVENT, data, RT_ACTOR_SYSTEM, "ratchet", entity, id, &ev, err);
    if (s == RT_OK)
        s = rt_ingest_events_tx(set, st, &ev, 1, "engine", err);
    rt_event_free(ev);
    return s;
}

static json_t *time_or_null(int64_t ms)
{
    if (ms <= 0)
        return json_null();
    char buf[40];
    rt_time_format(ms, buf, sizeof buf);
    return json_string(buf);
}

rt_status rt_approval_hold_new_runs(rt_store *st, const rt_run_request *reqs, size_t n, rt_error *err)
{
    json_t *ids = json_array();
    for (size_t i = 0; i < n; i++)
        if (reqs[i].id[0] && rt_workflow_gates(reqs[i].wf, reqs[i].event))
            json_array_append_new(ids, json_string(reqs[i].id));
    if (json_array_size(ids) == 0) {
        json_decref(ids);
        return RT_OK;
    }
    json_t *held = NULL;
    rt_status s = rt_store_approval_hold(st, ids, &held, err);
    json_t *gates = json_array();
    size_t k;
    json_t *run;
    int64_t now = rt_now_ms();
    json_array_foreach(held, k, run) {
        const char *run_id = json_string_value(json_object_get(run, "id"));
        const rt_workflow *wf = NULL;
        for (size_t i = 0; i < n && !wf; i++)
            if (!strcmp(reqs[i].id, run_id))
                wf = reqs[i].wf;
        if (!wf)
            continue;
        json_t *event = json_object_get(run, "event");
        char hash[65];
        rt_approval_action_hash(json_string_value(json_object_get(run, "workflow_hash")), event, NULL, NULL, hash);
        int64_t timeout = 0;
        const char *t = json_string_value(json_object_get(wf->approval, "timeout"));
        rt_error derr;
        if (t && rt_duration_parse(t, &timeout, &derr) != RT_OK)
            timeout = 0; /* validated at load */
        int64_t expires = timeout > 0 ? now + timeout : 0;
        json_t *approvers = json_object_get(wf->approval, "approvers");
        json_array_append_new(gates, json_pack("{s:s, s:s, s:s, s:s, s:O, s:o, s:n, s:I}", "run_id", run_id, "step_id",
                                               "", "workflow_id", wf->id, "action_hash", hash, "approvers", approvers,
                                               "initiator", initiator_of(event), "details", "expires_at",
                                               (json_int_t)expires));
        json_t *data = json_pack("{s:s, s:s, s:n, s:s, s:o, s:O, s:s, s:O, s:o}", "kind", "run", "run_id", run_id,
                                 "step_id", "workflow", wf->id, "actor", initiator_of(event), "event", event,
                                 "action_hash", hash, "approvers", approvers, "expires_at", time_or_null(expires));
        const rt_workflow_set *set = NULL;
        for (size_t i = 0; i < n && !set; i++)
            if (!strcmp(reqs[i].id, run_id))
                set = reqs[i].set;
        char ev_id[128], actor[300];
        if (s == RT_OK)
            s = rt_store_engine_event_id(st, ev_id, sizeof ev_id, err, "approval.requested:%s", run_id);
        if (s == RT_OK)
            s = store_requested(st, set, event, data, ev_id, err);
        json_t *details = json_pack("{s:s, s:s, s:O, s:o, s:O?}", "workflow", wf->id, "action_hash", hash, "approvers",
                                    approvers, "expires_at", time_or_null(expires), "event_id",
                                    json_object_get(event, "id"));
        if (s == RT_OK)
            s = rt_store_audit_append(st, actor_label(json_object_get(event, "actor"), actor, sizeof actor),
                                "approval.requested", run_id, details, err);
        json_decref(details);
        json_decref(data);
        rt_log_ctx lc = {.workflow = wf->id, .run_id = run_id};
        if (s == RT_OK)
            rt_log(RT_LOG_INFO, &lc, "awaiting approval (action_hash %.16s...)", hash);
    }
    if (s == RT_OK)
        s = rt_store_approval_insert(st, gates, err);
    json_decref(gates);
    json_decref(held);
    json_decref(ids);
    return s;
}

rt_status rt_approval_register_steps(rt_store *st, const rt_workflow_set *set, const char *run_id,
                                     const rt_workflow *wf, json_t *event, json_t *rows, rt_error *err)
{
    size_t i;
    json_t *row;
    rt_status s = RT_OK;
    json_array_foreach(rows, i, row) {
        const char *sid = json_string_value(json_object_get(row, "step_id"));
        const char *status = json_string_value(json_object_get(row, "status"));
        int idx = sid ? rt_workflow_step_index(wf, sid) : -1;
        json_t *gate = json_object_get(json_object_get(row, "state"), "approval");
        if (idx < 0 || wf->steps[idx].type->wait != RT_STEP_WAIT_APPROVAL || !status || strcmp(status, "waiting") ||
            !json_is_object(gate) || json_is_true(json_object_get(gate, "registered")))
            continue;
        char hash[65], ev_id[300], actor[300];
        rt_approval_action_hash(wf->hash, event, sid, json_object_get(gate, "with"), hash);
        int64_t expires = json_integer_value(json_object_get(gate, "expires_at"));
        json_t *approvers = json_object_get(gate, "approvers");
        /* What approvers are shown, and the rendered `with` the action_hash covers. */
        json_t *details = json_pack("{s:O*, s:O*, s:O*}", "message", json_object_get(gate, "message"), "details",
                                    json_object_get(gate, "details"), "with", json_object_get(gate, "with"));
        json_t *gates = json_pack("[{s:s, s:s, s:s, s:s, s:O, s:o, s:o, s:I}]", "run_id", run_id, "step_id", sid,
                                  "workflow_id", wf->id, "action_hash", hash, "approvers", approvers, "initiator",
                                  initiator_of(event), "details", details, "expires_at", (json_int_t)expires);
        s = rt_store_approval_insert(st, gates, err);
        json_decref(gates);
        json_t *data = json_pack("{s:s, s:s, s:s, s:s, s:o, s:O, s:s, s:O, s:O?, s:O?, s:o}", "kind", "step", "run_id",
                                 run_id, "step_id", sid,
                                 "workflow", wf->id, "actor", initiator_of(event), "event", event, "action_hash", hash,
                                 "approvers", approvers, "message", json_object_get(gate, "message"), "details",
                                 json_object_get(gate, "details"), "expires_at", time_or_null(expires));
        if (s == RT_OK)
            s = rt_store_engine_event_id(st, ev_id, sizeof ev_id, err, "approval.requested:%s:%s", run_id, sid);
        if (s == RT_OK)
            s = store_requested(st, set, event, data, ev_id, err);
        json_decref(data);
        json_t *audit = json_pack("{s:s, s:s, s:s, s:O, s:o}", "workflow", wf->id, "step_id", sid, "action_hash", hash,
                                  "approvers", approvers, "expires_at", time_or_null(expires));
        if (s == RT_OK)
            s = rt_store_audit_append(st, actor_label(json_object_get(event, "actor"), actor, sizeof actor),
                                "approval.requested", run_id, audit, err);
        json_decref(audit);
        if (s != RT_OK)
            return s;
        json_object_set_new(gate, "registered", json_true());
        json_object_set_new(gate, "action_hash", json_string(hash));
        rt_log_ctx lc = {.workflow = wf->id, .run_id = run_id, .step_id = sid};
        rt_log(RT_LOG_INFO, &lc, "step awaits approval (action_hash %.16s...)", hash);
    }
    return s;
}

/* An invoke parent waiting for a run that ended here gets the result. */
static rt_status wake_parent(rt_store *st, json_t *ended, rt_error *err)
{
    json_t *parent = json_object_get(ended, "parent_run_id");
    if (!json_is_string(parent))
        return RT_OK;
    json_t *wake = json_pack("[{s:O, s:O, s:{s:{s:O, s:O, s:O}}}]", "run_id", parent, "step_id",
                             json_object_get(ended, "parent_step_id"), "patch", "result", "run_id",
                             json_object_get(ended, "id"), "status", json_object_get(ended, "status"), "error",
                             json_object_get(ended, "error"));
    rt_status s = rt_store_wake_steps(st, wake, err);
    json_decref(wake);
    return s;
}

/* The loaded workflow's on_failure for a run that ended rejected or expired here. */
static rt_status on_failure(const rt_workflow_set *set, rt_store *st, const char *wf_id, const char *run_id,
                            const char *status, const char *msg, rt_error *err)
{
    const rt_workflow *wf = set && wf_id ? rt_workflow_set_find(set, wf_id) : NULL;
    return wf ? rt_ingest_on_failure(set, st, wf->on_failure, wf_id, run_id, status, msg, err) : RT_OK;
}

static void count_ended(json_t *ended)
{
    const char *wf = json_string_value(json_object_get(ended, "workflow"));
    const char *status = json_string_value(json_object_get(ended, "status"));
    if (wf && status)
        rt_metrics_counter_add("ratchet_runs_finished_total", "workflow", wf, "status", status, 1);
}

rt_status rt_approval_sweep(rt_store *st, const rt_workflow_set *set, json_t *ended, rt_error *err)
{
    json_t *ids = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(ended, i, r) json_array_append(ids, json_object_get(r, "id"));
    rt_status s = rt_store_approval_close_runs(st, ids, err);
    json_decref(ids);
    json_t *due = NULL;
    if (s == RT_OK)
        s = rt_store_approval_due(st, &due, err);
    json_array_foreach(due, i, r) {
        if (s != RT_OK)
            break;
        const char *run_id = json_string_value(json_object_get(r, "run_id"));
        const char *sid = json_string_value(json_object_get(r, "step_id"));
        const char *expires = json_string_value(json_object_get(r, "expires_at"));
        bool step = sid && sid[0];
        char msg[300];
        snprintf(msg, sizeof msg, "expired: no approval decision before %s", expires ? expires : "the timeout");
        json_t *gone = NULL;
        s = rt_store_approval_end_run(st, run_id, "expired", msg, step ? sid : NULL, NULL, &gone, err);
        if (s == RT_OK)
            s = rt_store_approval_close(st, run_id, sid, gone ? "expired" : "closed", NULL, NULL, NULL, err);
        if (s == RT_OK && gone) {
            s = wake_parent(st, gone, err);
            if (s == RT_OK)
                s = on_failure(set, st, json_string_value(json_object_get(r, "workflow_id")), run_id, "expired", msg, err);
            json_t *details = json_pack("{s:O, s:s*, s:s*}", "workflow", json_object_get(r, "workflow_id"), "step_id",
                                        step ? sid : NULL, "expires_at", expires);
            if (s == RT_OK)
                s = rt_store_audit_append(st, "system:ratchet", "approval.expired", run_id, details, err);
            json_decref(details);
            if (s == RT_OK) {
                count_ended(gone);
                rt_log_ctx lc = {.workflow = json_string_value(json_object_get(r, "workflow_id")), .run_id = run_id};
                rt_log(RT_LOG_WARN, &lc, "run %s", msg);
            }
        }
        json_decref(gone);
    }
    json_decref(due);
    return s;
}

/* ---------- decisions arriving ---------- */

static bool listed(json_t *approvers, const char *id)
{
    size_t i;
    json_t *a;
    json_array_foreach(approvers, i, a) {
        if (json_is_string(a) && !strcmp(json_string_value(a), id))
            return true;
    }
    return false;
}

/* The steps of an approved run that may start now: no row yet, every need met by a
 * carried-over row (replay --from). steps: [{step_id, slow}]. */
static rt_status ready_steps(rt_store *st, const char *run_id, const char *wf_hash, json_t **steps, const char **wf_id,
                             int64_t *timeout_ms, int64_t *start_timeout_ms, rt_workflow **wf_out, rt_error *err)
{
    json_t *def = NULL, *rows = NULL;
    rt_workflow *wf = NULL;
    *steps = json_array();
    rt_status s = rt_store_get_definition(st, wf_hash, &def, err);
    if (s == RT_OK)
        s = rt_workflow_from_json(def, NULL, &wf, err);
    json_decref(def);
    const char *ids[] = {run_id};
    if (s == RT_OK)
        s = rt_store_load_steps(st, ids, 1, &rows, err);
    json_t *have = json_object_get(rows, run_id);
    for (size_t i = 0; s == RT_OK && i < wf->n_steps; i++) {
        const rt_step_def *d = &wf->steps[i];
        if (json_object_get(have, d->id))
            continue;
        bool ready = true;
        for (size_t k = 0; k < d->n_needs && ready; k++) {
            const char *st_s = json_string_value(
                json_object_get(json_object_get(have, wf->steps[d->need_idx[k]].id), "status"));
            ready = st_s && (!strcmp(st_s, "completed") || !strcmp(st_s, "skipped"));
        }
        if (ready)
            json_array_append_new(*steps, json_pack("{s:s, s:b}", "step_id", d->id, "slow", !d->type->quick));
    }
    json_decref(rows);
    if (s == RT_OK) {
        *wf_id = wf->id;
        *timeout_ms = wf->timeout_ms;
        *start_timeout_ms = wf->start_timeout_ms;
        *wf_out = wf;
    } else {
        rt_workflow_free(wf);
    }
    return s;
}

/* No self-approval (DESIGN §6). The requester is the run's event actor.id as its ingress
 * established it: the API stamps it from the token (its holder's approver id when the
 * tokens file declares one, else the token's label), webhooks "hook:<name>", the CLI and
 * the brokers pass the producer's own (docs/approvals-and-security.md "Who requested a run"). Approver ids and
 * holder ids share one namespace, compared without case so that "OPS-LEAD" is ops-lead.
 * A run whose requester is unknown (no actor.id) cannot be told apart from the
 * approver's own: it is refused. */
static rt_refusal check_requester(const json_t *initiator, const char *approver, char *msg, size_t len)
{
    const char *init = json_string_value(json_object_get(initiator, "id"));
    if (!init || !*init) {
        const char *type = json_string_value(json_object_get(initiator, "type"));
        snprintf(msg, len,
                 "the requester of this run is unknown (actor type %s without an id), so self-approval cannot be "
                 "ruled out: send the triggering event with actor.id, or through an API token",
                 type ? type : "service");
        return RT_REFUSAL_UNKNOWN_REQUESTER;
    }
    if (!strcasecmp(init, approver)) {
        snprintf(msg, len, "%s started this run: no self-approval", approver);
        return RT_REFUSAL_SELF_APPROVAL;
    }
    return RT_REFUSAL_NONE;
}

static rt_status refuse(rt_store *st, const rt_event *ev, rt_refusal why, const char *msg, rt_error *err)
{
    const json_t *d = ev->data;
    const char *run_id = json_is_object(d) ? json_string_value(json_object_get(d, "run_id")) : NULL;
    const char *approver = json_is_object(d) ? json_string_value(json_object_get(d, "approver")) : NULL;
    char actor[300];
    json_t *details = json_pack("{s:s, s:s, s:s, s:s*, s:s*, s:O}", "event_id", ev->id, "reason", rt_refusal_name(why),
                                "message", msg, "approver", approver, "step_id",
                                json_is_object(d) ? json_string_value(json_object_get(d, "step_id")) : NULL,
                                "decision", d);
    rt_status s = rt_refusal_record(st, actor_label(json_object_get(ev->envelope, "actor"), actor, sizeof actor),
                                    "approval.refused", run_id && rt_uuid_valid(run_id) ? run_id : "", details, err);
    json_decref(details);
    if (s != RT_OK)
        return s;
    rt_metrics_counter_add("ratchet_approval_refusals_total", "reason", rt_refusal_name(why), 1);
    rt_log_ctx lc = {.run_id = run_id && rt_uuid_valid(run_id) ? run_id : NULL};
    rt_log(RT_LOG_WARN, &lc, "approval decision %s refused (%s): %s", ev->id, rt_refusal_name(why), msg);
    return RT_OK;
}

/* An approved run that flow control does not admit (idempotency or singleton skip) ends
 * `cancelled`, saying why; a waiting parent hears of it. */
static rt_status end_unadmitted(rt_store *st, const rt_workflow_set *set, const char *run_id, const char *approver,
                                const char *why, rt_error *err)
{
    (void)set;
    char msg[RT_ERROR_MAX];
    snprintf(msg, sizeof msg, "approved by %s, but not admitted: %s", approver, why);
    json_t *ended = NULL;
    rt_status s = rt_store_approval_end_run(st, run_id, "cancelled", msg, NULL, NULL, &ended, err);
    if (s == RT_OK && ended)
        s = wake_parent(st, ended, err);
    if (s == RT_OK && ended)
        count_ended(ended);
    json_decref(ended);
    rt_log_ctx lc = {.run_id = run_id};
    rt_log(RT_LOG_INFO, &lc, "%s", msg);
    return s;
}

/* Applies an accepted decision to a locked gate. */
static rt_status apply(rt_store *st, const rt_workflow_set *set, const rt_event *ev, json_t *gate, rt_error *err)
{
    const json_t *d = ev->data;
    const char *run_id = json_string_value(json_object_get(d, "run_id"));
    const char *approver = json_string_value(json_object_get(d, "approver"));
    const char *comment = json_string_value(json_object_get(d, "comment"));
    const char *sid = json_string_value(json_object_get(gate, "step_id"));
    const char *wf_id = json_string_value(json_object_get(gate, "workflow_id"));
    bool approve = !strcmp(json_string_value(json_object_get(d, "decision")), "approve");
    bool step = sid && sid[0];
    rt_status s = rt_store_approval_close(st, run_id, sid, approve ? "approved" : "rejected", approver, comment, d, err);
    json_t *output = json_pack("{s:s, s:s, s:s?}", "decision", approve ? "approve" : "reject", "approver", approver,
                               "comment", comment);
    if (s == RT_OK && approve && !step) {
        json_t *steps = NULL;
        const char *wid = NULL;
        int64_t to = 0, sto = 0;
        rt_workflow *wf = NULL;
        bool released = false;
        s = ready_steps(st, run_id, json_string_value(json_object_get(gate, "workflow_hash")), &steps, &wid, &to, &sto,
                        &wf, err);
        /* Approved: now, and only now, flow control applies (DESIGN §6: the gate first). */
        rt_run_request req = {.wf = wf, .trigger = json_object_get(gate, "trigger"),
                              .event = json_object_get(gate, "event"),
                              .parent_run_id = json_string_value(json_object_get(gate, "parent_run_id"))};
        snprintf(req.id, sizeof req.id, "%s", run_id);
        bool admitted = true;
        json_t *stamped = NULL;
        if (s == RT_OK)
            s = rt_admission_admit_approved(st, &req, &admitted, &stamped, err);
        if (s == RT_OK && admitted)
            s = rt_store_approval_release(st, run_id, to, sto, steps, stamped, req.run_at_ms, &released, err);
        else if (s == RT_OK)
            s = end_unadmitted(st, set, run_id, approver, req.reason, err);
        json_decref(stamped);
        json_decref(steps);
        rt_workflow_free(wf);
    } else if (s == RT_OK && approve) {
        json_t *wake = json_pack("[{s:s, s:s, s:{s:O}}]", "run_id", run_id, "step_id", sid, "patch", "decision", output);
        s = rt_store_wake_steps(st, wake, err);
        json_decref(wake);
    } else if (s == RT_OK) {
        char msg[RT_ERROR_MAX];
        snprintf(msg, sizeof msg, "rejected by %s%s%.900s", approver, comment && *comment ? ": " : "",
                 comment ? comment : "");
        json_t *ended = NULL;
        s = rt_store_approval_end_run(st, run_id, "rejected", msg, step ? sid : NULL, output, &ended, err);
        if (s == RT_OK && ended)
            s = wake_parent(st, ended, err);
        if (s == RT_OK && ended)
            s = on_failure(set, st, wf_id, run_id, "rejected", msg, err);
        if (s == RT_OK && ended)
            count_ended(ended);
        json_decref(ended);
    }
    char actor[200];
    snprintf(actor, sizeof actor, "approver:%s", approver);
    json_t *details = json_pack("{s:s, s:s, s:s*, s:s*, s:O}", "event_id", ev->id, "workflow", wf_id, "step_id",
                                step ? sid : NULL, "comment", comment, "decision", d);
    if (s == RT_OK)
        s = rt_store_audit_append(st, actor, approve ? "approval.approved" : "approval.rejected", run_id, details, err);
    json_decref(details);
    json_decref(output);
    if (s == RT_OK) {
        rt_metrics_counter_add("ratchet_approval_decisions_total", "decision", approve ? "approve" : "reject", 1);
        rt_log_ctx lc = {.workflow = wf_id, .run_id = run_id, .step_id = step ? sid : NULL};
        rt_log(RT_LOG_INFO, &lc, "%s by %s", approve ? "approved" : "rejected", approver);
        int64_t asked = 0;
        const char *at = json_string_value(json_object_get(gate, "requested_at"));
        if (!at || rt_time_parse(at, &asked, NULL) != RT_OK)
            asked = 0;
        rt_run_trace_approval_span(run_id, json_object_get(gate, "event"), wf_id, step ? sid : NULL,
                                   approve ? "approve" : "reject", asked, rt_now_ms());
    }
    return s;
}

static const char *sget(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* Who may decide: not an agent, a well-formed decision, an approver listed in the
 * approvers file (its public key into pub; *keys is the loaded file). */
static rt_refusal check_approver(const rt_event *ev, const char *file, rt_approvers **keys, unsigned char pub[32],
                                 char *msg, size_t len)
{
    const json_t *d = ev->data;
    rt_error e;
    if (ev->actor_type == RT_ACTOR_AGENT) {
        snprintf(msg, len, "an agent never approves (the event's actor is agent %s)", ev->actor_id ? ev->actor_id : "-");
        return RT_REFUSAL_AGENT;
    }
    if (rt_approval_decision_check(d, &e) != RT_OK) {
        snprintf(msg, len, "%s", e.msg);
        return RT_REFUSAL_INVALID;
    }
    const char *approver = sget(d, "approver");
    if (!file) {
        snprintf(msg, len, "no approvers are configured (RATCHET_APPROVERS is not set)");
        return RT_REFUSAL_UNKNOWN_APPROVER;
    }
    if (rt_approvers_load(file, keys, &e) != RT_OK) {
        snprintf(msg, len, "the approvers file cannot be used: %s", e.msg);
        rt_log(RT_LOG_ERROR, NULL, "approvers file: %s", e.msg);
        return RT_REFUSAL_UNKNOWN_APPROVER;
    }
    if (!rt_approvers_find(*keys, approver, pub)) {
        snprintf(msg, len, "%s is not in the approvers file", approver);
        return RT_REFUSAL_UNKNOWN_APPROVER;
    }
    return RT_REFUSAL_NONE;
}

/* Whether the decision's signature verifies with pub; RT_ERR_NOMEM in *s when it could not
 * be checked. */
static rt_refusal check_signature(const json_t *d, const unsigned char pub[32], char *msg, size_t len, rt_status *s,
                                  rt_error *err)
{
    size_t n = 0;
    char *canon = rt_approval_canonical(d, &n);
    if (!canon) {
        *s = rt_error_set(err, RT_ERR_NOMEM, "out of memory");
        return RT_REFUSAL_NONE;
    }
    bool ok = rt_approval_verify(pub, canon, n, sget(d, "sig"));
    free(canon);
    if (ok)
        return RT_REFUSAL_NONE;
    snprintf(msg, len, "the signature does not verify with %s's public key", sget(d, "approver"));
    return RT_REFUSAL_BAD_SIGNATURE;
}

/* An authentic decision against its gate: there is one, the signed action_hash is the
 * gate's and still the hash of what the run will run, the decision is fresh (skew) and the
 * gate has not expired. */
static rt_refusal check_gate_action(const json_t *d, const json_t *gate, const char *run_id, const char *step_id,
                                    int64_t skew, char *msg, size_t len)
{
    if (!gate) {
        snprintf(msg, len, "run %s has no approval gate%s%s", run_id, step_id ? " at step " : "", step_id ? step_id : "");
        return RT_REFUSAL_NOT_AWAITING;
    }
    if (strcmp(sget(gate, "action_hash"), sget(d, "action_hash")) != 0) {
        snprintf(msg, len, "action_hash %.16s... is not what run %s will run (%.16s...)", sget(d, "action_hash"), run_id,
                 sget(gate, "action_hash"));
        return RT_REFUSAL_HASH_MISMATCH;
    }
    int64_t age = rt_now_ms() - (int64_t)json_integer_value(json_object_get(d, "ts"));
    if (age > skew || -age > skew) {
        char a[32], k[32];
        rt_duration_format(age < 0 ? -age : age, a, sizeof a);
        rt_duration_format(skew, k, sizeof k);
        snprintf(msg, len, "the decision was signed %s %s (allowed: %s, RATCHET_APPROVAL_SKEW)", a,
                 age >= 0 ? "ago" : "in the future", k);
        return RT_REFUSAL_EXPIRED;
    }
    /* The stored hash is compared, but also recomputed from what the run will really run:
     * a run whose event (or a step's input) was changed after the request must not ride
     * on a signature over the old one. */
    char now_hash[65];
    rt_approval_action_hash(sget(gate, "workflow_hash"), json_object_get(gate, "event"), step_id,
                            step_id ? json_object_get(gate, "with") : NULL, now_hash);
    if (strcmp(now_hash, sget(gate, "action_hash")) != 0) {
        snprintf(msg, len,
                 "run %s no longer runs what its approval was requested for: its stored event or step input "
                 "hashes to %.16s..., not %.16s...",
                 run_id, now_hash, sget(gate, "action_hash"));
        return RT_REFUSAL_HASH_MISMATCH;
    }
    /* The gate's own deadline, judged by the database's clock like the sweeper's: a
     * decision that arrives after it is refused even when the sweeper has not run yet. */
    if (json_is_true(json_object_get(gate, "expired")) && !strcmp(sget(gate, "status"), "pending")) {
        snprintf(msg, len, "the approval of run %s expired at %s: no decision is taken after it", run_id,
                 sget(gate, "expires_at"));
        return RT_REFUSAL_EXPIRED;
    }
    return RT_REFUSAL_NONE;
}

/* Whether the gate (and its run, or its step) still waits for this decision. */
static rt_refusal check_gate_waiting(const json_t *gate, const char *run_id, const char *step_id, char *msg, size_t len)
{
    const char *gs = sget(gate, "status");
    const char *rs = sget(gate, "run_status");
    const char *ss = sget(gate, "step_status");
    bool waiting = !strcmp(gs, "pending") &&
                   (step_id ? ss && !strcmp(ss, "waiting") && strcmp(rs, "awaiting_approval") != 0 &&
                                  (!strcmp(rs, "running") || !strcmp(rs, "waiting") || !strcmp(rs, "sleeping") ||
                                   !strcmp(rs, "queued"))
                            : !strcmp(rs, "awaiting_approval"));
    if (waiting)
        return RT_REFUSAL_NONE;
    snprintf(msg, len, "run %s is not awaiting approval (run %s, gate %s)", run_id, rs, gs);
    return RT_REFUSAL_NOT_AWAITING;
}

static rt_status decide(rt_store *st, const rt_workflow_set *set, const rt_event *ev, rt_error *err)
{
    const json_t *d = ev->data;
    char msg[700] = "";
    json_t *gate = NULL;
    rt_approvers *keys = NULL;
    char *file = NULL;
    int64_t skew = 0;
    rt_status s = RT_OK;
    settings_get(&file, &skew);
    unsigned char pub[32];
    rt_refusal why = check_approver(ev, file, &keys, pub, msg, sizeof msg);
    const char *run_id = why ? NULL : sget(d, "run_id");
    const char *approver = why ? NULL : sget(d, "approver");
    const char *step_id = why ? NULL : sget(d, "step_id");
    if (!why) {
        s = rt_store_approval_lock(st, run_id, step_id, &gate, err);
        if (s == RT_ERR_NOT_FOUND)
            s = RT_OK;
        if (s == RT_OK && gate && !listed(json_object_get(gate, "approvers"), approver)) {
            why = RT_REFUSAL_UNKNOWN_APPROVER;
            snprintf(msg, sizeof msg, "%s is not an approver of workflow %s", approver, sget(gate, "workflow_id"));
        }
    }
    if (s == RT_OK && !why)
        why = check_signature(d, pub, msg, sizeof msg, &s, err);
    /* Authentic from here on. */
    if (s == RT_OK && !why)
        why = check_gate_action(d, gate, run_id, step_id, skew, msg, sizeof msg);
    if (s == RT_OK && !why) {
        bool fresh = false;
        s = rt_store_approval_use_nonce(st, approver, sget(d, "nonce"), run_id, 2 * skew + 3600 * 1000, &fresh, err);
        if (s == RT_OK && !fresh) {
            why = RT_REFUSAL_NONCE_REUSED;
            snprintf(msg, sizeof msg, "nonce %.40s of %s was used before", sget(d, "nonce"), approver);
        }
    }
    if (s == RT_OK && !why)
        why = check_requester(json_object_get(gate, "initiator"), approver, msg, sizeof msg);
    if (s == RT_OK && !why)
        why = check_gate_waiting(gate, run_id, step_id, msg, sizeof msg);
    if (s == RT_OK)
        s = why ? refuse(st, ev, why, msg, err) : apply(st, set, ev, gate, err);
    json_decref(gate);
    rt_approvers_free(keys);
    free(file);
    return s;
}

rt_status rt_approval_ingest(rt_store *st, const rt_workflow_set *set, rt_event *const *fresh, size_t n, rt_error *err)
{
    rt_status s = RT_OK;
    for (size_t i = 0; i < n && s == RT_OK; i++)
        if (!strcmp(fresh[i]->name, RT_APPROVAL_DECIDED_EVENT))
            s = decide(st, set, fresh[i], err);
    return s;
}

const rt_run_gate rt_approval_gate = {
    .hold = rt_approval_hold_new_runs,
    .decisions = rt_approval_ingest,
    .register_steps = rt_approval_register_steps,
    .sweep = rt_approval_sweep,
};

rt_status rt_approval_check_signed(const json_t *d, rt_refusal *why, char *msg, size_t len, int64_t *skew_ms,
                                   rt_error *err)
{
    (void)err;
    char *file = NULL;
    int64_t skew = 0;
    settings_get(&file, &skew);
    *skew_ms = skew;
    *why = RT_REFUSAL_NONE;
    rt_error e;
    rt_approvers *keys = NULL;
    unsigned char pub[32];
    const char *approver = NULL;
    if (rt_approval_decision_check(d, &e) != RT_OK) {
        *why = RT_REFUSAL_INVALID;
        snprintf(msg, len, "%s", e.msg);
    } else if (!file) {
        *why = RT_REFUSAL_UNKNOWN_APPROVER;
        snprintf(msg, len, "no approvers are configured (RATCHET_APPROVERS is not set)");
    } else if (rt_approvers_load(file, &keys, &e) != RT_OK) {
        *why = RT_REFUSAL_UNKNOWN_APPROVER;
        snprintf(msg, len, "the approvers file cannot be used: %s", e.msg);
    } else if (!rt_approvers_find(keys, approver = json_string_value(json_object_get(d, "approver")), pub)) {
        *why = RT_REFUSAL_UNKNOWN_APPROVER;
        snprintf(msg, len, "%s is not in the approvers file", approver);
    } else {
        size_t n = 0;
        char *canon = rt_approval_canonical(d, &n);
        if (!canon || !rt_approval_verify(pub, canon, n, json_string_value(json_object_get(d, "sig")))) {
            *why = RT_REFUSAL_BAD_SIGNATURE;
            snprintf(msg, len, "the signature does not verify with %s's public key", approver);
        }
        free(canon);
    }
    if (!*why) {
        int64_t age = rt_now_ms() - (int64_t)json_integer_value(json_object_get(d, "ts"));
        if (age > skew || -age > skew) {
            *why = RT_REFUSAL_EXPIRED;
            snprintf(msg, len, "the decision was signed too far from now (RATCHET_APPROVAL_SKEW)");
        }
    }
    rt_approvers_free(keys);
    free(file);
    return RT_OK;
}
