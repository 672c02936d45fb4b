/* event.c — the event envelope (DESIGN §5): one strict parser for every transport, so an
 * event means the same whether it came over RabbitMQ, NATS, HTTP or the CLI. */
#include "event.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "workflow.h"

#define PATH_CAP 160

/* ---------------------------------------------------------------------------------
 * Messages: "<JSON path>: <what is wrong>", with values quoted and cut.
 * --------------------------------------------------------------------------------- */

static bool key_is_plain(const char *k)
{
    if (!*k || strlen(k) > 64)
        return false;
    for (const char *p = k; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
            return false;
    }
    return true;
}

/* parent + ".key", or parent + "[\"key\"]" for keys that are not plain (escaped, cut). */
static void path_key(char *out, size_t cap, const char *parent, const char *key)
{
    if (key_is_plain(key)) {
        snprintf(out, cap, "%s.%s", parent, key);
        return;
    }
    char esc[80];
    size_t o = 0;
    const char *p = key;
    for (; *p && o < 64; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            esc[o++] = '\\';
            esc[o++] = (char)c;
        } else {
            esc[o++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
        }
    }
    /* do not end inside a UTF-8 sequence */
    while (*p && o > 0 && ((unsigned char)*p & 0xC0) == 0x80) {
        p--;
        o--;
    }
    esc[o] = '\0';
    snprintf(out, cap, "%s[\"%s%s\"]", parent, esc, *p ? "..." : "");
}

static rt_status fail(rt_error *err, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static rt_status fail(rt_error *err, const char *path, const char *fmt, ...)
{
    char msg[RT_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return rt_error_set(err, RT_ERR_INVALID, "%s: %s", path, msg);
}

/* ---------------------------------------------------------------------------------
 * Actor types.
 * --------------------------------------------------------------------------------- */

static const char *const actor_names[] = {"user", "agent", "service", "system"};

const char *rt_actor_type_name(rt_actor_type t)
{
    return (unsigned)t < 4 ? actor_names[t] : "unknown";
}

rt_status rt_actor_type_parse(const char *s, rt_actor_type *out, rt_error *err)
{
    for (unsigned i = 0; s && i < 4; i++) {
        if (strcmp(s, actor_names[i]) == 0) {
            *out = (rt_actor_type)i;
            return RT_OK;
        }
    }
    rt_qbuf q;
    return rt_error_set(err, RT_ERR_INVALID, "%s is not one of user, agent, service, system",
                        s ? rt_quote(&q, s) : "(null)");
}

const char *rt_event_fault_name(rt_event_fault f)
{
    switch (f) {
    case RT_EVENT_FAULT_NONE: return "none";
    case RT_EVENT_FAULT_TOO_LARGE: return "too_large";
    case RT_EVENT_FAULT_NOT_JSON: return "not_json";
    case RT_EVENT_FAULT_INVALID: return "invalid";
    case RT_EVENT_FAULT_RESERVED_ID: return "reserved_id";
    case RT_EVENT_FAULT_NAME_MISMATCH: return "name_mismatch";
    case RT_EVENT_FAULT_RESERVED_NAME: return "reserved_name";
    }
    return "unknown";
}

/* ---------------------------------------------------------------------------------
 * Unknown keys: refused (a misspelt "payload" must not run a workflow with empty data),
 * with a suggestion when one is close.
 * --------------------------------------------------------------------------------- */

static const char *const top_keys[] = {"name", "id", "ts", "data", "actor", "entity_id", "v", NULL};
static const char *const actor_keys[] = {"type", "id", NULL};

/* Names other event formats use for our keys (CloudEvents, Segment, home-made ones). */
static const struct {
    const char *alias, *key;
} top_aliases[] = {
    {"payload", "data"},    {"body", "data"},          {"timestamp", "ts"},  {"time", "ts"},
    {"ts_ms", "ts"},        {"type", "name"},          {"event", "name"},    {"event_name", "name"},
    {"eventName", "name"},  {"entityId", "entity_id"}, {"entity", "entity_id"}, {"version", "v"},
    {"specversion", "v"},   {"event_id", "id"},        {"eventId", "id"},    {"uuid", "id"},
    {"actor_type", "actor"}, {"source", "actor"},
};

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 32 || lb > 32)
        return 99;
    size_t row[33];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
            size_t best = diag + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static const char *suggest(const char *key, const char *const *allowed, bool top)
{
    if (top) {
        for (size_t i = 0; i < sizeof top_aliases / sizeof top_aliases[0]; i++) {
            if (strcmp(key, top_aliases[i].alias) == 0)
                return top_aliases[i].key;
        }
    }
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; allowed[i]; i++) {
        size_t d = edit_distance(key, allowed[i]);
        /* one edit for short keys ("td" is as close to "ts" as to "id"), two otherwise */
        size_t limit = strlen(allowed[i]) <= 3 ? 1 : 2;
        if (d <= limit && d < best_d) {
            best = allowed[i];
            best_d = d;
        }
    }
    return best;
}

