/* test_cron.c — table-driven tests for cron parsing, TZif/POSIX-TZ zones and next-fire
 * computation across DST changes.
 *
 * Every expected instant below was computed independently of this code, with Python's
 * zoneinfo on the system tz database, by brute force: walk UTC minute by minute (second
 * by second for 6-field expressions) and fire at an instant iff its local wall time
 * matches the expression and is not the repeat of an overlap (fold == 0):
 *
 *     t = datetime.fromtimestamp(u, ZoneInfo(zone))
 *     if t.fold == 0 and matches(expr, t): fires.append(u)
 *
 * The footer transitions were computed with glibc (TZ=<footer>, time.localtime), and
 * checked against zoneinfo except for the zero-based "n" day form, where CPython's
 * zoneinfo is one day early (POSIX: day 59 is March 1, or Feb 29 in leap years). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cron.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------------------------ */
/* Parsing: valid expressions with their canonical form, invalid ones with the words the
 * message must contain (field number and name, column, and the reason).                */

typedef struct parse_case {
    const char *expr;
    const char *canon; /* NULL: the expression is invalid */
    const char *where; /* invalid: e.g. "field 2 (hour) at column 3" */
    const char *why;   /* invalid: the reason */
} parse_case;

static const parse_case PARSE_CASES[] = {
    /* valid */
    {"* * * * *", "0 * * * * *", NULL, NULL},
    {"* * * * * *", "* * * * * *", NULL, NULL},
    {"0 0 * * *", "0 0 0 * * *", NULL, NULL},
    {"*/15 * * * *", "0 */15 * * * *", NULL, NULL},
    {"0 */2 * * *", "0 0 */2 * * *", NULL, NULL},
    {"0 9 * * MON-FRI", "0 0 9 * * 1-5", NULL, NULL},
    {"0 9 * * mon-fri", "0 0 9 * * 1-5", NULL, NULL},
    {"0 0 1 JAN *", "0 0 0 1 1 *", NULL, NULL},
    {"0 0 1 jan,Jul *", "0 0 0 1 1,7 *", NULL, NULL},
    {"0 0 * * SUN", "0 0 0 * * 0", NULL, NULL},
    {"0 0 * * 7", "0 0 0 * * 0", NULL, NULL},
    {"0 0 * * 0,7", "0 0 0 * * 0", NULL, NULL},
    {"0 0 * * 5-7", "0 0 0 * * 0,5,6", NULL, NULL},
    {"0 0 * * FRI-SUN", "0 0 0 * * 0,5,6", NULL, NULL},
    {"0 0 * * SAT-SUN", "0 0 0 * * 0,6", NULL, NULL},
    {"0 0 * * SUN-SAT", "0 0 0 * * 0-6", NULL, NULL},
    {"0 0 * * 0-7", "0 0 0 * * 0-6", NULL, NULL},
    {"0 0 ? * MON", "0 0 0 * * 1", NULL, NULL},
    {"0 0 1 * ?", "0 0 0 1 * *", NULL, NULL},
    {"0 12 */2 * MON", "0 0 12 */2 * 1", NULL, NULL},
    {"30 4 1,15 * 5", "0 30 4 1,15 * 5", NULL, NULL},
    {"0 0 1-31 * MON", "0 0 0 1-31 * 1", NULL, NULL},
    {"5/15 * * * *", "0 5,20,35,50 * * * *", NULL, NULL},
    {"0-30/10 * * * *", "0 0,10,20,30 * * * *", NULL, NULL},
    {"1-5,10-12,20 * * * *", "0 1-5,10-12,20 * * * *", NULL, NULL},
    {"0 22-23,0-2 * * *", "0 0 0-2,22,23 * * *", NULL, NULL},
    {"0 0 1 */3 *", "0 0 0 1 */3 *", NULL, NULL},
    {"0 0 1 */5 *", "0 0 0 1 1,6,11 *", NULL, NULL},
    {"@yearly", "0 0 0 1 1 *", NULL, NULL},
    {"@annually", "0 0 0 1 1 *", NULL, NULL},
    {"@monthly", "0 0 0 1 * *", NULL, NULL},
    {"@weekly", "0 0 0 * * 0", NULL, NULL},
    {"@daily", "0 0 0 * * *", NULL, NULL},
    {"@midnight", "0 0 0 * * *", NULL, NULL},
    {"@hourly", "0 0 * * * *", NULL, NULL},
    {"@DAILY", "0 0 0 * * *", NULL, NULL},
    {" @weekly \n", "0 0 0 * * 0", NULL, NULL},
    {"  0 0 * * *  ", "0 0 0 * * *", NULL, NULL},
    {"0\t0\t*\t*\t*", "0 0 0 * * *", NULL, NULL},
    {"0 0 29 2 *", "0 0 0 29 2 *", NULL, NULL},
    {"0 0 30 2 *", "0 0 0 30 2 *", NULL, NULL},
    {"59 59 23 31 12 7", "59 59 23 31 12 0", NULL, NULL},
    {"0,30 * * * * *", "0,30 * * * * *", NULL, NULL},
    {"*/1 * * * *", "0 * * * * *", NULL, NULL},
    {"00 05 * * *", "0 0 5 * * *", NULL, NULL},
    {"*/7 * * * *", "0 0,7,14,21,28,35,42,49,56 * * * *", NULL, NULL},
    {"0 0 * * */2", "0 0 0 * * */2", NULL, NULL},
    {"0 0 */2 * *", "0 0 0 */2 * *", NULL, NULL},
    {"0 0 */10 * *", "0 0 0 */10 * *", NULL, NULL},
    {"0 0 1,2,3 * *", "0 0 0 1-3 * *", NULL, NULL},
    {"0 0 1,2 * *", "0 0 0 1,2 * *", NULL, NULL},
    {"0 12 * JAN-MAR,OCT-DEC *", "0 0 12 * 1-3,10-12 *", NULL, NULL},
    {"0 0 * * MON,WED,FRI", "0 0 0 * * 1,3,5", NULL, NULL},
    {"0 0 * * TUE-THU/2", "0 0 0 * * 2,4", NULL, NULL},
    {"10-20/5 * * * * *", "10,15,20 * * * * *", NULL, NULL},
    {"0 0 12 ? JAN MON", "0 0 12 * 1 1", NULL, NULL},
    {"0 0 * * 1-5/2", "0 0 0 * * 1,3,5", NULL, NULL},
    {"0 */30 * * * *", "0 0,30 * * * *", NULL, NULL},
    {"*/20 * * * * *", "*/20 * * * * *", NULL, NULL},
    {"0 0 0 1 1 *", "0 0 0 1 1 *", NULL, NULL},
    {"0 0 */2,5 * MON", "0 0 0 1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31 * 1", NULL, NULL},
    {"0 0 * * 6/1", "0 0 0 * * 6", NULL, NULL},
    {"0 0 L * *", NULL, "field 3 (day-of-month) at column 5", "'L' (a Quartz extension) is not supported"},
    /* A start at a field's alias value, steps, wraps (fuzz_cron found "0 00 * 3 7/2",
     * tests/fuzz/crashes/fuzz_cron/): each valid one must round-trip (test_text_and_format). */
    {"0 0 * * 7-7", "0 0 0 * * 0", NULL, NULL},
    {"0 0 * * 7-7/2", "0 0 0 * * 0", NULL, NULL},
    {"0 0 * * 7-SUN", "0 0 0 * * 0", NULL, NULL},
    {"0 0 * * SUN/2", "0 0 0 * * 0,2,4,6", NULL, NULL},
    {"0 0 * * 0/2", "0 0 0 * * 0,2,4,6", NULL, NULL},
    {"0 0 * * SUN-SAT/2", "0 0 0 * * 0,2,4,6", NULL, NULL},
    {"0 0 * * 0-7/2", "0 0 0 * * 0,2,4,6", NULL, NULL},
    {"0 0 * * MON-SUN/2", "0 0 0 * * 0,1,3,5", NULL, NULL},
    {"0 0 * * 5-7/2", "0 0 0 * * 0,5", NULL, NULL},
    {"0 0 * * FRI-SUN/2", "0 0 0 * * 0,5", NULL, NULL},
    {"0 0 * * 5/2", "0 0 0 * * 5", NULL, NULL},
    {"0 0 * * 6/2", "0 0 0 * * 6", NULL, NULL},
    {"0 0 * * SAT-7", "0 0 0 * * 0,6", NULL, NULL},
    {"0 0 * * 1-7", "0 0 0 * * 0-6", NULL, NULL},
    {"0 0 * * SUN-SUN", "0 0 0 * * 0", NULL, NULL},
    {"0 0 * * SUN-0", "0 0 0 * * 0", NULL, NULL},
    {"0 0 1 JAN/3 *", "0 0 0 1 */3 *", NULL, NULL},
    {"0 0 1 FEB-DEC/2 *", "0 0 0 1 2,4,6,8,10,12 *", NULL, NULL},
    {"0 0 1 dec/2 *", "0 0 0 1 12 *", NULL, NULL},
    {"0 0 1 JAN-DEC/11 *", "0 0 0 1 1,12 *", NULL, NULL},
    {"0 0 31/2 * *", "0 0 0 31 * *", NULL, NULL},
    {"59/30 * * * *", "0 59 * * * *", NULL, NULL},
    {"0 23/2 * * *", "0 0 23 * * *", NULL, NULL},
    {"0-59/59 * * * *", "0 0,59 * * * *", NULL, NULL},
    {"0 0 * * * 7/1", NULL, "field 6 (day-of-week) at column 11", "7/STEP has no day after 7"},
    {"59/59 0 0 * * *", "59 0 0 * * *", NULL, NULL},
    {"*/59 * * * * *", "0,59 * * * * *", NULL, NULL},
    {"0 0 0 * * SUN/2", "0 0 0 * * 0,2,4,6", NULL, NULL},
    {"0 0 0 * * 7-7", "0 0 0 * * 0", NULL, NULL},
    /* invalid */
    {"", NULL, "cron \"\"", "empty expression"},
    {"   ", NULL, "cron \"   \"", "empty expression"},
    {"* * * *", NULL, "expected 5 fields", "got 4"},
    {"* * * * * * *", NULL, "column 13", "got 7"},
    {"0 0 * * * extra junk", NULL, "column 17", "got 7"},
    {"0 0 * * * extra", NULL, "field 6 (day-of-week) at column 11", "unknown day-of-week name \"extra\""},
    {"0 25 * * *", NULL, "field 2 (hour) at column 3", "25 is out of range 0-23"},
    {"60 * * * *", NULL, "field 1 (minute) at column 1", "60 is out of range 0-59"},
    {"60 0 0 * * *", NULL, "field 1 (second) at column 1", "60 is out of range 0-59"},
    {"0 60 0 * * *", NULL, "field 2 (minute) at column 3", "60 is out of range 0-59"},
    {"* * * * * 8", NULL, "field 6 (day-of-week) at column 11", "8 is out of range 0-7"},
    {"0 0 32 * *", NULL, "field 3 (day-of-month) at column 5", "32 is out of range 1-31"},
    {"0 0 0 * *", NULL, "field 3 (day-of-month) at column 5", "0 is out of range 1-31"},
    {"0 0 1 13 *", NULL, "field 4 (month) at column 7", "13 is out of range 1-12"},
    {"0 0 1 0 *", NULL, "field 4 (month) at column 7", "0 is out of range 1-12"},
    {"0 0 * * 8", NULL, "field 5 (day-of-week) at column 9", "8 is out of range 0-7"},
    {"0 0 * FOO *", NULL, "field 4 (month) at column 7", "unknown month name \"FOO\""},
    {"0 0 * * MONDAY", NULL, "field 5 (day-of-week) at column 9", "unknown day-of-week name \"MONDAY\""},
    {"0 0 * JANUARY *", NULL, "field 4 (month) at column 7", "unknown month name \"JANUARY\""},
    {"0 0 * * JAN", NULL, "field 5 (day-of-week) at column 9", "unknown day-of-week name \"JAN\""},
    {"0 0 * MON *", NULL, "field 4 (month) at column 7", "unknown month name \"MON\""},
    {"0 MON * * *", NULL, "field 2 (hour) at column 3", "\"MON\" is not a number"},
    {"*/0 * * * *", NULL, "field 1 (minute) at column 3", "step 0 must be between 1 and 59"},
    {"*/60 * * * *", NULL, "field 1 (minute) at column 3", "step 60 must be between 1 and 59"},
    {"0 */24 * * *", NULL, "field 2 (hour) at column 5", "step 24 must be between 1 and 23"},
    {"0 0 */31 * *", NULL, "field 3 (day-of-month) at column 7", "step 31 must be between 1 and 30"},
    {"0 0 * */12 *", NULL, "field 4 (month) at column 9", "step 12 must be between 1 and 11"},
    {"0 0 * * */7", NULL, "field 5 (day-of-week) at column 11", "step 7 must be between 1 and 6"},
    {"5-1 * * * *", NULL, "field 1 (minute) at column 1", "range 5-1 is reversed"},
    {"0 22-2 * * *", NULL, "field 2 (hour) at column 3", "\"22-23,0-2\""},
    {"0 0 * * FRI-MON", NULL, "field 5 (day-of-week) at column 9", "range FRI-MON is reversed"},
    {"0 0 20-5 * *", NULL, "field 3 (day-of-month) at column 5", "range 20-5 is reversed"},
    {"1,,2 * * * *", NULL, "field 1 (minute) at column 3", "empty list element"},
    {"1, * * * *", NULL, "field 1 (minute) at column 2", "list ends with ','"},
    {",1 * * * *", NULL, "field 1 (minute) at column 1", "empty list element"},
    {"? * * * *", NULL, "field 1 (minute) at column 1", "'?' is only allowed in day-of-month and day-of-week"},
    {"0 0 ?/2 * *", NULL, "field 3 (day-of-month) at column 6", "'?' takes no step"},
    {"0 0 15W * *", NULL, "field 3 (day-of-month) at column 7", "'W' (a Quartz extension) is not supported"},
    {"0 0 * * 5L", NULL, "field 5 (day-of-week) at column 10", "'L' (a Quartz extension) is not supported"},
    {"0 0 * * 5#3", NULL, "field 5 (day-of-week) at column 10", "'#' (a Quartz extension) is not supported"},
    {"0 0 LW * *", NULL, "field 3 (day-of-month) at column 5", "'L' (a Quartz extension) is not supported"},
    {"@reboot", NULL, "column 1", "@reboot is not supported"},
    {"@every 5m", NULL, "column 1", "@every is not supported"},
    {"@fortnightly", NULL, "column 1", "unknown macro \"@fortnightly\""},
    {"@daily 0", NULL, "column 7", "nothing may follow the macro @daily"},
    {"*/ * * * *", NULL, "field 1 (minute) at column 3", "expected a step number after '/'"},
    {"*/x * * * *", NULL, "field 1 (minute) at column 3", "expected a step number after '/'"},
    {"1-* * * * *", NULL, "field 1 (minute) at column 3", "unexpected character '*'"},
    {"1-2-3 * * * *", NULL, "field 1 (minute) at column 4", "unexpected '-'"},
    {"1/2/3 * * * *", NULL, "field 1 (minute) at column 4", "unexpected character '/'"},
    {"** * * * *", NULL, "field 1 (minute) at column 2", "unexpected character '*'"},
    {"a * * * *", NULL, "field 1 (minute) at column 1", "\"a\" is not a number"},
    {"1.5 * * * *", NULL, "field 1 (minute) at column 2", "unexpected character '.'"},
    {"-1 * * * *", NULL, "field 1 (minute) at column 1", "unexpected character '-'"},
    {"*-5 * * * *", NULL, "field 1 (minute) at column 2", "unexpected '-'"},
    {"99999999999 * * * *", NULL, "field 1 (minute) at column 1", "99999999999 is out of range 0-59"},
    {"0 0 1 1 * 2026", NULL, "field 6 (day-of-week) at column 11", "2026 is out of range 0-7"},
    {"0 0 * * \x01", NULL, "field 5 (day-of-week) at column 9", "unexpected byte 0x01"},
    {"0 0 * * MON-", NULL, "field 5 (day-of-week) at column 13", "expected a value"},
    {"0 0 * * -MON", NULL, "field 5 (day-of-week) at column 9", "unexpected character '-'"},
    {"0 0 0 0 0 0", NULL, "field 4 (day-of-month) at column 7", "0 is out of range 1-31"},
    {"0 0 * 0-13 *", NULL, "field 4 (month) at column 7", "0 is out of range 1-12"},
    {"0 0 * 1-13 *", NULL, "field 4 (month) at column 9", "13 is out of range 1-12"},
    {"0 0 * * 1-5/0", NULL, "field 5 (day-of-week) at column 13", "step 0 must be between 1 and 6"},
    {"0 0 * * *,", NULL, "field 5 (day-of-week) at column 10", "list ends with ','"},
    {"0 0 * * ?/1", NULL, "field 5 (day-of-week) at column 10", "'?' takes no step"},
    {"0 0 \"1\" * *", NULL, "field 3 (day-of-month) at column 5", "unexpected character '\"'"},
    {"0 00 * 3 7/2", NULL, "field 5 (day-of-week) at column 10", "7/STEP has no day after 7 (it is Sunday at the end of the week); start at 0 or SUN"},
    {"0 0 * * 7/1", NULL, "field 5 (day-of-week) at column 9", "7/STEP has no day after 7"},
    {"0 0 * * 7-5", NULL, "field 5 (day-of-week) at column 9", "range 7-5 is reversed (7 is Sunday at the end of the week; for a week that starts on Sunday write \"0-5\")"},
    {"0 0 * * 7-MON/2", NULL, "field 5 (day-of-week) at column 9", "write \"0-1\""},
    {"0 0 * * 7-0", NULL, "field 5 (day-of-week) at column 9", "for Sunday write \"0\""},
    {"0 0 * * 6-0", NULL, "field 5 (day-of-week) at column 9", "range 6-0 is reversed"},
    {"0 0 * * SAT-MON", NULL, "field 5 (day-of-week) at column 9", "\"6-6,0-1\""},
    {"0 0 * NOV-FEB *", NULL, "field 4 (month) at column 7", "range NOV-FEB is reversed (start must not exceed end; split it, e.g. \"11-12,1-2\")"},
    {"0 0 * DEC-JAN/2 *", NULL, "field 4 (month) at column 7", "range DEC-JAN is reversed"},
    {"0 0 * JAN/0 *", NULL, "field 4 (month) at column 11", "step 0 must be between 1 and 11"},
    {"0 0 * JAN/12 *", NULL, "field 4 (month) at column 11", "step 12 must be between 1 and 11"},
    {"0 0 * * SUN/7", NULL, "field 5 (day-of-week) at column 13", "step 7 must be between 1 and 6"},
    {"0 0 * * 0-7/7", NULL, "field 5 (day-of-week) at column 13", "step 7 must be between 1 and 6"},
    {"60/5 * * * *", NULL, "field 1 (minute) at column 1", "60 is out of range 0-59"},
    {"60/5 * * * * *", NULL, "field 1 (second) at column 1", "60 is out of range 0-59"},
    {"0 60/5 * * * *", NULL, "field 2 (minute) at column 3", "60 is out of range 0-59"},
    {"0 24/2 * * *", NULL, "field 2 (hour) at column 3", "24 is out of range 0-23"},
    {"0 0 24/2 * * *", NULL, "field 3 (hour) at column 5", "24 is out of range 0-23"},
    {"0 0 32/2 * *", NULL, "field 3 (day-of-month) at column 5", "32 is out of range 1-31"},
    {"0 0 0/2 * *", NULL, "field 3 (day-of-month) at column 5", "0 is out of range 1-31"},
    {"0 0 1 13/2 *", NULL, "field 4 (month) at column 7", "13 is out of range 1-12"},
    {"0 0 * * 8/2", NULL, "field 5 (day-of-week) at column 9", "8 is out of range 0-7"},
    {"0-59/60 * * * *", NULL, "field 1 (minute) at column 6", "step 60 must be between 1 and 59"},
    {"0-59/60 * * * * *", NULL, "field 1 (second) at column 6", "step 60 must be between 1 and 59"},
    {"*/0 * * * * *", NULL, "field 1 (second) at column 3", "step 0 must be between 1 and 59"},
    {"0 0 */0 * *", NULL, "field 3 (day-of-month) at column 7", "step 0 must be between 1 and 30"},
    {"0 0 0-23/24 * * *", NULL, "field 3 (hour) at column 10", "step 24 must be between 1 and 23"},
    {"5-1 * * * * *", NULL, "field 1 (second) at column 1", "range 5-1 is reversed (start must not exceed end; split it, e.g. \"5-59,0-1\")"},
    {"0 0 23-1 * * *", NULL, "field 3 (hour) at column 5", "\"23-23,0-1\""},
    {"0 0 0 * * FRI-MON", NULL, "field 6 (day-of-week) at column 11", "range FRI-MON is reversed"},
    {"0 0 0 * * 7/2", NULL, "field 6 (day-of-week) at column 11", "7/STEP has no day after 7"},
};

