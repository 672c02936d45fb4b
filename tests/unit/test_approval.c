/* test_approval.c — the parts of approvals and the audit log that need no server: the
 * worked example of docs/approvals-and-security.md (a fixed key and decision give a
 * fixed signature, the one Python's `cryptography` computes), signatures refused after
 * any change, the decision shape rules, approvers files, action hashes, audit record
 * hashes, the agent rules and the approval step's suspension. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "approval.h"
#include "audit.h"
#include "step.h"
#include "util.h"

/* RFC 8032 test 1's secret key: its public key is d75a9801...7511a. */
static const char *const SEED_HEX = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
static const char *const PUB_B64 = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
static const char *const DECISION =
    "{\"run_id\": \"01930a1e-5c4b-7d2e-9f10-3a4b5c6d7e8f\", \"decision\": \"approve\", \"approver\": \"ops-lead\","
    " \"comment\": \"ok, ship it\", \"ts\": 1732300000000, \"nonce\": \"5f2b8c1e9a7d4e3f\","
    " \"action_hash\": \"3b7f6c9e2a1d4b8f0e5c7a9d1b3f5e7c9a2d4f6b8e0c1a3d5f7b9e2c4a6d8f0b\"}";
static const char *const CANONICAL =
    "ratchet.approval.v1\n"
    "{\"action_hash\":\"3b7f6c9e2a1d4b8f0e5c7a9d1b3f5e7c9a2d4f6b8e0c1a3d5f7b9e2c4a6d8f0b\",\"approver\":\"ops-lead\","
    "\"comment\":\"ok, ship it\",\"decision\":\"approve\",\"nonce\":\"5f2b8c1e9a7d4e3f\","
    "\"run_id\":\"01930a1e-5c4b-7d2e-9f10-3a4b5c6d7e8f\",\"ts\":1732300000000}";
/* Computed independently with Python's cryptography (Ed25519PrivateKey.sign). */
static const char *const SIG_B64 =
    "Bx1xh//wGZvYYMQF24segANHNwQx0PQK3LKLrse+A9ih5nvSvG5n85ea0eL3TZqPcXXQLYpyEONFYEqfmXfCAQ==";

static void seed_bytes(unsigned char seed[32])
{
    for (int i = 0; i < 32; i++) {
        unsigned v;
        sscanf(SEED_HEX + 2 * i, "%2x", &v);
        seed[i] = (unsigned char)v;
    }
}

static json_t *load(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, 0, &jerr);
    if (!v)
        fail_msg("bad test JSON: %s", jerr.text);
    return v;
}

static void test_worked_example(void **state)
{
    (void)state;
    json_t *d = load(DECISION);
    size_t len = 0;
    char *canon = rt_approval_canonical(d, &len);
    assert_string_equal(canon, CANONICAL);
    assert_int_equal(len, strlen(CANONICAL));
    unsigned char seed[32];
    seed_bytes(seed);
    char sig[100], pub[64];
    rt_error err;
    assert_int_equal(rt_approval_sign_raw(seed, canon, len, sig, pub, &err), RT_OK);
    assert_string_equal(pub, PUB_B64);
    assert_string_equal(sig, SIG_B64);

    /* The same key through an approvers file verifies it. */
    char file[200];
    snprintf(file, sizeof file, "# approvers\n\nops-lead %s\ncfo  %s\n", PUB_B64, PUB_B64);
    rt_approvers *a = NULL;
    assert_int_equal(rt_approvers_parse(file, strlen(file), "approvers", &a, &err), RT_OK);
    assert_int_equal(rt_approvers_count(a), 2);
    unsigned char raw[32];
    assert_true(rt_approvers_find(a, "ops-lead", raw));
    assert_false(rt_approvers_find(a, "ops", raw));
    assert_true(rt_approval_verify(raw, canon, len, sig));

    /* A signed decision with its sig is what travels: canonical drops "sig". */
    json_object_set_new(d, "sig", json_string(sig));
    assert_int_equal(rt_approval_decision_check(d, &err), RT_OK);
    char *again = rt_approval_canonical(d, NULL);
    assert_string_equal(again, CANONICAL);
    free(again);

    /* Any change breaks it: another run, another hash, one more space, another signature. */
    const char *fields[] = {"run_id", "action_hash", "comment", "decision", NULL};
    const char *values[] = {"01930a1e-5c4b-7d2e-9f10-3a4b5c6d7e80",
                            "0b7f6c9e2a1d4b8f0e5c7a9d1b3f5e7c9a2d4f6b8e0c1a3d5f7b9e2c4a6d8f0b", "ok, ship it ",
                            "reject", NULL};
    for (int i = 0; fields[i]; i++) {
        json_t *x = json_deep_copy(d);
        json_object_set_new(x, fields[i], json_string(values[i]));
        size_t xl;
        char *xc = rt_approval_canonical(x, &xl);
        assert_false(rt_approval_verify(raw, xc, xl, sig));
        free(xc);
        json_decref(x);
    }
    char forged[100];
    snprintf(forged, sizeof forged, "%s", sig);
    forged[10] = forged[10] == 'A' ? 'B' : 'A';
    assert_false(rt_approval_verify(raw, canon, len, forged));
    assert_false(rt_approval_verify(raw, canon, len, "not base64"));
    assert_false(rt_approval_verify(raw, canon, len, ""));
    rt_approvers_free(a);
    free(canon);
    json_decref(d);
}

