/* workflow.c — the workflow loader (DESIGN §3): every rule of the definition format is
 * checked here, and every message names the file, the JSON path and what is wrong. */
#include "workflow.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cron.h"
#include "expr.h"
#include "util.h"

#define PATH_CAP 512     /* a JSON path longer than this is cut (messages stay readable) */
#define ID_MAX_LEN 128   /* ^[a-z0-9][a-z0-9._-]{0,127}$ */
#define EVENT_MAX_LEN 200 /* a subject ("events." + name) must fit an AMQP routing key (255 bytes) */
#define INT_FIELD_MAX 1000000

/* ---------------------------------------------------------------------------------
 * Where we are in the document, and how errors are written.
 * --------------------------------------------------------------------------------- */

typedef struct loader {
    const char *file; /* may be NULL */
    rt_error *err;    /* may be NULL */
    char path[PATH_CAP];
    size_t plen;
} loader;

static void path_append(loader *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void path_append(loader *l, const char *fmt, ...)
{
    if (l->plen >= sizeof l->path - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->path + l->plen, sizeof l->path - l->plen, fmt, ap);
    va_end(ap);
    if (n < 0)
        l->path[l->plen] = '\0';
    else if ((size_t)n >= sizeof l->path - l->plen)
        l->plen = sizeof l->path - 1;
    else
        l->plen += (size_t)n;
}

static bool key_is_plain(const char *k)
{
    if (!*k)
        return false;
    for (const char *p = k; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '$')
            return false;
    }
    return true;
}

/* Pushes ".key" (or ["key"] for keys that are not plain); returns the length to pop back to. */
static size_t path_push_key(loader *l, const char *key)
{
    size_t old = l->plen;
    if (key_is_plain(key) && strlen(key) <= 64) {
        path_append(l, ".%s", key);
        return old;
    }
    char esc[80];
    size_t o = 0;
    for (const char *p = key; *p && o < sizeof esc - 4; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            esc[o++] = '\\';
            esc[o++] = (char)c;
        } else {
            esc[o++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
        }
    }
    esc[o] = '\0';
    path_append(l, "[\"%s%s\"]", esc, strlen(key) > o ? "..." : "");
    return old;
}

static size_t path_push_index(loader *l, size_t i)
{
    size_t old = l->plen;
    path_append(l, "[%zu]", i);
    return old;
}

static void path_pop(loader *l, size_t old)
{
    l->plen = old;
    l->path[old] = '\0';
}

/* "<file>: <path>: <message>" (no file part when the file is not known). */
static rt_status fail_v(loader *l, rt_status code, const char *fmt, va_list ap)
{
    char msg[RT_ERROR_MAX];
    vsnprintf(msg, sizeof msg, fmt, ap);
    return rt_error_set(l->err, code, "%s%s%s: %s", l->file ? l->file : "", l->file ? ": " : "", l->path,
                        msg);
}

static rt_status fail_code(loader *l, rt_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static rt_status fail(loader *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static rt_status fail_code(loader *l, rt_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rt_status st = fail_v(l, code, fmt, ap);
    va_end(ap);
    return st;
}

static rt_status fail(loader *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rt_status st = fail_v(l, RT_ERR_INVALID, fmt, ap);
    va_end(ap);
    return st;
}

/* ---------------------------------------------------------------------------------
 * "did you mean": optimal string alignment distance (a swap of two letters is one edit).
 * --------------------------------------------------------------------------------- */

#define SUGGEST_MAX_LEN 40

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > SUGGEST_MAX_LEN || lb > SUGGEST_MAX_LEN)
        return SIZE_MAX;
    size_t d[SUGGEST_MAX_LEN + 1][SUGGEST_MAX_LEN + 1];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[la][lb];
}

/* The closest candidate within a small distance, or NULL. */
static const char *suggest(const char *word, const char *const *cands, size_t n)
{
    size_t len = strlen(word);
    size_t limit = len <= 3 ? 1 : 2;
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        size_t dist = edit_distance(word, cands[i]);
        if (dist <= limit && dist < best_d) {
            best = cands[i];
            best_d = dist;
        }
    }
    return best;
}

static size_t count_names(const char *const *names)
{
    size_t n = 0;
    while (names[n])
        n++;
    return n;
}

/* "a, b, c" into buf. */
static void join_names(const char *const *names, size_t n, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && o < len; i++) {
        int w = snprintf(buf + o, len - o, "%s%s", i ? ", " : "", names[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
}

/* ---------------------------------------------------------------------------------
 * Field readers. Each reports its own error at the right path; values in `obj` are
 * borrowed references.
 * --------------------------------------------------------------------------------- */

/* Rejects the first key of obj (in document order) that is not in allowed[]. `what`
 * names the object in the message ("a cron trigger"), or NULL. */
static rt_status check_keys(loader *l, json_t *obj, const char *const *allowed, const char *what)
{
    size_t n = count_names(allowed);
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        bool ok = false;
        for (size_t i = 0; i < n && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        if (ok)
            continue;
        const char *s = suggest(key, allowed, n);
        path_push_key(l, key);
        char list[512];
        join_names(allowed, n, list, sizeof list);
        if (s)
            return fail(l, "unknown key (did you mean \"%s\"?)", s);
        if (what)
            return fail(l, "unknown key for %s (allowed: %s)", what, list);
        return fail(l, "unknown key (allowed: %s)", list);
    }
    return RT_OK;
}

static rt_status missing(loader *l, const char *key)
{
    return fail(l, "missing required key \"%s\"", key);
}

/* A string value; *out is borrowed from v. Strings with an embedded NUL (possible only
 * for definitions built in memory) are refused. */
static rt_status as_string(loader *l, json_t *v, const char **out)
{
    if (!json_is_string(v))
        return fail(l, "must be a string, not %s", rt_json_type_phrase(v));
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v))
        return fail(l, "must not contain a NUL character");
    *out = s;
    return RT_OK;
}

/* Optional string member; *out stays NULL when absent. */
static rt_status get_string(loader *l, json_t *obj, const char *key, bool required, const char **out)
{
    *out = NULL;
    json_t *v = json_object_get(obj, key); /* borrowed */
    if (!v)
        return required ? missing(l, key) : RT_OK;
    size_t old = path_push_key(l, key);
    rt_status st = as_string(l, v, out);
    path_pop(l, old);
    return st;
}

static rt_status dup_string(loader *l, const char *s, char **out)
{
    *out = NULL;
    if (!s)
        return RT_OK;
    *out = strdup(s);
    if (!*out)
        return fail_code(l, RT_ERR_NOMEM, "out of memory");
    return RT_OK;
}

static rt_status get_bool(loader *l, json_t *obj, const char *key, bool *out)
{
    json_t *v = json_object_get(obj, key); /* borrowed */
    if (!v)
        return RT_OK;
    if (!json_is_boolean(v)) {
        size_t old = path_push_key(l, key);
        rt_status st = fail(l, "must be true or false, not %s", rt_json_type_phrase(v));
        path_pop(l, old);
        return st;
    }
    *out = json_is_true(v);
    return RT_OK;
}

/* An integer in [min, max]. A number with no fraction (1.0, 1e2) counts as an integer, as
 * it does for JSON Schema. *present tells whether the key was there. */