static bool is_extension_key(const char *k)
{
    return strncmp(k, "x-", 2) == 0;
}

static bool is_allowed(const char *k, const char *const *allowed)
{
    for (size_t i = 0; allowed[i]; i++) {
        if (strcmp(k, allowed[i]) == 0)
            return true;
    }
    return is_extension_key(k);
}

static rt_status check_keys(const json_t *obj, const char *parent, const char *const *allowed, bool top,
                            rt_error *err)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        (void)v;
        if (is_allowed(k, allowed))
            continue;
        char path[PATH_CAP];
        path_key(path, sizeof path, parent, k);
        const char *s = suggest(k, allowed, top);
        if (s)
            return fail(err, path, "unknown key (did you mean \"%s\"? extension keys start with \"x-\")", s);
        char list[128];
        size_t o = 0;
        for (size_t i = 0; allowed[i]; i++)
            o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", allowed[i]);
        return fail(err, path, "unknown key (allowed: %s; extension keys start with \"x-\")", list);
    }
    return RT_OK;
}

/* ---------------------------------------------------------------------------------
 * Field rules.
 * --------------------------------------------------------------------------------- */

/* `id`: 1..200 visible ASCII characters. Ids end up in URLs, logs, CLI arguments and the
 * de-duplication key, where spaces, control characters and look-alike Unicode hurt. */
static rt_status check_id(const char *s, const char *path, rt_error *err)
{
    size_t n = strlen(s);
    if (n == 0)
        return fail(err, path, "must not be empty");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e) {
            rt_qbuf q;
            return fail(err, path,
                        "%s: character at byte %zu is not allowed (ids are 1..%d visible ASCII characters: no "
                        "spaces, control characters or non-ASCII)",
                        rt_quote(&q, s), i + 1, RT_EVENT_ID_MAX);
        }
    }
    if (n > RT_EVENT_ID_MAX)
        return fail(err, path, "is %zu characters, over the %d-character limit", n, RT_EVENT_ID_MAX);
    return RT_OK;
}

/* `entity_id`, `actor.id`: 1..200 characters (code points, as JSON Schema counts them), no
 * control characters (they are logged and shown in the dashboard). */
static rt_status check_ref(const char *s, const char *path, rt_error *err)
{
    size_t chars = 0;
    if (!*s)
        return fail(err, path, "must not be empty");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            rt_qbuf q;
            return fail(err, path, "%s: control characters are not allowed", rt_quote(&q, s));
        }
        if ((*p & 0xC0) != 0x80)
            chars++;
    }
    if (chars > RT_EVENT_REF_MAX)
        return fail(err, path, "is %zu characters, over the %d-character limit", chars, RT_EVENT_REF_MAX);
    return RT_OK;
}

/* An optional string field: absent or null -> *s NULL. */
static rt_status get_opt_string(const json_t *obj, const char *key, const char *path, const char **s, rt_error *err)
{
    json_t *v = json_object_get(obj, key);
    *s = NULL;
    if (!v || json_is_null(v))
        return RT_OK;
    if (!json_is_string(v))
        return fail(err, path, "must be a string, not %s", rt_json_type_phrase(v));
    *s = json_string_value(v);
    return RT_OK;
}

/* `ts`: integer milliseconds since the epoch. A number with a zero fraction (1.7e12) is an
 * integer to JSON Schema, so it is one here too. */
static rt_status get_ts(const json_t *doc, int64_t now_ms, int64_t *ts, rt_error *err)
{
    json_t *v = json_object_get(doc, "ts");
    if (!v || json_is_null(v)) {
        *ts = now_ms;
        return RT_OK;
    }
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0 || i > RT_EVENT_TS_MAX)
            return fail(err, "$.ts", "%lld is out of range (milliseconds since 1970, up to year 9999)", (long long)i);
        *ts = (int64_t)i;
        return RT_OK;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d != floor(d))
            return fail(err, "$.ts", "must be an integer (milliseconds since the epoch), not a fraction (%.15g)", d);
        if (d < 0 || d > (double)RT_EVENT_TS_MAX)
            return fail(err, "$.ts", "%.15g is out of range (milliseconds since 1970, up to year 9999)", d);
        *ts = (int64_t)d;
        return RT_OK;
    }
    return fail(err, "$.ts", "must be an integer (milliseconds since the epoch), not %s", rt_json_type_phrase(v));
}

