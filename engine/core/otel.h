/* otel.h — the OpenTelemetry span exporter: spans queued by any thread without waiting,
 * sent in batches by one background thread as OTLP/HTTP JSON (libcurl) to the collector the
 * standard OTEL_* settings name. A full queue or a collector that is down loses spans (and
 * counts them), never slows a run. */
#ifndef RT_OTEL_H
#define RT_OTEL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "status.h"
#include "tracectx.h"

/* OTLP's Span.SpanKind values. */
typedef enum rt_span_kind {
    RT_SPAN_INTERNAL = 1,
    RT_SPAN_SERVER = 2,
    RT_SPAN_CLIENT = 3,
    RT_SPAN_PRODUCER = 4,
    RT_SPAN_CONSUMER = 5,
} rt_span_kind;

/* One finished span. */
typedef struct rt_span {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t parent_span_id[8];
    bool has_parent;
    const char *name;
    rt_span_kind kind;
    int64_t start_ms, end_ms; /* wall clock */
    bool error;               /* status ERROR (with error_msg) rather than unset */
    const char *error_msg;
    const char *trace_state;  /* NULL: none */
    json_t *attributes;       /* {key: string | integer | boolean}; borrowed */
} rt_span;

/* Reads the settings (cfg is copied from); without an endpoint, tracing stays off and
 * every call below is a no-op. Starts the export thread. RT_ERR_INVALID with one clear line
 * for a bad sampler, ratio, header or attribute list (header values never appear in it). */
rt_status rt_otel_start(const rt_config *cfg, rt_error *err);
/* Sends what is queued (up to the export timeout), stops the thread. */
void rt_otel_stop(void);
/* Is a collector configured (spans are worth building)? */
bool rt_otel_enabled(void);

/* The sampler's decision for a trace: parent is the remote parent's context or NULL for a
 * root. Depends only on its arguments (and the settings), so every process agrees. */
bool rt_otel_sample(const rt_trace_ctx *parent, const uint8_t trace_id[16]);

/* Queues a copy of span; never blocks on I/O. A full queue drops it (counted). */
void rt_otel_emit(const rt_span *span);

/* The OTLP JSON request body for spans (an ExportTraceServiceRequest), with the process's
 * resource: exposed for the unit tests. New reference. */
json_t *rt_otel_request_json(json_t *const *spans, size_t n);

#endif
