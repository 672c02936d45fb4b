/* test_run_status.c — one name table for run statuses (engine/lang/run_status.h): it
 * round-trips, its unfinished list is what the SQL statements use, and the database's
 * check constraint (last redefined by schemas/migrations/050_run_pause.sql) allows exactly
 * these words. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "run_status.h"

static void round_trip(void **state)
{
    (void)state;
    for (int i = 0; i < RT_RUN_STATUS_COUNT; i++) {
        rt_run_status s;
        const char *name = rt_run_status_name((rt_run_status)i);
        assert_non_null(name);
        assert_true(rt_run_status_parse(name, &s));
        assert_int_equal(s, i);
        assert_non_null(strstr(rt_run_status_list(), name));
    }
    rt_run_status s;
    assert_false(rt_run_status_parse("done", &s));
    assert_false(rt_run_status_parse(NULL, &s));
    assert_null(rt_run_status_name(RT_RUN_STATUS_COUNT));
}

static void unfinished_lists(void **state)
{
    (void)state;
    char want[256] = "(", arr[256] = "array[";
    for (int i = 0; i < RT_RUN_STATUS_COUNT; i++) {
        if (rt_run_status_final((rt_run_status)i))
            continue;
        char item[48];
        snprintf(item, sizeof item, "%s'%s'", i ? ", " : "", rt_run_status_name((rt_run_status)i));
        strcat(want, item);
        strcat(arr, item);
    }
    strcat(want, ")");
    strcat(arr, "]");
    assert_string_equal(want, RT_RUN_UNFINISHED_SQL);
    assert_string_equal(arr, RT_RUN_UNFINISHED_ARRAY);
    assert_false(rt_run_status_final(RT_RUN_WAITING));
    assert_false(rt_run_status_final(RT_RUN_PAUSED));
    assert_true(rt_run_status_final(RT_RUN_COMPLETED));
}

static void migration_check_matches(void **state)
{
    (void)state;
    const char *src = getenv("RATCHET_SOURCE_DIR");
    assert_non_null(src);
    char path[1024];
    snprintf(path, sizeof path, "%s/schemas/migrations/050_run_pause.sql", src);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char sql[1 << 16];
    size_t n = fread(sql, 1, sizeof sql - 1, f);
    fclose(f);
    sql[n] = '\0';
    /* the runs table's check: status in (...) */
    char *c = strstr(sql, "check (status in (");
    assert_non_null(c);
    c = strchr(c, '(');
    c = strchr(c + 1, '(');
    char *end = strchr(c, ')');
    assert_non_null(end);
    int words = 0;
    for (char *p = c; p < end; p++) {
        if (*p != '\'')
            continue;
        char *q = strchr(p + 1, '\'');
        char word[64];
        snprintf(word, sizeof word, "%.*s", (int)(q - p - 1), p + 1);
        rt_run_status s;
        if (!rt_run_status_parse(word, &s))
            fail_msg("050_run_pause.sql allows status '%s', which run_status.h does not know", word);
        words++;
        p = q;
    }
    assert_int_equal(words, RT_RUN_STATUS_COUNT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(unfinished_lists),
        cmocka_unit_test(migration_check_matches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