static rt_status get_int(loader *l, json_t *obj, const char *key, bool required, long long min, long long max,
                         int *out, bool *present)
{
    json_t *v = json_object_get(obj, key); /* borrowed */
    if (present)
        *present = v != NULL;
    if (!v)
        return required ? missing(l, key) : RT_OK;
    size_t old = path_push_key(l, key);
    rt_status st = RT_OK;
    long long n = 0;
    if (json_is_integer(v)) {
        n = (long long)json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!isfinite(d) || d != floor(d)) {
            st = fail(l, "must be an integer, not %g", d);
            goto out;
        }
        if (d < (double)min || d > (double)max) { /* before the cast, which could overflow */
            st = fail(l, "must be between %lld and %lld, not %g", min, max, d);
            goto out;
        }
        n = (long long)d;
    } else {
        st = fail(l, "must be an integer, not %s", rt_json_type_phrase(v));
        goto out;
    }
    if (n < min || n > max) {
        st = fail(l, "must be between %lld and %lld, not %lld", min, max, n);
        goto out;
    }
    *out = (int)n;
out:
    path_pop(l, old);
    return st;
}

static rt_status get_duration(loader *l, json_t *obj, const char *key, bool required, int64_t *ms)
{
    const char *s;
    rt_status st = get_string(l, obj, key, required, &s);
    if (st != RT_OK || !s)
        return st;
    rt_error e;
    if (rt_duration_parse(s, ms, &e) != RT_OK) {
        size_t old = path_push_key(l, key);
        st = fail(l, "%s", e.msg);
        path_pop(l, old);
    }
    return st;
}

/* One of names[]; *out is the index. */
static rt_status get_enum(loader *l, json_t *obj, const char *key, const char *const *names, int *out)
{
    const char *s;
    rt_status st = get_string(l, obj, key, false, &s);
    if (st != RT_OK || !s)
        return st;
    size_t n = count_names(names);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (int)i;
            return RT_OK;
        }
    }
    char list[256];
    join_names(names, n, list, sizeof list);
    size_t old = path_push_key(l, key);
    rt_qbuf q;
    st = fail(l, "%s is not one of %s", rt_quote(&q, s), list);
    path_pop(l, old);
    return st;
}

/* An optional member that must be an object when present; *out is borrowed. */
static rt_status get_object(loader *l, json_t *obj, const char *key, json_t **out)
{
    *out = json_object_get(obj, key); /* borrowed */
    if (*out && !json_is_object(*out)) {
        size_t old = path_push_key(l, key);
        rt_status st = fail(l, "must be an object, not %s", rt_json_type_phrase(*out));
        path_pop(l, old);
        *out = NULL;
        return st;
    }
    return RT_OK;
}

static rt_status get_array(loader *l, json_t *obj, const char *key, json_t **out)
{
    *out = json_object_get(obj, key); /* borrowed */
    if (*out && !json_is_array(*out)) {
        size_t old = path_push_key(l, key);
        rt_status st = fail(l, "must be an array, not %s", rt_json_type_phrase(*out));
        path_pop(l, old);
        *out = NULL;
        return st;
    }
    return RT_OK;
}

/* ---------------------------------------------------------------------------------
 * Expressions and templates. expr.c may not be there yet: its RT_ERR_INTERNAL means
 * "not checked yet", never "bad workflow".
 * --------------------------------------------------------------------------------- */

static rt_status expr_syntax(loader *l, const char *src)
{
    rt_error e;
    rt_status st = rt_expr_check(src, &e);
    if (st == RT_OK || st == RT_ERR_INTERNAL)
        return RT_OK;
    return fail_code(l, st == RT_ERR_NOMEM ? RT_ERR_NOMEM : RT_ERR_INVALID, "%s", e.msg);
}

static bool blank(const char *s, const char *end)
{
    for (; s < end; s++) {
        if (!isspace((unsigned char)*s))
            return false;
    }
    return true;
}

/* `if`, `for_each`, `key`, `idempotency`: a bare expression, or exactly one ${{ }}
 * template (surrounding white space allowed). Checked at the current path. */
static rt_status check_expr_string(loader *l, const char *s)
{
    const char *end = s + strlen(s);
    if (blank(s, end))
        return fail(l, "empty expression");
    if (!strstr(s, "${{"))
        return expr_syntax(l, s);
    const char *p = s;
    while (isspace((unsigned char)*p))
        p++;
    while (end > p && isspace((unsigned char)end[-1]))
        end--;
    if ((size_t)(end - p) < 5 || strncmp(p, "${{", 3) != 0 || end[-1] != '}' || end[-2] != '}' ||
        strstr(p + 3, "${{") != NULL)
        return fail(l, "must be a bare expression (event.data.x == 1) or exactly one template "
                       "(${{ event.data.x == 1 }}), not text mixed with templates");
    const char *in = p + 3, *in_end = end - 2;
    if (blank(in, in_end))
        return fail(l, "empty expression");
    char *inner = strndup(in, (size_t)(in_end - in));
    if (!inner)
        return fail_code(l, RT_ERR_NOMEM, "out of memory");
    rt_status st = expr_syntax(l, inner);
    free(inner);
    return st;
}

/* An optional expression member; *out is borrowed. */
static rt_status get_expr(loader *l, json_t *obj, const char *key, const char **out)
{
    rt_status st = get_string(l, obj, key, false, out);
    if (st != RT_OK || !*out)
        return st;
    size_t old = path_push_key(l, key);
    st = check_expr_string(l, *out);
    path_pop(l, old);
    return st;
}

/* Every ${{ }} inside value (any JSON), at the current path. */
static rt_status check_templates(loader *l, json_t *value)
{
    rt_error e;
    rt_status st = rt_template_check(value, l->path, &e);
    if (st == RT_OK || st == RT_ERR_INTERNAL)
        return RT_OK;
    st = st == RT_ERR_NOMEM ? RT_ERR_NOMEM : RT_ERR_INVALID;
    if (strncmp(e.msg, l->path, l->plen) == 0) /* already names the full path */
        return rt_error_set(l->err, st, "%s%s%s", l->file ? l->file : "", l->file ? ": " : "", e.msg);
    return fail_code(l, st, "%s", e.msg);
}

/* ---------------------------------------------------------------------------------
 * Names: workflow/step ids, event names and patterns.
 * --------------------------------------------------------------------------------- */

bool rt_workflow_id_valid(const char *id)
{
    if (!id)
        return false;
    size_t n = strlen(id);
    if (n == 0 || n > ID_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '.' || c == '_' || c == '-'));
        if (!ok)
            return false;
    }
    return true;
}

static bool event_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == ':';
}

static rt_status event_check(const char *s, bool wildcards, rt_error *err)
{
    const char *what = wildcards ? "event pattern" : "event name";
    rt_qbuf q;
    if (!s || !*s)
        return rt_error_set(err, RT_ERR_INVALID, "empty %s", what);
    size_t n = strlen(s);
    if (n > EVENT_MAX_LEN)
        return rt_error_set(err, RT_ERR_INVALID, "%s is %zu bytes, over the %d-byte limit", what, n, EVENT_MAX_LEN);
    const char *p = s;
    for (;;) {
        const char *t = p;
        while (*p && *p != '.')
            p++;
        size_t tl = (size_t)(p - t);
        if (tl == 0)
            return rt_error_set(err, RT_ERR_INVALID,
                                "%s %s: empty token (names are tokens separated by single dots)", what, rt_quote(&q, s));
        if (tl == 1 && (*t == '*' || *t == '>')) {
            if (!wildcards)
                return rt_error_set(err, RT_ERR_INVALID,
                                    "event name %s: wildcards (* and >) are only allowed in patterns", rt_quote(&q, s));
            if (*t == '>' && *p)
                return rt_error_set(err, RT_ERR_INVALID, "event pattern %s: '>' must be the last token", rt_quote(&q, s));
        } else {
            for (const char *c = t; c < p; c++) {
                if (!event_char(*c))
                    return rt_error_set(err, RT_ERR_INVALID,
                                        "%s %s: character '%c' at column %zu is not allowed (tokens use "
                                        "letters, digits, _ - :%s)",
                                        what, rt_quote(&q, s), isprint((unsigned char)*c) ? *c : '?', (size_t)(c - s) + 1,
                                        wildcards ? "; * and > are whole tokens" : "");
            }
        }
        if (!*p)
            return RT_OK;
        p++;
    }
}

