/* test_outcome.c — a run's outcome from its steps' states (engine/run/outcome.h), as a
 * table: each row is a workflow's steps in order and what the run becomes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "outcome.h"

#define MAXS 4

/* Steps as short words: "completed", "failed!" (continue_on_error), "-" (no row, needs met),
 * "-blocked" (no row, needs not met). */
typedef struct row {
    const char *name;
    bool ended;
    const char *steps[MAXS];
    rt_outcome_kind kind;
    rt_run_status status;
    size_t failed_step;
    const char *starts; /* which steps start, as '1'/'0' per step */
} row;

static const row table[] = {
    {"all completed", false, {"completed", "completed"}, RT_OUTCOME_DONE, RT_RUN_COMPLETED, 0, "00"},
    {"completed and skipped", false, {"completed", "skipped"}, RT_OUTCOME_DONE, RT_RUN_COMPLETED, 0, "00"},
    {"one failed", false, {"completed", "failed", "-blocked"}, RT_OUTCOME_FAILED, RT_RUN_FAILED, 1, "000"},
    {"first failure wins", false, {"failed", "failed"}, RT_OUTCOME_FAILED, RT_RUN_FAILED, 0, "00"},
    {"failed with continue_on_error, rest done", false, {"failed!", "completed"}, RT_OUTCOME_DONE, RT_RUN_PARTIAL,
     0, "00"},
    {"continue_on_error then a real failure", false, {"failed!", "failed"}, RT_OUTCOME_FAILED, RT_RUN_FAILED, 1,
     "00"},
    {"failure beats sleeping", false, {"sleeping", "failed"}, RT_OUTCOME_FAILED, RT_RUN_FAILED, 1, "00"},
    {"failed with continue_on_error, next ready", false, {"failed!", "-"}, RT_OUTCOME_UNFINISHED, RT_RUN_RUNNING, 0,
     "01"},
    {"nothing scheduled yet", false, {"-", "-blocked"}, RT_OUTCOME_UNFINISHED, RT_RUN_RUNNING, 0, "10"},
    {"one running", false, {"completed", "running"}, RT_OUTCOME_UNFINISHED, RT_RUN_RUNNING, 0, "00"},
    {"pending and retrying", false, {"pending", "retrying"}, RT_OUTCOME_UNFINISHED, RT_RUN_RUNNING, 0, "00"},
    {"sleeping", false, {"completed", "sleeping"}, RT_OUTCOME_UNFINISHED, RT_RUN_SLEEPING, 0, "00"},
    {"waiting", false, {"waiting", "completed"}, RT_OUTCOME_UNFINISHED, RT_RUN_WAITING, 0, "00"},
    {"sleeping beats waiting", false, {"waiting", "sleeping"}, RT_OUTCOME_UNFINISHED, RT_RUN_SLEEPING, 0, "00"},
    {"waiting with a ready step", false, {"waiting", "-"}, RT_OUTCOME_UNFINISHED, RT_RUN_WAITING, 0, "01"},
    {"ended (cancelled meanwhile) starts nothing", true, {"completed", "-"}, RT_OUTCOME_ENDED, RT_RUN_RUNNING, 0,
     "00"},
    {"ended with a failed step", true, {"failed", "-"}, RT_OUTCOME_ENDED, RT_RUN_RUNNING, 0, "00"},
    {"blocked step keeps the run running", false, {"completed", "-blocked"}, RT_OUTCOME_UNFINISHED, RT_RUN_RUNNING,
     0, "00"},
};

static size_t parse_steps(const row *r, rt_step_state *out)
{
    size_t n = 0;
    for (; n < MAXS && r->steps[n]; n++) {
        const char *w = r->steps[n];
        rt_step_state *s = &out[n];
        memset(s, 0, sizeof *s);
        if (w[0] == '-') {
            s->needs_met = strcmp(w, "-blocked") != 0;
            continue;
        }
        char word[32];
        snprintf(word, sizeof word, "%s", w);
        size_t len = strlen(word);
        if (word[len - 1] == '!') {
            s->continue_on_error = true;
            word[len - 1] = '\0';
        }
        s->scheduled = true;
        s->needs_met = true;
        if (!rt_step_status_parse(word, &s->status))
            fail_msg("row '%s': unknown step status '%s'", r->name, word);
    }
    return n;
}

static void outcome_table(void **state)
{
    (void)state;
    for (size_t t = 0; t < sizeof table / sizeof table[0]; t++) {
        const row *r = &table[t];
        rt_step_state steps[MAXS];
        size_t n = parse_steps(r, steps);
        rt_run_outcome o = rt_run_outcome_of(r->ended, steps, n);
        if (o.kind != r->kind)
            fail_msg("row '%s': kind %d, want %d", r->name, (int)o.kind, (int)r->kind);
        if (o.kind != RT_OUTCOME_ENDED && o.status != r->status)
            fail_msg("row '%s': status %s, want %s", r->name, rt_run_status_name(o.status),
                     rt_run_status_name(r->status));
        if (o.kind == RT_OUTCOME_FAILED && o.failed_step != r->failed_step)
            fail_msg("row '%s': failed step %zu, want %zu", r->name, o.failed_step, r->failed_step);
        assert_int_equal(strlen(r->starts), n);
        for (size_t i = 0; i < n; i++) {
            bool want = r->starts[i] == '1';
            if (rt_run_outcome_starts(&o, &steps[i]) != want)
                fail_msg("row '%s': step %zu %s, want %s", r->name, i, want ? "not started" : "started",
                         want ? "started" : "not");
        }
    }
}

static void no_steps_is_done(void **state)
{
    (void)state;
    rt_run_outcome o = rt_run_outcome_of(false, NULL, 0);
    assert_int_equal(o.kind, RT_OUTCOME_DONE);
    assert_int_equal(o.status, RT_RUN_COMPLETED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(outcome_table),
        cmocka_unit_test(no_steps_is_done),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
