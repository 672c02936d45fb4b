/* auth.c — the tokens file, constant-time token lookup, roles, new tokens. */
#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "approval.h"
#include "log.h"
#include "refusal.h"
#include "util.h"

#define TOKENS_FILE_MAX (16u << 20)

typedef struct token_entry {
    unsigned char hash[32];
    rt_role role;
    char entity_id[RT_AUTH_ENTITY_MAX + 1];
    char holder[RT_AUTH_HOLDER_MAX + 1];
} token_entry;

struct rt_tokens {
    token_entry *items;
    size_t n;
};

static const struct {
    rt_role role;
    const char *name;
} roles[] = {
    {RT_ROLE_ADMIN, "admin"},
    {RT_ROLE_OPERATOR, "operator"},
    {RT_ROLE_AGENT, "agent"},
    {RT_ROLE_VIEWER, "viewer"},
};

const char *rt_role_name(rt_role r)
{
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (roles[i].role == r)
            return roles[i].name;
    return "?";
}

rt_status rt_role_parse(const char *s, rt_role *out, rt_error *err)
{
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        if (!strcmp(s, roles[i].name)) {
            *out = roles[i].role;
            return RT_OK;
        }
    }
    return rt_error_set(err, RT_ERR_INVALID, "unknown role \"%.40s\" (expected admin, operator, agent or viewer)", s);
}

const char *rt_identity_actor_id(const rt_identity *who)
{
    return who->holder[0] ? who->holder : who->label;
}

bool rt_entity_id_valid(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++)
        if (*p <= 0x20 || *p >= 0x7f)
            return false;
    return n >= 1 && n <= RT_AUTH_ENTITY_MAX;
}

