/* test_api.c — the API's pure pieces: the tokens file (a table of refused files, each
 * message naming file and line), constant-time lookup of generated tokens, roles, listen
 * addresses and their loopback rule, and run-list cursors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "api_routes.h"
#include "auth.h"
#include "util.h"

#define H64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define X50 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

static void assert_contains(const char *hay, const char *needle, const char *name)
{
    if (!strstr(hay, needle)) {
        print_error("case %s:\n  message:  %s\n  expected: %s\n", name, hay, needle);
        fail();
    }
}

static void test_tokens_refused(void **state)
{
    (void)state;
    static const struct {
        const char *name, *text, *msg;
    } cases[] = {
        {"short hash", "abc admin\n", "f:1: the first field must be the 64 hex digits"},
        {"non-hex hash", "zz" H64 " admin\n", "f:1: the first field"},
        {"one field", H64 "\n", "f:1: expected \"sha256hex role [entity_id] [holder=ID]\" (1 fields found)"},
        {"bad holder", H64 " operator holder=-x\n", "f:1: holder= must be an approver id"},
        {"holder and five fields", H64 " agent a b holder=x\n", "f:1: expected"},
        {"holder not last", H64 " operator holder=x y\n", "f:1: expected"},
        {"four fields", H64 " agent a b\n", "f:1: expected"},
        {"bad role", H64 " root\n", "f:1: unknown role \"root\" (expected admin, operator, agent or viewer)"},
        {"agent without entity", H64 " agent\n", "f:1: an agent token needs an entity_id"},
        {"viewer with entity", H64 " viewer acct\n", "f:1: only agent tokens have an entity_id"},
        {"line number counts comments", "# c\n\n" H64 " boss\n", "f:3: unknown role"},
        {"duplicate", H64 " admin\n" H64 " viewer\n", "f:2: the same token hash is listed twice"},
        {"entity too long", H64 " agent " X50 X50 X50 X50 "x\n", "f:1: entity_id must be 1..200"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rt_tokens *t = (rt_tokens *)1;
        rt_error err = {0};
        rt_status s = rt_tokens_parse(cases[i].text, strlen(cases[i].text), "f", &t, &err);
        if (s != RT_ERR_INVALID) {
            print_error("case %s: status %d\n", cases[i].name, (int)s);
            fail();
        }
        assert_null(t);
        assert_contains(err.msg, cases[i].msg, cases[i].name);
        /* a hash never appears in a message */
        assert_null(strstr(err.msg, "0123456789abcdef"));
    }
}

static void test_tokens_lookup(void **state)
{
    (void)state;
    char tok[4][64], hash[4][65];
    for (int i = 0; i < 4; i++) {
        rt_error err;
        assert_int_equal(rt_token_generate(tok[i], sizeof tok[i], hash[i], &err), RT_OK);
        assert_int_equal(strlen(tok[i]), strlen(RT_AUTH_TOKEN_PREFIX) + 43);
        assert_int_equal(strncmp(tok[i], RT_AUTH_TOKEN_PREFIX, strlen(RT_AUTH_TOKEN_PREFIX)), 0);
        char check[65];
        rt_sha256_hex(tok[i], strlen(tok[i]), check);
        assert_string_equal(check, hash[i]);
    }
    assert_string_not_equal(tok[0], tok[1]);
    char text[1024];
    snprintf(text, sizeof text, "# tokens\n%s admin\n  %s\tagent   acct_42  \r\n\n%s viewer\n", hash[0], hash[1],
             hash[2]);
    rt_tokens *t = NULL;
    rt_error err;
    assert_int_equal(rt_tokens_parse(text, strlen(text), "f", &t, &err), RT_OK);
    assert_int_equal(rt_tokens_count(t), 3);
    rt_identity who;
    assert_true(rt_tokens_lookup(t, tok[0], strlen(tok[0]), &who));
    assert_int_equal(who.role, RT_ROLE_ADMIN);
    assert_string_equal(who.entity_id, "");
    char label[32];
    snprintf(label, sizeof label, "token:%.12s", hash[0]);
    assert_string_equal(who.label, label);
    assert_true(rt_tokens_lookup(t, tok[1], strlen(tok[1]), &who));
    assert_int_equal(who.role, RT_ROLE_AGENT);
    assert_string_equal(who.entity_id, "acct_42");
    assert_true(rt_tokens_lookup(t, tok[2], strlen(tok[2]), &who));
    assert_int_equal(who.role, RT_ROLE_VIEWER);
    assert_false(rt_tokens_lookup(t, tok[3], strlen(tok[3]), &who)); /* not listed */
    assert_false(rt_tokens_lookup(t, tok[0], strlen(tok[0]) - 1, &who));
    assert_false(rt_tokens_lookup(t, hash[0], 64, &who)); /* the hash is not the token */
    assert_false(rt_tokens_lookup(t, "", 0, &who));
    assert_false(rt_tokens_lookup(NULL, tok[0], strlen(tok[0]), &who));
    rt_tokens_free(t);
    rt_tokens_free(NULL);

    /* holder=: the approver id of the token's holder, after the entity if any */
    snprintf(text, sizeof text, "%s operator holder=ops-lead\n%s agent acct_1 holder=cfo\n", hash[0], hash[1]);
    assert_int_equal(rt_tokens_parse(text, strlen(text), "f", &t, &err), RT_OK);
    assert_true(rt_tokens_lookup(t, tok[0], strlen(tok[0]), &who));
    assert_string_equal(who.holder, "ops-lead");
    assert_true(who.authenticated);
    assert_string_equal(rt_identity_actor_id(&who), "ops-lead");
    assert_true(rt_tokens_lookup(t, tok[1], strlen(tok[1]), &who));
    assert_string_equal(who.entity_id, "acct_1");
    assert_string_equal(who.holder, "cfo");
    rt_tokens_free(t);
    snprintf(text, sizeof text, "%s viewer\n", hash[0]);
    assert_int_equal(rt_tokens_parse(text, strlen(text), "f", &t, &err), RT_OK);
    assert_true(rt_tokens_lookup(t, tok[0], strlen(tok[0]), &who));
    assert_string_equal(who.holder, "");
    assert_string_equal(rt_identity_actor_id(&who), label);
    rt_tokens_free(t);

    /* an empty file parses (serve refuses it separately) */
    assert_int_equal(rt_tokens_parse("# none\n", 7, "f", &t, &err), RT_OK);
    assert_int_equal(rt_tokens_count(t), 0);
    rt_tokens_free(t);
}

