/* publish.c — sends an event to a broker (RabbitMQ with publisher confirms, JetStream with
 * publish acks) in the same envelope every transport carries (DESIGN §5). The id defaults
 * to the step key, so a re-run after a crash publishes the same id and is de-duplicated.
 * With no broker configured (and no `via`), the event is handed to the engine instead,
 * which stores it with the step's result (rt_step_result.emit). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "step.h"
#include "util.h"

#define PUBLISH_TIMEOUT_MS 10000
#define ID_MAX 200

static const char *const known_keys[] = {"topic", "data", "id", "via", "entity_id", NULL};

static rt_status check_with(json_t *with, bool rendered, rt_error *err)
{
    if (!json_is_object(with))
        return rt_error_set(err, RT_ERR_INVALID, "publish needs an object with \"topic\" and \"data\"");
    const char *key;
    json_t *v;
    json_object_foreach(with, key, v) {
        size_t i = 0;
        while (known_keys[i] && strcmp(known_keys[i], key) != 0)
            i++;
        if (!known_keys[i])
            return rt_error_set(err, RT_ERR_INVALID,
                                "publish has unknown key \"%s\" (known: topic, data, id, via, entity_id)", key);
    }
    v = json_object_get(with, "topic");
    if (!v)
        return rt_error_set(err, RT_ERR_INVALID, "publish needs \"topic\" (the event name)");
    if (!rt_step_is_template(v, rendered)) {
        if (!json_is_string(v))
            return rt_error_set(err, RT_ERR_INVALID, "publish \"topic\" must be a string (the event name)");
        const char *t = json_string_value(v);
        if (rt_bus_pattern_check(t, err) != RT_OK)
            return rt_error_prefix(err, "publish \"topic\"");
        if (strchr(t, '*') || strchr(t, '>'))
            return rt_error_set(err, RT_ERR_INVALID,
                                "publish \"topic\" %s: an event name has no wildcards (* and > are for triggers)", t);
    }
    if ((v = json_object_get(with, "id")) && !json_is_null(v) && !rt_step_is_template(v, rendered)) {
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > ID_MAX)
            return rt_error_set(err, RT_ERR_INVALID, "publish \"id\" must be a string of 1 to %d characters", ID_MAX);
        for (const char *p = json_string_value(v); *p; p++) {
            if (*p <= ' ' || *p == 0x7f)
                return rt_error_set(err, RT_ERR_INVALID,
                                    "publish \"id\" must be visible ASCII characters (no spaces or controls)");
        }
    }
    if ((v = json_object_get(with, "via")) && !json_is_null(v) && !rt_step_is_template(v, rendered)) {
        const char *s = json_string_value(v);
        if (!s || (strcmp(s, "amqp") != 0 && strcmp(s, "nats") != 0))
            return rt_error_set(err, RT_ERR_INVALID, "publish \"via\" must be \"amqp\" or \"nats\"");
    }
    if ((v = json_object_get(with, "entity_id")) && !json_is_null(v) && !rt_step_is_template(v, rendered)) {
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > ID_MAX)
            return rt_error_set(err, RT_ERR_INVALID, "publish \"entity_id\" must be a string of 1 to %d characters",
                                ID_MAX);
    }
    return RT_OK;
}

static rt_status validate(json_t *with, rt_error *err)
{
    return check_with(with, false, err);
}

/* The bus the step goes through: `via`, else the first configured (RabbitMQ, then NATS). */
static struct rt_bus *pick_bus(const rt_step_env *env, const char *via, rt_step_result *res)
{
    struct rt_bus *amqp = env ? env->bus_amqp : NULL, *nats = env ? env->bus_nats : NULL;
    if (via && strcmp(via, "amqp") == 0) {
        if (!amqp)
            rt_step_fail(res, false, "publish: via \"amqp\" but RabbitMQ is not configured (RATCHET_AMQP_URL)");
        return amqp;
    }
    if (via && strcmp(via, "nats") == 0) {
        if (!nats)
            rt_step_fail(res, false, "publish: via \"nats\" but NATS is not configured (RATCHET_NATS_URL)");
        return nats;
    }
    if (amqp)
        return amqp;
    if (nats)
        return nats;
    rt_step_fail(res, false, "publish: no broker is configured (set RATCHET_AMQP_URL or RATCHET_NATS_URL)");
    return NULL;
}

