/* run_trace.h — one trace per run (docs/observability.md): the run's trace context comes
 * from its trigger event's traceparent (the "x-traceparent" envelope extension, which
 * broker and HTTP headers are folded into at ingest) or, without one, from its run id; span
 * ids derive from run, step and attempt, so a run resumed by another process after kill -9
 * continues the same trace. Builds the spans and hands them to the exporter (otel.h). */
#ifndef RT_RUN_TRACE_H
#define RT_RUN_TRACE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "event.h"
#include "tracectx.h"

/* The envelope extension keys that carry W3C Trace Context through every transport. */
#define RT_EVENT_TRACEPARENT_KEY "x-traceparent"
#define RT_EVENT_TRACESTATE_KEY "x-tracestate"

typedef struct rt_run_trace {
    uint8_t trace_id[16];
    uint8_t root_span_id[8]; /* the run's span */
    bool has_parent;         /* the publisher's span, from the trigger event */
    uint8_t parent_span_id[8];
    bool sampled;
    const char *tracestate;  /* borrowed from the event, or NULL */
} rt_run_trace;

/* The trace of run run_id triggered by event (borrowed envelope, may be NULL). */
void rt_run_trace_of(const char *run_id, const json_t *event, rt_run_trace *out);

/* The traceparent a step attempt hands on (http header, TRACEPARENT, published events):
 * the attempt's own span as parent. buf holds RT_TRACEPARENT_LEN + 1 bytes. */
void rt_run_trace_step_parent(const char *run_id, const json_t *event, const char *step_id, int attempt, char *buf);

/* Spans; each is a no-op when no collector is configured or the trace is not sampled. */
void rt_run_trace_step_span(const char *run_id, const json_t *event, const char *workflow, const char *step_id,
                            const char *type, int attempt, const char *outcome, const char *error,
                            int64_t start_ms, int64_t end_ms);
void rt_run_trace_run_span(const char *run_id, const json_t *event, const json_t *trigger, const char *workflow,
                           const char *status, const char *error, int64_t start_ms, int64_t end_ms);
/* step_id: the approval step, or NULL for the gate before the run starts */
void rt_run_trace_approval_span(const char *run_id, const json_t *event, const char *workflow, const char *step_id,
                                const char *decision, int64_t start_ms, int64_t end_ms);
/* The ingest of one event (a child of the publisher's span when it sent one). */
void rt_run_trace_ingest_span(const rt_event *ev, const char *transport, int64_t start_ms, int64_t end_ms);

/* Folds a transport's traceparent/tracestate header (tp, ts: may be NULL, need not be
 * NUL-terminated) into the event as its envelope extension, unless the envelope already
 * has one. A malformed traceparent is ignored and counted
 * (ratchet_bad_input_total{kind="traceparent"}), as is a malformed one in the envelope.
 * *ev may be replaced by a new event (the old one is freed); on failure it is left as is. */
void rt_run_trace_adopt(rt_event **ev, const char *tp, size_t tp_len, const char *ts, size_t ts_len);

#endif