static void test_parse_table(void **state)
{
    (void)state;
    size_t valid = 0, invalid = 0;
    for (size_t i = 0; i < COUNT(PARSE_CASES); i++) {
        const parse_case *pc = &PARSE_CASES[i];
        rt_cron *c = (rt_cron *)0x1;
        rt_error err = {0};
        rt_status s = rt_cron_parse(pc->expr, &c, &err);
        if (pc->canon) {
            valid++;
            if (s != RT_OK) {
                print_error("case %zu \"%s\": unexpected error: %s\n", i, pc->expr, err.msg);
                fail();
            }
            char buf[RT_CRON_FORMAT_MAX];
            size_t n = rt_cron_format(c, buf, sizeof buf);
            if (strcmp(buf, pc->canon) != 0 || n != strlen(pc->canon)) {
                print_error("case %zu \"%s\": canonical \"%s\", want \"%s\"\n", i, pc->expr, buf, pc->canon);
                fail();
            }
            rt_cron_free(c);
        } else {
            invalid++;
            if (s != RT_ERR_INVALID || c != NULL) {
                print_error("case %zu \"%s\": status %s, want invalid\n", i, pc->expr, rt_status_name(s));
                fail();
            }
            if (err.code != RT_ERR_INVALID || !strstr(err.msg, pc->where) || !strstr(err.msg, pc->why)) {
                print_error("case %zu: message \"%s\" lacks \"%s\" or \"%s\"\n", i, err.msg, pc->where, pc->why);
                fail();
            }
        }
    }
    print_message("%zu valid and %zu invalid expressions\n", valid, invalid);
    assert_true(valid + invalid >= 90);
}

