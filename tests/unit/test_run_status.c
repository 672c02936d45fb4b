/* test_run_status.c — one name table each for run and step statuses (engine/lang/run_status.h):
 * they round-trip, the unfinished list is what the SQL statements use, and the database's
 * check constraints allow exactly these words (the steps' in 001_core.sql; the runs' as
 * last redefined, by 050_run_pause.sql). */
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

/* The words of the first `<opener>'a', 'b')` list after `marker` in schemas/migrations/file,
 * each parsed by `known`; returns how many there were. */
static int list_words(const char *file, const char *marker, const char *opener, bool (*known)(const char *))
{
    const char *src = getenv("RATCHET_SOURCE_DIR");
    assert_non_null(src);
    char path[1024];
    snprintf(path, sizeof path, "%s/schemas/migrations/%s", src, file);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char sql[1 << 16];
    size_t n = fread(sql, 1, sizeof sql - 1, f);
    fclose(f);
    sql[n] = '\0';
    char *c = strstr(sql, marker);
    assert_non_null(c);
    c = strstr(c, opener);
    assert_non_null(c);
    c += strlen(opener) - 1;
    char *end = strchr(c, ')');
    assert_non_null(end);
    int words = 0;
    for (char *p = c; p < end; p++) {
        if (*p != '\'')
            continue;
        char *q = strchr(p + 1, '\'');
        char word[64];
        snprintf(word, sizeof word, "%.*s", (int)(q - p - 1), p + 1);
        if (!known(word))
            fail_msg("%s's %s allows status '%s', which run_status.h does not know", file, marker, word);
        words++;
        p = q;
    }
    return words;
}

static int check_words(const char *file, const char *marker, bool (*known)(const char *))
{
    return list_words(file, marker, "check (status in (", known);
}

static bool run_word(const char *w)
{
    rt_run_status s;
    return rt_run_status_parse(w, &s);
}

static bool unfinished_word(const char *w)
{
    rt_run_status s;
    return rt_run_status_parse(w, &s) && !rt_run_status_final(s);
}

static bool step_word(const char *w)
{
    rt_step_status s;
    return rt_step_status_parse(w, &s);
}

static void migration_check_matches(void **state)
{
    (void)state;
    assert_int_equal(check_words("050_run_pause.sql", "add constraint runs_status_check", run_word), RT_RUN_STATUS_COUNT);
    assert_int_equal(check_words("001_core.sql", "create table ratchet.steps", step_word), RT_STEP_STATUS_COUNT);
}

/* The deadline sweep and the singleton admission select `status in RT_RUN_UNFINISHED_SQL`:
 * the partial indexes they need must list every one of those statuses, or PostgreSQL cannot
 * use them and reads every run ever kept (050 added 'paused' to the list, not the indexes). */
static void unfinished_indexes_match(void **state)
{
    (void)state;
    int unfinished = 0;
    for (int i = 0; i < RT_RUN_STATUS_COUNT; i++)
        unfinished += !rt_run_status_final((rt_run_status)i);
    const char *indexes[] = {"create index runs_deadlines", "create index runs_singleton"};
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(list_words("051_unfinished_indexes.sql", indexes[i], "status in (", unfinished_word),
                         unfinished);
}

static void step_round_trip(void **state)
{
    (void)state;
    for (int i = 0; i < RT_STEP_STATUS_COUNT; i++) {
        rt_step_status s;
        const char *name = rt_step_status_name((rt_step_status)i);
        assert_non_null(name);
        assert_true(rt_step_status_parse(name, &s));
        assert_int_equal(s, i);
    }
    rt_step_status s;
    assert_false(rt_step_status_parse("done", &s));
    assert_false(rt_step_status_parse(NULL, &s));
    assert_null(rt_step_status_name(RT_STEP_STATUS_COUNT));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(unfinished_lists),
        cmocka_unit_test(migration_check_matches),
        cmocka_unit_test(unfinished_indexes_match),
        cmocka_unit_test(step_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
