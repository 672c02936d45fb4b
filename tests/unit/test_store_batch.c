/* test_store_batch.c — the completion batch (store.h rt_store_batch): the JSON text each
 * part becomes for its statement (read back here with jansson, as PostgreSQL's
 * jsonb_to_recordset reads it), string escaping and non-UTF-8 bytes, and ownership
 * through add, copy and move (leaks and double frees show under ASan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store_internal.h"

#define RUN "0190f3a1-0000-7000-8000-000000000001"

/* The part as JSON, parsed (the test fails when it is not valid JSON). */
static json_t *part_json(const rt_store_batch *b, rt_batch_part part)
{
    char *text = rt_store_batch_json(b, part);
    assert_non_null(text);
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    if (!j)
        fail_msg("not JSON (%s): %s", jerr.text, text);
    free(text);
    return j;
}

static const char *sget(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void steps_and_escaping(void **state)
{
    (void)state;
    rt_store_batch b;
    rt_store_batch_init(&b);
    json_t *out = json_pack("{s:[i,s]}", "rows", 1, "two");
    char error[] = "quote \" backslash \\ newline \n ctl \x01 utf8 \xc3\xa9 bad \xff end";
    rt_batch_step row = {.run_id = RUN, .step_id = "fetch", .status = RT_STEP_FAILED, .attempts = 3,
                         .output = out, .error = error, .started_at = 1700000000000, .finished_at = 1700000000500};
    rt_store_batch_add_step(&b, &row);
    json_decref(out); /* the batch holds its own reference */
    error[0] = 'X';   /* and its own copy of the text */
    rt_batch_step pending = {.run_id = RUN, .step_id = "next", .status = RT_STEP_PENDING};
    rt_store_batch_add_step(&b, &pending);

    json_t *j = part_json(&b, RT_BATCH_STEPS);
    assert_int_equal(json_array_size(j), 2);
    json_t *r0 = json_array_get(j, 0), *r1 = json_array_get(j, 1);
    assert_string_equal(sget(r0, "run_id"), RUN);
    assert_string_equal(sget(r0, "step_id"), "fetch");
    assert_string_equal(sget(r0, "status"), "failed");
    assert_int_equal(json_integer_value(json_object_get(r0, "attempts")), 3);
    assert_int_equal(json_integer_value(json_object_get(r0, "started_at")), 1700000000000);
    assert_string_equal(json_string_value(json_array_get(json_object_get(json_object_get(r0, "output"), "rows"), 1)), "two");
    assert_string_equal(sget(r0, "error"),
                        "quote \" backslash \\ newline \n ctl \x01 utf8 \xc3\xa9 bad \xef\xbf\xbd end");
    assert_true(json_is_null(json_object_get(r0, "state")));
    assert_string_equal(sget(r1, "status"), "pending");
    assert_true(json_is_null(json_object_get(r1, "output")));
    assert_true(json_is_null(json_object_get(r1, "error")));
    json_decref(j);
    rt_store_batch_free(&b);
    assert_int_equal(b.n_steps, 0);
}

static void queue_runs_and_small_parts(void **state)
{
    (void)state;
    rt_store_batch b;
    rt_store_batch_init(&b);
    rt_batch_enqueue q = {.run_id = RUN, .step_id = "a", .priority = 2, .slow = true, .run_at = 5, .climit = 0};
    rt_store_batch_add_enqueue(&b, &q);
    rt_batch_requeue rq = {.queue_id = 42, .run_at = 7, .step_id = "a"};
    rt_store_batch_add_requeue(&b, &rq);
    rt_store_batch_add_dequeue(&b, 9);
    rt_store_batch_add_dequeue(&b, 10);
    rt_batch_run run = {.run_id = RUN, .status = RT_RUN_COMPLETED, .started_at = 1, .finished_at = 2, .workflow = "w"};
    rt_store_batch_add_run(&b, &run);
    rt_store_batch_add_drop(&b, RUN);
    rt_store_batch_add_unwait(&b, RUN, "wait");
    json_t *patch = json_pack("{s:{s:s}}", "result", "status", "completed");
    rt_store_batch_add_wake(&b, RUN, "invoke", patch);
    json_decref(patch);

    json_t *j = part_json(&b, RT_BATCH_ENQUEUE);
    json_t *e = json_array_get(j, 0);
    assert_true(json_is_true(json_object_get(e, "slow")));
    assert_true(json_is_null(json_object_get(e, "ckey")));
    assert_int_equal(json_integer_value(json_object_get(e, "priority")), 2);
    json_decref(j);
    j = part_json(&b, RT_BATCH_REQUEUE);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(j, 0), "id")), 42);
    assert_null(json_object_get(json_array_get(j, 0), "step_id")); /* not written */
    json_decref(j);
    j = part_json(&b, RT_BATCH_DEQUEUE);
    assert_int_equal(json_integer_value(json_array_get(j, 1)), 10);
    json_decref(j);
    j = part_json(&b, RT_BATCH_RUNS);
    assert_string_equal(sget(json_array_get(j, 0), "status"), "completed");
    assert_null(json_object_get(json_array_get(j, 0), "workflow")); /* not written */
    json_decref(j);
    j = part_json(&b, RT_BATCH_DROP);
    assert_string_equal(json_string_value(json_array_get(j, 0)), RUN);
    json_decref(j);
    j = part_json(&b, RT_BATCH_WAKE);
    assert_string_equal(sget(json_object_get(json_object_get(json_array_get(j, 0), "patch"), "result"), "status"),
                        "completed");
    json_decref(j);
    j = part_json(&b, RT_BATCH_ATTEMPTS); /* empty part: an empty array */
    assert_int_equal(json_array_size(j), 0);
    json_decref(j);
    rt_store_batch_free(&b);
}

static void copy_and_move(void **state)
{
    (void)state;
    rt_store_batch part, copy, all;
    rt_store_batch_init(&part);
    rt_store_batch_init(&copy);
    rt_store_batch_init(&all);
    rt_batch_attempt a = {.run_id = RUN, .step_id = "s", .attempt = 1, .error = "boom"};
    rt_store_batch_add_attempt(&part, &a);
    rt_batch_requeue rq = {.queue_id = 1, .run_at = 100, .step_id = "s"};
    rt_store_batch_add_requeue(&part, &rq);
    rt_store_batch_copy(&copy, &part);
    copy.requeue[0].run_at = 200; /* the copy is its own */
    assert_int_equal(part.requeue[0].run_at, 100);
    copy.notify = true;
    rt_store_batch_move(&all, &copy);
    rt_store_batch_move(&all, &part);
    assert_int_equal(copy.n_requeue + part.n_requeue + copy.n_attempts + part.n_attempts, 0);
    assert_int_equal(all.n_requeue, 2);
    assert_int_equal(all.n_attempts, 2);
    assert_int_equal(all.requeue[0].run_at, 200);
    assert_int_equal(all.requeue[1].run_at, 100);
    assert_true(all.notify);
    assert_false(all.nomem);
    rt_store_batch_free(&all);
    rt_store_batch_free(&part); /* empty: nothing to free twice */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(steps_and_escaping),
        cmocka_unit_test(queue_runs_and_small_parts),
        cmocka_unit_test(copy_and_move),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