rt_status rt_event_pattern_check(const char *pattern, rt_error *err)
{
    return event_check(pattern, true, err);
}

rt_status rt_event_name_check(const char *name, rt_error *err)
{
    return event_check(name, false, err);
}

bool rt_event_name_matches(const char *pattern, const char *name)
{
    if (!pattern || !name || !*pattern || !*name)
        return false;
    const char *p = pattern, *n = name;
    for (;;) {
        const char *pe = strchr(p, '.'), *ne = strchr(n, '.');
        if (!pe)
            pe = p + strlen(p);
        if (!ne)
            ne = n + strlen(n);
        size_t pl = (size_t)(pe - p), nl = (size_t)(ne - n);
        if (pl == 1 && *p == '>' && !*pe)
            return nl > 0; /* '>' takes this token and all that follow */
        if (pl == 1 && *p == '*') {
            if (nl == 0)
                return false;
        } else if (pl != nl || memcmp(p, n, pl) != 0) {
            return false;
        }
        if (!*pe || !*ne)
            return !*pe && !*ne;
        p = pe + 1;
        n = ne + 1;
    }
}

/* ---------------------------------------------------------------------------------
 * Enumerations.
 * --------------------------------------------------------------------------------- */

static const char *const priority_names[] = {"critical", "high", "normal", "low", NULL};
static const char *const backoff_names[] = {"fixed", "linear", "exponential", NULL};
static const char *const catch_up_names[] = {"latest", "all", "none", NULL};
static const char *const actor_names[] = {"user", "agent", "service", "system", NULL};
static const char *const singleton_modes[] = {"skip", "cancel", NULL};
static const char *const on_resume_names[] = {"run", "skip", NULL};

const char *rt_priority_name(rt_priority p)
{
    return (unsigned)p < 4 ? priority_names[p] : "unknown";
}

const char *rt_backoff_name(rt_backoff b)
{
    return (unsigned)b < 3 ? backoff_names[b] : "unknown";
}

const char *rt_catch_up_name(rt_catch_up c)
{
    return (unsigned)c < 3 ? catch_up_names[c] : "unknown";
}

rt_retry_policy rt_retry_policy_default(void)
{
    return (rt_retry_policy){
        .max_attempts = 3, .backoff = RT_BACKOFF_EXPONENTIAL, .delay_ms = 1000, .max_delay_ms = 0, .jitter = false};
}

/* ---------------------------------------------------------------------------------
 * Blocks.
 * --------------------------------------------------------------------------------- */

/* `retries` at the current path; *p holds the inherited policy and gets the keys given. */
static rt_status parse_retries(loader *l, json_t *obj, rt_retry_policy *p)
{
    static const char *const keys[] = {"max_attempts", "backoff", "delay", "max_delay", "jitter", NULL};
    rt_status st = check_keys(l, obj, keys, "retries");
    if (st != RT_OK)
        return st;
    if ((st = get_int(l, obj, "max_attempts", false, 1, 1000, &p->max_attempts, NULL)) != RT_OK)
        return st;
    int b = (int)p->backoff;
    if ((st = get_enum(l, obj, "backoff", backoff_names, &b)) != RT_OK)
        return st;
    p->backoff = (rt_backoff)b;
    if ((st = get_duration(l, obj, "delay", false, &p->delay_ms)) != RT_OK)
        return st;
    if ((st = get_duration(l, obj, "max_delay", false, &p->max_delay_ms)) != RT_OK)
        return st;
    if ((st = get_bool(l, obj, "jitter", &p->jitter)) != RT_OK)
        return st;
    if (json_object_get(obj, "delay") && json_object_get(obj, "max_delay") && p->max_delay_ms < p->delay_ms) {
        size_t old = path_push_key(l, "max_delay");
        st = fail(l, "%s is shorter than delay %s", json_string_value(json_object_get(obj, "max_delay")),
                  json_string_value(json_object_get(obj, "delay")));
        path_pop(l, old);
    }
    return st;
}

/* cron (checked by cron.c), timezone (loaded from the tz database), catch_up. */
static rt_status parse_cron_trigger(loader *l, json_t *t, rt_trigger *tr)
{
    static const char *const keys[] = {"cron", "timezone", "catch_up", NULL};
    tr->kind = RT_TRIGGER_CRON;
    const char *s;
    rt_error e;
    rt_status st = check_keys(l, t, keys, "a cron trigger");
    if (st == RT_OK)
        st = get_string(l, t, "cron", true, &s);
    if (st != RT_OK)
        return st;
    size_t old = path_push_key(l, "cron");
    if (blank(s, s + strlen(s))) {
        st = fail(l, "empty cron expression");
    } else {
        rt_cron *c = NULL;
        rt_status cs = rt_cron_parse(s, &c, &e);
        rt_cron_free(c);
        if (cs != RT_OK && cs != RT_ERR_INTERNAL) /* INTERNAL: cron.c not there yet */
            st = fail(l, "%s", e.msg);
    }
    path_pop(l, old);
    if (st != RT_OK || (st = dup_string(l, s, &tr->cron)) != RT_OK)
        return st;

    if ((st = get_string(l, t, "timezone", false, &s)) != RT_OK)
        return st;
    if (s) {
        old = path_push_key(l, "timezone");
        if (!*s) {
            st = fail(l, "empty time zone (use an IANA name like \"UTC\" or \"Europe/Paris\")");
        } else {
            rt_tz *tz = NULL;
            rt_status zs = rt_tz_load(s, &tz, &e);
            rt_tz_free(tz);
            if (zs != RT_OK && zs != RT_ERR_INTERNAL) /* INTERNAL: cron.c not there yet */
                st = fail(l, "%s", e.msg);
        }
        path_pop(l, old);
        if (st != RT_OK)
            return st;
    }
    if ((st = dup_string(l, s ? s : "UTC", &tr->timezone)) != RT_OK)
        return st;

    int cu = RT_CATCH_UP_LATEST;
    st = get_enum(l, t, "catch_up", catch_up_names, &cu);
    tr->catch_up = (rt_catch_up)cu;
    return st;
}

/* event (a name or a NATS-style pattern) and an optional `if`. */
static rt_status parse_event_trigger(loader *l, json_t *t, rt_trigger *tr)
{
    static const char *const keys[] = {"event", "if", NULL};
    tr->kind = RT_TRIGGER_EVENT;
    const char *s;
    rt_error e;
    rt_status st = check_keys(l, t, keys, "an event trigger");
    if (st == RT_OK)
        st = get_string(l, t, "event", true, &s);
    if (st != RT_OK)
        return st;
    if (rt_event_pattern_check(s, &e) != RT_OK) {
        size_t old = path_push_key(l, "event");
        st = fail(l, "%s", e.msg);
        path_pop(l, old);
        return st;
    }
    if ((st = dup_string(l, s, &tr->event)) != RT_OK)
        return st;
    if ((st = get_expr(l, t, "if", &s)) != RT_OK)
        return st;
    return dup_string(l, s, &tr->if_expr);
}

