/* test_helpers.h — what the step suites (test_step_*.c) share: running one execution,
 * checking its outcome, checking load-time validation, and running workers side by side.
 * Header-only (static inline), so each suite stays one file and one ctest entry. */
#ifndef RT_TEST_HELPERS_H
#define RT_TEST_HELPERS_H

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "step.h"

/* Runs one execution of type with ctx; takes ownership of with. */
static inline void run_step(const rt_step_type *type, rt_step_ctx *ctx, json_t *with, rt_step_result *res)
{
    assert_non_null(with);
    memset(res, 0, sizeof *res);
    type->execute(ctx, with, res);
    json_decref(with);
}

static inline void expect_ok(const rt_step_result *res)
{
    if (res->outcome != RT_STEP_OK)
        fail_msg("expected OK, got outcome %d: %s", res->outcome, res->error);
}

/* A failure with this retriability whose message mentions needle (when not NULL). */
static inline void expect_fail(const rt_step_result *res, bool retriable, const char *needle)
{
    if (res->outcome != RT_STEP_FAIL)
        fail_msg("expected FAIL, got outcome %d", res->outcome);
    if (res->retriable != retriable)
        fail_msg("expected retriable=%d, got %d: %s", retriable, res->retriable, res->error);
    if (needle && !strstr(res->error, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", res->error, needle);
}

/* type's load-time validation rejects with_json with a message that mentions needle. */
static inline void expect_invalid(const rt_step_type *type, const char *with_json, const char *needle)
{
    json_error_t jerr;
    json_t *with = json_loads(with_json, 0, &jerr);
    if (!with)
        fail_msg("bad test JSON %s: %s", with_json, jerr.text);
    rt_error err = {0};
    rt_status st = type->validate(with, &err);
    json_decref(with);
    if (st != RT_ERR_INVALID)
        fail_msg("%s: expected invalid, got %s", with_json, rt_status_name(st));
    if (!strstr(err.msg, needle))
        fail_msg("%s: error \"%s\" does not mention \"%s\"", with_json, err.msg, needle);
}

static inline void expect_valid(const rt_step_type *type, const char *with_json)
{
    json_t *with = json_loads(with_json, 0, NULL);
    assert_non_null(with);
    rt_error err = {0};
    if (type->validate(with, &err) != RT_OK)
        fail_msg("%s: unexpected error: %s", with_json, err.msg);
    json_decref(with);
}

/* What each thread of run_workers gets: its id (1..n) and the failures it counted. */
struct worker_arg {
    int id;
    int failures;
};

#define MAX_WORKERS 8

/* Runs worker on n threads at once and checks that none of them counted a failure. */
static inline void run_workers(void *(*worker)(void *), int n)
{
    pthread_t th[MAX_WORKERS];
    struct worker_arg args[MAX_WORKERS];
    assert_true(n > 0 && n <= MAX_WORKERS);
    for (int i = 0; i < n; i++) {
        args[i] = (struct worker_arg){.id = i + 1};
        pthread_create(&th[i], NULL, worker, &args[i]);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
}

#endif