static void test_parse_message_exact(void **state)
{
    (void)state;
    rt_cron *c;
    rt_error err;
    assert_int_equal(rt_cron_parse("0 25 * * *", &c, &err), RT_ERR_INVALID);
    assert_string_equal(err.msg, "cron \"0 25 * * *\": field 2 (hour) at column 3: 25 is out of range 0-23");
    /* Long or binary input is quoted safely and shortened. */
    char longexpr[1100];
    memset(longexpr, '1', sizeof longexpr - 1);
    longexpr[sizeof longexpr - 1] = '\0';
    assert_int_equal(rt_cron_parse(longexpr, &c, &err), RT_ERR_INVALID);
    assert_non_null(strstr(err.msg, "longer than"));
    assert_true(strlen(err.msg) < 200);
    memset(longexpr, '1', 300);
    longexpr[300] = '\0';
    assert_int_equal(rt_cron_parse(longexpr, &c, &err), RT_ERR_INVALID);
    assert_non_null(strstr(err.msg, "...\""));
    assert_int_equal(rt_cron_parse(NULL, &c, &err), RT_ERR_INVALID);
    assert_int_equal(rt_cron_parse("* * * * *", NULL, &err), RT_ERR_INVALID);
    assert_int_equal(rt_cron_parse("bad", &c, NULL), RT_ERR_INVALID); /* err is optional */
    rt_cron_free(NULL);
    rt_tz_free(NULL);
}

static void test_text_and_format(void **state)
{
    (void)state;
    rt_cron *c;
    rt_error err;
    assert_int_equal(rt_cron_parse("  0 9 * * MON-FRI\n", &c, &err), RT_OK);
    assert_string_equal(rt_cron_text(c), "0 9 * * MON-FRI");
    char small[8];
    size_t need = rt_cron_format(c, small, sizeof small);
    assert_int_equal(need, strlen("0 0 9 * * 1-5"));
    assert_string_equal(small, "0 0 9 *"); /* truncated like snprintf */
    assert_int_equal(rt_cron_format(c, NULL, 0), need);
    rt_cron_free(c);

    /* The canonical form parses back to the same schedule. */
    int64_t afters[] = {1767225600, 1772953000, 1793505000, 1835395200};
    rt_tz *ny;
    assert_int_equal(rt_tz_load("America/New_York", &ny, &err), RT_OK);
    for (size_t i = 0; i < COUNT(PARSE_CASES); i++) {
        if (!PARSE_CASES[i].canon)
            continue;
        rt_cron *a, *b;
        char fa[RT_CRON_FORMAT_MAX], fb[RT_CRON_FORMAT_MAX];
        assert_int_equal(rt_cron_parse(PARSE_CASES[i].expr, &a, &err), RT_OK);
        rt_cron_format(a, fa, sizeof fa);
        assert_int_equal(rt_cron_parse(fa, &b, &err), RT_OK);
        rt_cron_format(b, fb, sizeof fb);
        assert_string_equal(fa, fb);
        for (size_t k = 0; k < COUNT(afters); k++) {
            int64_t na = 0, nb = 0;
            rt_status sa = rt_cron_next(a, ny, afters[k], &na), sb = rt_cron_next(b, ny, afters[k], &nb);
            assert_int_equal(sa, sb);
            assert_int_equal(na, nb);
        }
        rt_cron_free(a);
        rt_cron_free(b);
    }
    rt_tz_free(ny);
}

/* ------------------------------------------------------------------------------------ */
/* Next fire                                                                            */

typedef struct next_case {
    const char *expr, *zone;
    int64_t after;
    int n;
    int64_t want[6]; /* consecutive fires after `after` */
} next_case;

