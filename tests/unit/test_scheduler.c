/* test_scheduler.c — the scheduler's pure pieces: which ticks a claim fires under each
 * catch_up policy (on time, late after downtime, bounded, across a DST gap), and the
 * schedule.time / schedule.date a run sees in its trigger's zone. Expected instants were
 * computed with Python's zoneinfo. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cron.h"
#include "scheduler.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static rt_cron *cron_of(const char *expr)
{
    rt_cron *c = NULL;
    rt_error err;
    rt_status s = rt_cron_parse(expr, &c, &err);
    if (s != RT_OK)
        fail_msg("cron \"%s\": %s", expr, err.msg);
    return c;
}

static rt_tz *tz_of(const char *name)
{
    rt_tz *tz = NULL;
    rt_error err;
    if (rt_tz_load(name, &tz, &err) != RT_OK)
        fail_msg("zone %s: %s (is tzdata installed?)", name, err.msg);
    return tz;
}

/* ---------- schedule.time / schedule.date ---------- */

typedef struct local_case {
    const char *zone;
    int64_t t;
    const char *time, *date;
} local_case;

static void test_local_time(void **state)
{
    (void)state;
    static const local_case cases[] = {
        {"UTC", 0, "1970-01-01T00:00:00+00:00", "1970-01-01"},
        {"UTC", 1795356120, "2026-11-22T14:02:00+00:00", "2026-11-22"},
        {"America/Sao_Paulo", 1795356120, "2026-11-22T11:02:00-03:00", "2026-11-22"},
        /* the local date, not the UTC one */
        {"America/Sao_Paulo", 1795401000, "2026-11-22T23:30:00-03:00", "2026-11-22"},
        /* Sao Paulo's historical summer time (abolished in 2019) */
        {"America/Sao_Paulo", 1543665600, "2018-12-01T10:00:00-02:00", "2018-12-01"},
        /* Lord Howe: a 30-minute DST */
        {"Australia/Lord_Howe", 1768435200, "2026-01-15T11:00:00+11:00", "2026-01-15"},
        {"Australia/Lord_Howe", 1784073600, "2026-07-15T10:30:00+10:30", "2026-07-15"},
        {"America/New_York", 1772868600, "2026-03-07T02:30:00-05:00", "2026-03-07"},
        {"America/New_York", 1773037800, "2026-03-09T02:30:00-04:00", "2026-03-09"},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        rt_tz *tz = tz_of(cases[i].zone);
        char t[32], d[16];
        rt_schedule_local_time(tz, cases[i].t, t, d);
        if (strcmp(t, cases[i].time) || strcmp(d, cases[i].date))
            fail_msg("%s @%lld: expected %s / %s, got %s / %s", cases[i].zone, (long long)cases[i].t, cases[i].time,
                     cases[i].date, t, d);
        rt_tz_free(tz);
    }
    char t[32], d[16];
    rt_schedule_local_time(NULL, 1795356120, t, d); /* NULL = UTC */
    assert_string_equal(t, "2026-11-22T14:02:00+00:00");
}

/* ---------- planning ---------- */

typedef struct plan_case {
    const char *name;
    const char *expr, *zone;
    rt_catch_up policy;
    int64_t first;  /* first unfired tick (unix s) */
    int64_t now_ms;
    size_t n_fire;
    int64_t fire[4];        /* the first (up to) 4 fired ticks */
    int64_t fire_missed[4];
    int64_t last_fire;      /* the last fired tick, when n_fire > 0 */
    int64_t due, late, dropped;
    int64_t next;           /* 0 = none */
} plan_case;

#define T0 INT64_C(1795356120) /* 2026-11-22T14:02:00Z */
#define D0 INT64_C(1793491200) /* 2026-11-01T00:00:00Z */
#define NY_0307 INT64_C(1772868600) /* 2026-03-07 02:30 EST */
#define NY_0309 INT64_C(1773037800) /* 2026-03-09 02:30 EDT */

