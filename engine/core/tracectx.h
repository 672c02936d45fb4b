/* tracectx.h — W3C Trace Context (traceparent / tracestate): strict parsing of what
 * publishers send, formatting what ratchet sends on, and span ids derived from names so a
 * run resumed in another process (after kill -9) continues the same trace. */
#ifndef RT_TRACECTX_H
#define RT_TRACECTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RT_TRACEPARENT_LEN 55     /* "00-" 32 hex "-" 16 hex "-" 2 hex */
#define RT_TRACESTATE_MAX 512     /* W3C: 32 members; longer values are dropped, not cut */
#define RT_TRACE_FLAG_SAMPLED 0x01

typedef struct rt_trace_ctx {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t flags; /* RT_TRACE_FLAG_SAMPLED */
} rt_trace_ctx;

/* Parses a traceparent header value strictly (W3C Trace Context level 1): version 00 is
 * exactly 55 characters; a later version (not ff) may carry more after a '-'; hex is
 * lowercase; trace and span ids are not all zero. Leading/trailing spaces and tabs (HTTP
 * OWS) are allowed. s need not be NUL-terminated. Returns false for anything else, with
 * out untouched. */
bool rt_traceparent_parse(const char *s, size_t len, rt_trace_ctx *out);

/* "00-<trace>-<span>-<flags>"; buf must hold RT_TRACEPARENT_LEN + 1 bytes. */
void rt_traceparent_format(const rt_trace_ctx *c, char *buf);

/* Whether a tracestate value is worth passing on: at most RT_TRACESTATE_MAX bytes of
 * printable ASCII (the list syntax itself is the vendors' business). */
bool rt_tracestate_valid(const char *s, size_t len);

/* Lowercase hex of n bytes into hex (2n + 1 bytes). */
void rt_trace_hex(const uint8_t *bytes, size_t n, char *hex);

/* Fills out (n <= 32 bytes) with the first n bytes of SHA-256("ratchet-trace\0" a "\0" b
 * "\0" c): the same names give the same id in every process. b may be NULL. An all-zero
 * result (invalid in W3C) becomes ...01. */
void rt_trace_derive(uint8_t *out, size_t n, const char *a, const char *b, long c);

#endif