static rt_status get_actor(const json_t *doc, rt_actor_type *type, const char **id, rt_error *err)
{
    json_t *a = json_object_get(doc, "actor");
    *type = RT_ACTOR_SERVICE;
    *id = NULL;
    if (!a || json_is_null(a))
        return RT_OK;
    if (!json_is_object(a))
        return fail(err, "$.actor", "must be an object like {\"type\": \"agent\", \"id\": \"agent-7\"}, not %s",
                    rt_json_type_phrase(a));
    rt_status st = check_keys(a, "$.actor", actor_keys, false, err);
    if (st != RT_OK)
        return st;
    /* Present but typeless is refused rather than defaulted: an agent that forgot the
     * type must not pass as a service and skip its approval gate. */
    json_t *t = json_object_get(a, "type");
    if (!t)
        return fail(err, "$.actor", "missing required key \"type\" (one of user, agent, service, system)");
    if (!json_is_string(t))
        return fail(err, "$.actor.type", "must be a string, not %s", rt_json_type_phrase(t));
    rt_error e;
    if (rt_actor_type_parse(json_string_value(t), type, &e) != RT_OK)
        return fail(err, "$.actor.type", "%s", e.msg);
    if ((st = get_opt_string(a, "id", "$.actor.id", id, err)) != RT_OK)
        return st;
    return *id ? check_ref(*id, "$.actor.id", err) : RT_OK;
}

/* ---------------------------------------------------------------------------------
 * Building the normalized event.
 * --------------------------------------------------------------------------------- */

static rt_status nomem(rt_error *err)
{
    return rt_error_set(err, RT_ERR_NOMEM, "out of memory building an event");
}

/* Sets a new reference; false when v is NULL (allocation failed) or the set failed. */
static bool put_new(json_t *obj, const char *key, json_t *v)
{
    return v && json_object_set_new(obj, key, v) == 0;
}

/* Does any string in v hold a NUL? (A document from json_loadb with JSON_ALLOW_NUL, or
 * built with json_stringn, can; C strings would silently cut there, and PostgreSQL's jsonb
 * refuses \u0000.) */
static bool has_nul(const json_t *v, int depth)
{
    if (depth > 4096)
        return true; /* deeper than any parser gives us: refuse rather than recurse on */
    if (json_is_string(v))
        return memchr(json_string_value(v), '\0', json_string_length(v)) != NULL;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (has_nul(json_array_get(v, i), depth + 1))
                return true;
        }
    } else if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) {
            if (has_nul(x, depth + 1))
                return true;
        }
    }
    return false;
}

/* producer: the event comes from outside (a transport, the API, a webhook), so its id may
 * not be in the engine's namespace nor its name one only the engine makes; *reserved says
 * when that was the fault (RT_EVENT_FAULT_RESERVED_ID or _NAME, else _NONE). */
