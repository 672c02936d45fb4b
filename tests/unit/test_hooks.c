/* test_hooks.c — webhook signatures (api_hooks.h): a table of signature headers against a
 * vector computed with Python's hmac module (valid, several v1 entries, bad, malformed,
 * expired in both directions), hook names, their secret variables and derived ids. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "api_hooks.h"

#define SECRET "whsec_test_secret"
#define BODY "{\"id\":\"evt_1\",\"type\":\"a.b\"}"
#define T "1700000000"
#define T_MS 1700000000000LL
/* python3: hmac.new(SECRET, T + "." + BODY, sha256).hexdigest() */
#define GOOD "a09a163a363451999eb6f14efc57810aaa61b574bda01da7ccf18b301d95d26c"
#define BAD "a09a163a363451999eb6f14efc57810aaa61b574bda01da7ccf18b301d95d26d"
/* python3: sha256(T + "." + BODY).hexdigest() */
#define BODY_SHA "b8d1374dfe83c9bb4e6939c68c542ad19dd8faaace11aa4760898135dd692671"
#define TOL 300000

static void test_verify_table(void **state)
{
    (void)state;
    static const struct {
        const char *name, *header;
        int64_t now_ms;
        rt_hook_verdict want;
        const char *why; /* part of the message, for refusals */
    } cases[] = {
        {"valid", "t=" T ",v1=" GOOD, T_MS, RT_HOOK_OK, NULL},
        {"valid, v0 and spaces", " t=" T " , v1=" GOOD " ,v0=abc", T_MS + 1000, RT_HOOK_OK, NULL},
        {"upper-case hex", "t=" T ",v1=A09A163A363451999EB6F14EFC57810AAA61B574BDA01DA7CCF18B301D95D26C", T_MS,
         RT_HOOK_OK, NULL},
        {"second v1 right", "t=" T ",v1=" BAD ",v1=" GOOD, T_MS, RT_HOOK_OK, NULL},
        {"v1 first, t last", "v1=" GOOD ",t=" T, T_MS, RT_HOOK_OK, NULL},
        {"edge of tolerance", "t=" T ",v1=" GOOD, T_MS + TOL, RT_HOOK_OK, NULL},
        {"bad", "t=" T ",v1=" BAD, T_MS, RT_HOOK_BAD_SIGNATURE, "no v1 signature matches"},
        {"short v1", "t=" T ",v1=a09a", T_MS, RT_HOOK_BAD_SIGNATURE, "no v1 signature matches"},
        {"v1 not hex", "t=" T ",v1=z09a163a363451999eb6f14efc57810aaa61b574bda01da7ccf18b301d95d26c", T_MS,
         RT_HOOK_BAD_SIGNATURE, "no v1"},
        {"only v0", "t=" T ",v0=" GOOD, T_MS, RT_HOOK_MALFORMED, "no v1="},
        {"other t", "t=1700000001,v1=" GOOD, T_MS, RT_HOOK_BAD_SIGNATURE, "no v1"},
        {"bad and old", "t=" T ",v1=" BAD, T_MS + 10 * TOL, RT_HOOK_BAD_SIGNATURE, "no v1"},
        {"old", "t=" T ",v1=" GOOD, T_MS + TOL + 1000, RT_HOOK_EXPIRED, "t is 301 s in the past (tolerance 300 s)"},
        {"future", "t=" T ",v1=" GOOD, T_MS - TOL - 1000, RT_HOOK_EXPIRED, "in the future"},
        {"missing", NULL, T_MS, RT_HOOK_MALFORMED, "missing"},
        {"empty", "", T_MS, RT_HOOK_MALFORMED, "no t="},
        {"no t", "v1=" GOOD, T_MS, RT_HOOK_MALFORMED, "no t="},
        {"two t", "t=" T ",t=" T ",v1=" GOOD, T_MS, RT_HOOK_MALFORMED, "more than one t="},
        {"t not digits", "t=17e8,v1=" GOOD, T_MS, RT_HOOK_MALFORMED, "unix seconds"},
        {"t negative", "t=-1,v1=" GOOD, T_MS, RT_HOOK_MALFORMED, "unix seconds"},
        {"t too long", "t=1234567890123,v1=" GOOD, T_MS, RT_HOOK_MALFORMED, "unix seconds"},
        {"t empty", "t=,v1=" GOOD, T_MS, RT_HOOK_MALFORMED, "unix seconds"},
        {"no =", "t=" T ",v1" GOOD, T_MS, RT_HOOK_MALFORMED, "key=value"},
        {"sha256= form", "sha256=" GOOD, T_MS, RT_HOOK_MALFORMED, "no t="},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char t[RT_HOOK_T_MAX] = "x", why[256] = "";
        rt_hook_verdict v =
            rt_hook_verify(cases[i].header, BODY, strlen(BODY), SECRET, cases[i].now_ms, TOL, t, why, sizeof why);
        if (v != cases[i].want) {
            print_error("case %s: expected %s, got %s (%s)\n", cases[i].name, rt_hook_verdict_name(cases[i].want),
                        rt_hook_verdict_name(v), why);
            fail();
        }
        if (v == RT_HOOK_OK) {
            assert_string_equal(t, T);
        } else {
            assert_string_equal(t, "");
            if (!strstr(why, cases[i].why)) {
                print_error("case %s: message \"%s\" lacks \"%s\"\n", cases[i].name, why, cases[i].why);
                fail();
            }
            if (strstr(why, GOOD) || strstr(why, BAD) || strstr(why, SECRET)) {
                print_error("case %s: message repeats a signature or the secret: %s\n", cases[i].name, why);
                fail();
            }
        }
    }
}