static void test_approvers_file_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text, *needle;
    } cases[] = {
        {"ops-lead\n", "expected `id public-key`"},
        {"ops-lead abc\n", "base64 of 32 raw"},
        {"-x 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n", "approver id"},
        {"a 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo= extra\n", "unexpected text"},
        {"a 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\na 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n",
         "approvers:2: this approver id is listed twice"},
        {"a 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo\n", "base64"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rt_approvers *a = NULL;
        rt_error err = {0};
        if (rt_approvers_parse(cases[i].text, strlen(cases[i].text), "approvers", &a, &err) != RT_ERR_INVALID)
            fail_msg("case %zu accepted", i);
        if (!strstr(err.msg, cases[i].needle))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.msg, cases[i].needle);
    }
}

static void test_decision_shape(void **state)
{
    (void)state;
    static const struct {
        const char *patch, *needle; /* a key set to a JSON value ("-key" removes it) */
    } cases[] = {
        {"{\"run_id\": \"nope\"}", "run_id"},
        {"{\"decision\": \"maybe\"}", "\"approve\" or \"reject\""},
        {"{\"approver\": \"a b\"}", "approver"},
        {"{\"ts\": \"1\"}", "$.data.ts"},
        {"{\"ts\": -5}", "$.data.ts"},
        {"{\"nonce\": \"short\"}", "nonce"},
        {"{\"nonce\": \"has space 123\"}", "nonce"},
        {"{\"action_hash\": \"ABC\"}", "action_hash"},
        {"{\"comment\": \"bell\\u0007\"}", "control character"},
        {"{\"comment\": 5}", "must be a string"},
        {"{\"step_id\": \"Bad Step\"}", "step_id"},
        {"{\"extra\": 1}", "unknown key"},
        {"{\"-sig\": 0}", "$.data.sig is required"},
    };
    rt_error err;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *d = load(DECISION);
        json_object_set_new(d, "sig", json_string(SIG_B64));
        json_t *patch = load(cases[i].patch);
        const char *k;
        json_t *v;
        json_object_foreach(patch, k, v) {
            if (k[0] == '-')
                json_object_del(d, k + 1);
            else
                json_object_set(d, k, v);
        }
        if (rt_approval_decision_check(d, &err) != RT_ERR_INVALID)
            fail_msg("case %zu (%s) accepted", i, cases[i].patch);
        if (!strstr(err.msg, cases[i].needle))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.msg, cases[i].needle);
        json_decref(patch);
        json_decref(d);
    }
    json_t *arr = load("[1]");
    assert_int_equal(rt_approval_decision_check(arr, &err), RT_ERR_INVALID);
    json_decref(arr);
    /* A newline and a tab are fine, and so is UTF-8. */
    json_t *d = load(DECISION);
    json_object_set_new(d, "sig", json_string(SIG_B64));
    json_object_set_new(d, "comment", json_string("line one\n\tline two — ok ✓"));
    json_object_set_new(d, "step_id", json_string("pay"));
    assert_int_equal(rt_approval_decision_check(d, &err), RT_OK);
    json_decref(d);
}

