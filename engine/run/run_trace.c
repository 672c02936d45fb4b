/* run_trace.c — the run's trace context, its spans, and trace headers folded into events. */
#include "run_trace.h"

#include <stdio.h>
#include <string.h>

#include "metrics.h"
#include "otel.h"
#include "util.h"

static bool envelope_parent(const json_t *event, rt_trace_ctx *out)
{
    json_t *tp = json_object_get(event, RT_EVENT_TRACEPARENT_KEY);
    return json_is_string(tp) && rt_traceparent_parse(json_string_value(tp), json_string_length(tp), out);
}

void rt_run_trace_of(const char *run_id, const json_t *event, rt_run_trace *out)
{
    memset(out, 0, sizeof *out);
    rt_trace_ctx parent;
    if (envelope_parent(event, &parent)) {
        memcpy(out->trace_id, parent.trace_id, 16);
        memcpy(out->parent_span_id, parent.span_id, 8);
        out->has_parent = true;
        json_t *ts = json_object_get(event, RT_EVENT_TRACESTATE_KEY);
        if (json_is_string(ts) && rt_tracestate_valid(json_string_value(ts), json_string_length(ts)))
            out->tracestate = json_string_value(ts);
        out->sampled = rt_otel_sample(&parent, out->trace_id);
    } else {
        rt_trace_derive(out->trace_id, 16, "run", run_id, 0);
        out->sampled = rt_otel_sample(NULL, out->trace_id);
    }
    rt_trace_derive(out->root_span_id, 8, "run-span", run_id, 0);
}

static void step_span_id(const char *run_id, const char *step_id, int attempt, uint8_t *out)
{
    char key[400];
    snprintf(key, sizeof key, "%s\n%s", run_id, step_id);
    rt_trace_derive(out, 8, "step-span", key, attempt);
}

void rt_run_trace_step_parent(const char *run_id, const json_t *event, const char *step_id, int attempt, char *buf)
{
    rt_run_trace t;
    rt_run_trace_of(run_id, event, &t);
    rt_trace_ctx c;
    memcpy(c.trace_id, t.trace_id, 16);
    step_span_id(run_id, step_id, attempt, c.span_id);
    c.flags = t.sampled ? RT_TRACE_FLAG_SAMPLED : 0;
    rt_traceparent_format(&c, buf);
}

/* A span of the run's trace whose parent is the run's span. */
static void child_span(const rt_run_trace *t, rt_span *s)
{
    memcpy(s->trace_id, t->trace_id, 16);
    memcpy(s->parent_span_id, t->root_span_id, 8);
    s->has_parent = true;
    s->trace_state = t->tracestate;
    s->kind = RT_SPAN_INTERNAL;
}

void rt_run_trace_step_span(const char *run_id, const json_t *event, const char *workflow, const char *step_id,
                            const char *type, int attempt, const char *outcome, const char *error,
                            int64_t start_ms, int64_t end_ms)
{
    if (!rt_otel_enabled())
        return;
    rt_run_trace t;
    rt_run_trace_of(run_id, event, &t);
    if (!t.sampled)
        return;
    char name[300];
    snprintf(name, sizeof name, "step %s", step_id);
    rt_span s = {.name = name, .start_ms = start_ms, .end_ms = end_ms};
    child_span(&t, &s);
    step_span_id(run_id, step_id, attempt, s.span_id);
    s.error = outcome && !strcmp(outcome, "failed");
    s.error_msg = error;
    s.attributes = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s}", "ratchet.workflow", workflow, "ratchet.run_id", run_id,
                             "ratchet.step.id", step_id, "ratchet.step.type", type, "ratchet.step.attempt", attempt,
                             "ratchet.step.outcome", outcome);
    if (error && s.attributes)
        json_object_set_new(s.attributes, "error.message", json_string(error));
    rt_otel_emit(&s);
    json_decref(s.attributes);
}

void rt_run_trace_run_span(const char *run_id, const json_t *event, const json_t *trigger, const char *workflow,
                           const char *status, const char *error, int64_t start_ms, int64_t end_ms)
{
    if (!rt_otel_enabled())
        return;
    rt_run_trace t;
    rt_run_trace_of(run_id, event, &t);
    if (!t.sampled)
        return;
    char name[300];
    snprintf(name, sizeof name, "run %s", workflow);
    rt_span s = {.name = name, .kind = RT_SPAN_SERVER, .start_ms = start_ms, .end_ms = end_ms};
    memcpy(s.trace_id, t.trace_id, 16);
    memcpy(s.span_id, t.root_span_id, 8);
    s.has_parent = t.has_parent;
    memcpy(s.parent_span_id, t.parent_span_id, 8);
    s.trace_state = t.tracestate;
    s.error = status && (!strcmp(status, "failed") || !strcmp(status, "timed_out"));
    s.error_msg = error;
    const char *trig = json_string_value(json_object_get(trigger, "type"));
    s.attributes = json_pack("{s:s, s:s, s:s, s:s}", "ratchet.workflow", workflow, "ratchet.run_id", run_id,
                             "ratchet.trigger", trig ? trig : "unknown", "ratchet.run.status", status);
    const char *ename = json_string_value(json_object_get(event, "name"));
    if (ename && s.attributes)
        json_object_set_new(s.attributes, "ratchet.event.name", json_string(ename));
    const char *eid = json_string_value(json_object_get(event, "id"));
    if (eid && s.attributes)
        json_object_set_new(s.attributes, "ratchet.event.id", json_string(eid));
    if (error && s.attributes)
        json_object_set_new(s.attributes, "error.message", json_string(error));
    rt_otel_emit(&s);
    json_decref(s.attributes);
}