static rt_status build(const json_t *doc, int64_t now_ms, bool check_nul, bool producer, rt_event_fault *reserved,
                       rt_event **out, rt_error *err)
{
    *out = NULL;
    *reserved = RT_EVENT_FAULT_NONE;
    if (!json_is_object(doc))
        return fail(err, "$", "an event must be a JSON object, not %s", doc ? rt_json_type_phrase(doc) : "nothing");
    rt_status st = check_keys(doc, "$", top_keys, true, err);
    if (st != RT_OK)
        return st;
    if (check_nul) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)doc, k, v) {
            if (has_nul(v, 0)) {
                char path[PATH_CAP];
                path_key(path, sizeof path, "$", k);
                return fail(err, path, "strings must not contain \\u0000 (NUL)");
            }
        }
    }

    json_t *nv = json_object_get(doc, "name");
    if (!nv)
        return fail(err, "$", "missing required key \"name\"");
    if (!json_is_string(nv))
        return fail(err, "$.name", "must be a string, not %s", rt_json_type_phrase(nv));
    const char *name = json_string_value(nv);
    if (!*name)
        return fail(err, "$.name", "must not be empty");
    rt_error e;
    if (rt_event_name_check(name, &e) != RT_OK)
        return fail(err, "$.name", "%s", e.msg);
    if (producer && rt_event_name_reserved(name)) {
        *reserved = RT_EVENT_FAULT_RESERVED_NAME;
        return fail(err, "$.name", "\"%s\" is reserved for events the engine makes", name);
    }

    const char *id, *entity_id, *version, *actor_id;
    char fresh_id[37];
    if ((st = get_opt_string(doc, "id", "$.id", &id, err)) != RT_OK)
        return st;
    if (id && (st = check_id(id, "$.id", err)) != RT_OK)
        return st;
    if (id && producer && rt_event_id_reserved(id)) {
        *reserved = RT_EVENT_FAULT_RESERVED_ID;
        return fail(err, "$.id", "ids starting with \"%s\" are reserved for events the engine makes",
                    RT_EVENT_ENGINE_ID_PREFIX);
    }
    if (!id) {
        rt_uuid7(fresh_id);
        id = fresh_id;
    }
    int64_t ts = 0;
    if ((st = get_ts(doc, now_ms, &ts, err)) != RT_OK)
        return st;
    rt_actor_type actor_type;
    if ((st = get_actor(doc, &actor_type, &actor_id, err)) != RT_OK)
        return st;
    if ((st = get_opt_string(doc, "entity_id", "$.entity_id", &entity_id, err)) != RT_OK)
        return st;
    if (entity_id && (st = check_ref(entity_id, "$.entity_id", err)) != RT_OK)
        return st;
    if ((st = get_opt_string(doc, "v", "$.v", &version, err)) != RT_OK)
        return st;
    if (version && strcmp(version, RT_EVENT_VERSION) != 0) {
        rt_qbuf q;
        /* a newer envelope may mean something else: refuse it rather than guess */
        return fail(err, "$.v", "unsupported envelope version %s (this engine reads version \"%s\")",
                    rt_quote(&q, version), RT_EVENT_VERSION);
    }

    /* The normalized envelope, in a fixed key order. data and "x-" values are shared with
     * doc (json_object_set takes its own reference). */
    json_t *env = json_object();
    json_t *data = json_object_get(doc, "data"); /* borrowed */
    json_t *actor = json_object();
    bool ok = env && actor && put_new(env, "name", json_string(name)) && put_new(env, "id", json_string(id)) &&
              put_new(env, "ts", json_integer((json_int_t)ts)) &&
              (data ? json_object_set(env, "data", data) == 0 : put_new(env, "data", json_object())) &&
              put_new(actor, "type", json_string(rt_actor_type_name(actor_type))) &&
              (!actor_id || put_new(actor, "id", json_string(actor_id)));
    if (ok) {
        /* actor's own extension keys follow type and id */
        json_t *src = json_object_get(doc, "actor");
        const char *k;
        json_t *v;
        if (json_is_object(src)) {
            json_object_foreach(src, k, v) {
                if (ok && is_extension_key(k))
                    ok = json_object_set(actor, k, v) == 0;
            }
        }
    }
    ok = ok && json_object_set(env, "actor", actor) == 0; /* env takes its own reference */
    json_decref(actor);
    ok = ok && (!entity_id || put_new(env, "entity_id", json_string(entity_id))) &&
         put_new(env, "v", json_string(RT_EVENT_VERSION));
    if (ok) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)doc, k, v) {
            if (ok && is_extension_key(k))
                ok = json_object_set(env, k, v) == 0;
        }
    }
    rt_event *ev = ok ? calloc(1, sizeof *ev) : NULL;
    if (!ev) {
        json_decref(env);
        return nomem(err);
    }
    ev->envelope = env;
    ev->name = json_string_value(json_object_get(env, "name"));
    ev->id = json_string_value(json_object_get(env, "id"));
    ev->ts_ms = ts;
    ev->data = json_object_get(env, "data");
    ev->actor_type = actor_type;
    ev->actor_id = json_string_value(json_object_get(json_object_get(env, "actor"), "id"));
    ev->entity_id = json_string_value(json_object_get(env, "entity_id"));
    *out = ev;
    return RT_OK;
}