static void execute(rt_step_ctx *ctx, json_t *with, rt_step_result *res)
{
    rt_error err;
    if (check_with(with, true, &err) != RT_OK) {
        rt_step_fail(res, false, "%s", err.msg);
        return;
    }
    const char *topic = json_string_value(json_object_get(with, "topic"));
    json_t *idv = json_object_get(with, "id");
    const char *id = json_is_string(idv) ? json_string_value(idv) : ctx->step_key;
    if (!id || !*id) {
        rt_step_fail(res, false, "publish: no \"id\" and no step key to default it to");
        return;
    }
    json_t *viav = json_object_get(with, "via");
    const char *via = json_is_string(viav) ? json_string_value(viav) : NULL;
    bool no_broker = !via && (!ctx->env || (!ctx->env->bus_amqp && !ctx->env->bus_nats));
    struct rt_bus *bus = no_broker ? NULL : pick_bus(ctx->env, via, res);
    if (!bus && !no_broker)
        return;

    json_t *data = json_object_get(with, "data");
    json_t *env = json_object();
    json_object_set_new(env, "name", json_string(topic));
    json_object_set_new(env, "id", json_string(id));
    json_object_set_new(env, "ts", json_integer((json_int_t)rt_now_ms()));
    /* `data` is borrowed from `with`: the envelope takes its own reference. */
    json_object_set_new(env, "data", data ? json_incref(data) : json_object());
    /* The run's actor and entity travel with what it publishes, so relaying through another
     * workflow never sheds an approval gate (DESIGN §6). A run an agent started publishes
     * only for the agent's entity. */
    const json_t *run_event = json_object_get(ctx->context, "event");
    json_t *actor = json_object_get(run_event, "actor");
    json_t *run_entity = json_object_get(run_event, "entity_id");
    json_t *entity = json_object_get(with, "entity_id");
    const char *atype = json_string_value(json_object_get(actor, "type"));
    bool agent = atype && !strcmp(atype, "agent");
    if (agent && json_is_string(entity) && !json_equal(entity, run_entity)) {
        json_decref(env);
        rt_step_fail(res, false, "publish: a run an agent started publishes only for its entity (%s), not %s",
                     json_is_string(run_entity) ? json_string_value(run_entity) : "none", json_string_value(entity));
        return;
    }
    json_object_set_new(env, "actor", json_is_object(actor) ? json_deep_copy(actor) : json_pack("{s:s}", "type", "service"));
    if (!json_is_string(entity))
        entity = run_entity;
    if (json_is_string(entity))
        json_object_set(env, "entity_id", entity);
    json_object_set_new(env, "v", json_string("1"));
    /* The envelope extension carries W3C Trace Context on every transport; the brokers also
     * get it as a header (docs/observability.md). */
    if (ctx->traceparent)
        json_object_set_new(env, "x-traceparent", json_string(ctx->traceparent));
    if (no_broker) {
        /* Nowhere to send it now: the engine stores it with the step's result, so that
         * workflows still trigger on it and a broker configured later gets it from the
         * outbox. */
        res->outcome = RT_STEP_OK;
        res->emit = env;
        res->output = json_pack("{s:s, s:s, s:b, s:s}", "id", id, "topic", topic, "published", false, "stored",
                                "outbox (no broker is configured)");
        return;
    }
    char *body = json_dumps(env, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(env);
    if (!body) {
        rt_step_fail(res, true, "publish: out of memory");
        return;
    }

    int timeout = PUBLISH_TIMEOUT_MS;
    if (ctx->deadline_mono_ms > 0) {
        int64_t left = ctx->deadline_mono_ms - rt_mono_ms();
        if (left <= 0) {
            free(body);
            rt_step_fail(res, true, "publish: the step deadline passed");
            return;
        }
        if (left < timeout)
            timeout = (int)left;
    }
    rt_bus_out out = {.name = topic, .id = id, .body = body, .len = strlen(body), .traceparent = ctx->traceparent};
    rt_status st = rt_bus_publish(bus, &out, 1, timeout, &err);
    free(body);
    if (st != RT_OK) {
        /* A refusal that a retry cannot change (payload over the broker's limit, access
         * denied) fails for good; everything else (broker away, timeout) retries. */
        rt_step_fail(res, st != RT_ERR_INVALID, "publish %s via %s: %s", topic, rt_bus_name(bus), err.msg);
        return;
    }
    res->outcome = RT_STEP_OK;
    res->output = json_pack("{s:s}", "id", id);
}

const rt_step_type rt_step_publish = {
    .name = "publish", .inline_ok = false, .quick = false, .validate = validate, .execute = execute};