static bool parse_hash(const char *hex, unsigned char out[32])
{
    if (strlen(hex) != 64)
        return false;
    for (int i = 0; i < 32; i++) {
        int hi = rt_hex_value(hex[2 * i]), lo = rt_hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

/* Splits line (modified in place) into at most max whitespace-separated fields. */
static int split_fields(char *line, char **fields, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *f = strtok_r(line, " \t\r", &save); f; f = strtok_r(NULL, " \t\r", &save)) {
        if (n == max)
            return max + 1;
        fields[n++] = f;
    }
    return n;
}

/* One line's fields (nf of them, comments and blank lines already skipped) as an entry:
 * "sha256hex role [entity_id] [holder=ID]". */
static rt_status parse_token_line(char **fields, int nf, const char *file, int lineno, token_entry *e, rt_error *err)
{
    memset(e, 0, sizeof *e);
    /* An optional last field holder=ID: the approver id of the person holding it. */
    if (nf >= 3 && nf <= 4 && !strncmp(fields[nf - 1], "holder=", 7)) {
        const char *h = fields[nf - 1] + 7;
        if (!rt_approver_id_valid(h))
            return rt_error_set(err, RT_ERR_INVALID,
                                "%s:%d: holder= must be an approver id (^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$)", file,
                                lineno);
        snprintf(e->holder, sizeof e->holder, "%s", h);
        nf--;
    }
    if (nf < 2 || nf > 3)
        return rt_error_set(err, RT_ERR_INVALID,
                            "%s:%d: expected \"sha256hex role [entity_id] [holder=ID]\" (%d fields found)", file,
                            lineno, nf);
    if (!parse_hash(fields[0], e->hash))
        return rt_error_set(err, RT_ERR_INVALID,
                            "%s:%d: the first field must be the 64 hex digits of the token's SHA-256 "
                            "(see `ratchet token create`)",
                            file, lineno);
    rt_error rerr;
    if (rt_role_parse(fields[1], &e->role, &rerr) != RT_OK)
        return rt_error_set(err, RT_ERR_INVALID, "%s:%d: %s", file, lineno, rerr.msg);
    if (nf == 3 && e->role != RT_ROLE_AGENT)
        return rt_error_set(err, RT_ERR_INVALID, "%s:%d: only agent tokens have an entity_id (role %s)", file, lineno,
                            fields[1]);
    if (e->role == RT_ROLE_AGENT && nf != 3)
        return rt_error_set(err, RT_ERR_INVALID, "%s:%d: an agent token needs an entity_id: \"hash agent ENTITY\"",
                            file, lineno);
    if (nf == 3) {
        if (!rt_entity_id_valid(fields[2]))
            return rt_error_set(err, RT_ERR_INVALID,
                                "%s:%d: entity_id must be 1..%d printable ASCII characters without spaces", file,
                                lineno, RT_AUTH_ENTITY_MAX);
        snprintf(e->entity_id, sizeof e->entity_id, "%s", fields[2]);
    }
    return RT_OK;
}

/* Appends e unless its hash is listed already. */
static rt_status add_token(rt_tokens *t, size_t *cap, const token_entry *e, const char *file, int lineno,
                           rt_error *err)
{
    for (size_t i = 0; i < t->n; i++)
        if (!memcmp(t->items[i].hash, e->hash, sizeof e->hash))
            return rt_error_set(err, RT_ERR_INVALID, "%s:%d: the same token hash is listed twice", file, lineno);
    if (t->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        token_entry *items = realloc(t->items, ncap * sizeof *items);
        if (!items)
            return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
        t->items = items;
        *cap = ncap;
    }
    t->items[t->n++] = *e;
    return RT_OK;
}

rt_status rt_tokens_parse(const char *text, size_t len, const char *file, rt_tokens **out, rt_error *err)
{
    *out = NULL;
    rt_tokens *t = calloc(1, sizeof *t);
    char *copy = malloc(len + 1);
    if (!t || !copy) {
        free(t);
        free(copy);
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    size_t cap = 0;
    int lineno = 0;
    rt_status s = RT_OK;
    char *p = copy;
    while (s == RT_OK && p) {
        char *line = p;
        char *nl = memchr(p, '\n', (size_t)(copy + len - p));
        if (nl) {
            *nl = '\0';
            p = nl + 1;
        } else {
            p = NULL;
        }
        lineno++;
        if (strlen(line) != (size_t)((nl ? nl : copy + len) - line)) {
            s = rt_error_set(err, RT_ERR_INVALID, "%s:%d: NUL byte in the line", file, lineno);
            break;
        }
        char *fields[4];
        int nf = split_fields(line, fields, 4);
        if (nf == 0 || fields[0][0] == '#')
            continue;
        token_entry e;
        s = parse_token_line(fields, nf, file, lineno, &e, err);
        if (s == RT_OK)
            s = add_token(t, &cap, &e, file, lineno, err);
    }
    free(copy);
    if (s != RT_OK) {
        rt_tokens_free(t);
        return s;
    }
    *out = t;
    return RT_OK;
}

rt_status rt_tokens_load(const char *path, rt_tokens **out, rt_error *err)
{
    char *text = NULL;
    size_t len = 0;
    rt_status s = rt_file_read(path, TOKENS_FILE_MAX, &text, &len, err);
    if (s != RT_OK)
        return rt_error_prefix(err, "RATCHET_TOKENS=%s", path);
    s = rt_tokens_parse(text, len, path, out, err);
    /* The file holds hashes only, but wipe the copy anyway: it may hold a pasted token. */
    OPENSSL_cleanse(text, len);
    free(text);
    return s;
}

size_t rt_tokens_count(const rt_tokens *t)
{
    return t ? t->n : 0;
}

void rt_tokens_free(rt_tokens *t)
{
    if (!t)
        return;
    free(t->items);
    free(t);
}

bool rt_tokens_lookup(const rt_tokens *t, const char *token, size_t len, rt_identity *who)
{
    if (!t || len == 0 || len > 4096)
        return false;
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (EVP_Digest(token, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        return false;
    /* Every entry is compared, whatever matched, so timing says nothing about which. */
    size_t found = SIZE_MAX;
    for (size_t i = 0; i < t->n; i++) {
        size_t eq = (size_t)(CRYPTO_memcmp(t->items[i].hash, md, 32) == 0);
        size_t mask = (size_t)0 - eq; /* all ones when equal */
        found = (found & ~mask) | (i & mask);
    }
    if (found == SIZE_MAX)
        return false;
    const token_entry *e = &t->items[found];
    memset(who, 0, sizeof *who);
    who->role = e->role;
    snprintf(who->entity_id, sizeof who->entity_id, "%s", e->entity_id);
    static const char hex[] = "0123456789abcdef";
    memcpy(who->label, "token:", 6);
    for (int i = 0; i < 6; i++) {
        who->label[6 + 2 * i] = hex[e->hash[i] >> 4];
        who->label[6 + 2 * i + 1] = hex[e->hash[i] & 15];
    }
    who->label[18] = '\0';
    snprintf(who->holder, sizeof who->holder, "%s", e->holder);
    who->authenticated = true;
    return true;
}

rt_status rt_token_generate(char *token, size_t token_len, char *hash_hex, rt_error *err)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[33]; /* 32 random bytes + one zero pad byte: 11 groups of 3 */
    if (token_len < sizeof RT_AUTH_TOKEN_PREFIX + 43)
        return rt_error_set(err, RT_ERR_INVALID, "token buffer too small");
    if (rt_random_bytes(raw, 32) != RT_OK)
        return rt_error_set(err, RT_ERR_INTERNAL, "no random bytes from OpenSSL");
    raw[32] = 0;
    char *o = token;
    memcpy(o, RT_AUTH_TOKEN_PREFIX, sizeof RT_AUTH_TOKEN_PREFIX - 1);
    o += sizeof RT_AUTH_TOKEN_PREFIX - 1;
    size_t chars = 0;
    for (size_t i = 0; i < 33 && chars < 43; i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
        for (int k = 3; k >= 0 && chars < 43; k--, chars++)
            *o++ = b64[(v >> (6 * k)) & 63];
    }
    *o = '\0';
    OPENSSL_cleanse(raw, sizeof raw);
    rt_sha256_hex(token, strlen(token), hash_hex);
    return RT_OK;
}

void rt_auth_refused(struct rt_store *st, const rt_identity *who, const char *method, const char *path, int status,
                     const char *reason)
{
    if (!who) {
        /* No identity to hold to account: logged, not audited, so that a flood of bad
         * tokens cannot fill the audit log or queue on its lock. */
        rt_log(RT_LOG_WARN, NULL, "api: refused %s %s: %d %s", method, path, status, reason);
        return;
    }
    rt_log(RT_LOG_WARN, NULL, "api: refused %s %s for %s (role %s%s%s): %d %s", method, path, who->label,
           rt_role_name(who->role), who->entity_id[0] ? ", entity " : "", who->entity_id, status, reason);
    if (!st)
        return;
    /* AUDIT HOOK: every refusal of a known caller is a record of the chain (DESIGN §6). */
    bool agent = who->role == RT_ROLE_AGENT;
    char actor[64];
    snprintf(actor, sizeof actor, "%s:%s", agent ? "agent" : "api", who->label);
    json_t *details = json_pack("{s:s, s:s, s:i, s:o, s:s, s:s*}", "method", method, "path", path, "status", status,
                                "reason", rt_json_text(reason, strlen(reason)), "role", rt_role_name(who->role),
                                "entity_id", who->entity_id[0] ? who->entity_id : NULL);
    rt_error err;
    if (rt_refusal_record_own(st, actor, agent ? "agent.refused" : "api.refused", path, details, &err) != RT_OK)
        rt_log(RT_LOG_WARN, NULL, "api: the refusal above is not in the audit log: %s", err.msg);
    json_decref(details);
}
