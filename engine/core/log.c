/* log.c — text and JSON log lines; one write(2) per line so threads never interleave. */
#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

rt_log_level rt_log_min_level = RT_LOG_INFO;
static bool log_json;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void rt_log_configure(rt_log_level min, bool json)
{
    rt_log_min_level = min;
    log_json = json;
}

bool rt_log_level_parse(const char *s, rt_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (rt_log_level)i;
            return true;
        }
    }
    if (strcmp(s, "warning") == 0) {
        *out = RT_LOG_WARN;
        return true;
    }
    return false;
}

static void write_all(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, buf, len);
        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

void rt_log_write(rt_log_level level, const rt_log_ctx *ctx, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char ts[40];
    rt_time_format(rt_now_ms(), ts, sizeof ts);

    if (log_json) {
        json_t *o = json_pack("{s:s, s:s, s:s}", "ts", ts, "level", level_names[level], "msg", msg);
        if (ctx && ctx->workflow)
            json_object_set_new(o, "workflow", json_string(ctx->workflow));
        if (ctx && ctx->run_id)
            json_object_set_new(o, "run_id", json_string(ctx->run_id));
        if (ctx && ctx->step_id)
            json_object_set_new(o, "step_id", json_string(ctx->step_id));
        char *line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        json_decref(o);
        if (line) {
            size_t n = strlen(line);
            line[n] = '\n';
            write_all(line, n + 1);
            free(line);
        }
        return;
    }
    char line[2600];
    int n = snprintf(line, sizeof line, "%s %-5s %s%s%s%s%s%s%s%s%s%s\n", ts, level_names[level],
                     ctx && ctx->workflow ? "workflow=" : "", ctx && ctx->workflow ? ctx->workflow : "",
                     ctx && ctx->workflow ? " " : "", ctx && ctx->run_id ? "run=" : "",
                     ctx && ctx->run_id ? ctx->run_id : "", ctx && ctx->run_id ? " " : "",
                     ctx && ctx->step_id ? "step=" : "", ctx && ctx->step_id ? ctx->step_id : "",
                     ctx && ctx->step_id ? " " : "", msg);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line) {
        n = sizeof line - 1;
        line[n - 1] = '\n';
    }
    write_all(line, (size_t)n);
}
