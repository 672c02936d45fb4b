/* status.h — the one status enum every fallible ratchet call returns, and the error
 * object that carries a message with its context ("workflow bank-sync, step fetch: ..."). */
#ifndef RT_STATUS_H
#define RT_STATUS_H

#include <stdarg.h>

typedef enum rt_status {
    RT_OK = 0,
    RT_ERR_INVALID,     /* bad input: workflow, event, expression, argument */
    RT_ERR_NOT_FOUND,
    RT_ERR_CONFLICT,    /* duplicate, lost lease, wrong state */
    RT_ERR_UNAVAILABLE, /* a server (PostgreSQL, broker) cannot be reached */
    RT_ERR_TIMEOUT,
    RT_ERR_NOMEM,
    RT_ERR_IO,
    RT_ERR_INTERNAL,
} rt_status;

#define RT_ERROR_MAX 1024

/* Caller-owned storage; functions fill it when they return non-RT_OK. */
typedef struct rt_error {
    rt_status code;
    char msg[RT_ERROR_MAX];
} rt_error;

const char *rt_status_name(rt_status s);

/* Sets err (when not NULL) and returns code, so callers can `return rt_error_set(...)`. */
rt_status rt_error_set(rt_error *err, rt_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
rt_status rt_error_setv(rt_error *err, rt_status code, const char *fmt, va_list ap);

/* Prepends context to an existing message: "ctx: old message". Returns err->code. */
rt_status rt_error_prefix(rt_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void rt_error_clear(rt_error *err);

#endif
