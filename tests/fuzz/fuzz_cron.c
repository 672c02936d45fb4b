/* fuzz_cron.c — libFuzzer target for engine/cron: the expression parser and next-fire
 * search (UTC and America/New_York), and, for inputs that start with "TZif", the zone
 * file and POSIX TZ footer reader. Aborts on any broken invariant, not only on crashes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"

#define MAX_INPUT 8192

static rt_tz *new_york; /* loaded once; NULL when the host has no tzdata */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    rt_error err;
    if (rt_tz_load("America/New_York", &new_york, &err) != RT_OK)
        fprintf(stderr, "fuzz_cron: %s; fuzzing UTC only\n", err.msg);
    return 0;
}

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_cron: invariant broken: %s\n", what);
        abort();
    }
}

/* A few consecutive fires: each strictly later than the last, the same for the
 * expression and its canonical form, and a fire is also "next" from just before it. */
static void chain(const rt_cron *a, const rt_cron *b, const rt_tz *tz, int64_t after)
{
    for (int i = 0; i < 4; i++) {
        int64_t na = 0, nb = 0, again = 0;
        rt_status sa = rt_cron_next(a, tz, after, &na);
        rt_status sb = b ? rt_cron_next(b, tz, after, &nb) : sa;
        check(sa == RT_OK || sa == RT_ERR_NOT_FOUND || sa == RT_ERR_INVALID, "status");
        if (b)
            check(sa == sb && (sa != RT_OK || na == nb), "canonical form fires differently");
        if (sa != RT_OK)
            return;
        check(na > after, "next is not after `after`");
        if (na - 1 > RT_CRON_TIME_MAX) /* a fire in year 10000 is no valid `after` */
            return;
        check(rt_cron_next(a, tz, na - 1, &again) == RT_OK && again == na, "next(fire - 1) != fire");
        after = na;
    }
}

static const int64_t STARTS[] = {
    1767225600,  /* 2026-01-01T00:00:00Z */
    1772949600,  /* 2026-03-08T06:00:00Z, just before New York springs forward */
    1793508000,  /* 2026-11-01T04:40:00Z, just before New York falls back */
    3981225600,  /* 2096-02-28T00:00:00Z: the next Feb 29 is 8 years away */
    -1,          /* 1969-12-31T23:59:59Z */
    RT_CRON_TIME_MAX - 86400,
};

static void fuzz_expression(const uint8_t *data, size_t size)
{
    char *expr = malloc(size + 1);
    check(expr != NULL, "malloc");
    memcpy(expr, data, size);
    expr[size] = '\0';
    rt_cron *c = NULL, *canon = NULL;
    rt_error err = {0};
    rt_status s = rt_cron_parse(expr, &c, &err);
    if (s != RT_OK) {
        check(s == RT_ERR_INVALID && c == NULL, "parse failure is not RT_ERR_INVALID");
        check(err.code == s && strncmp(err.msg, "cron", 4) == 0, "parse error message");
        free(expr);
        return;
    }
    char buf[RT_CRON_FORMAT_MAX], buf2[RT_CRON_FORMAT_MAX];
    size_t n = rt_cron_format(c, buf, sizeof buf);
    check(n < sizeof buf && strlen(buf) == n, "canonical form too long");
    check(rt_cron_parse(buf, &canon, &err) == RT_OK, "canonical form does not parse");
    rt_cron_format(canon, buf2, sizeof buf2);
    check(strcmp(buf, buf2) == 0, "canonical form is not stable");

    /* One start derived from the input, so the search begins at varied local times. */
    uint64_t h = 1469598103934665603u;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 1099511628211u;
    int64_t derived = -2208988800 + (int64_t)(h % 9467280000u); /* 1900 .. 2200 */

    for (size_t i = 0; i < sizeof STARTS / sizeof STARTS[0]; i++) {
        chain(c, canon, NULL, STARTS[i]);
        if (new_york)
            chain(c, canon, new_york, STARTS[i]);
    }
    chain(c, canon, NULL, derived);
    if (new_york)
        chain(c, canon, new_york, derived);
    rt_cron_free(canon);
    rt_cron_free(c);
    free(expr);
}

static void fuzz_zone(const uint8_t *data, size_t size)
{
    static const char *exprs[] = {"*/30 * * * *", "30 2 * * *", "* * * * * *", "0 0 29 2 *"};
    rt_tz *tz = NULL;
    rt_error err = {0};
    rt_status s = rt_tz_parse("Fuzz/Zone", data, size, &tz, &err);
    if (s != RT_OK) {
        check(s == RT_ERR_INVALID && tz == NULL && err.msg[0] != '\0', "zone parse failure");
        return;
    }
    for (int64_t t = -4000000000; t < 8000000000; t += 123456789) {
        int32_t off = rt_tz_offset(tz, t);
        check(off > -93600 && off < 93600, "offset out of range");
    }
    for (size_t e = 0; e < sizeof exprs / sizeof exprs[0]; e++) {
        rt_cron *c;
        check(rt_cron_parse(exprs[e], &c, &err) == RT_OK, "fixed expression");
        for (size_t i = 0; i < sizeof STARTS / sizeof STARTS[0]; i++)
            chain(c, NULL, tz, STARTS[i]);
        rt_cron_free(c);
    }
    rt_tz_free(tz);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    if (size >= 4 && memcmp(data, "TZif", 4) == 0)
        fuzz_zone(data, size);
    else
        fuzz_expression(data, size);
    return 0;
}