static rt_status parse_trigger(loader *l, json_t *t, rt_trigger *tr)
{
    if (!json_is_object(t))
        return fail(l, "a trigger must be an object, not %s", rt_json_type_phrase(t));
    bool has_cron = json_object_get(t, "cron") != NULL, has_event = json_object_get(t, "event") != NULL;
    if (has_cron && has_event)
        return fail(l, "a trigger has exactly one of \"cron\" or \"event\", not both");
    if (has_cron)
        return parse_cron_trigger(l, t, tr);
    if (has_event)
        return parse_event_trigger(l, t, tr);
    /* Neither: a misspelt "cron"/"event" deserves the did-you-mean of an unknown key. */
    static const char *const either[] = {"cron", "timezone", "catch_up", "event", "if", NULL};
    rt_status st = check_keys(l, t, either, "a trigger");
    if (st != RT_OK)
        return st;
    return fail(l, "a trigger needs \"cron\" or \"event\"");
}

static rt_status parse_triggers(loader *l, json_t *def, rt_workflow *wf)
{
    json_t *arr;
    rt_status st = get_array(l, def, "triggers", &arr);
    if (st != RT_OK || !arr)
        return st;
    size_t n = json_array_size(arr);
    if (n == 0)
        return RT_OK;
    wf->triggers = calloc(n, sizeof *wf->triggers);
    if (!wf->triggers)
        return fail_code(l, RT_ERR_NOMEM, "out of memory");
    wf->n_triggers = n;
    size_t old = path_push_key(l, "triggers");
    for (size_t i = 0; i < n && st == RT_OK; i++) {
        size_t o2 = path_push_index(l, i);
        st = parse_trigger(l, json_array_get(arr, i), &wf->triggers[i]); /* borrowed */
        path_pop(l, o2);
    }
    path_pop(l, old);
    return st;
}

/* Pushes `key` when obj has it as an object, and leaves *blk NULL when absent. */
typedef rt_status (*block_fn)(loader *l, json_t *blk, rt_workflow *wf);

static rt_status parse_block(loader *l, json_t *def, const char *key, block_fn fn, rt_workflow *wf, json_t **keep)
{
    json_t *blk;
    rt_status st = get_object(l, def, key, &blk);
    if (st != RT_OK || !blk)
        return st;
    size_t old = path_push_key(l, key);
    st = fn(l, blk, wf);
    path_pop(l, old);
    if (st == RT_OK && keep)
        *keep = json_incref(blk); /* new reference, kept by the workflow; shares the definition */
    return st;
}

static rt_status block_concurrency(loader *l, json_t *b, rt_workflow *wf)
{
    static const char *const keys[] = {"limit", "key", NULL};
    int limit;
    const char *s;
    rt_status st = check_keys(l, b, keys, "concurrency");
    if (st == RT_OK)
        st = get_int(l, b, "limit", true, 1, INT_FIELD_MAX, &limit, NULL);
    if (st == RT_OK)
        st = get_expr(l, b, "key", &s);
    return st;
}

static rt_status block_throttle(loader *l, json_t *b, rt_workflow *wf)
{
    static const char *const keys[] = {"limit", "period", "key", "burst", NULL};
    int n;
    int64_t ms;
    const char *s;
    rt_status st = check_keys(l, b, keys, "throttle");
    if (st == RT_OK)
        st = get_int(l, b, "limit", true, 1, INT_FIELD_MAX, &n, NULL);
    if (st == RT_OK)
        st = get_duration(l, b, "period", true, &ms);
    if (st == RT_OK)
        st = get_expr(l, b, "key", &s);
    if (st == RT_OK)
        st = get_int(l, b, "burst", false, 1, INT_FIELD_MAX, &n, NULL);
    return st;
}

static rt_status block_debounce(loader *l, json_t *b, rt_workflow *wf)
{
    static const char *const keys[] = {"period", "key", "timeout", NULL};
    int64_t period = 0, timeout = 0;
    const char *s;
    rt_status st = check_keys(l, b, keys, "debounce");
    if (st == RT_OK)
        st = get_duration(l, b, "period", true, &period);
    if (st == RT_OK)
        st = get_expr(l, b, "key", &s);
    if (st == RT_OK)
        st = get_duration(l, b, "timeout", false, &timeout);
    if (st == RT_OK && timeout && timeout < period) {
        size_t old = path_push_key(l, "timeout");
        st = fail(l, "%s is shorter than period %s: the run would start before the quiet period ends",
                  json_string_value(json_object_get(b, "timeout")), json_string_value(json_object_get(b, "period")));
        path_pop(l, old);
    }
    return st;
}

static rt_status block_singleton(loader *l, json_t *b, rt_workflow *wf)
{
    static const char *const keys[] = {"key", "mode", NULL};
    const char *s;
    int mode = 0;
    rt_status st = check_keys(l, b, keys, "singleton");
    if (st == RT_OK)
        st = get_expr(l, b, "key", &s);
    if (st == RT_OK)
        st = get_enum(l, b, "mode", singleton_modes, &mode);
    return st;
}

static rt_status block_batch(loader *l, json_t *b, rt_workflow *wf)
{
    static const char *const keys[] = {"max_size", "timeout", NULL};
    int n;
    int64_t ms;
    rt_status st = check_keys(l, b, keys, "batch_events");
    if (st == RT_OK)
        st = get_int(l, b, "max_size", true, 1, 10000, &n, NULL);
    if (st == RT_OK)
        st = get_duration(l, b, "timeout", true, &ms);
    return st;
}

static bool approver_id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > ID_MAX_LEN || !isalnum((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!isalnum((unsigned char)c) && c != '.' && c != '_' && c != '-' && c != '@' && c != '+')
            return false;
    }
    return true;
}

/* A non-empty array of unique strings, each accepted by valid() or one of names[]. */
static rt_status string_list(loader *l, json_t *obj, const char *key, bool (*valid)(const char *),
                             const char *const *names, const char *what)
{
    json_t *arr;
    rt_status st = get_array(l, obj, key, &arr);
    if (st != RT_OK)
        return st;
    if (!arr)
        return missing(l, key);
    size_t old = path_push_key(l, key);
    if (json_array_size(arr) == 0)
        st = fail(l, "must not be empty");
    for (size_t i = 0; st == RT_OK && i < json_array_size(arr); i++) {
        size_t o2 = path_push_index(l, i);
        const char *s = NULL;
        rt_qbuf q;
        st = as_string(l, json_array_get(arr, i), &s); /* borrowed */
        if (st == RT_OK && valid && !valid(s))
            st = fail(l, "%s is not a valid %s", rt_quote(&q, s), what);
        if (st == RT_OK && names) {
            bool found = false;
            for (size_t k = 0; names[k] && !found; k++)
                found = strcmp(s, names[k]) == 0;
            if (!found) {
                char list[128];
                join_names(names, count_names(names), list, sizeof list);
                st = fail(l, "%s is not one of %s", rt_quote(&q, s), list);
            }
        }
        for (size_t k = 0; st == RT_OK && k < i; k++) {
            if (strcmp(s, json_string_value(json_array_get(arr, k))) == 0)
                st = fail(l, "%s is listed twice", rt_quote(&q, s));
        }
        path_pop(l, o2);
    }
    path_pop(l, old);
    return st;
}

static rt_status block_approval(loader *l, json_t *b, rt_workflow *wf)
{
    static const char *const keys[] = {"required_for", "approvers", "timeout", NULL};
    int64_t ms;
    rt_status st = check_keys(l, b, keys, "approval");
    if (st == RT_OK)
        st = string_list(l, b, "required_for", NULL, actor_names, "actor type");
    if (st == RT_OK)
        st = string_list(l, b, "approvers", approver_id_valid, NULL, "approver id");
    if (st == RT_OK)
        st = get_duration(l, b, "timeout", false, &ms);
    return st;
}