static void test_action_hash(void **state)
{
    (void)state;
    json_t *ev = load("{\"name\": \"agent.task.requested\", \"id\": \"e1\", \"data\": {\"b\": 2, \"a\": 1}}");
    char h1[65], h2[65], h3[65], h4[65], want[65];
    rt_approval_action_hash("abc", ev, NULL, NULL, h1);
    const char *text = "abc\n{\"data\":{\"a\":1,\"b\":2},\"id\":\"e1\",\"name\":\"agent.task.requested\"}";
    rt_sha256_hex(text, strlen(text), want);
    assert_string_equal(h1, want);
    rt_approval_action_hash("abd", ev, NULL, NULL, h2);
    assert_string_not_equal(h1, h2);
    json_t *with = load("{\"approvers\": [\"cfo\"], \"message\": \"pay 10\"}");
    rt_approval_action_hash("abc", ev, "pay", with, h3);
    const char *t3 = "abc\n{\"data\":{\"a\":1,\"b\":2},\"id\":\"e1\",\"name\":\"agent.task.requested\"}\npay\n"
                     "{\"approvers\":[\"cfo\"],\"message\":\"pay 10\"}";
    rt_sha256_hex(t3, strlen(t3), want);
    assert_string_equal(h3, want);
    json_object_set_new(with, "message", json_string("pay 1000"));
    rt_approval_action_hash("abc", ev, "pay", with, h4);
    assert_string_not_equal(h3, h4);
    json_decref(with);
    json_decref(ev);
}

static void test_gates(void **state)
{
    (void)state;
    rt_workflow wf = {0};
    json_t *agent = load("{\"actor\": {\"type\": \"agent\", \"id\": \"a7\"}}");
    json_t *user = load("{\"actor\": {\"type\": \"user\", \"id\": \"u\"}}");
    json_t *none = load("{}");
    assert_false(rt_workflow_gates(&wf, agent));
    wf.approval = load("{\"required_for\": [\"agent\", \"service\"], \"approvers\": [\"ops-lead\"]}");
    assert_true(rt_workflow_gates(&wf, agent));
    assert_false(rt_workflow_gates(&wf, user));
    assert_true(rt_workflow_gates(&wf, none)); /* no actor means service */
    json_decref(wf.approval);
    json_decref(agent);
    json_decref(user);
    json_decref(none);
}

static void test_audit_hash(void **state)
{
    (void)state;
    char h1[65], h2[65], h3[65], want[65];
    rt_audit_hash(RT_AUDIT_GENESIS, 1, "2026-01-01T00:00:00.000Z", "cli:root", "run.manual", "r1",
                  "{\"workflow\": \"hello\", \"n\": 1}", h1);
    const char *text = RT_AUDIT_GENESIS "{\"action\":\"run.manual\",\"actor\":\"cli:root\",\"at\":\"2026-01-01T00:00:00.000Z\","
                                        "\"details\":{\"n\":1,\"workflow\":\"hello\"},\"seq\":1,\"subject\":\"r1\"}";
    rt_sha256_hex(text, strlen(text), want);
    assert_string_equal(h1, want);
    /* Spacing of the stored text does not matter; content does, and so does the link. */
    rt_audit_hash(RT_AUDIT_GENESIS, 1, "2026-01-01T00:00:00.000Z", "cli:root", "run.manual", "r1",
                  "{\"n\":1,\"workflow\":\"hello\"}", h2);
    assert_string_equal(h1, h2);
    rt_audit_hash(RT_AUDIT_GENESIS, 1, "2026-01-01T00:00:00.000Z", "cli:root", "run.manual", "r1",
                  "{\"n\":2,\"workflow\":\"hello\"}", h3);
    assert_string_not_equal(h1, h3);
    rt_audit_hash(h1, 1, "2026-01-01T00:00:00.000Z", "cli:root", "run.manual", "r1", "{\"n\":1,\"workflow\":\"hello\"}",
                  h3);
    assert_string_not_equal(h1, h3);
}

