/* status.c — status names and the error object. */
#include "status.h"

#include <stdio.h>
#include <string.h>

const char *rt_status_name(rt_status s)
{
    switch (s) {
    case RT_OK: return "ok";
    case RT_ERR_INVALID: return "invalid";
    case RT_ERR_NOT_FOUND: return "not_found";
    case RT_ERR_CONFLICT: return "conflict";
    case RT_ERR_UNAVAILABLE: return "unavailable";
    case RT_ERR_TIMEOUT: return "timeout";
    case RT_ERR_NOMEM: return "out_of_memory";
    case RT_ERR_IO: return "io";
    case RT_ERR_INTERNAL: return "internal";
    }
    return "unknown";
}

rt_status rt_error_setv(rt_error *err, rt_status code, const char *fmt, va_list ap)
{
    if (err) {
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    }
    return code;
}

rt_status rt_error_set(rt_error *err, rt_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rt_error_setv(err, code, fmt, ap);
    va_end(ap);
    return code;
}

rt_status rt_error_prefix(rt_error *err, const char *fmt, ...)
{
    if (!err)
        return RT_ERR_INTERNAL;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[RT_ERROR_MAX];
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
    return err->code;
}

void rt_error_clear(rt_error *err)
{
    if (err) {
        err->code = RT_OK;
        err->msg[0] = '\0';
    }
}