static rt_status block_on_failure(loader *l, json_t *b, rt_workflow *wf)
{
    static const char *const keys[] = {"event", "workflow", NULL};
    rt_status st = check_keys(l, b, keys, "on_failure");
    if (st != RT_OK)
        return st;
    bool ev = json_object_get(b, "event") != NULL, w = json_object_get(b, "workflow") != NULL;
    if (ev == w)
        return fail(l, "needs exactly one of \"event\" (an event to publish) or \"workflow\" (a workflow to start)");
    const char *s;
    rt_error e;
    if (ev) {
        if ((st = get_string(l, b, "event", true, &s)) != RT_OK)
            return st;
        if (rt_event_name_check(s, &e) != RT_OK) {
            size_t old = path_push_key(l, "event");
            st = fail(l, "%s", e.msg);
            path_pop(l, old);
        }
        return st;
    }
    if ((st = get_string(l, b, "workflow", true, &s)) != RT_OK)
        return st;
    size_t old = path_push_key(l, "workflow");
    rt_qbuf q;
    if (!rt_workflow_id_valid(s))
        st = fail(l, "%s is not a valid workflow id (^[a-z0-9][a-z0-9._-]{0,127}$)", rt_quote(&q, s));
    else if (strcmp(s, wf->id) == 0)
        st = fail(l, "a workflow cannot be its own on_failure handler");
    path_pop(l, old);
    return st;
}

static rt_status parse_cancel_on(loader *l, json_t *def, rt_workflow *wf)
{
    static const char *const keys[] = {"event", "if", NULL};
    json_t *arr;
    rt_status st = get_array(l, def, "cancel_on", &arr);
    if (st != RT_OK || !arr)
        return st;
    size_t old = path_push_key(l, "cancel_on");
    for (size_t i = 0; st == RT_OK && i < json_array_size(arr); i++) {
        json_t *c = json_array_get(arr, i); /* borrowed */
        size_t o2 = path_push_index(l, i);
        const char *s;
        rt_error e;
        if (!json_is_object(c))
            st = fail(l, "must be an object, not %s", rt_json_type_phrase(c));
        if (st == RT_OK)
            st = check_keys(l, c, keys, "cancel_on");
        if (st == RT_OK)
            st = get_string(l, c, "event", true, &s);
        if (st == RT_OK && rt_event_pattern_check(s, &e) != RT_OK) {
            size_t o3 = path_push_key(l, "event");
            st = fail(l, "%s", e.msg);
            path_pop(l, o3);
        }
        if (st == RT_OK)
            st = get_expr(l, c, "if", &s);
        path_pop(l, o2);
    }
    path_pop(l, old);
    if (st == RT_OK)
        wf->cancel_on = json_incref(arr); /* new reference, kept by the workflow */
    return st;
}

/* ---------------------------------------------------------------------------------
 * Steps.
 * --------------------------------------------------------------------------------- */

/* Step ids sorted, for duplicate checks and `needs` look-ups in O(log n): a workflow
 * rebuilt from the database for every claimed run must stay cheap at 256 steps. */
typedef struct id_entry {
    const char *id; /* borrowed from rt_step_def.id */
    size_t idx;
} id_entry;

typedef struct id_index {
    id_entry *items;
    size_t n;
} id_index;

/* The position of id in the index, or where it would go; *found says which. */
static size_t id_index_find(const id_index *ix, const char *id, bool *found)
{
    size_t lo = 0, hi = ix->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ix->items[mid].id, id);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static rt_status unknown_step_type(loader *l, const char *uses)
{
    const rt_step_type *const *types = rt_step_types();
    const char *names[64];
    size_t n = 0;
    for (; types[n] && n < 64; n++)
        names[n] = types[n]->name;
    char list[512];
    join_names(names, n, list, sizeof list);
    const char *s = suggest(uses, names, n);
    rt_qbuf q;
    if (s)
        return fail(l, "unknown step type %s (did you mean \"%s\"? known: %s)", rt_quote(&q, uses), s, list);
    return fail(l, "unknown step type %s (known: %s)", rt_quote(&q, uses), list);
}

/* needs: only the shape here (distinct strings); ids are resolved once every step is known.
 * Without it a step needs the one before it. */
static rt_status parse_needs(loader *l, json_t *sj, rt_workflow *wf, size_t idx)
{
    rt_step_def *sd = &wf->steps[idx];
    json_t *needs;
    rt_status st = get_array(l, sj, "needs", &needs);
    if (st != RT_OK)
        return st;
    if (!needs && idx > 0) {
        sd->needs = calloc(1, sizeof *sd->needs);
        if (!sd->needs || (st = dup_string(l, wf->steps[idx - 1].id, &sd->needs[0])) != RT_OK)
            return st != RT_OK ? st : fail_code(l, RT_ERR_NOMEM, "out of memory");
        sd->n_needs = 1;
        return RT_OK;
    }
    if (!needs)
        return RT_OK;
    size_t n = json_array_size(needs);
    size_t old = path_push_key(l, "needs");
    if (n > 0) {
        sd->needs = calloc(n, sizeof *sd->needs);
        if (!sd->needs)
            st = fail_code(l, RT_ERR_NOMEM, "out of memory");
    }
    rt_qbuf q;
    for (size_t i = 0; st == RT_OK && i < n; i++) {
        size_t o2 = path_push_index(l, i);
        const char *s = NULL;
        st = as_string(l, json_array_get(needs, i), &s); /* borrowed */
        for (size_t k = 0; st == RT_OK && k < i; k++) {
            if (strcmp(sd->needs[k], s) == 0)
                st = fail(l, "%s is listed twice", rt_quote(&q, s));
        }
        if (st == RT_OK && (st = dup_string(l, s, &sd->needs[i])) == RT_OK)
            sd->n_needs = i + 1;
        path_pop(l, o2);
    }
    path_pop(l, old);
    return st;
}