static const next_case NEXT_CASES[] = {
    /* 2026-01-01T00:00:00Z
       -> 2026-01-01T00:00:01Z 2026-01-01T00:00:02Z 2026-01-01T00:00:03Z */
    {"* * * * * *", "UTC", 1767225600, 3, {1767225601, 1767225602, 1767225603}},
    /* 2026-12-31T23:59:30Z
       -> 2027-01-01T00:00:00Z 2027-01-01T00:01:00Z */
    {"* * * * *", "UTC", 1798761570, 2, {1798761600, 1798761660}},
    /* 2026-05-05T10:07:00Z
       -> 2026-05-05T10:15:00Z 2026-05-05T10:30:00Z 2026-05-05T10:45:00Z 2026-05-05T11:00:00Z */
    {"*/15 * * * *", "UTC", 1777975620, 4, {1777976100, 1777977000, 1777977900, 1777978800}},
    /* 2026-05-05T10:07:59Z
       -> 2026-05-05T10:08:05Z 2026-05-05T10:08:25Z 2026-05-05T10:08:45Z 2026-05-05T10:09:05Z */
    {"5/20 * * * * *", "UTC", 1777975679, 4, {1777975685, 1777975705, 1777975725, 1777975745}},
    /* 2026-01-01T00:00:00Z
       -> 2028-02-29T00:00:00Z 2032-02-29T00:00:00Z */
    {"0 0 29 2 *", "UTC", 1767225600, 2, {1835395200, 1961625600}},
    /* 2096-03-01T00:00:00Z
       -> 2104-02-29T00:00:00Z */
    {"0 0 29 2 *", "UTC", 3981398400, 1, {4233686400}},
    /* 2026-01-31T00:00:00Z
       -> 2026-03-31T00:00:00Z 2026-05-31T00:00:00Z 2026-07-31T00:00:00Z 2026-08-31T00:00:00Z */
    {"0 0 31 * *", "UTC", 1769817600, 4, {1774915200, 1780185600, 1785456000, 1788134400}},
    /* 2026-05-01T00:00:00Z
       -> 2026-05-01T04:30:00Z 2026-05-08T04:30:00Z 2026-05-15T04:30:00Z 2026-05-22T04:30:00Z 2026-05-29T04:30:00Z */
    {"30 4 1,15 * 5", "UTC", 1777593600, 5, {1777609800, 1778214600, 1778819400, 1779424200, 1780029000}},
    /* 2026-02-01T00:00:00Z
       -> 2026-02-06T12:00:00Z 2026-02-13T12:00:00Z 2026-02-20T12:00:00Z 2026-02-27T12:00:00Z */
    {"0 12 13 * FRI", "UTC", 1769904000, 4, {1770379200, 1770984000, 1771588800, 1772193600}},
    /* 2026-06-01T00:00:00Z
       -> 2026-06-01T12:00:00Z 2026-06-15T12:00:00Z 2026-06-29T12:00:00Z 2026-07-13T12:00:00Z */
    {"0 12 */2 * MON", "UTC", 1780272000, 4, {1780315200, 1781524800, 1782734400, 1783944000}},
    /* 2026-06-01T00:00:00Z
       -> 2026-06-01T12:00:00Z 2026-06-08T12:00:00Z 2026-06-15T12:00:00Z */
    {"0 12 ? * MON", "UTC", 1780272000, 3, {1780315200, 1780920000, 1781524800}},
    /* 2026-01-01T00:00:00Z
       -> 2026-02-02T00:00:00Z 2026-02-09T00:00:00Z 2026-02-16T00:00:00Z */
    {"0 0 31 2 MON", "UTC", 1767225600, 3, {1769990400, 1770595200, 1771200000}},
    /* 2026-05-08T18:00:00Z
       -> 2026-05-11T09:00:00Z 2026-05-12T09:00:00Z 2026-05-13T09:00:00Z */
    {"0 9 * * MON-FRI", "UTC", 1778263200, 3, {1778490000, 1778576400, 1778662800}},
    /* 2026-05-06T00:00:00Z
       -> 2026-05-09T00:00:00Z 2026-05-10T00:00:00Z 2026-05-16T00:00:00Z */
    {"0 0 * * SAT-SUN", "UTC", 1778025600, 3, {1778284800, 1778371200, 1778889600}},
    /* 2026-05-06T00:00:00Z
       -> 2026-05-10T00:00:00Z 2026-05-17T00:00:00Z */
    {"0 0 * * 7", "UTC", 1778025600, 2, {1778371200, 1778976000}},
    /* 2026-02-15T00:00:00Z
       -> 2026-04-01T00:00:00Z 2026-07-01T00:00:00Z 2026-10-01T00:00:00Z */
    {"0 0 1 */3 *", "UTC", 1771113600, 3, {1775001600, 1782864000, 1790812800}},
    /* 2026-06-01T00:00:00Z
       -> 2026-12-31T23:59:00Z 2027-12-31T23:59:00Z */
    {"59 23 31 12 *", "UTC", 1780272000, 2, {1798761540, 1830297540}},
    /* 2026-01-01T00:00:00Z
       -> 2027-01-01T00:00:00Z 2028-01-01T00:00:00Z */
    {"@yearly", "UTC", 1767225600, 2, {1798761600, 1830297600}},
    /* 2026-01-31T12:00:00Z
       -> 2026-02-01T00:00:00Z 2026-03-01T00:00:00Z */
    {"@monthly", "UTC", 1769860800, 2, {1769904000, 1772323200}},
    /* 2026-05-06T00:00:00Z
       -> 2026-05-10T00:00:00Z 2026-05-17T00:00:00Z */
    {"@weekly", "UTC", 1778025600, 2, {1778371200, 1778976000}},
    /* 2026-05-06T23:59:59Z
       -> 2026-05-07T00:00:00Z 2026-05-08T00:00:00Z */
    {"@daily", "UTC", 1778111999, 2, {1778112000, 1778198400}},
    /* 2026-05-06T23:00:00Z
       -> 2026-05-07T00:00:00Z 2026-05-07T01:00:00Z */
    {"@hourly", "UTC", 1778108400, 2, {1778112000, 1778115600}},
    /* 1969-12-31T23:59:59Z
       -> 1970-01-01T00:00:00Z 1971-01-01T00:00:00Z */
    {"0 0 1 1 *", "UTC", -1, 2, {0, 31536000}},
    /* 2026-05-06T10:15:00Z
       -> 2026-05-07T10:15:00Z */
    {"15 10 * * *", "UTC", 1778062500, 1, {1778148900}},
    /* 2026-11-01T03:30:00Z
       -> 2026-11-01T04:00:00Z 2026-11-01T05:00:00Z 2026-11-01T07:00:00Z 2026-11-01T08:00:00Z 2026-11-01T09:00:00Z */
    {"0 * * * *", "America/New_York", 1793503800, 5, {1793505600, 1793509200, 1793516400, 1793520000, 1793523600}},
    /* 2026-11-01T06:00:00Z
       -> 2026-11-01T07:00:00Z 2026-11-01T08:00:00Z */
    {"0 * * * *", "America/New_York", 1793512800, 2, {1793516400, 1793520000}},
    /* 2026-11-01T04:50:00Z
       -> 2026-11-01T05:00:00Z 2026-11-01T05:15:00Z 2026-11-01T05:30:00Z 2026-11-01T05:45:00Z 2026-11-01T07:00:00Z 2026-11-01T07:15:00Z */
    {"*/15 * * * *", "America/New_York", 1793508600, 6, {1793509200, 1793510100, 1793511000, 1793511900, 1793516400, 1793517300}},
    /* 2026-11-01T06:10:00Z
       -> 2026-11-01T07:00:00Z 2026-11-01T07:15:00Z */
    {"*/15 * * * *", "America/New_York", 1793513400, 2, {1793516400, 1793517300}},
    /* 2026-10-31T12:00:00Z
       -> 2026-11-01T05:30:00Z 2026-11-02T06:30:00Z */
    {"30 1 * * *", "America/New_York", 1793448000, 2, {1793511000, 1793601000}},
    /* 2026-11-01T05:30:00Z
       -> 2026-11-02T06:30:00Z */
    {"30 1 * * *", "America/New_York", 1793511000, 1, {1793601000}},
    /* 2026-10-31T12:00:00Z
       -> 2026-11-01T05:59:00Z 2026-11-02T06:59:00Z */
    {"59 1 * * *", "America/New_York", 1793448000, 2, {1793512740, 1793602740}},
    /* 2026-11-01T05:59:58Z
       -> 2026-11-01T05:59:59Z 2026-11-01T07:00:00Z 2026-11-01T07:00:01Z */
    {"* * * * * *", "America/New_York", 1793512798, 3, {1793512799, 1793516400, 1793516401}},
    /* 2026-03-08T05:30:00Z
       -> 2026-03-08T06:00:00Z 2026-03-08T07:00:00Z 2026-03-08T08:00:00Z */
    {"0 * * * *", "America/New_York", 1772947800, 3, {1772949600, 1772953200, 1772956800}},
    /* 2026-03-07T00:00:00Z
       -> 2026-03-07T07:30:00Z 2026-03-09T06:30:00Z */
    {"30 2 * * *", "America/New_York", 1772841600, 2, {1772868600, 1773037800}},
    /* 2026-03-07T12:00:00Z
       -> 2026-03-09T06:00:00Z 2026-03-10T06:00:00Z */
    {"0 2 * * *", "America/New_York", 1772884800, 2, {1773036000, 1773122400}},
    /* 2026-03-07T12:00:00Z
       -> 2026-03-08T07:00:00Z 2026-03-09T07:00:00Z */
    {"0 3 * * *", "America/New_York", 1772884800, 2, {1772953200, 1773039600}},
    /* 2026-03-08T06:59:58Z
       -> 2026-03-08T06:59:59Z 2026-03-08T07:00:00Z 2026-03-08T07:00:01Z */
    {"* * * * * *", "America/New_York", 1772953198, 3, {1772953199, 1772953200, 1772953201}},
    /* 2026-03-08T06:00:00Z
       -> 2026-03-08T06:30:00Z 2026-03-08T07:00:00Z 2026-03-08T07:30:00Z */
    {"*/30 * * * *", "America/New_York", 1772949600, 3, {1772951400, 1772953200, 1772955000}},
    /* 2026-03-06T00:00:00Z
       -> 2026-03-06T14:00:00Z 2026-03-07T14:00:00Z 2026-03-08T13:00:00Z 2026-03-09T13:00:00Z */
    {"0 9 * * *", "America/New_York", 1772755200, 4, {1772805600, 1772892000, 1772974800, 1773061200}},
    /* 2026-10-30T00:00:00Z
       -> 2026-10-30T13:00:00Z 2026-10-31T13:00:00Z 2026-11-01T14:00:00Z 2026-11-02T14:00:00Z */
    {"0 9 * * *", "America/New_York", 1793318400, 4, {1793365200, 1793451600, 1793541600, 1793628000}},
    /* 2026-06-30T12:00:00Z
       -> 2026-07-01T04:00:00Z 2026-07-02T04:00:00Z */
    {"0 0 * * *", "America/New_York", 1782820800, 2, {1782878400, 1782964800}},
    /* 2026-01-01T00:00:00Z
       -> 2027-03-08T07:30:00Z 2028-03-08T07:30:00Z */
    {"30 2 8 3 *", "America/New_York", 1767225600, 2, {1804491000, 1836113400}},
    /* 2100-03-14T06:30:00Z
       -> 2100-03-14T07:00:00Z 2100-03-14T08:00:00Z */
    {"0 * * * *", "America/New_York", 4108689000, 2, {4108690800, 4108694400}},
    /* 2100-10-30T00:00:00Z
       -> 2100-10-31T05:00:00Z 2100-11-07T05:00:00Z */
    {"0 1 * * SUN", "America/New_York", 4128537600, 2, {4128642000, 4129246800}},
    /* 2026-03-28T00:00:00Z
       -> 2026-03-28T01:30:00Z 2026-03-30T00:30:00Z */
    {"30 2 * * *", "Europe/Berlin", 1774656000, 2, {1774661400, 1774830600}},
    /* 2026-03-29T00:30:00Z
       -> 2026-03-29T01:00:00Z 2026-03-29T02:00:00Z */
    {"0 * * * *", "Europe/Berlin", 1774744200, 2, {1774746000, 1774749600}},
    /* 2026-10-24T12:00:00Z
       -> 2026-10-25T00:30:00Z 2026-10-26T01:30:00Z */
    {"30 2 * * *", "Europe/Berlin", 1792843200, 2, {1792888200, 1792978200}},
    /* 2026-10-24T23:59:00Z
       -> 2026-10-25T00:00:00Z 2026-10-25T00:20:00Z 2026-10-25T00:40:00Z 2026-10-26T01:00:00Z */
    {"*/20 2 * * *", "Europe/Berlin", 1792886340, 4, {1792886400, 1792887600, 1792888800, 1792976400}},
    /* 2026-10-24T23:30:00Z
       -> 2026-10-25T00:00:00Z 2026-10-25T02:00:00Z 2026-10-25T03:00:00Z 2026-10-25T04:00:00Z */
    {"0 * * * *", "Europe/Berlin", 1792884600, 4, {1792886400, 1792893600, 1792897200, 1792900800}},
    /* 2026-10-24T12:00:00Z
       -> 2026-10-24T22:00:00Z 2026-10-25T23:00:00Z 2026-10-26T23:00:00Z */
    {"0 0 * * *", "Europe/Berlin", 1792843200, 3, {1792879200, 1792969200, 1793055600}},
    /* 2026-04-04T14:00:00Z
       -> 2026-04-04T14:30:00Z 2026-04-04T15:30:00Z 2026-04-04T16:00:00Z 2026-04-04T16:30:00Z */
    {"*/30 * * * *", "Australia/Lord_Howe", 1775311200, 4, {1775313000, 1775316600, 1775318400, 1775320200}},
    /* 2026-04-04T00:00:00Z
       -> 2026-04-04T14:45:00Z 2026-04-05T15:15:00Z */
    {"45 1 * * *", "Australia/Lord_Howe", 1775260800, 2, {1775313900, 1775402100}},
    /* 2026-04-04T14:20:00Z
       -> 2026-04-05T14:45:00Z */
    {"15 1 * * *", "Australia/Lord_Howe", 1775312400, 1, {1775400300}},
    /* 2026-10-02T00:00:00Z
       -> 2026-10-02T15:45:00Z 2026-10-04T15:15:00Z */
    {"15 2 * * *", "Australia/Lord_Howe", 1790899200, 2, {1790955900, 1791126900}},
    /* 2026-10-03T15:00:00Z
       -> 2026-10-03T15:30:00Z 2026-10-03T16:00:00Z */
    {"0,30 * * * *", "Australia/Lord_Howe", 1791039600, 2, {1791041400, 1791043200}},
    /* 2026-10-02T00:00:00Z
       -> 2026-10-02T15:30:00Z 2026-10-04T15:00:00Z */
    {"0 2 * * *", "Australia/Lord_Howe", 1790899200, 2, {1790955000, 1791126000}},
    /* 2099-12-31T00:00:00Z
       -> 2099-12-31T13:00:00Z 2100-01-01T13:00:00Z */
    {"0 0 * * *", "Australia/Lord_Howe", 4102358400, 2, {4102405200, 4102491600}},
    /* 2018-01-01T00:00:00Z
       -> 2019-11-04T03:00:00Z */
    {"0 0 4 11 *", "America/Sao_Paulo", 1514764800, 1, {1572836400}},
    /* 2018-11-02T12:00:00Z
       -> 2018-11-03T03:00:00Z 2018-11-05T02:00:00Z 2018-11-06T02:00:00Z */
    {"0 0 * * *", "America/Sao_Paulo", 1541160000, 3, {1541214000, 1541383200, 1541469600}},
    /* 2019-02-16T12:00:00Z
       -> 2019-02-17T01:30:00Z 2019-02-18T02:30:00Z */
    {"30 23 * * *", "America/Sao_Paulo", 1550318400, 2, {1550367000, 1550457000}},
    /* 2019-01-01T00:00:00Z
       -> 2019-02-17T01:00:00Z 2020-02-17T02:00:00Z */
    {"0 23 16 2 *", "America/Sao_Paulo", 1546300800, 2, {1550365200, 1581904800}},
    /* 2019-02-16T23:30:00Z
       -> 2019-02-17T00:00:00Z 2019-02-17T01:00:00Z 2019-02-17T03:00:00Z 2019-02-17T04:00:00Z */
    {"0 * * * *", "America/Sao_Paulo", 1550359800, 4, {1550361600, 1550365200, 1550372400, 1550376000}},
    /* 2018-11-04T02:58:00Z
       -> 2018-11-04T02:59:00Z 2018-11-04T03:00:00Z */
    {"* * * * *", "America/Sao_Paulo", 1541300280, 2, {1541300340, 1541300400}},
    /* 2026-01-01T00:00:00Z
       -> 2026-01-01T05:00:00Z 2026-01-02T05:00:00Z */
    {"0 2 * * *", "America/Sao_Paulo", 1767225600, 2, {1767243600, 1767330000}},
    /* 2026-11-01T00:00:00Z
       -> 2026-11-01T05:00:00Z 2026-11-02T05:00:00Z */
    {"0 2 * * *", "America/Sao_Paulo", 1793491200, 2, {1793509200, 1793595600}},
};

