/* evcheck.c — runs the C event parser on files for tests/schema/check_event_schema.py:
 * one line per file, "ok <normalized envelope as ASCII JSON>" or "error <fault> <message>"
 * (message bytes outside printable ASCII as \xHH). Exits 0 when every file parsed, 1 when
 * one did not, 2 on usage or I/O errors. The clock is fixed (--now MS, default
 * 1700000000000) so that defaulted timestamps are predictable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "util.h"

static void print_escaped(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p > 0x7e || *p == '\\')
            printf("\\x%02x", *p);
        else
            putchar(*p);
    }
}

int main(int argc, char **argv)
{
    int64_t now_ms = 1700000000000LL;
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "--now") == 0) {
        now_ms = strtoll(argv[2], NULL, 10);
        first = 3;
    }
    if (first >= argc) {
        fprintf(stderr, "usage: evcheck [--now MS] FILE...\n");
        return 2;
    }
    int rc = 0;
    for (int i = first; i < argc; i++) {
        char *bytes;
        size_t len;
        rt_error err;
        if (rt_file_read(argv[i], 4 * RT_EVENT_MAX_BYTES, &bytes, &len, &err) != RT_OK) {
            fprintf(stderr, "evcheck: %s\n", err.msg);
            return 2;
        }
        rt_event *ev;
        rt_event_fault fault;
        if (rt_event_parse_ex(bytes, len, 0, now_ms, &ev, &err, &fault) == RT_OK) {
            char *text = json_dumps(ev->envelope, JSON_COMPACT | JSON_ENSURE_ASCII);
            printf("ok %s\n", text ? text : "null");
            free(text);
            rt_event_free(ev);
        } else {
            printf("error %s ", rt_event_fault_name(fault));
            print_escaped(err.msg);
            putchar('\n');
            rc = 1;
        }
        free(bytes);
    }
    return rc;
}
