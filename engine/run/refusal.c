/* refusal.c — bounded, rate-limited refusal records (see refusal.h). The rate state is
 * per process: with several serve processes an actor may write RT_REFUSAL_BURST records
 * per minute in each, which still bounds the log. */
#include "refusal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "store_audit.h"
#include "util.h"

#define SLOTS 256       /* actors tracked; beyond that the oldest window is reused */
#define ACTOR_KEY 96
#define FIELD_MAX 160   /* bytes a string field keeps when details are cut */

typedef struct slot {
    char actor[ACTOR_KEY];
    int64_t window_start;
    int written;
    int64_t suppressed;
} slot;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static slot slots[SLOTS];

bool rt_refusal_admit(const char *actor, int64_t now_ms, int64_t *suppressed)
{
    char key[ACTOR_KEY];
    snprintf(key, sizeof key, "%s", actor ? actor : "-");
    pthread_mutex_lock(&mu);
    slot *s = NULL, *oldest = &slots[0];
    for (int i = 0; i < SLOTS && !s; i++) {
        if (slots[i].actor[0] && !strcmp(slots[i].actor, key))
            s = &slots[i];
        else if (slots[i].window_start < oldest->window_start)
            oldest = &slots[i];
    }
    if (!s) {
        s = oldest;
        *s = (slot){.window_start = now_ms};
        snprintf(s->actor, sizeof s->actor, "%s", key);
    }
    if (now_ms - s->window_start >= RT_REFUSAL_WINDOW_MS) {
        s->window_start = now_ms;
        s->written = 0;
    }
    bool ok = s->written < RT_REFUSAL_BURST;
    if (ok) {
        s->written++;
        *suppressed = s->suppressed;
        s->suppressed = 0;
    } else {
        s->suppressed++;
        *suppressed = 0;
    }
    pthread_mutex_unlock(&mu);
    return ok;
}

/* A prefix of at most max bytes that does not end inside a UTF-8 sequence. */
static json_t *cut_string(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return json_stringn(s, len);
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    char *buf = malloc(n + 48);
    if (!buf)
        return json_string("(cut)");
    memcpy(buf, s, n);
    snprintf(buf + n, 48, "... (%zu bytes)", len);
    json_t *v = json_string(buf);
    free(buf);
    return v;
}

static json_t *digest_of(const char *text, size_t len, bool labelled)
{
    char hex[65], buf[120];
    rt_sha256_hex(text, len, hex);
    if (!labelled)
        return json_string(hex);
    snprintf(buf, sizeof buf, "sha256:%s (%zu bytes)", hex, len);
    return json_string(buf);
}

json_t *rt_refusal_bound(const json_t *details)
{
    if (!details)
        return json_object();
    char *text = json_dumps(details, JSON_COMPACT | JSON_ENCODE_ANY);
    size_t len = text ? strlen(text) : 0;
    if (text && len <= RT_REFUSAL_DETAILS_MAX) {
        free(text);
        return json_deep_copy(details);
    }
    json_t *out = json_pack("{s:b, s:I}", "truncated", 1, "bytes", (json_int_t)len);
    if (text)
        json_object_set_new(out, "sha256", digest_of(text, len, false));
    free(text);
    size_t budget = RT_REFUSAL_DETAILS_MAX - 200; /* room for the keys above */
    const char *key;
    json_t *v;
    if (!json_is_object(details))
        return out;
    json_object_foreach((json_t *)details, key, v) {
        json_t *kept;
        if (json_is_string(v)) {
            kept = cut_string(json_string_value(v), json_string_length(v), FIELD_MAX);
        } else if (json_is_object(v) || json_is_array(v)) {
            char *t = json_dumps(v, JSON_COMPACT);
            kept = t && strlen(t) <= FIELD_MAX ? json_deep_copy(v) : digest_of(t ? t : "", t ? strlen(t) : 0, true);
            free(t);
        } else {
            kept = json_deep_copy(v);
        }
        size_t cost = strlen(key) + 8;
        char *t = json_dumps(kept, JSON_COMPACT | JSON_ENCODE_ANY);
        cost += t ? strlen(t) : 0;
        free(t);
        if (cost > budget || strlen(key) > 64) {
            json_decref(kept);
            continue;
        }
        budget -= cost;
        json_object_set_new(out, key, kept);
    }
    return out;
}

rt_status rt_refusal_record(rt_store *st, const char *actor, const char *action, const char *subject,
                            const json_t *details, rt_error *err)
{
    rt_metrics_counter_add("ratchet_refusals_total", "action", action, 1);
    int64_t suppressed = 0;
    if (!rt_refusal_admit(actor, rt_now_ms(), &suppressed)) {
        rt_metrics_counter_add("ratchet_audit_refusals_suppressed_total", "action", action, 1);
        return RT_OK;
    }
    json_t *bounded = rt_refusal_bound(details);
    if (suppressed > 0)
        json_object_set_new(bounded, "suppressed_before", json_integer(suppressed));
    char subj[256];
    snprintf(subj, sizeof subj, "%s", subject ? subject : "");
    rt_status s = rt_store_audit_append(st, actor, action, subj, bounded, err);
    json_decref(bounded);
    return s;
}

rt_status rt_refusal_record_own(rt_store *st, const char *actor, const char *action, const char *subject,
                                const json_t *details, rt_error *err)
{
    rt_status s = rt_store_begin(st, err);
    if (s == RT_OK)
        s = rt_refusal_record(st, actor, action, subject, details, err);
    if (s == RT_OK)
        s = rt_store_commit(st, err);
    if (s != RT_OK)
        rt_store_rollback(st);
    return s;
}

bool rt_agent_may_touch(const char *agent_entity, bool system, const char *run_entity, const char **why)
{
    const char *no = NULL;
    if (system)
        no = "an agent never touches the runs of a system workflow";
    else if (!agent_entity || !run_entity || strcmp(agent_entity, run_entity) != 0)
        no = "an agent touches only the runs of its own entity";
    if (why)
        *why = no;
    return no == NULL;
}

bool rt_event_may_touch(const json_t *envelope, bool system, const char *run_entity, const char **why)
{
    const char *type = json_string_value(json_object_get(json_object_get(envelope, "actor"), "type"));
    if (why)
        *why = NULL;
    if (!type || strcmp(type, "agent") != 0)
        return true;
    return rt_agent_may_touch(json_string_value(json_object_get(envelope, "entity_id")), system, run_entity, why);
}