static rt_status parse_step(loader *l, json_t *sj, rt_workflow *wf, size_t idx, id_index *ix)
{
    static const char *const keys[] = {"id",      "uses",    "with",    "needs",     "if",
                                       "timeout", "retries", "continue_on_error", "for_each",
                                       "for_each_concurrency", NULL};
    rt_step_def *sd = &wf->steps[idx];
    if (!json_is_object(sj))
        return fail(l, "a step must be an object, not %s", rt_json_type_phrase(sj));
    rt_status st = check_keys(l, sj, keys, "a step");
    if (st != RT_OK)
        return st;

    const char *s;
    if ((st = get_string(l, sj, "id", true, &s)) != RT_OK)
        return st;
    size_t old = path_push_key(l, "id");
    rt_qbuf q;
    if (!rt_workflow_id_valid(s))
        st = fail(l, "%s is not a valid step id (^[a-z0-9][a-z0-9._-]{0,127}$)", rt_quote(&q, s));
    bool found = false;
    size_t pos = st == RT_OK ? id_index_find(ix, s, &found) : 0;
    if (found)
        st = fail(l, "duplicate step id \"%s\" (also $.steps[%zu])", s, ix->items[pos].idx);
    path_pop(l, old);
    if (st != RT_OK || (st = dup_string(l, s, &sd->id)) != RT_OK)
        return st;
    memmove(ix->items + pos + 1, ix->items + pos, (ix->n - pos) * sizeof *ix->items);
    ix->items[pos] = (id_entry){.id = sd->id, .idx = idx};
    ix->n++;

    if ((st = get_string(l, sj, "uses", true, &s)) != RT_OK)
        return st;
    sd->type = rt_step_type_find(s);
    if (!sd->type) {
        old = path_push_key(l, "uses");
        st = unknown_step_type(l, s);
        path_pop(l, old);
        return st;
    }
    if ((st = dup_string(l, s, &sd->uses)) != RT_OK)
        return st;

    json_t *with;
    if ((st = get_object(l, sj, "with", &with)) != RT_OK)
        return st;
    sd->with = with ? json_incref(with) /* new reference; shares the definition: read-only */
                    : json_object();    /* new */
    if (!sd->with)
        return fail_code(l, RT_ERR_NOMEM, "out of memory");
    old = path_push_key(l, "with");
    rt_error e;
    if (sd->type->validate && sd->type->validate(sd->with, &e) != RT_OK)
        st = fail(l, "%s", e.msg);
    if (st == RT_OK)
        st = check_templates(l, sd->with);
    path_pop(l, old);
    if (st != RT_OK)
        return st;

    if ((st = parse_needs(l, sj, wf, idx)) != RT_OK)
        return st;
    if ((st = get_expr(l, sj, "if", &s)) != RT_OK || (st = dup_string(l, s, &sd->if_expr)) != RT_OK)
        return st;
    if ((st = get_duration(l, sj, "timeout", false, &sd->timeout_ms)) != RT_OK)
        return st;
    json_t *retries;
    if ((st = get_object(l, sj, "retries", &retries)) != RT_OK)
        return st;
    if (retries) {
        sd->has_retries = true;
        sd->retries = wf->retries; /* keys not given are inherited from the workflow's policy */
        old = path_push_key(l, "retries");
        st = parse_retries(l, retries, &sd->retries);
        path_pop(l, old);
        if (st != RT_OK)
            return st;
    }
    if ((st = get_bool(l, sj, "continue_on_error", &sd->continue_on_error)) != RT_OK)
        return st;
    if ((st = get_expr(l, sj, "for_each", &s)) != RT_OK || (st = dup_string(l, s, &sd->for_each)) != RT_OK)
        return st;
    bool present;
    if ((st = get_int(l, sj, "for_each_concurrency", false, 1, INT_FIELD_MAX, &sd->for_each_concurrency,
                      &present)) != RT_OK)
        return st;
    if (present && !sd->for_each) {
        old = path_push_key(l, "for_each_concurrency");
        st = fail(l, "only applies to a step with \"for_each\"");
        path_pop(l, old);
    }
    return st;
}

/* Depth-first search for a cycle through `needs`; on finding one, writes it. */
typedef struct cycle_search {
    rt_workflow *wf;
    unsigned char *color; /* 0 new, 1 on the stack, 2 done */
    size_t *stack;
    size_t depth;
} cycle_search;

static bool find_cycle(cycle_search *cs, size_t u, size_t *from, size_t *edge)
{
    cs->color[u] = 1;
    cs->stack[cs->depth++] = u;
    const rt_step_def *sd = &cs->wf->steps[u];
    for (size_t k = 0; k < sd->n_needs; k++) {
        size_t v = sd->need_idx[k];
        if (cs->color[v] == 1) {
            *from = u;
            *edge = k;
            return true;
        }
        if (cs->color[v] == 0 && find_cycle(cs, v, from, edge))
            return true;
    }
    cs->color[u] = 2;
    cs->depth--;
    return false;
}

static rt_status unknown_need(loader *l, const rt_workflow *wf, const char *id)
{
    const char **ids = calloc(wf->n_steps, sizeof *ids);
    if (!ids)
        return fail_code(l, RT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < wf->n_steps; i++)
        ids[i] = wf->steps[i].id;
    const char *s = suggest(id, ids, wf->n_steps);
    rt_qbuf q;
    rt_status st = s ? fail(l, "unknown step %s (did you mean \"%s\"?)", rt_quote(&q, id), s)
                     : fail(l, "unknown step %s", rt_quote(&q, id));
    free(ids);
    return st;
}