static const plan_case plan_cases[] = {
    {"not due yet", "* * * * * *", "UTC", RT_CATCH_UP_LATEST, T0, (T0 - 1) * 1000 + 999, 0, {0}, {0}, 0, 0, 0, 0, T0},
    {"on time", "* * * * * *", "UTC", RT_CATCH_UP_LATEST, T0, T0 * 1000 + 3, 1, {T0}, {0}, T0, 1, 0, 0, T0 + 1},
    {"on time, none", "* * * * * *", "UTC", RT_CATCH_UP_NONE, T0, T0 * 1000 + 3, 1, {T0}, {0}, T0, 1, 0, 0, T0 + 1},
    /* a 1.5 s stall is not downtime: both ticks fire on their own, whatever the policy */
    {"stall, latest", "* * * * * *", "UTC", RT_CATCH_UP_LATEST, T0, (T0 + 1) * 1000 + 500, 2, {T0, T0 + 1},
     {0, 0}, T0 + 1, 2, 0, 0, T0 + 2},
    {"stall, none", "* * * * * *", "UTC", RT_CATCH_UP_NONE, T0, (T0 + 1) * 1000 + 500, 2, {T0, T0 + 1}, {0, 0},
     T0 + 1, 2, 0, 0, T0 + 2},
    /* 10 s down: T0..T0+10 due; grace 2 s, so T0+9 and T0+10 are on time */
    {"downtime, latest", "* * * * * *", "UTC", RT_CATCH_UP_LATEST, T0, (T0 + 10) * 1000 + 300, 3,
     {T0 + 8, T0 + 9, T0 + 10}, {9, 0, 0}, T0 + 10, 11, 9, 0, T0 + 11},
    {"downtime, all", "* * * * * *", "UTC", RT_CATCH_UP_ALL, T0, (T0 + 10) * 1000 + 300, 11,
     {T0, T0 + 1, T0 + 2, T0 + 3}, {1, 1, 1, 1}, T0 + 10, 11, 9, 0, T0 + 11},
    {"downtime, none", "* * * * * *", "UTC", RT_CATCH_UP_NONE, T0, (T0 + 10) * 1000 + 300, 2, {T0 + 9, T0 + 10},
     {0, 0}, T0 + 10, 11, 9, 9, T0 + 11},
    /* all is bounded: the most recent 100 of 1001 */
    {"long downtime, all", "* * * * * *", "UTC", RT_CATCH_UP_ALL, T0, (T0 + 1000) * 1000, 100,
     {T0 + 901, T0 + 902, T0 + 903, T0 + 904}, {1, 1, 1, 1}, T0 + 1000, 1001, 998, 901, T0 + 1001},
    /* ten days of a per-second schedule: too many to count, the last ones still found */
    {"ten days down, latest", "* * * * * *", "UTC", RT_CATCH_UP_LATEST, T0, (T0 + 864000) * 1000 + 100, 3,
     {T0 + 863998, T0 + 863999, T0 + 864000}, {RT_SCHEDULE_COUNT_MAX - 2, 0, 0}, T0 + 864000,
     RT_SCHEDULE_COUNT_MAX, RT_SCHEDULE_COUNT_MAX - 2, 0, T0 + 864001},
    {"ten days down, all", "* * * * * *", "UTC", RT_CATCH_UP_ALL, T0, (T0 + 864000) * 1000 + 100, 100,
     {T0 + 863901, T0 + 863902, T0 + 863903, T0 + 863904}, {1, 1, 1, 1}, T0 + 864000, RT_SCHEDULE_COUNT_MAX,
     RT_SCHEDULE_COUNT_MAX - 2, RT_SCHEDULE_COUNT_MAX - 100, T0 + 864001},
    /* daily at 00:00 UTC, down for 3 days and 3 hours */
    {"daily, 3 days down, latest", "0 0 * * *", "UTC", RT_CATCH_UP_LATEST, D0, (D0 + 3 * 86400 + 3 * 3600) * 1000,
     1, {D0 + 3 * 86400}, {4}, D0 + 3 * 86400, 4, 4, 0, D0 + 4 * 86400},
    {"daily, 3 days down, all", "0 0 * * *", "UTC", RT_CATCH_UP_ALL, D0, (D0 + 3 * 86400 + 3 * 3600) * 1000, 4,
     {D0, D0 + 86400, D0 + 2 * 86400, D0 + 3 * 86400}, {1, 1, 1, 1}, D0 + 3 * 86400, 4, 4, 0, D0 + 4 * 86400},
    {"daily, 3 h late, none", "0 0 * * *", "UTC", RT_CATCH_UP_NONE, D0, (D0 + 3 * 3600) * 1000, 0, {0}, {0}, 0, 1,
     1, 1, D0 + 86400},
    /* daily grace is 60 s */
    {"daily, 30 s late, none", "0 0 * * *", "UTC", RT_CATCH_UP_NONE, D0, (D0 + 30) * 1000, 1, {D0}, {0}, D0, 1, 0,
     0, D0 + 86400},
    {"daily, 61 s late, latest", "0 0 * * *", "UTC", RT_CATCH_UP_LATEST, D0, (D0 + 61) * 1000, 1, {D0}, {1}, D0, 1,
     1, 0, D0 + 86400},
    /* per-minute grace is 30 s */
    {"minutely, 20 s late, none", "* * * * *", "UTC", RT_CATCH_UP_NONE, D0, (D0 + 20) * 1000, 1, {D0}, {0}, D0, 1,
     0, 0, D0 + 60},
    {"minutely, 40 s late, none", "* * * * *", "UTC", RT_CATCH_UP_NONE, D0, (D0 + 40) * 1000, 0, {0}, {0}, 0, 1, 1,
     1, D0 + 60},
    /* New York 02:30 daily across the spring-forward gap: 2026-03-08 has no 02:30 */
    {"DST gap, all", "30 2 * * *", "America/New_York", RT_CATCH_UP_ALL, NY_0307, (NY_0309 + 3600) * 1000, 2,
     {NY_0307, NY_0309}, {1, 1}, NY_0309, 2, 2, 0, NY_0309 + 86400},
};