static void test_next_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < COUNT(NEXT_CASES); i++) {
        const next_case *nc = &NEXT_CASES[i];
        rt_cron *c;
        rt_tz *tz;
        rt_error err;
        if (rt_cron_parse(nc->expr, &c, &err) != RT_OK || rt_tz_load(nc->zone, &tz, &err) != RT_OK) {
            print_error("case %zu: %s\n", i, err.msg);
            fail();
        }
        int64_t t = nc->after;
        for (int k = 0; k < nc->n; k++) {
            int64_t got = 0, again = 0;
            rt_status s = rt_cron_next(c, tz, t, &got);
            /* The fire is also the next one seen from just before it. */
            rt_status s2 = rt_cron_next(c, tz, nc->want[k] - 1, &again);
            if (s != RT_OK || got != nc->want[k] || s2 != RT_OK || again != nc->want[k]) {
                print_error("case %zu \"%s\" in %s after %lld: fire %d is %lld (%s), want %lld; from want-1: %lld\n",
                            i, nc->expr, nc->zone, (long long)t, k, (long long)got, rt_status_name(s),
                            (long long)nc->want[k], (long long)again);
                fail();
            }
            t = got;
        }
        rt_cron_free(c);
        rt_tz_free(tz);
    }
    print_message("%zu next-fire chains\n", COUNT(NEXT_CASES));
}

static void test_next_not_found(void **state)
{
    (void)state;
    static const char *never[] = {"0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 30,31 2 *", "0 0 31 2,4 ?",
                                  "0 0 0 31 FEB *", "0 0 30 2 */1"};
    rt_error err;
    rt_tz *ny;
    assert_int_equal(rt_tz_load("America/New_York", &ny, &err), RT_OK);
    for (size_t i = 0; i < COUNT(never); i++) {
        rt_cron *c;
        int64_t next = 42;
        assert_int_equal(rt_cron_parse(never[i], &c, &err), RT_OK);
        assert_int_equal(rt_cron_next(c, NULL, 1767225600, &next), RT_ERR_NOT_FOUND);
        assert_int_equal(rt_cron_next(c, ny, 1767225600, &next), RT_ERR_NOT_FOUND);
        assert_int_equal(next, 42);
        rt_cron_free(c);
    }
    /* Restricted day-of-week makes day-of-month 30 in February fire on Mondays (OR). */
    rt_cron *c;
    int64_t next;
    assert_int_equal(rt_cron_parse("0 0 30 2 MON", &c, &err), RT_OK);
    assert_int_equal(rt_cron_next(c, NULL, 1767225600, &next), RT_OK);
    assert_int_equal(next, 1769990400); /* 2026-02-02T00:00:00Z, a Monday */
    rt_cron_free(c);
    rt_tz_free(ny);
}

static void test_next_limits(void **state)
{
    (void)state;
    rt_cron *c;
    rt_error err;
    int64_t next;
    assert_int_equal(rt_cron_parse("* * * * *", &c, &err), RT_OK);
    assert_int_equal(rt_cron_next(c, NULL, RT_CRON_TIME_MAX + 1, &next), RT_ERR_INVALID);
    assert_int_equal(rt_cron_next(c, NULL, RT_CRON_TIME_MIN - 1, &next), RT_ERR_INVALID);
    assert_int_equal(rt_cron_next(c, NULL, INT64_MAX, &next), RT_ERR_INVALID);
    assert_int_equal(rt_cron_next(c, NULL, INT64_MIN, &next), RT_ERR_INVALID);
    assert_int_equal(rt_cron_next(c, NULL, RT_CRON_TIME_MIN, &next), RT_OK);
    assert_int_equal(next, RT_CRON_TIME_MIN + 60);
    assert_int_equal(rt_cron_next(c, NULL, RT_CRON_TIME_MAX, &next), RT_OK);
    assert_int_equal(next, RT_CRON_TIME_MAX + 1); /* 10000-01-01T00:00:00Z */
    assert_int_equal(rt_cron_next(NULL, NULL, 0, &next), RT_ERR_INVALID);
    assert_int_equal(rt_cron_next(c, NULL, 0, NULL), RT_ERR_INVALID);
    rt_cron_free(c);

    /* NULL zone means UTC. */
    rt_tz *utc;
    assert_int_equal(rt_cron_parse("0 2 * * *", &c, &err), RT_OK);
    assert_int_equal(rt_tz_load("UTC", &utc, &err), RT_OK);
    int64_t a, b;
    assert_int_equal(rt_cron_next(c, NULL, 1767225600, &a), RT_OK);
    assert_int_equal(rt_cron_next(c, utc, 1767225600, &b), RT_OK);
    assert_int_equal(a, b);
    assert_int_equal(a, 1767232800);
    assert_string_equal(rt_tz_name(utc), "UTC");
    assert_string_equal(rt_tz_name(NULL), "UTC");
    rt_tz_free(utc);
    rt_cron_free(c);
}

