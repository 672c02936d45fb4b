/* test_registry.c — the pure pieces of the workflow registry: the unified diff history and
 * proposals show, refcounted snapshots of the live workflow set, the on_resume key. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "textdiff.h"
#include "workflow.h"
#include "workflow_live.h"

static void test_diff_equal_is_empty(void **state)
{
    (void)state;
    char *d = rt_text_diff("a\nb\n", "a\nb\n", "x", "y");
    assert_non_null(d);
    assert_string_equal(d, "");
    free(d);
}

static void test_diff_change_with_context(void **state)
{
    (void)state;
    const char *a = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
    const char *b = "1\n2\n3\n4\nFIVE\n6\n7\n8\n9\n";
    char *d = rt_text_diff(a, b, "old", "new");
    assert_non_null(d);
    assert_string_equal(d, "--- old\n+++ new\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+FIVE\n 6\n 7\n 8\n");
    free(d);
}

static void test_diff_from_nothing_and_two_hunks(void **state)
{
    (void)state;
    char *d = rt_text_diff(NULL, "a\nb\n", "/dev/null", "w@1");
    assert_string_equal(d, "--- /dev/null\n+++ w@1\n@@ -0,0 +1,2 @@\n+a\n+b\n");
    free(d);
    const char *a = "a\n1\n2\n3\n4\n5\n6\n7\n8\nz\n";
    const char *b = "A\n1\n2\n3\n4\n5\n6\n7\n8\nZ\n";
    d = rt_text_diff(a, b, "o", "n");
    assert_non_null(strstr(d, "@@ -1,4 +1,4 @@\n-a\n+A\n"));
    assert_non_null(strstr(d, "@@ -7,4 +7,4 @@\n 6\n 7\n 8\n-z\n+Z\n"));
    free(d);
}

static void test_diff_too_long_replaces_all(void **state)
{
    (void)state;
    size_t n = RT_TEXTDIFF_MAX_LINES + 1;
    char *a = malloc(n * 2 + 1), *b = malloc(n * 2 + 1);
    for (size_t i = 0; i < n; i++) {
        memcpy(a + 2 * i, "a\n", 2);
        memcpy(b + 2 * i, i == 5 ? "b\n" : "a\n", 2);
    }
    a[2 * n] = b[2 * n] = '\0';
    char *d = rt_text_diff(a, b, "o", "n");
    assert_non_null(d);
    char hunk[64];
    snprintf(hunk, sizeof hunk, "@@ -1,%zu +1,%zu @@\n", n, n);
    assert_non_null(strstr(d, hunk));
    free(d);
    free(a);
    free(b);
}

static rt_workflow_set *one_set(const char *value)
{
    char text[256];
    snprintf(text, sizeof text, "{\"id\": \"w\", \"steps\": [{\"id\": \"v\", \"uses\": \"transform\", \"with\": {\"value\": \"%s\"}}]}",
             value);
    rt_workflow *wf = NULL;
    rt_error err;
    assert_int_equal(rt_workflow_parse(text, strlen(text), NULL, &wf, &err), RT_OK);
    rt_workflow_set *set = calloc(1, sizeof *set);
    set->items = calloc(1, sizeof *set->items);
    set->items[0] = wf;
    set->n = 1;
    return set;
}

/* A snapshot stays valid (ASan would see a use after free) while held across swaps. */
static void test_live_snapshots(void **state)
{
    (void)state;
    rt_workflow_live *l = NULL;
    rt_error err;
    assert_int_equal(rt_workflow_live_new(one_set("v1"), &l, &err), RT_OK);
    const rt_workflow_set *h = rt_workflow_live_handle(l);
    assert_int_equal(h->n, 0);
    const rt_workflow_set *s1 = rt_workflow_set_acquire(h);
    assert_int_equal(s1->n, 1);
    /* A holder passing its snapshot on (an ingest batch given the executor's snapshot):
     * acquiring it again counts again, so the inner release leaves it held. */
    const rt_workflow_set *inner = rt_workflow_set_acquire(s1);
    assert_ptr_equal(inner, s1);
    rt_workflow_set_release(inner);
    char hash1[65];
    memcpy(hash1, s1->items[0]->hash, sizeof hash1);
    assert_int_equal(rt_workflow_live_swap(l, one_set("v2")), 2);
    assert_int_equal(rt_workflow_live_swap(l, one_set("v3")), 3);
    assert_string_equal(s1->items[0]->hash, hash1); /* still v1 for its holder */
    const rt_workflow_set *s3 = rt_workflow_set_acquire(h);
    assert_string_not_equal(s3->items[0]->hash, hash1);
    rt_workflow_set_release(s1); /* frees v1 */
    rt_workflow_set_release(s3); /* current: kept */
    const rt_workflow_set *again = rt_workflow_set_acquire(h);
    assert_ptr_equal(again, s3);
    rt_workflow_set_release(again);
    /* A plain set passes through. */
    rt_workflow_set *plain = one_set("p");
    assert_ptr_equal(rt_workflow_set_acquire(plain), plain);
    rt_workflow_set_release(plain);
    rt_workflow_set_free(plain);
    assert_null(rt_workflow_set_acquire(NULL));
    rt_workflow_live_free(l);
}

static void test_on_resume_key(void **state)
{
    (void)state;
    const char *base = "{\"id\": \"w\", %s \"steps\": [{\"id\": \"v\", \"uses\": \"log\", \"with\": {\"message\": \"m\"}}]}";
    char text[256];
    rt_workflow *wf = NULL;
    rt_error err;
    snprintf(text, sizeof text, base, "");
    assert_int_equal(rt_workflow_parse(text, strlen(text), NULL, &wf, &err), RT_OK);
    assert_false(wf->on_resume_skip);
    rt_workflow_free(wf);
    snprintf(text, sizeof text, base, "\"on_resume\": \"skip\",");
    assert_int_equal(rt_workflow_parse(text, strlen(text), NULL, &wf, &err), RT_OK);
    assert_true(wf->on_resume_skip);
    rt_workflow_free(wf);
    snprintf(text, sizeof text, base, "\"on_resume\": \"later\",");
    assert_int_equal(rt_workflow_parse(text, strlen(text), NULL, &wf, &err), RT_ERR_INVALID);
    assert_non_null(strstr(err.msg, "$.on_resume"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diff_equal_is_empty),
        cmocka_unit_test(test_diff_change_with_context),
        cmocka_unit_test(test_diff_from_nothing_and_two_hunks),
        cmocka_unit_test(test_diff_too_long_replaces_all),
        cmocka_unit_test(test_live_snapshots),
        cmocka_unit_test(test_on_resume_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