static void test_keygen_and_sign(void **state)
{
    (void)state;
    char dir[] = "/tmp/rt-keygen-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char line[256], path[300];
    rt_error err;
    assert_int_equal(rt_approval_keygen(dir, "ops-lead", line, sizeof line, &err), RT_OK);
    assert_int_equal(strncmp(line, "ops-lead ", 9), 0);
    snprintf(path, sizeof path, "%s/ops-lead.key", dir);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    /* Never overwritten. */
    assert_int_equal(rt_approval_keygen(dir, "ops-lead", line + 100, 100, &err), RT_ERR_CONFLICT);
    assert_int_equal(rt_approval_keygen(dir, "bad id", line + 100, 100, &err), RT_ERR_INVALID);
    rt_approvers *a = NULL;
    assert_int_equal(rt_approvers_parse(line, strlen(line), "x", &a, &err), RT_OK);
    unsigned char pub[32];
    assert_true(rt_approvers_find(a, "ops-lead", pub));
    char sig[100];
    assert_int_equal(rt_approval_sign_file(path, "hello", 5, sig, &err), RT_OK);
    assert_true(rt_approval_verify(pub, "hello", 5, sig));
    assert_false(rt_approval_verify(pub, "hellO", 5, sig));
    rt_approvers_free(a);
    char pubpath[300];
    snprintf(pubpath, sizeof pubpath, "%s/ops-lead.pub", dir);
    unlink(path);
    unlink(pubpath);
    rmdir(dir);
}

extern const rt_step_type rt_step_approval;

static void test_step(void **state)
{
    (void)state;
    const rt_step_type *t = rt_step_type_find("approval");
    assert_non_null(t);
    rt_error err;
    json_t *bad = load("{\"approvers\": []}");
    assert_int_equal(t->validate(bad, &err), RT_ERR_INVALID);
    json_decref(bad);
    bad = load("{\"approvers\": [\"cfo\"], \"amount\": 1}");
    assert_int_equal(t->validate(bad, &err), RT_ERR_INVALID);
    json_decref(bad);
    bad = load("{\"approvers\": [\"cfo\"], \"timeout\": \"soon\"}");
    assert_int_equal(t->validate(bad, &err), RT_ERR_INVALID);
    json_decref(bad);
    json_t *with = load("{\"approvers\": [\"cfo\"], \"timeout\": \"1h\", \"message\": \"pay\"}");
    assert_int_equal(t->validate(with, &err), RT_OK);
    rt_step_ctx ctx = {.run_id = "r", .step_id = "pay"};
    rt_step_result res = {0};
    t->execute(&ctx, with, &res);
    assert_int_equal(res.outcome, RT_STEP_SUSPEND);
    assert_int_equal(res.resume_at_ms, 0);
    json_t *gate = json_object_get(res.state, "approval");
    assert_true(json_integer_value(json_object_get(gate, "expires_at")) > rt_now_ms());
    assert_true(json_equal(json_object_get(gate, "with"), with));
    /* Woken without a decision: keeps waiting with the same state. */
    json_t *st = json_incref(res.state);
    rt_step_result_clear(&res);
    ctx.state = st;
    t->execute(&ctx, with, &res);
    assert_int_equal(res.outcome, RT_STEP_SUSPEND);
    assert_ptr_equal(res.state, st);
    rt_step_result_clear(&res);
    json_object_set_new(st, "decision", load("{\"decision\": \"approve\", \"approver\": \"cfo\", \"comment\": \"ok\"}"));
    t->execute(&ctx, with, &res);
    assert_int_equal(res.outcome, RT_STEP_OK);
    assert_string_equal(json_string_value(json_object_get(res.output, "approver")), "cfo");
    rt_step_result_clear(&res);
    json_decref(st);
    json_decref(with);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worked_example), cmocka_unit_test(test_approvers_file_errors),
        cmocka_unit_test(test_decision_shape), cmocka_unit_test(test_action_hash),
        cmocka_unit_test(test_gates),          cmocka_unit_test(test_audit_hash),     cmocka_unit_test(test_keygen_and_sign),
        cmocka_unit_test(test_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