static void test_roles(void **state)
{
    (void)state;
    rt_role r;
    rt_error err;
    static const char *const names[] = {"admin", "operator", "agent", "viewer"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(rt_role_parse(names[i], &r, &err), RT_OK);
        assert_string_equal(rt_role_name(r), names[i]);
    }
    assert_int_equal(rt_role_parse("Admin", &r, &err), RT_ERR_INVALID);
    assert_true(rt_entity_id_valid("acct_42"));
    assert_false(rt_entity_id_valid(""));
    assert_false(rt_entity_id_valid("a b"));
    assert_false(rt_entity_id_valid("a\tb"));
}

static void test_addresses(void **state)
{
    (void)state;
    static const struct {
        const char *addr;
        rt_status status;
        bool loopback;
    } cases[] = {
        {"127.0.0.1:8288", RT_OK, true},   {"127.1.2.3:0", RT_OK, true},   {"[::1]:8288", RT_OK, true},
        {"localhost:8288", RT_OK, true},   {"0.0.0.0:8288", RT_OK, false}, {":8288", RT_OK, false},
        {"10.1.2.3:80", RT_OK, false},     {"[::]:8288", RT_OK, false},    {"127.0.0.1", RT_ERR_INVALID, false},
        {"127.0.0.1:99999", RT_ERR_INVALID, false}, {"127.0.0.1:x", RT_ERR_INVALID, false},
        {"::1:8288", RT_ERR_INVALID, false}, {"", RT_ERR_INVALID, false},
        {"[::1:8288", RT_ERR_INVALID, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sockaddr_storage ss;
        socklen_t len = 0;
        bool loop = !cases[i].loopback;
        rt_error err = {0};
        rt_status s = rt_api_parse_addr(cases[i].addr, &ss, &len, &loop, &err);
        if (s != cases[i].status || (s == RT_OK && loop != cases[i].loopback)) {
            print_error("case \"%s\": status %d loopback %d (%s)\n", cases[i].addr, (int)s, (int)loop, err.msg);
            fail();
        }
        if (s != RT_OK)
            assert_contains(err.msg, "RATCHET_HTTP_ADDR", cases[i].addr);
    }
}

static void test_check_without_tokens(void **state)
{
    (void)state;
    rt_config cfg = {.http_max_connections = 1024, .http_idle_timeout_ms = 30000, .http_request_timeout_ms = 15000};
    rt_error err = {0};
    cfg.http_addr = "127.0.0.1:8288";
    assert_int_equal(rt_api_check(&cfg, &err), RT_OK);
    /* limits that would cut every request or leave a thread without a connection */
    cfg.http_request_timeout_ms = 500;
    assert_int_equal(rt_api_check(&cfg, &err), RT_ERR_INVALID);
    assert_contains(err.msg, "RATCHET_HTTP_REQUEST_TIMEOUT must be at least 1s", "request timeout");
    cfg.http_request_timeout_ms = 15000;
    cfg.http_max_connections = 2;
    assert_int_equal(rt_api_check(&cfg, &err), RT_ERR_INVALID);
    assert_contains(err.msg, "RATCHET_HTTP_MAX_CONNECTIONS must be at least", "max connections");
    cfg.http_max_connections = 1024;
    cfg.http_addr = "0.0.0.0:8288";
    assert_int_equal(rt_api_check(&cfg, &err), RT_ERR_INVALID);
    assert_contains(err.msg, "not a loopback address and RATCHET_TOKENS is not set", "public without tokens");
    cfg.tokens_file = "/nonexistent/tokens"; /* RATCHET_TOKENS, through the settings table */
    assert_int_equal(rt_api_check(&cfg, &err), RT_ERR_INVALID);
    assert_contains(err.msg, "RATCHET_TOKENS=/nonexistent/tokens", "missing tokens file");
}

static void test_cursors(void **state)
{
    (void)state;
    char id[37], back[37], buf[160];
    rt_uuid7(id);
    static const int64_t times[] = {0, 1, 1732300000123456LL, 253402300799999999LL};
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        rt_api_cursor_encode(times[i], id, buf, sizeof buf);
        assert_null(strpbrk(buf, "+/=:"));
        int64_t us = -1;
        assert_true(rt_api_cursor_decode(buf, &us, back));
        assert_true(us == times[i]);
        assert_string_equal(back, id);
    }
    static const char *const bad[] = {"", "garbage", "djE6MTox", "a", "!!!!", "djI6MTox" /* v2:1:1 */};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t us;
        if (rt_api_cursor_decode(bad[i], &us, back)) {
            print_error("cursor \"%s\" accepted\n", bad[i]);
            fail();
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens_refused), cmocka_unit_test(test_tokens_lookup),
        cmocka_unit_test(test_roles),          cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_check_without_tokens), cmocka_unit_test(test_cursors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