/* ------------------------------------------------------------------------------------ */
/* Zones                                                                                */

typedef struct offset_case {
    const char *zone;
    int64_t t;
    int32_t off;
} offset_case;

static const offset_case OFFSET_CASES[] = {
    {"America/New_York", -5364662400, -17762}, /* 1800-01-01T00:00:00Z */
    {"America/New_York", -2717650801, -17762}, /* 1883-11-18T16:59:59Z */
    {"America/New_York", -2717650800, -18000}, /* 1883-11-18T17:00:00Z */
    {"America/New_York", 1772953199, -18000}, /* 2026-03-08T06:59:59Z */
    {"America/New_York", 1772953200, -14400}, /* 2026-03-08T07:00:00Z */
    {"America/New_York", 1793512799, -14400}, /* 2026-11-01T05:59:59Z */
    {"America/New_York", 1793512800, -18000}, /* 2026-11-01T06:00:00Z */
    {"America/New_York", 4118083200, -14400}, /* 2100-07-01T00:00:00Z */
    {"America/New_York", 4131302400, -18000}, /* 2100-12-01T00:00:00Z */
    {"America/New_York", 16731471599, -18000}, /* 2500-03-14T06:59:59Z */
    {"America/New_York", 16731471600, -14400}, /* 2500-03-14T07:00:00Z */
    {"Europe/Berlin", 1774745999, 3600}, /* 2026-03-29T00:59:59Z */
    {"Europe/Berlin", 1774746000, 7200}, /* 2026-03-29T01:00:00Z */
    {"Europe/Berlin", 1792889999, 7200}, /* 2026-10-25T00:59:59Z */
    {"Europe/Berlin", 1792890000, 3600}, /* 2026-10-25T01:00:00Z */
    {"Europe/Berlin", 3802550400, 7200}, /* 2090-07-01T00:00:00Z */
    {"Australia/Lord_Howe", 1775314799, 39600}, /* 2026-04-04T14:59:59Z */
    {"Australia/Lord_Howe", 1775314800, 37800}, /* 2026-04-04T15:00:00Z */
    {"Australia/Lord_Howe", 1791041399, 37800}, /* 2026-10-03T15:29:59Z */
    {"Australia/Lord_Howe", 1791041400, 39600}, /* 2026-10-03T15:30:00Z */
    {"Australia/Lord_Howe", 4102444800, 39600}, /* 2100-01-01T00:00:00Z */
    {"Australia/Lord_Howe", 4118083200, 37800}, /* 2100-07-01T00:00:00Z */
    {"America/Sao_Paulo", 1541300399, -10800}, /* 2018-11-04T02:59:59Z */
    {"America/Sao_Paulo", 1541300400, -7200}, /* 2018-11-04T03:00:00Z */
    {"America/Sao_Paulo", 1550368799, -7200}, /* 2019-02-17T01:59:59Z */
    {"America/Sao_Paulo", 1550368800, -10800}, /* 2019-02-17T02:00:00Z */
    {"America/Sao_Paulo", 1767225600, -10800}, /* 2026-01-01T00:00:00Z */
    {"America/Sao_Paulo", 7258118400, -10800}, /* 2200-01-01T00:00:00Z */
    {"Asia/Kathmandu", 1767225600, 20700}, /* 2026-01-01T00:00:00Z */
    {"Pacific/Chatham", 1767225600, 49500}, /* 2026-01-01T00:00:00Z */
    {"Pacific/Chatham", 1782864000, 45900}, /* 2026-07-01T00:00:00Z */
    {"Europe/Dublin", 1767225600, 0}, /* 2026-01-01T00:00:00Z */
    {"Europe/Dublin", 1782864000, 3600}, /* 2026-07-01T00:00:00Z */
    {"Europe/Dublin", 3471292800, 0}, /* 2080-01-01T00:00:00Z */
    {"Europe/Dublin", 3487017600, 3600}, /* 2080-07-01T00:00:00Z */
};

static void test_tz_offsets(void **state)
{
    (void)state;
    for (size_t i = 0; i < COUNT(OFFSET_CASES); i++) {
        rt_tz *tz;
        rt_error err;
        if (rt_tz_load(OFFSET_CASES[i].zone, &tz, &err) != RT_OK) {
            print_error("%s\n", err.msg);
            fail();
        }
        int32_t off = rt_tz_offset(tz, OFFSET_CASES[i].t);
        if (off != OFFSET_CASES[i].off) {
            print_error("%s at %lld: offset %d, want %d\n", OFFSET_CASES[i].zone, (long long)OFFSET_CASES[i].t,
                        off, OFFSET_CASES[i].off);
            fail();
        }
        rt_tz_free(tz);
    }
    assert_int_equal(rt_tz_offset(NULL, 1767225600), 0);
    rt_tz *ny;
    rt_error err;
    assert_int_equal(rt_tz_load("America/New_York", &ny, &err), RT_OK);
    assert_string_equal(rt_tz_name(ny), "America/New_York");
    /* Extreme instants are clamped, never overflow. */
    (void)rt_tz_offset(ny, INT64_MAX);
    (void)rt_tz_offset(ny, INT64_MIN);
    rt_tz_free(ny);
}

typedef struct zone_error_case {
    const char *name;
    rt_status status;
    const char *why;
} zone_error_case;

static void test_tz_errors(void **state)
{
    (void)state;
    static const zone_error_case cases[] = {
        {"Mars/Olympus_Mons", RT_ERR_NOT_FOUND, "unknown time zone \"Mars/Olympus_Mons\""},
        {"America", RT_ERR_NOT_FOUND, "not a zone file"},
        {"../../etc/passwd", RT_ERR_INVALID, "invalid name"},
        {"America/../../../etc/passwd", RT_ERR_INVALID, "no \"..\""},
        {"Europe/..", RT_ERR_INVALID, "invalid name"},
        {"/etc/localtime", RT_ERR_INVALID, "no leading '/'"},
        {"/usr/share/zoneinfo/UTC", RT_ERR_INVALID, "invalid name"},
        {"", RT_ERR_INVALID, "invalid name"},
        {"Europe/Berlin\n", RT_ERR_INVALID, "invalid name"},
        {"Europe/Ber lin", RT_ERR_INVALID, "invalid name"},
        {"Europe\\Berlin", RT_ERR_INVALID, "invalid name"},
        {"Europe/Berlin;rm", RT_ERR_INVALID, "invalid name"},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        rt_tz *tz = (rt_tz *)0x1;
        rt_error err = {0};
        rt_status s = rt_tz_load(cases[i].name, &tz, &err);
        if (s != cases[i].status || tz != NULL || !strstr(err.msg, cases[i].why)) {
            print_error("zone \"%s\": %s \"%s\", want %s containing \"%s\"\n", cases[i].name, rt_status_name(s),
                        err.msg, rt_status_name(cases[i].status), cases[i].why);
            fail();
        }
    }
    rt_tz *tz;
    rt_error err;
    assert_int_equal(rt_tz_load(NULL, &tz, &err), RT_ERR_INVALID);
    assert_int_equal(rt_tz_load("UTC", NULL, &err), RT_ERR_INVALID);
    static const char *utc_names[] = {"UTC", "Etc/UTC", "utc", "etc/utc"};
    for (size_t i = 0; i < COUNT(utc_names); i++) {
        assert_int_equal(rt_tz_load(utc_names[i], &tz, &err), RT_OK);
        assert_int_equal(rt_tz_offset(tz, 1782864000), 0);
        rt_tz_free(tz);
    }
    /* Leap-second zones count TAI-like seconds, not unix time: refuse them. */
    if (access("/usr/share/zoneinfo/right/UTC", R_OK) == 0 && !getenv("TZDIR")) {
        assert_int_equal(rt_tz_load("right/UTC", &tz, &err), RT_ERR_INVALID);
        assert_non_null(strstr(err.msg, "leap-second"));
    }
}

/* A TZif v2 file with no transitions, one local time type and the given footer. */
static size_t build_tzif(unsigned char *buf, int32_t utoff, const char *footer)
{
    size_t o = 0;
    for (int part = 0; part < 2; part++) {
        memcpy(buf + o, "TZif2", 5);
        memset(buf + o + 5, 0, 15);
        o += 20;
        const uint32_t counts[6] = {0, 0, 0, 0, 1, 4};
        for (int k = 0; k < 6; k++, o += 4) {
            buf[o] = (unsigned char)(counts[k] >> 24);
            buf[o + 1] = (unsigned char)(counts[k] >> 16);
            buf[o + 2] = (unsigned char)(counts[k] >> 8);
            buf[o + 3] = (unsigned char)counts[k];
        }
        uint32_t u = (uint32_t)utoff;
        buf[o++] = (unsigned char)(u >> 24);
        buf[o++] = (unsigned char)(u >> 16);
        buf[o++] = (unsigned char)(u >> 8);
        buf[o++] = (unsigned char)u;
        buf[o++] = 0;
        buf[o++] = 0;
        memcpy(buf + o, "AAA", 4);
        o += 4;
    }
    buf[o++] = '\n';
    size_t n = strlen(footer);
    memcpy(buf + o, footer, n);
    o += n;
    buf[o++] = '\n';
    return o;
}