void rt_run_trace_approval_span(const char *run_id, const json_t *event, const char *workflow, const char *step_id,
                                const char *decision, int64_t start_ms, int64_t end_ms)
{
    if (!rt_otel_enabled())
        return;
    rt_run_trace t;
    rt_run_trace_of(run_id, event, &t);
    if (!t.sampled)
        return;
    rt_span s = {.name = "approval wait", .start_ms = start_ms > 0 ? start_ms : end_ms, .end_ms = end_ms};
    child_span(&t, &s);
    char key[400];
    snprintf(key, sizeof key, "%s\n%s", run_id, step_id ? step_id : "");
    rt_trace_derive(s.span_id, 8, "approval-span", key, 0);
    s.attributes = json_pack("{s:s, s:s, s:s}", "ratchet.workflow", workflow ? workflow : "", "ratchet.run_id", run_id,
                             "ratchet.approval.decision", decision);
    if (step_id && s.attributes)
        json_object_set_new(s.attributes, "ratchet.step.id", json_string(step_id));
    rt_otel_emit(&s);
    json_decref(s.attributes);
}

void rt_run_trace_ingest_span(const rt_event *ev, const char *transport, int64_t start_ms, int64_t end_ms)
{
    if (!rt_otel_enabled() || !ev)
        return;
    rt_trace_ctx parent;
    bool has_parent = envelope_parent(ev->envelope, &parent);
    rt_span s = {.kind = RT_SPAN_CONSUMER, .start_ms = start_ms, .end_ms = end_ms};
    if (has_parent) {
        memcpy(s.trace_id, parent.trace_id, 16);
        memcpy(s.parent_span_id, parent.span_id, 8);
        s.has_parent = true;
    } else {
        rt_trace_derive(s.trace_id, 16, "event", ev->id, 0);
    }
    if (!rt_otel_sample(has_parent ? &parent : NULL, s.trace_id))
        return;
    rt_trace_derive(s.span_id, 8, "ingest-span", ev->id, 0);
    char name[300];
    snprintf(name, sizeof name, "ingest %s", ev->name);
    s.name = name;
    s.attributes = json_pack("{s:s, s:s, s:s}", "messaging.system", transport ? transport : "unknown",
                             "ratchet.event.name", ev->name, "ratchet.event.id", ev->id);
    rt_otel_emit(&s);
    json_decref(s.attributes);
}

static void bad_traceparent(void)
{
    rt_metrics_counter_add("ratchet_bad_input_total", "kind", "traceparent", 1);
}

void rt_run_trace_adopt(rt_event **ev, const char *tp, size_t tp_len, const char *ts, size_t ts_len)
{
    json_t *have = json_object_get((*ev)->envelope, RT_EVENT_TRACEPARENT_KEY);
    if (have) {
        rt_trace_ctx c;
        if (!envelope_parent((*ev)->envelope, &c))
            bad_traceparent(); /* kept as sent, but never used */
        return;
    }
    if (!tp)
        return;
    rt_trace_ctx c;
    if (!rt_traceparent_parse(tp, tp_len, &c)) {
        bad_traceparent();
        return;
    }
    char buf[RT_TRACEPARENT_LEN + 1];
    rt_traceparent_format(&c, buf);
    json_t *doc = json_deep_copy((*ev)->envelope);
    if (!doc)
        return;
    json_object_set_new(doc, RT_EVENT_TRACEPARENT_KEY, json_string(buf));
    if (ts && rt_tracestate_valid(ts, ts_len))
        json_object_set_new(doc, RT_EVENT_TRACESTATE_KEY, json_stringn(ts, ts_len));
    rt_event *fresh = NULL;
    rt_error err;
    /* ts stays the event's own: now_ms is only a default for an absent ts */
    if (rt_event_from_json(doc, rt_now_ms(), &fresh, &err) == RT_OK) {
        /* the new event shares values with doc: doc must live as long as it */
        json_decref(doc);
        rt_event_free(*ev);
        *ev = fresh;
    } else {
        json_decref(doc);
    }
}