static rt_status parse(const void *bytes, size_t len, size_t max_bytes, int64_t now_ms, bool producer, rt_event **out,
                       rt_error *err, rt_event_fault *fault)
{
    rt_event_fault dummy;
    if (!fault)
        fault = &dummy;
    *fault = RT_EVENT_FAULT_NONE;
    *out = NULL;
    size_t limit = max_bytes ? max_bytes : RT_EVENT_MAX_BYTES;
    if (len > limit) {
        *fault = RT_EVENT_FAULT_TOO_LARGE;
        return rt_error_set(err, RT_ERR_INVALID, "event is %zu bytes, over the %zu-byte limit", len, limit);
    }
    if (!bytes)
        bytes = "";
    json_error_t je;
    /* JSON_DECODE_ANY so that `"x"` or `42` gets "must be a JSON object" instead of a
     * syntax error; JSON_ALLOW_NUL stays off: no NUL ever reaches a C string. */
    json_t *doc = json_loadb(bytes, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je); /* new reference */
    if (!doc) {
        *fault = RT_EVENT_FAULT_NOT_JSON;
        const char *text = je.text;
        if (strstr(text, "JSON_ALLOW_NUL"))
            text = "\\u0000 (NUL) is not allowed in strings";
        return rt_error_set(err, RT_ERR_INVALID, "line %d, column %d: JSON syntax error: %s", je.line, je.column,
                            text);
    }
    rt_event_fault reserved = RT_EVENT_FAULT_NONE;
    rt_status st = build(doc, now_ms, false, producer, &reserved, out, err); /* jansson already refused NULs */
    json_decref(doc); /* the event holds its own references to what it shares */
    if (st != RT_OK)
        *fault = reserved != RT_EVENT_FAULT_NONE ? reserved : RT_EVENT_FAULT_INVALID;
    return st;
}

rt_status rt_event_parse_ex(const void *bytes, size_t len, size_t max_bytes, int64_t now_ms, rt_event **out,
                            rt_error *err, rt_event_fault *fault)
{
    return parse(bytes, len, max_bytes, now_ms, true, out, err, fault);
}

rt_status rt_event_parse_relay(const void *bytes, size_t len, size_t max_bytes, int64_t now_ms, rt_event **out,
                               rt_error *err, rt_event_fault *fault)
{
    return parse(bytes, len, max_bytes, now_ms, false, out, err, fault);
}

bool rt_event_id_reserved(const char *id)
{
    return id && !strncmp(id, RT_EVENT_ENGINE_ID_PREFIX, strlen(RT_EVENT_ENGINE_ID_PREFIX));
}

bool rt_event_name_reserved(const char *name)
{
    return name && !strcmp(name, RT_APPROVAL_REQUESTED_EVENT);
}

rt_status rt_event_from_json(const json_t *doc, int64_t now_ms, rt_event **out, rt_error *err)
{
    rt_event_fault reserved;
    return build(doc, now_ms, true, true, &reserved, out, err);
}

rt_status rt_event_parse(const void *bytes, size_t len, size_t max_bytes, int64_t now_ms, rt_event **out,
                         rt_error *err)
{
    return rt_event_parse_ex(bytes, len, max_bytes, now_ms, out, err, NULL);
}

/* A JSON string for an engine-supplied C string; reports bad UTF-8 as the caller's
 * mistake, naming the field. */
static rt_status new_string(json_t *obj, const char *key, const char *field, const char *s, rt_error *err)
{
    json_t *v = json_string(s);
    if (!v)
        return fail(err, field, "not valid UTF-8");
    if (json_object_set_new(obj, key, v) != 0)
        return nomem(err);
    return RT_OK;
}

rt_status rt_event_new(const char *name, json_t *data, rt_actor_type actor_type, const char *actor_id,
                       const char *entity_id, const char *id, rt_event **out, rt_error *err)
{
    *out = NULL;
    if ((unsigned)actor_type > RT_ACTOR_SYSTEM)
        return fail(err, "$.actor.type", "%d is not an actor type", (int)actor_type);
    json_t *doc = json_object();
    json_t *actor = json_object();
    if (!doc || !actor) {
        json_decref(doc);
        json_decref(actor);
        return nomem(err);
    }
    rt_status st = RT_OK;
    if (name)
        st = new_string(doc, "name", "$.name", name, err);
    if (st == RT_OK && id)
        st = new_string(doc, "id", "$.id", id, err);
    if (st == RT_OK && data && json_object_set(doc, "data", data) != 0) /* takes its own reference */
        st = nomem(err);
    if (st == RT_OK)
        st = new_string(actor, "type", "$.actor.type", rt_actor_type_name(actor_type), err);
    if (st == RT_OK && actor_id)
        st = new_string(actor, "id", "$.actor.id", actor_id, err);
    if (st == RT_OK && json_object_set(doc, "actor", actor) != 0)
        st = nomem(err);
    if (st == RT_OK && entity_id)
        st = new_string(doc, "entity_id", "$.entity_id", entity_id, err);
    json_decref(actor);
    rt_event_fault reserved;
    if (st == RT_OK)
        st = build(doc, rt_now_ms(), true, false, &reserved, out, err);
    json_decref(doc);
    return st;
}

char *rt_event_to_json(const rt_event *ev)
{
    return ev ? json_dumps(ev->envelope, JSON_COMPACT) : NULL;
}

void rt_event_free(rt_event *ev)
{
    if (!ev)
        return;
    json_decref(ev->envelope);
    free(ev);
}
