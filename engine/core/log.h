/* log.h — one line per event, text or JSON, to stderr. The level is checked before any
 * formatting; a context adds workflow, run and step ids. Never pass secrets here. */
#ifndef RT_LOG_H
#define RT_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum rt_log_level {
    RT_LOG_DEBUG = 0,
    RT_LOG_INFO,
    RT_LOG_WARN,
    RT_LOG_ERROR,
} rt_log_level;

typedef struct rt_log_ctx {
    const char *workflow;
    const char *run_id;
    const char *step_id;
} rt_log_ctx;

extern rt_log_level rt_log_min_level;

/* Set once at start-up, before threads start. */
void rt_log_configure(rt_log_level min, bool json);
/* "debug", "info", "warn", "error" -> level; returns false when unknown. */
bool rt_log_level_parse(const char *s, rt_log_level *out);

/* Copies in to out (cap bytes, always NUL-terminated, never cutting a character or an
 * escape) as valid UTF-8: each invalid sequence becomes U+FFFD. With text, control
 * characters are escaped as well — \n \r \t, \xHH for the other C0 ones and DEL,
 * \uHHHH for C1 ones and U+2028/2029 — so a text log line stays one line. Returns the
 * length written. Every log line goes through it. */
size_t rt_log_sanitize(const char *in, char *out, size_t cap, bool text);

void rt_log_write(rt_log_level level, const rt_log_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define rt_log(level, ctx, ...)                                                                    \
    do {                                                                                           \
        if ((level) >= rt_log_min_level)                                                           \
            rt_log_write((level), (ctx), __VA_ARGS__);                                             \
    } while (0)

#endif
