/* fuzz_traceparent.c — libFuzzer target for W3C traceparent / tracestate parsing
 * (engine/core/tracectx.c), which reads what any publisher puts in a broker or HTTP
 * header. Beyond crashes it aborts when an accepted value breaks the contract: ids all
 * zero, flags beyond the sampled bit, or a formatted context that does not parse back to
 * itself; and when a refused value touched the output. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tracectx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rt_trace_ctx c;
    memset(&c, 0xa5, sizeof c);
    bool ok = rt_traceparent_parse((const char *)data, size, &c);
    if (!ok) {
        for (size_t i = 0; i < sizeof c; i++)
            if (((const uint8_t *)&c)[i] != 0xa5)
                abort();
    } else {
        static const uint8_t zero[16];
        if (!memcmp(c.trace_id, zero, 16) || !memcmp(c.span_id, zero, 8))
            abort();
        char out[RT_TRACEPARENT_LEN + 1];
        rt_traceparent_format(&c, out);
        if (strlen(out) != RT_TRACEPARENT_LEN)
            abort();
        rt_trace_ctx again;
        if (!rt_traceparent_parse(out, strlen(out), &again) || memcmp(&again, &c, sizeof c) != 0)
            abort();
        if (c.flags & ~RT_TRACE_FLAG_SAMPLED)
            abort();
    }
    bool valid = rt_tracestate_valid((const char *)data, size);
    if (valid && (size == 0 || size > RT_TRACESTATE_MAX))
        abort();
    return 0;
}