static rt_status resolve_needs(loader *l, rt_workflow *wf, const id_index *ix)
{
    rt_status st = RT_OK;
    for (size_t i = 0; i < wf->n_steps && st == RT_OK; i++) {
        rt_step_def *sd = &wf->steps[i];
        if (sd->n_needs == 0)
            continue;
        sd->need_idx = calloc(sd->n_needs, sizeof *sd->need_idx);
        if (!sd->need_idx) {
            st = fail_code(l, RT_ERR_NOMEM, "out of memory");
            break;
        }
        for (size_t k = 0; k < sd->n_needs && st == RT_OK; k++) {
            bool found;
            size_t pos = id_index_find(ix, sd->needs[k], &found);
            if (found) {
                sd->need_idx[k] = ix->items[pos].idx;
                continue;
            }
            size_t o1 = path_push_index(l, i);
            path_append(l, ".needs");
            path_push_index(l, k);
            st = unknown_need(l, wf, sd->needs[k]);
            path_pop(l, o1);
        }
    }
    if (st != RT_OK)
        return st;

    cycle_search cs = {.wf = wf};
    cs.color = calloc(wf->n_steps, 1);
    cs.stack = calloc(wf->n_steps, sizeof *cs.stack);
    if (!cs.color || !cs.stack) {
        st = fail_code(l, RT_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < wf->n_steps; i++) {
        size_t from, edge;
        if (cs.color[i] != 0 || !find_cycle(&cs, i, &from, &edge))
            continue;
        size_t to = wf->steps[from].need_idx[edge];
        char chain[768];
        size_t o = 0, start = 0;
        while (cs.stack[start] != to)
            start++;
        chain[0] = '\0';
        for (size_t k = start; k < cs.depth && o < sizeof chain; k++) {
            int w = snprintf(chain + o, sizeof chain - o, "%s -> ", wf->steps[cs.stack[k]].id);
            o += w > 0 ? (size_t)w : 0;
        }
        if (o < sizeof chain)
            snprintf(chain + o, sizeof chain - o, "%s", wf->steps[to].id);
        size_t o1 = path_push_index(l, from);
        path_append(l, ".needs");
        if (json_object_get(json_array_get(json_object_get(wf->definition, "steps"), from), "needs"))
            path_push_index(l, edge);
        st = fail(l, "dependency cycle: %s (each step needs the next)", chain);
        path_pop(l, o1);
        break;
    }
out:
    free(cs.color);
    free(cs.stack);
    return st;
}

static rt_status parse_steps(loader *l, json_t *def, rt_workflow *wf)
{
    json_t *arr;
    rt_status st = get_array(l, def, "steps", &arr);
    if (st != RT_OK)
        return st;
    if (!arr)
        return missing(l, "steps");
    size_t n = json_array_size(arr);
    size_t old = path_push_key(l, "steps");
    if (n == 0)
        st = fail(l, "a workflow needs at least one step");
    else if (n > RT_WORKFLOW_MAX_STEPS)
        st = fail(l, "%zu steps, over the limit of %d", n, RT_WORKFLOW_MAX_STEPS);
    if (st == RT_OK) {
        wf->steps = calloc(n, sizeof *wf->steps);
        if (!wf->steps)
            st = fail_code(l, RT_ERR_NOMEM, "out of memory");
        else
            wf->n_steps = n;
    }
    id_index ix = {0};
    if (st == RT_OK && !(ix.items = calloc(n, sizeof *ix.items)))
        st = fail_code(l, RT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n && st == RT_OK; i++) {
        size_t o2 = path_push_index(l, i);
        st = parse_step(l, json_array_get(arr, i), wf, i, &ix); /* borrowed */
        path_pop(l, o2);
    }
    if (st == RT_OK)
        st = resolve_needs(l, wf, &ix);
    free(ix.items);
    path_pop(l, old);
    return st;
}

/* ---------------------------------------------------------------------------------
 * The workflow.
 * --------------------------------------------------------------------------------- */

static rt_status parse_workflow(loader *l, json_t *def, rt_workflow *wf)
{
    static const char *const keys[] = {
        "$schema",  "id",         "name",         "description", "enabled",     "system",
        "triggers", "priority",   "concurrency",  "throttle",    "debounce",    "singleton",
        "idempotency", "batch_events", "timeout", "start_timeout", "retries",   "approval",
        "cancel_on", "on_failure", "output",      "steps",       "sla",         "on_resume", NULL};
    rt_status st = check_keys(l, def, keys, NULL);
    if (st != RT_OK)
        return st;

    const char *s;
    if ((st = get_string(l, def, "id", true, &s)) != RT_OK)
        return st;
    if (!rt_workflow_id_valid(s)) {
        size_t old = path_push_key(l, "id");
        rt_qbuf q;
        st = fail(l, "%s is not a valid workflow id (^[a-z0-9][a-z0-9._-]{0,127}$)", rt_quote(&q, s));
        path_pop(l, old);
        return st;
    }
    if ((st = dup_string(l, s, &wf->id)) != RT_OK)
        return st;
    if ((st = get_string(l, def, "$schema", false, &s)) != RT_OK)
        return st;
    if ((st = get_string(l, def, "description", false, &s)) != RT_OK)
        return st;
    if ((st = get_string(l, def, "name", false, &s)) != RT_OK || (st = dup_string(l, s, &wf->name)) != RT_OK)
        return st;
    if ((st = get_bool(l, def, "enabled", &wf->enabled)) != RT_OK)
        return st;
    if ((st = get_bool(l, def, "system", &wf->system)) != RT_OK)
        return st;
    int on_resume = 0; /* what a resume does with the runs held while paused */
    if ((st = get_enum(l, def, "on_resume", on_resume_names, &on_resume)) != RT_OK)
        return st;
    wf->on_resume_skip = on_resume == 1;
    if ((st = parse_triggers(l, def, wf)) != RT_OK)
        return st;
    int prio = RT_PRIORITY_NORMAL;
    if ((st = get_enum(l, def, "priority", priority_names, &prio)) != RT_OK)
        return st;
    wf->priority = (rt_priority)prio;
    if ((st = parse_block(l, def, "concurrency", block_concurrency, wf, &wf->concurrency)) != RT_OK)
        return st;
    if ((st = parse_block(l, def, "throttle", block_throttle, wf, &wf->throttle)) != RT_OK)
        return st;
    if ((st = parse_block(l, def, "debounce", block_debounce, wf, &wf->debounce)) != RT_OK)
        return st;
    if ((st = parse_block(l, def, "singleton", block_singleton, wf, &wf->singleton)) != RT_OK)
        return st;
    if ((st = get_expr(l, def, "idempotency", &s)) != RT_OK || (st = dup_string(l, s, &wf->idempotency)) != RT_OK)
        return st;
    if ((st = parse_block(l, def, "batch_events", block_batch, wf, &wf->batch_events)) != RT_OK)
        return st;
    if ((st = get_duration(l, def, "timeout", false, &wf->timeout_ms)) != RT_OK)
        return st;
    if ((st = get_duration(l, def, "start_timeout", false, &wf->start_timeout_ms)) != RT_OK)
        return st;
    if ((st = get_duration(l, def, "sla", false, &wf->sla_ms)) != RT_OK)
        return st;
    json_t *retries;
    if ((st = get_object(l, def, "retries", &retries)) != RT_OK)
        return st;
    if (retries) {
        size_t old = path_push_key(l, "retries");
        st = parse_retries(l, retries, &wf->retries);
        path_pop(l, old);
        if (st != RT_OK)
            return st;
    }
    if ((st = parse_block(l, def, "approval", block_approval, wf, &wf->approval)) != RT_OK)
        return st;
    if ((st = parse_cancel_on(l, def, wf)) != RT_OK)
        return st;
    if ((st = parse_block(l, def, "on_failure", block_on_failure, wf, &wf->on_failure)) != RT_OK)
        return st;
    json_t *output = json_object_get(def, "output"); /* borrowed */
    if (output) {
        size_t old = path_push_key(l, "output");
        st = check_templates(l, output);
        path_pop(l, old);
        if (st != RT_OK)
            return st;
        wf->output = json_incref(output); /* new reference, kept by the workflow */
    }
    return parse_steps(l, def, wf);
}

rt_status rt_workflow_from_json(json_t *def, const char *file, rt_workflow **out, rt_error *err)
{
    *out = NULL;
    loader l = {.file = file, .err = err, .path = "$", .plen = 1};
    if (!json_is_object(def))
        return fail(&l, "a workflow must be a JSON object, not %s", def ? rt_json_type_phrase(def) : "nothing");
    rt_workflow *wf = calloc(1, sizeof *wf);
    if (!wf)
        return fail_code(&l, RT_ERR_NOMEM, "out of memory");
    wf->definition = json_incref(def); /* new reference: the workflow keeps the definition alive */
    wf->enabled = true;
    wf->priority = RT_PRIORITY_NORMAL;
    wf->retries = rt_retry_policy_default();
    rt_status st = dup_string(&l, file, &wf->file);
    if (st == RT_OK)
        st = parse_workflow(&l, def, wf);
    if (st == RT_OK) {
        char *canon = rt_json_canonical(def);
        if (!canon) {
            st = fail_code(&l, RT_ERR_NOMEM, "out of memory");
        } else {
            rt_sha256_hex(canon, strlen(canon), wf->hash);
            free(canon);
        }
    }
    if (st != RT_OK) {
        rt_workflow_free(wf);
        return st;
    }
    *out = wf;
    return RT_OK;
}

rt_status rt_workflow_parse(const char *text, size_t len, const char *file, rt_workflow **out, rt_error *err)
{
    *out = NULL;
    const char *f = file ? file : "";
    const char *sep = file ? ": " : "";
    if (len > RT_WORKFLOW_MAX_BYTES)
        return rt_error_set(err, RT_ERR_INVALID, "%s%sworkflow is %zu bytes, over the %u-byte limit", f, sep, len,
                            RT_WORKFLOW_MAX_BYTES);
    json_error_t je;
    json_t *def = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je); /* new reference */
    if (!def) {
        if (file)
            return rt_error_set(err, RT_ERR_INVALID, "%s:%d:%d: JSON syntax error: %s", file, je.line, je.column,
                                je.text);
        return rt_error_set(err, RT_ERR_INVALID, "line %d, column %d: JSON syntax error: %s", je.line, je.column,
                            je.text);
    }
    rt_status st = rt_workflow_from_json(def, file, out, err);
    json_decref(def); /* the workflow holds its own reference */
    return st;
}

rt_status rt_workflow_load_file(const char *path, rt_workflow **out, rt_error *err)
{
    *out = NULL;
    char *data = NULL;
    size_t len = 0;
    rt_status st = rt_file_read(path, RT_WORKFLOW_MAX_BYTES, &data, &len, err);
    if (st != RT_OK)
        return st;
    st = rt_workflow_parse(data, len, path, out, err);
    free(data);
    return st;
}

static void step_clear(rt_step_def *sd)
{
    free(sd->id);
    free(sd->uses);
    json_decref(sd->with);
    for (size_t k = 0; k < sd->n_needs; k++)
        free(sd->needs[k]);
    free(sd->needs);
    free(sd->need_idx);
    free(sd->if_expr);
    free(sd->for_each);
}