typedef struct footer_case {
    int32_t std;
    const char *footer;
    int64_t at;         /* a transition */
    int32_t before, after;
} footer_case;

static const footer_case FOOTER_CASES[] = {
    /* AAA0BBB,J60/0,J305/0 */
    {0, "AAA0BBB,J60/0,J305/0", 1803859200, 0, 3600}, /* 2027-03-01T00:00:00Z */
    {0, "AAA0BBB,J60/0,J305/0", 1825023600, 3600, 0}, /* 2027-10-31T23:00:00Z */
    {0, "AAA0BBB,J60/0,J305/0", 1835481600, 0, 3600}, /* 2028-03-01T00:00:00Z */
    {0, "AAA0BBB,J60/0,J305/0", 1856646000, 3600, 0}, /* 2028-10-31T23:00:00Z */
    /* AAA0BBB,59/0,304/0  (glibc; CPython zoneinfo disagrees) */
    {0, "AAA0BBB,59/0,304/0", 1803859200, 0, 3600}, /* 2027-03-01T00:00:00Z */
    {0, "AAA0BBB,59/0,304/0", 1825023600, 3600, 0}, /* 2027-10-31T23:00:00Z */
    {0, "AAA0BBB,59/0,304/0", 1835395200, 0, 3600}, /* 2028-02-29T00:00:00Z */
    {0, "AAA0BBB,59/0,304/0", 1856559600, 3600, 0}, /* 2028-10-30T23:00:00Z */
    /* <+0530>-5:30<+0630>,M4.5.0/-3,M9.5.0/167 */
    {19800, "<+0530>-5:30<+0630>,M4.5.0/-3,M9.5.0/167", 1808580600, 19800, 23400}, /* 2027-04-24T15:30:00Z */
    {19800, "<+0530>-5:30<+0630>,M4.5.0/-3,M9.5.0/167", 1822494600, 23400, 19800}, /* 2027-10-02T16:30:00Z */
    {19800, "<+0530>-5:30<+0630>,M4.5.0/-3,M9.5.0/167", 1840635000, 19800, 23400}, /* 2028-04-29T15:30:00Z */
    {19800, "<+0530>-5:30<+0630>,M4.5.0/-3,M9.5.0/167", 1853944200, 23400, 19800}, /* 2028-09-30T16:30:00Z */
    /* IST-1GMT0,M10.5.0,M3.5.0/1 */
    {3600, "IST-1GMT0,M10.5.0,M3.5.0/1", 1806195600, 0, 3600}, /* 2027-03-28T01:00:00Z */
    {3600, "IST-1GMT0,M10.5.0,M3.5.0/1", 1824944400, 3600, 0}, /* 2027-10-31T01:00:00Z */
    {3600, "IST-1GMT0,M10.5.0,M3.5.0/1", 1837645200, 0, 3600}, /* 2028-03-26T01:00:00Z */
    {3600, "IST-1GMT0,M10.5.0,M3.5.0/1", 1856394000, 3600, 0}, /* 2028-10-29T01:00:00Z */
    /* <-04>4<-03>,M9.1.6/24,M4.1.6/24 */
    {-14400, "<-04>4<-03>,M9.1.6/24,M4.1.6/24", 1806807600, -10800, -14400}, /* 2027-04-04T03:00:00Z */
    {-14400, "<-04>4<-03>,M9.1.6/24,M4.1.6/24", 1820116800, -14400, -10800}, /* 2027-09-05T04:00:00Z */
    {-14400, "<-04>4<-03>,M9.1.6/24,M4.1.6/24", 1838257200, -10800, -14400}, /* 2028-04-02T03:00:00Z */
    {-14400, "<-04>4<-03>,M9.1.6/24,M4.1.6/24", 1851566400, -14400, -10800}, /* 2028-09-03T04:00:00Z */
    /* <+1030>-10:30<+11>-11,M10.1.0,M4.1.0 */
    {37800, "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", 1806764400, 39600, 37800}, /* 2027-04-03T15:00:00Z */
    {37800, "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", 1822491000, 37800, 39600}, /* 2027-10-02T15:30:00Z */
    {37800, "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", 1838214000, 39600, 37800}, /* 2028-04-01T15:00:00Z */
    {37800, "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", 1853940600, 37800, 39600}, /* 2028-09-30T15:30:00Z */
};

static void test_tz_footer_rules(void **state)
{
    (void)state;
    unsigned char buf[512];
    for (size_t i = 0; i < COUNT(FOOTER_CASES); i++) {
        const footer_case *fc = &FOOTER_CASES[i];
        rt_tz *tz;
        rt_error err;
        size_t n = build_tzif(buf, fc->std, fc->footer);
        if (rt_tz_parse("Test/Footer", buf, n, &tz, &err) != RT_OK) {
            print_error("%s\n", err.msg);
            fail();
        }
        int32_t b = rt_tz_offset(tz, fc->at - 1), a = rt_tz_offset(tz, fc->at);
        if (b != fc->before || a != fc->after) {
            print_error("\"%s\" at %lld: %d -> %d, want %d -> %d\n", fc->footer, (long long)fc->at, b, a, fc->before,
                        fc->after);
            fail();
        }
        rt_tz_free(tz);
    }
    static const char *bad[] = {"EST", "EST5EDT,M3.2.0", "EST5EDT,M13.2.0,M11.1.0", "EST5EDT,M3.6.0,M11.1.0",
                                "EST5EDT,M3.2.7,M11.1.0", "EST5EDT,J0,J365", "EST5EDT,366,0", "EST25",
                                "<A>5<B", "EST5EDT,M3.2.0/168,M11.1.0", "EST5EDT,M3.2.0,M11.1.0x", "5EST",
                                "EST5:60"};
    for (size_t i = 0; i < COUNT(bad); i++) {
        rt_tz *tz = NULL;
        rt_error err;
        size_t n = build_tzif(buf, 0, bad[i]);
        if (rt_tz_parse("Test/Bad", buf, n, &tz, &err) != RT_ERR_INVALID || !strstr(err.msg, "TZ string footer")) {
            print_error("footer \"%s\" accepted\n", bad[i]);
            fail();
        }
    }
}

static size_t put32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
    return 4;
}

/* Version 1 files have 32-bit transitions and no footer; versions 3 and 4 read like 2. */
static void test_tz_versions(void **state)
{
    (void)state;
    unsigned char buf[256];
    size_t o = 0;
    memcpy(buf, "TZif", 4);
    memset(buf + 4, 0, 16);
    o = 20;
    const uint32_t counts[6] = {0, 0, 0, 2, 2, 8}; /* 2 transitions, 2 types, 8 chars */
    for (int k = 0; k < 6; k++)
        o += put32(buf + o, counts[k]);
    o += put32(buf + o, (uint32_t)1774746000); /* 2026-03-29T01:00:00Z -> +02:00 */
    o += put32(buf + o, (uint32_t)1792890000); /* 2026-10-25T01:00:00Z -> +01:00 */
    buf[o++] = 1;
    buf[o++] = 0;
    o += put32(buf + o, 3600);
    buf[o++] = 0;
    buf[o++] = 0;
    o += put32(buf + o, 7200);
    buf[o++] = 1;
    buf[o++] = 4;
    memcpy(buf + o, "CET\0CES\0", 8);
    o += 8;
    rt_tz *tz;
    rt_error err;
    assert_int_equal(rt_tz_parse("Test/V1", buf, o, &tz, &err), RT_OK);
    assert_int_equal(rt_tz_offset(tz, 0), 3600);             /* before the first: type 0 */
    assert_int_equal(rt_tz_offset(tz, 1774745999), 3600);
    assert_int_equal(rt_tz_offset(tz, 1774746000), 7200);
    assert_int_equal(rt_tz_offset(tz, 1792889999), 7200);
    assert_int_equal(rt_tz_offset(tz, 1792890000), 3600);
    assert_int_equal(rt_tz_offset(tz, 4102444800), 3600);    /* no footer: last type stays */
    rt_cron *c;
    int64_t next;
    assert_int_equal(rt_cron_parse("30 2 * * *", &c, &err), RT_OK);
    assert_int_equal(rt_cron_next(c, tz, 1774656000, &next), RT_OK); /* 2026-03-28T00:00:00Z */
    assert_int_equal(next, 1774661400);                               /* 03-28 02:30 +01:00 */
    assert_int_equal(rt_cron_next(c, tz, next, &next), RT_OK);
    assert_int_equal(next, 1774830600); /* 03-29 02:30 does not exist: 03-30 02:30 +02:00 */
    rt_cron_free(c);
    rt_tz_free(tz);
    buf[o - 1] = 'X'; /* abbreviations are never read: a missing NUL is harmless */
    assert_int_equal(rt_tz_parse("Test/V1", buf, o, &tz, &err), RT_OK);
    rt_tz_free(tz);
    buf[44 + 2 * 4] = 7; /* the first transition's type index, beyond typecnt */
    assert_int_equal(rt_tz_parse("Test/V1", buf, o, &tz, &err), RT_ERR_INVALID);
    assert_non_null(strstr(err.msg, "unknown local time type"));

    for (char v = '2'; v <= '4'; v++) {
        size_t n = build_tzif(buf, -18000, "EST5EDT,M3.2.0,M11.1.0");
        buf[4] = (unsigned char)v;
        assert_int_equal(rt_tz_parse("Test/V", buf, n, &tz, &err), RT_OK);
        assert_int_equal(rt_tz_offset(tz, 1772953200), -14400);
        rt_tz_free(tz);
    }
}

