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
    s = rt_store_end(st, s, err);
    return s;
}

/* ---- the agent boundary ---- */

typedef struct agent_rule {
    const char *name;
    bool on_runs;           /* reads or changes a run: own entity only */
    const char *system_no;  /* refused on a system workflow's run (NULL: allowed) */
    const char *entity_no;  /* refused on another entity's run */
    const char *always_no;  /* refused whatever the target */
} agent_rule;

static const agent_rule agent_rules[] = {
    [RT_AGENT_TRIGGER] = {"trigger", false, NULL, NULL, NULL},
    [RT_AGENT_READ_RUN] = {"read_run", true, NULL, "an agent reads only the runs of its own entity", NULL},
    [RT_AGENT_CANCEL] = {"cancel", true, "an agent never cancels the runs of a system workflow",
                         "an agent cancels only the runs of its own entity", NULL},
    [RT_AGENT_WAKE] = {"wake", true, "an agent never wakes the runs of a system workflow",
                       "an agent wakes only the runs of its own entity", NULL},
    [RT_AGENT_APPROVE] = {"approve", false, NULL, NULL, "an agent never approves"},
    [RT_AGENT_SCHEDULE] = {"schedule", false, NULL, NULL, "an agent never pauses or resumes schedules"},
};

const char *rt_agent_action_name(rt_agent_action a)
{
    return (unsigned)a < sizeof agent_rules / sizeof agent_rules[0] ? agent_rules[a].name : "?";
}

bool rt_agent_may(const char *agent_entity, rt_agent_action action, const rt_agent_target *target,
                  const char **why)
{
    static const rt_agent_target none = {0};
    const rt_agent_target *t = target ? target : &none;
    const char *no = "an agent may not do this"; /* an action this table does not know */
    if ((unsigned)action < sizeof agent_rules / sizeof agent_rules[0]) {
        const agent_rule *r = &agent_rules[action];
        no = r->always_no;
        if (!no && r->system_no && t->system)
            no = r->system_no;
        if (!no && r->on_runs && (!agent_entity || !t->entity_id || strcmp(agent_entity, t->entity_id) != 0))
            no = r->entity_no;
    }
    if (why)
        *why = no;
    return no == NULL;
}

bool rt_event_may(const json_t *envelope, rt_agent_action action, const rt_agent_target *target, const char **why)
{
    const char *type = json_string_value(json_object_get(json_object_get(envelope, "actor"), "type"));
    if (why)
        *why = NULL;
    if (!type || strcmp(type, "agent") != 0)
        return true;
    return rt_agent_may(json_string_value(json_object_get(envelope, "entity_id")), action, target, why);
}

bool rt_agent_may_touch(const char *agent_entity, bool system, const char *run_entity, const char **why)
{
    return rt_agent_may(agent_entity, RT_AGENT_CANCEL, &(rt_agent_target){.system = system, .entity_id = run_entity},
                        why);
}

bool rt_event_may_touch(const json_t *envelope, bool system, const char *run_entity, const char **why)
{
    return rt_event_may(envelope, RT_AGENT_CANCEL, &(rt_agent_target){.system = system, .entity_id = run_entity},
                        why);
}

rt_status rt_agent_refusal_audit(rt_store *st, const char *agent_id, rt_agent_action action, const char *subject,
                                 const char *reason, const json_t *extra, rt_error *err)
{
    char actor[300];
    snprintf(actor, sizeof actor, "agent:%s", agent_id ? agent_id : "-");
    json_t *details = json_is_object(extra) ? json_deep_copy(extra) : json_object();
    json_object_set_new(details, "action", json_string(rt_agent_action_name(action)));
    json_object_set_new(details, "reason", json_string(reason ? reason : ""));
    rt_status s = rt_refusal_record(st, actor, "agent.refused", subject, details, err);
    json_decref(details);
    if (s == RT_OK)
        rt_log(RT_LOG_WARN, NULL, "%s refused: %s %s: %s", actor, rt_agent_action_name(action), subject ? subject : "",
               reason ? reason : "");
    return s;
}
