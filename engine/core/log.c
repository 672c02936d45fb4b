/* log.c — text and JSON log lines; one write(2) per line so threads never interleave;
 * every line is one line of valid UTF-8 whatever the message holds (rt_log_sanitize). */
#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
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

/* A context value for a JSON line: valid UTF-8 in buf. */
static const char *ctx_json(const char *v, char *buf, size_t cap)
{
    rt_log_sanitize(v, buf, cap, false);
    return buf;
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

/* Length of the well-formed UTF-8 sequence at p (1..4) and its code point, or 0 with *bad
 * the length of its longest valid prefix (at least 1): that prefix becomes one U+FFFD,
 * as Unicode recommends (overlongs, surrogates and code points past U+10FFFF are invalid). */
static size_t utf8_next(const unsigned char *p, uint32_t *cp, size_t *bad)
{
    unsigned char c = p[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* the range of the second byte */
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        *cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        *cp = c & 0x0f;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        *cp = c & 0x07;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        *bad = 1;
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        unsigned char b = p[i];
        if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xbf)) {
            *bad = i;
            return 0;
        }
        *cp = (*cp << 6) | (b & 0x3f);
    }
    return len;
}

size_t rt_log_sanitize(const char *in, char *out, size_t cap, bool text)
{
    size_t o = 0;
    if (cap == 0)
        return 0;
    const unsigned char *p = (const unsigned char *)(in ? in : "");
    while (*p) {
        char esc[8];
        const char *piece = esc;
        size_t plen, adv;
        uint32_t cp = 0;
        size_t bad = 0, len = utf8_next(p, &cp, &bad);
        if (!len) {
            piece = "\xef\xbf\xbd"; /* U+FFFD REPLACEMENT CHARACTER */
            plen = 3;
            adv = bad;
        } else if (text && (cp == '\n' || cp == '\r' || cp == '\t')) {
            esc[0] = '\\';
            esc[1] = cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't';
            plen = 2;
            adv = len;
        } else if (text && (cp < 0x20 || cp == 0x7f)) {
            plen = (size_t)snprintf(esc, sizeof esc, "\\x%02x", (unsigned)cp);
            adv = len;
        } else if (text && ((cp >= 0x80 && cp < 0xa0) || cp == 0x2028 || cp == 0x2029)) {
            /* C1 controls (a terminal may take U+009B for an escape) and line separators */
            plen = (size_t)snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
            adv = len;
        } else {
            piece = (const char *)p;
            plen = adv = len;
        }
        if (o + plen >= cap)
            break; /* never half a character or half an escape */
        memcpy(out + o, piece, plen);
        o += plen;
        p += adv;
    }
    out[o] = '\0';
    return o;
}

/* A context value for a text line: sanitized into buf, or "" for none. */
static const char *ctx_text(const char *v, char *buf, size_t cap)
{
    if (!v)
        return "";
    rt_log_sanitize(v, buf, cap, true);
    return buf;
}

void rt_log_write(rt_log_level level, const rt_log_ctx *ctx, const char *fmt, ...)
{
    char raw[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    char ts[40];
    rt_time_format(rt_now_ms(), ts, sizeof ts);
    /* Messages interpolate what outsiders sent (event names, URLs, error texts): a text
     * line escapes control characters so that nothing forges a line or drives a terminal,
     * and both formats replace invalid UTF-8 (jansson refuses it: the line would be lost). */
    char msg[4096];
    rt_log_sanitize(raw, msg, sizeof msg, !log_json);

    if (log_json) {
        char wf[512], run[128], step[512];
        json_t *o = json_pack("{s:s, s:s, s:s}", "ts", ts, "level", level_names[level], "msg", msg);
        if (o && ctx && ctx->workflow)
            json_object_set_new(o, "workflow", json_string(ctx_json(ctx->workflow, wf, sizeof wf)));
        if (o && ctx && ctx->run_id)
            json_object_set_new(o, "run_id", json_string(ctx_json(ctx->run_id, run, sizeof run)));
        if (o && ctx && ctx->step_id)
            json_object_set_new(o, "step_id", json_string(ctx_json(ctx->step_id, step, sizeof step)));
        char *line = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        json_decref(o);
        if (line) {
            size_t n = strlen(line);
            line[n] = '\n';
            write_all(line, n + 1);
            free(line);
        } else {
            /* out of memory: still one line that says so */
            static const char oom[] = "{\"level\":\"error\",\"msg\":\"log: out of memory formatting a line\"}\n";
            write_all(oom, sizeof oom - 1);
        }
        return;
    }
    char wf[512], run[128], step[512];
    const char *w = ctx_text(ctx ? ctx->workflow : NULL, wf, sizeof wf);
    const char *r = ctx_text(ctx ? ctx->run_id : NULL, run, sizeof run);
    const char *st = ctx_text(ctx ? ctx->step_id : NULL, step, sizeof step);
    char line[sizeof msg + sizeof wf + sizeof run + sizeof step + 80];
    int n = snprintf(line, sizeof line, "%s %-5s %s%s%s%s%s%s%s%s%s%s\n", ts, level_names[level], *w ? "workflow=" : "",
                     w, *w ? " " : "", *r ? "run=" : "", r, *r ? " " : "", *st ? "step=" : "", st, *st ? " " : "",
                     msg);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line) {
        n = sizeof line - 1;
        line[n - 1] = '\n';
    }
    write_all(line, (size_t)n);
}