static unsigned char *read_zone_file(const char *name, size_t *len)
{
    const char *dir = getenv("TZDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char *buf = malloc(1 << 16);
    assert_non_null(buf);
    *len = fread(buf, 1, 1 << 16, f);
    fclose(f);
    return buf;
}

/* The footer alone must reproduce the explicit transitions the zone file lists up to
 * 2037: this checks the POSIX TZ evaluator against zic's own output, for northern and
 * southern zones, 30- and 45-minute offsets, negative DST (Dublin), rule times of 24h
 * and more (Santiago, Jerusalem) and negative ones (Nuuk). */
static void test_tz_footer_matches_transitions(void **state)
{
    (void)state;
    static const char *zones[] = {"America/New_York", "Europe/Berlin",  "Australia/Lord_Howe", "America/Nuuk",
                                  "Asia/Jerusalem",   "Pacific/Chatham", "America/Santiago",    "Europe/Dublin"};
    static const char *exprs[] = {"*/30 * * * *", "30 2 * * *", "0 0 * * *"};
    for (size_t z = 0; z < COUNT(zones); z++) {
        size_t len;
        unsigned char *file = read_zone_file(zones[z], &len);
        assert_true(len > 2 && file[len - 1] == '\n');
        size_t b = len - 1;
        while (b > 0 && file[b - 1] != '\n')
            b--;
        char footer[128];
        assert_true(len - 1 - b < sizeof footer);
        memcpy(footer, file + b, len - 1 - b);
        footer[len - 1 - b] = '\0';
        rt_tz *real, *rule;
        rt_error err;
        assert_int_equal(rt_tz_parse(zones[z], file, len, &real, &err), RT_OK);
        unsigned char syn[512];
        size_t n = build_tzif(syn, rt_tz_offset(real, 1767225600), footer);
        assert_int_equal(rt_tz_parse("Test/Footer", syn, n, &rule, &err), RT_OK);
        /* 2026 .. 2030 (a leap year included). Every transition of these zones falls on
         * a half hour in UTC, and both t - 1 and t are compared. */
        for (int64_t t = 1767225600; t < 1924992000; t += 1800) {
            if (rt_tz_offset(real, t) != rt_tz_offset(rule, t) || rt_tz_offset(real, t - 1) != rt_tz_offset(rule, t - 1)) {
                print_error("%s footer \"%s\" at %lld: %d, file says %d\n", zones[z], footer, (long long)t,
                            rt_tz_offset(rule, t), rt_tz_offset(real, t));
                fail();
            }
        }
        for (size_t e = 0; e < COUNT(exprs); e++) {
            rt_cron *c;
            assert_int_equal(rt_cron_parse(exprs[e], &c, &err), RT_OK);
            int64_t ta = 1767225600, tb = ta; /* 2026 .. 2028 */
            while (ta < 1830297600) {
                assert_int_equal(rt_cron_next(c, real, ta, &ta), RT_OK);
                assert_int_equal(rt_cron_next(c, rule, tb, &tb), RT_OK);
                assert_int_equal(ta, tb);
            }
            rt_cron_free(c);
        }
        rt_tz_free(real);
        rt_tz_free(rule);
        free(file);
    }
}

/* Truncated or corrupted files are refused (or, for harmless bytes, accepted) without
 * reading out of bounds; the sanitizer build checks the "without". */
static void test_tz_corrupt_files(void **state)
{
    (void)state;
    size_t len;
    unsigned char *file = read_zone_file("Australia/Lord_Howe", &len);
    rt_tz *tz;
    rt_error err;
    for (size_t n = 0; n < len; n++) {
        tz = NULL;
        assert_int_equal(rt_tz_parse("Trunc", file, n, &tz, &err), RT_ERR_INVALID);
        assert_null(tz);
        assert_true(err.msg[0] != '\0');
    }
    int32_t want = rt_tz_offset(NULL, 0);
    (void)want;
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            file[i] ^= (unsigned char)(1u << bit);
            if (rt_tz_parse("Flip", file, len, &tz, &err) == RT_OK) {
                int64_t next;
                rt_cron *c;
                assert_int_equal(rt_cron_parse("*/30 * * * *", &c, &err), RT_OK);
                (void)rt_tz_offset(tz, 1775314800);
                (void)rt_cron_next(c, tz, 1775314800, &next);
                rt_cron_free(c);
                rt_tz_free(tz);
            }
            file[i] ^= (unsigned char)(1u << bit);
        }
    }
    assert_int_equal(rt_tz_parse("Whole", file, len, &tz, &err), RT_OK);
    rt_tz_free(tz);
    assert_int_equal(rt_tz_parse("Null", NULL, 0, &tz, &err), RT_ERR_INVALID);
    free(file);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* $TZDIR is honoured, and UTC needs no tz database at all. */
static void test_tz_tzdir(void **state)
{
    (void)state;
    char dir[] = "/tmp/rt_cron_tzdir_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], sub[256];
    snprintf(sub, sizeof sub, "%s/My", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(path, sizeof path, "%s/My/Bad", dir);
    static const char junk[] = "not a tzif file at all, but long enough to have a header.......";
    write_file(path, junk, sizeof junk - 1);
    unsigned char buf[512];
    size_t n = build_tzif(buf, -18000, "EST5EDT,M3.2.0,M11.1.0");
    char good[256];
    snprintf(good, sizeof good, "%s/My/Zone", dir);
    write_file(good, buf, n);

    char *saved = getenv("TZDIR") ? strdup(getenv("TZDIR")) : NULL;
    setenv("TZDIR", dir, 1);
    rt_tz *tz;
    rt_error err;
    assert_int_equal(rt_tz_load("UTC", &tz, &err), RT_OK);
    rt_tz_free(tz);
    assert_int_equal(rt_tz_load("Etc/UTC", &tz, &err), RT_OK);
    rt_tz_free(tz);
    assert_int_equal(rt_tz_load("Europe/Berlin", &tz, &err), RT_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, dir));
    assert_int_equal(rt_tz_load("My/Bad", &tz, &err), RT_ERR_INVALID);
    assert_non_null(strstr(err.msg, "not a TZif file"));
    assert_int_equal(rt_tz_load("My/Zone", &tz, &err), RT_OK);
    assert_int_equal(rt_tz_offset(tz, 1772953199), -18000); /* 2026-03-08T06:59:59Z */
    assert_int_equal(rt_tz_offset(tz, 1772953200), -14400);
    rt_tz_free(tz);
    if (saved) {
        setenv("TZDIR", saved, 1);
        free(saved);
    } else
        unsetenv("TZDIR");
    unlink(path);
    unlink(good);
    rmdir(sub);
    rmdir(dir);
}

/* ------------------------------------------------------------------------------------ */
/* Threads share parsed expressions and zones.                                           */

#define THREADS 8
#define CHAIN 3000

typedef struct chain_job {
    const rt_cron *c;
    const rt_tz *tz;
    int64_t start;
    const int64_t *want;
    int mismatches;
} chain_job;

static void *run_chain(void *arg)
{
    chain_job *job = arg;
    for (int round = 0; round < 3; round++) {
        int64_t t = job->start;
        for (int i = 0; i < CHAIN; i++) {
            if (rt_cron_next(job->c, job->tz, t, &t) != RT_OK || t != job->want[i])
                job->mismatches++;
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    static const char *exprs[] = {"*/5 * * * *", "30 2 * * *", "* * * * * *", "0 */3 * * MON-FRI"};
    static const char *zones[] = {"America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "America/Sao_Paulo"};
    rt_cron *c[4];
    rt_tz *tz[4];
    rt_error err;
    static int64_t want[4][CHAIN];
    for (int k = 0; k < 4; k++) {
        assert_int_equal(rt_cron_parse(exprs[k], &c[k], &err), RT_OK);
        assert_int_equal(rt_tz_load(zones[k], &tz[k], &err), RT_OK);
    }
    int64_t starts[4] = {1793500000, 1774000000, 1775300000, 1541290000};
    for (int k = 0; k < 4; k++) {
        int64_t t = starts[k];
        for (int i = 0; i < CHAIN; i++) {
            assert_int_equal(rt_cron_next(c[k], tz[k], t, &t), RT_OK);
            want[k][i] = t;
            if (i)
                assert_true(want[k][i] > want[k][i - 1]);
        }
    }
    pthread_t th[THREADS];
    chain_job jobs[THREADS];
    for (int i = 0; i < THREADS; i++) {
        int k = i % 4;
        jobs[i] = (chain_job){c[k], tz[k], starts[k], want[k], 0};
        assert_int_equal(pthread_create(&th[i], NULL, run_chain, &jobs[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(jobs[i].mismatches, 0);
    }
    for (int k = 0; k < 4; k++) {
        rt_cron_free(c[k]);
        rt_tz_free(tz[k]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_parse_message_exact),
        cmocka_unit_test(test_text_and_format),
        cmocka_unit_test(test_next_table),
        cmocka_unit_test(test_next_not_found),
        cmocka_unit_test(test_next_limits),
        cmocka_unit_test(test_tz_offsets),
        cmocka_unit_test(test_tz_errors),
        cmocka_unit_test(test_tz_footer_rules),
        cmocka_unit_test(test_tz_versions),
        cmocka_unit_test(test_tz_footer_matches_transitions),
        cmocka_unit_test(test_tz_corrupt_files),
        cmocka_unit_test(test_tz_tzdir),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests_name("cron", tests, NULL, NULL);
}