static void test_plan(void **state)
{
    (void)state;
    for (size_t i = 0; i < COUNT(plan_cases); i++) {
        const plan_case *pc = &plan_cases[i];
        rt_cron *c = cron_of(pc->expr);
        rt_tz *tz = tz_of(pc->zone);
        rt_tick_plan p;
        rt_error err;
        rt_status s = rt_schedule_plan(c, tz, pc->policy, pc->first, pc->now_ms, &p, &err);
        if (s != RT_OK)
            fail_msg("%s: %s", pc->name, err.msg);
        if (p.n_fire != pc->n_fire)
            fail_msg("%s: n_fire expected %zu, got %zu", pc->name, pc->n_fire, p.n_fire);
        for (size_t k = 0; k < p.n_fire && k < 4; k++) {
            if (p.fire[k] != pc->fire[k] || p.fire_missed[k] != pc->fire_missed[k])
                fail_msg("%s: fire[%zu] expected %lld (missed %lld), got %lld (missed %lld)", pc->name, k,
                         (long long)pc->fire[k], (long long)pc->fire_missed[k], (long long)p.fire[k],
                         (long long)p.fire_missed[k]);
        }
        if (p.n_fire > 0 && p.fire[p.n_fire - 1] != pc->last_fire)
            fail_msg("%s: last fire expected %lld, got %lld", pc->name, (long long)pc->last_fire,
                     (long long)p.fire[p.n_fire - 1]);
        for (size_t k = 1; k < p.n_fire; k++)
            if (p.fire[k] <= p.fire[k - 1])
                fail_msg("%s: fires not in order at %zu", pc->name, k);
        if (p.due != pc->due || p.late != pc->late || p.dropped != pc->dropped)
            fail_msg("%s: due/late/dropped expected %lld/%lld/%lld, got %lld/%lld/%lld", pc->name,
                     (long long)pc->due, (long long)pc->late, (long long)pc->dropped, (long long)p.due,
                     (long long)p.late, (long long)p.dropped);
        if (p.has_next != (pc->next != 0) || (p.has_next && p.next != pc->next))
            fail_msg("%s: next expected %lld, got %lld (has_next %d)", pc->name, (long long)pc->next,
                     (long long)p.next, p.has_next);
        rt_cron_free(c);
        rt_tz_free(tz);
    }
}

/* Each due tick is accounted for exactly once: fired alone, folded into a latest run, or
 * dropped — over a sweep of downtimes and phases. */
static void test_plan_accounting(void **state)
{
    (void)state;
    static const char *const exprs[] = {"* * * * * *", "*/5 * * * * *", "0 * * * * *", "0 0 * * *"};
    static const rt_catch_up policies[] = {RT_CATCH_UP_LATEST, RT_CATCH_UP_ALL, RT_CATCH_UP_NONE};
    for (size_t e = 0; e < COUNT(exprs); e++) {
        rt_cron *c = cron_of(exprs[e]);
        int64_t first = 0;
        assert_int_equal(rt_cron_next(c, NULL, D0 - 1, &first), RT_OK);
        for (size_t p = 0; p < COUNT(policies); p++) {
            for (int64_t down_ms = 0; down_ms < 400000; down_ms += 7919) {
                rt_tick_plan plan;
                rt_error err;
                assert_int_equal(rt_schedule_plan(c, NULL, policies[p], first, first * 1000 + down_ms, &plan, &err),
                                 RT_OK);
                int64_t folded = 0;
                for (size_t k = 0; k < plan.n_fire; k++)
                    folded += policies[p] == RT_CATCH_UP_LATEST && plan.fire_missed[k] ? plan.fire_missed[k] : 1;
                if (folded + plan.dropped != plan.due)
                    fail_msg("%s %d down %lld ms: %lld accounted for, %lld due", exprs[e], (int)policies[p],
                             (long long)down_ms, (long long)(folded + plan.dropped), (long long)plan.due);
                assert_true(plan.has_next);
                assert_true(plan.next * 1000 > first * 1000 + down_ms);
            }
        }
        rt_cron_free(c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_time),
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_plan_accounting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
