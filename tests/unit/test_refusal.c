/* test_refusal.c — refusal records stay small and an actor cannot flood the audit log
 * (engine/run/refusal.c), and the agent boundary on runs (DESIGN §6). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "refusal.h"

static size_t dumped_len(const json_t *v)
{
    char *t = json_dumps(v, JSON_COMPACT);
    size_t n = t ? strlen(t) : 0;
    free(t);
    return n;
}

static void small_details_kept(void **state)
{
    (void)state;
    json_t *d = json_pack("{s:s, s:i}", "reason", "an agent never approves", "n", 3);
    json_t *b = rt_refusal_bound(d);
    assert_true(json_equal(d, b));
    json_decref(b);
    json_decref(d);
}

static void large_details_bounded(void **state)
{
    (void)state;
    size_t big = 200 * 1024;
    char *s = malloc(big + 1);
    memset(s, 'x', big);
    s[big] = '\0';
    s[10] = (char)0xC3; /* a two-byte character across the cut must not be split */
    s[11] = (char)0xA9;
    json_t *nested = json_pack("{s:s}", "comment", s);
    json_t *d = json_pack("{s:s, s:s, s:o, s:s}", "reason", "agent", "comment", s, "decision", nested, "event_id", "e1");
    json_t *b = rt_refusal_bound(d);
    assert_true(dumped_len(b) <= RT_REFUSAL_DETAILS_MAX);
    assert_true(json_is_true(json_object_get(b, "truncated")));
    assert_int_equal(json_string_length(json_object_get(b, "sha256")), 64);
    assert_string_equal(json_string_value(json_object_get(b, "reason")), "agent");
    assert_string_equal(json_string_value(json_object_get(b, "event_id")), "e1");
    assert_non_null(strstr(json_string_value(json_object_get(b, "decision")), "sha256:"));
    assert_true(json_string_length(json_object_get(b, "comment")) < 300);
    json_decref(b);
    json_decref(d);
    free(s);
}

static void rate_limited_per_actor(void **state)
{
    (void)state;
    int64_t now = 1000000, suppressed = -1;
    int written = 0;
    for (int i = 0; i < 100; i++)
        written += rt_refusal_admit("agent:flood", now + i, &suppressed);
    assert_int_equal(written, RT_REFUSAL_BURST);
    /* another actor is not held back by the first */
    assert_true(rt_refusal_admit("agent:other", now, &suppressed));
    /* the next window writes again and says how many were not written */
    assert_true(rt_refusal_admit("agent:flood", now + RT_REFUSAL_WINDOW_MS + 1, &suppressed));
    assert_int_equal(suppressed, 100 - RT_REFUSAL_BURST);
}

static void agent_rules(void **state)
{
    (void)state;
    const char *why = NULL;
    rt_agent_target sys = {.workflow_id = "ledger", .system = true, .entity_id = "acct_1"};
    rt_agent_target mine = {.workflow_id = "task", .entity_id = "acct_1"};
    rt_agent_target other = {.workflow_id = "task", .entity_id = "acct_2"};
    assert_true(rt_agent_may("acct_1", RT_AGENT_TRIGGER, &sys, &why));
    assert_null(why);
    assert_false(rt_agent_may("acct_1", RT_AGENT_CANCEL, &sys, &why));
    assert_non_null(strstr(why, "system workflow"));
    assert_true(rt_agent_may("acct_1", RT_AGENT_CANCEL, &mine, &why));
    assert_false(rt_agent_may("acct_1", RT_AGENT_CANCEL, &other, &why));
    assert_true(rt_agent_may("acct_1", RT_AGENT_READ_RUN, &mine, &why));
    assert_false(rt_agent_may("acct_1", RT_AGENT_READ_RUN, &other, &why));
    assert_false(rt_agent_may(NULL, RT_AGENT_READ_RUN, &other, &why));
    assert_false(rt_agent_may("acct_1", RT_AGENT_APPROVE, &mine, &why));
    assert_string_equal(why, "an agent never approves");
    assert_false(rt_agent_may("acct_1", RT_AGENT_SCHEDULE, NULL, &why));
    assert_non_null(strstr(why, "schedules"));
    assert_false(rt_agent_may("acct_1", RT_AGENT_WAKE, &sys, &why));
    assert_non_null(strstr(why, "wakes"));
    assert_false(rt_agent_may("acct_1", RT_AGENT_WAKE, &other, &why));
    assert_true(rt_agent_may("acct_1", RT_AGENT_WAKE, &mine, &why));
    /* an agent without an entity owns no run, even one without an entity */
    rt_agent_target anon = {.workflow_id = "task"};
    assert_false(rt_agent_may(NULL, RT_AGENT_CANCEL, &anon, &why));
    assert_false(rt_agent_may("acct_1", (rt_agent_action)99, &mine, &why));
    assert_string_equal(rt_agent_action_name((rt_agent_action)99), "?");
}

static void agent_boundary(void **state)
{
    (void)state;
    const char *why = NULL;
    assert_true(rt_agent_may_touch("e1", false, "e1", &why));
    assert_null(why);
    assert_false(rt_agent_may_touch("e1", true, "e1", &why)); /* a system workflow's run */
    assert_non_null(why);
    assert_false(rt_agent_may_touch("e1", false, "e2", NULL));
    assert_false(rt_agent_may_touch(NULL, false, NULL, NULL)); /* no entity: nothing to own */
    json_t *svc = json_pack("{s:{s:s}}", "actor", "type", "service");
    json_t *agent = json_pack("{s:{s:s}, s:s}", "actor", "type", "agent", "entity_id", "e2");
    assert_true(rt_event_may_touch(svc, true, "e1", NULL));
    assert_false(rt_event_may_touch(agent, false, "e1", NULL));
    assert_true(rt_event_may_touch(agent, false, "e2", NULL));
    json_decref(svc);
    json_decref(agent);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(small_details_kept),
        cmocka_unit_test(large_details_bounded),
        cmocka_unit_test(rate_limited_per_actor),
        cmocka_unit_test(agent_rules),
        cmocka_unit_test(agent_boundary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