void rt_workflow_free(rt_workflow *wf)
{
    if (!wf)
        return;
    for (size_t i = 0; i < wf->n_triggers; i++) {
        free(wf->triggers[i].cron);
        free(wf->triggers[i].timezone);
        free(wf->triggers[i].event);
        free(wf->triggers[i].if_expr);
    }
    free(wf->triggers);
    for (size_t i = 0; i < wf->n_steps; i++)
        step_clear(&wf->steps[i]);
    free(wf->steps);
    free(wf->id);
    free(wf->name);
    free(wf->file);
    free(wf->idempotency);
    json_decref(wf->output);
    json_decref(wf->concurrency);
    json_decref(wf->throttle);
    json_decref(wf->debounce);
    json_decref(wf->singleton);
    json_decref(wf->batch_events);
    json_decref(wf->approval);
    json_decref(wf->cancel_on);
    json_decref(wf->on_failure);
    json_decref(wf->definition);
    free(wf);
}

int rt_workflow_step_index(const rt_workflow *wf, const char *step_id)
{
    if (!wf || !step_id)
        return -1;
    for (size_t i = 0; i < wf->n_steps; i++) {
        if (wf->steps[i].id && strcmp(wf->steps[i].id, step_id) == 0)
            return (int)i;
    }
    return -1;
}

/* ---------------------------------------------------------------------------------
 * Sets of workflows.
 * --------------------------------------------------------------------------------- */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The sorted paths of dir's *.json files (hidden files skipped). */
static rt_status list_json_files(const char *dir, char ***out, size_t *n_out, rt_error *err)
{
    *out = NULL;
    *n_out = 0;
    DIR *d = opendir(dir);
    if (!d)
        return rt_error_set(err, errno == ENOENT ? RT_ERR_NOT_FOUND : RT_ERR_IO, "%s: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    size_t dlen = strlen(dir);
    bool slash = dlen > 0 && dir[dlen - 1] == '/';
    struct dirent *de;
    rt_status st = RT_OK;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **nn = realloc(names, ncap * sizeof *nn);
            if (!nn) {
                st = RT_ERR_NOMEM;
                break;
            }
            names = nn;
            cap = ncap;
        }
        size_t plen = dlen + 1 + len + 1;
        names[n] = malloc(plen);
        if (!names[n]) {
            st = RT_ERR_NOMEM;
            break;
        }
        snprintf(names[n], plen, "%s%s%s", dir, slash ? "" : "/", de->d_name);
        n++;
    }
    closedir(d);
    if (st != RT_OK) {
        free_names(names, n);
        return rt_error_set(err, st, "%s: out of memory", dir);
    }
    if (n > 1)
        qsort(names, n, sizeof *names, cmp_names);
    *out = names;
    *n_out = n;
    return RT_OK;
}

static void report(rt_workflow_set *set, rt_workflow_error_fn on_error, void *arg, const char *file,
                   const rt_error *e)
{
    set->n_errors++;
    if (on_error)
        on_error(arg, file, e);
}

rt_status rt_workflow_load_dir(const char *dir, rt_workflow_set **out, rt_workflow_error_fn on_error, void *arg,
                               rt_error *err)
{
    *out = NULL;
    if (!dir || !*dir)
        return rt_error_set(err, RT_ERR_INVALID, "no workflow directory given");
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return rt_error_set(err, errno == ENOENT ? RT_ERR_NOT_FOUND : RT_ERR_IO, "%s: %s", dir, strerror(errno));
    char **paths = NULL;
    size_t n = 0;
    rt_status st;
    if (S_ISDIR(sb.st_mode)) {
        if ((st = list_json_files(dir, &paths, &n, err)) != RT_OK)
            return st;
    } else {
        paths = malloc(sizeof *paths);
        if (!paths || !(paths[0] = strdup(dir))) {
            free(paths);
            return rt_error_set(err, RT_ERR_NOMEM, "%s: out of memory", dir);
        }
        n = 1;
    }
    rt_workflow_set *set = calloc(1, sizeof *set);
    if (!set || (n && !(set->items = calloc(n, sizeof *set->items)))) {
        free(set);
        free_names(paths, n);
        return rt_error_set(err, RT_ERR_NOMEM, "%s: out of memory", dir);
    }
    for (size_t i = 0; i < n; i++) {
        rt_workflow *wf;
        rt_error e;
        if (rt_workflow_load_file(paths[i], &wf, &e) != RT_OK) {
            report(set, on_error, arg, paths[i], &e);
            continue;
        }
        const rt_workflow *prev = rt_workflow_set_find(set, wf->id);
        if (prev) {
            rt_error_set(&e, RT_ERR_CONFLICT, "%s: $.id: duplicate workflow id \"%s\" (already loaded from %s)",
                         paths[i], wf->id, prev->file ? prev->file : "?");
            rt_workflow_free(wf);
            report(set, on_error, arg, paths[i], &e);
            continue;
        }
        set->items[set->n++] = wf;
    }
    free_names(paths, n);
    *out = set;
    return RT_OK;
}

void rt_workflow_set_free(rt_workflow_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++)
        rt_workflow_free(set->items[i]);
    free(set->items);
    free(set);
}

rt_workflow *rt_workflow_set_find(const rt_workflow_set *set, const char *id)
{
    if (!set || !id)
        return NULL;
    for (size_t i = 0; i < set->n; i++) {
        if (strcmp(set->items[i]->id, id) == 0)
            return set->items[i];
    }
    return NULL;
}

bool rt_workflow_concurrency_key(const rt_workflow *wf, json_t *event, char *buf, size_t len, int *limit)
{
    *limit = 0;
    if (!wf->concurrency)
        return false;
    *limit = (int)json_integer_value(json_object_get(wf->concurrency, "limit"));
    const char *key = json_string_value(json_object_get(wf->concurrency, "key"));
    if (!key) {
        snprintf(buf, len, "%s:*", wf->id);
        return true;
    }
    json_t *ctx = json_pack("{s:O}", "event", event ? event : json_null());
    json_t *v = NULL;
    rt_error err;
    rt_status s;
    if (rt_template_present(key)) {
        json_t *t = json_string(key);
        s = rt_template_render(t, ctx, &v, &err);
        json_decref(t);
    } else {
        s = rt_expr_eval(key, ctx, &v, &err);
    }
    json_decref(ctx);
    if (s != RT_OK || !v || json_is_null(v)) {
        snprintf(buf, len, "%s:null", wf->id);
    } else if (json_is_string(v)) {
        snprintf(buf, len, "%s:%s", wf->id, json_string_value(v));
    } else {
        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        snprintf(buf, len, "%s:%s", wf->id, text ? text : "?");
        free(text);
    }
    json_decref(v);
    return true;
}

bool rt_workflow_gates(const rt_workflow *wf, const json_t *event)
{
    if (!wf || !wf->approval)
        return false;
    const char *type = json_string_value(json_object_get(json_object_get(event, "actor"), "type"));
    if (!type)
        type = "service";
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(wf->approval, "required_for"), i, t) {
        if (json_is_string(t) && !strcmp(json_string_value(t), type))
            return true;
    }
    return false;
}

bool rt_workflow_wants_decisions(const rt_workflow *wf)
{
    if (!wf) /* even disabled: its runs may still wait for a decision */
        return false;
    if (wf->approval)
        return true;
    for (size_t i = 0; i < wf->n_steps; i++)
        if (wf->steps[i].type->wait == RT_STEP_WAIT_APPROVAL)
            return true;
    return false;
}