static void test_verify_body_and_secret(void **state)
{
    (void)state;
    char t[RT_HOOK_T_MAX], why[256];
    const char *h = "t=" T ",v1=" GOOD;
    /* one byte changed, one byte more, another secret */
    assert_int_equal(rt_hook_verify(h, BODY " ", strlen(BODY) + 1, SECRET, T_MS, TOL, t, why, sizeof why),
                     RT_HOOK_BAD_SIGNATURE);
    char changed[] = BODY;
    changed[8] = '2';
    assert_int_equal(rt_hook_verify(h, changed, strlen(changed), SECRET, T_MS, TOL, t, why, sizeof why),
                     RT_HOOK_BAD_SIGNATURE);
    assert_int_equal(rt_hook_verify(h, BODY, strlen(BODY), "whsec_other", T_MS, TOL, t, why, sizeof why),
                     RT_HOOK_BAD_SIGNATURE);
    /* the body's length counts, not its NUL */
    assert_int_equal(rt_hook_verify(h, BODY "\0junk", strlen(BODY), SECRET, T_MS, TOL, t, why, sizeof why), RT_HOOK_OK);
}

static void test_names(void **state)
{
    (void)state;
    static const char *const good[] = {"a", "0", "github", "my_hook", "my_hook_v2", "a_b_c_d", "a_",
                                       "0123456789012345678901234567890123456789012345678901234567890123", NULL};
    static const char *const bad[] = {"", "A", "Github", "-a", ".a", "_a", "a.", "a..b", "a/b", "a b", "a%2e",
                                      "my-hook", "my_hook.v2", "a-b", "a.b",
                                      "\xc3\xa9", "01234567890123456789012345678901234567890123456789012345678901234",
                                      NULL};
    for (size_t i = 0; good[i]; i++) {
        if (!rt_hook_name_valid(good[i]))
            fail_msg("name \"%s\" refused", good[i]);
    }
    for (size_t i = 0; bad[i]; i++) {
        if (rt_hook_name_valid(bad[i]))
            fail_msg("name \"%s\" accepted", bad[i]);
    }
    assert_false(rt_hook_name_valid(NULL));

    char var[96];
    rt_hook_secret_var("my_hook_v2_x", var, sizeof var);
    assert_string_equal(var, "RATCHET_SECRET_HOOK_MY_HOOK_V2_X");
    rt_hook_secret_var("github", var, sizeof var);
    assert_string_equal(var, "RATCHET_SECRET_HOOK_GITHUB");
}

static void test_derived_id(void **state)
{
    (void)state;
    char id[160];
    rt_hook_derived_id("github", T, BODY, strlen(BODY), id, sizeof id);
    assert_string_equal(id, "hook:github:" BODY_SHA);
    char other[160];
    rt_hook_derived_id("github", "1700000001", BODY, strlen(BODY), other, sizeof other);
    assert_string_not_equal(id, other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify_table),
        cmocka_unit_test(test_verify_body_and_secret),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_derived_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
