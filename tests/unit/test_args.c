/* test_args.c — the CLI's one argument parser (engine/cli/args.h) as a table: what each
 * command line parses to, or the exact error line it gets; and the generated --help. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "args.h"

static const rt_arg_opt show_opts[] = {
    {"--json", NULL, "print JSON"},
    {"--data", "JSON", "the event's data"},
    {"--limit", "N", "at most N"},
    {NULL, NULL, NULL},
};
static const rt_arg_cmd show = {.name = "ratchet show", .args = "RUN", .max_pos = 1, .about = "one run",
                                .opts = show_opts, .settings = true};
static const rt_arg_cmd bare = {.name = "ratchet token", .args = NULL, .max_pos = 0, .opts = show_opts};

typedef struct row {
    const rt_arg_cmd *cmd;
    const char *argv[6];
    const char *error; /* NULL: parses */
    const char *json, *data, *limit, *pos0, *pos1;
    bool help;
} row;

static const row table[] = {
    {&show, {"r1"}, NULL, NULL, NULL, NULL, "r1", NULL, false},
    {&show, {"r1", "--json"}, NULL, "", NULL, NULL, "r1", NULL, false},
    {&show, {"--data", "{}", "r1"}, NULL, NULL, "{}", NULL, "r1", NULL, false},
    {&show, {"--data={\"a\":1}"}, NULL, NULL, "{\"a\":1}", NULL, NULL, NULL, false},
    {&show, {"--data="}, NULL, NULL, "", NULL, NULL, NULL, false},
    {&show, {"--limit", "5", "--limit=7"}, NULL, NULL, NULL, "7", NULL, NULL, false}, /* the last one wins */
    {&show, {"--", "--json"}, NULL, NULL, NULL, NULL, "--json", NULL, false},
    {&show, {"-"}, NULL, NULL, NULL, NULL, "-", NULL, false},
    {&show, {"--help", "--bogus"}, NULL, NULL, NULL, NULL, NULL, NULL, true},
    {&show, {"-h"}, NULL, NULL, NULL, NULL, NULL, NULL, true},
    {&show, {"--log-level", "debug", "r1"}, NULL, NULL, NULL, NULL, "r1", NULL, false}, /* a settings flag */
    {&show, {"--foo"}, "unknown option --foo for `ratchet show`; see ratchet show --help", NULL, NULL, NULL, NULL, NULL, false},
    {&show, {"--foo=1"}, "unknown option --foo for `ratchet show`; see ratchet show --help", NULL, NULL, NULL, NULL, NULL, false},
    {&show, {"--jsonx"}, "unknown option --jsonx for `ratchet show`; see ratchet show --help", NULL, NULL, NULL, NULL, NULL, false},
    {&show, {"--json=yes"}, "--json takes no value; see ratchet show --help", NULL, NULL, NULL, NULL, NULL, false},
    {&show, {"--data"}, "--data needs a value (--data JSON); see ratchet show --help", NULL, NULL, NULL, NULL, NULL, false},
    {&show, {"a", "b"}, "unexpected argument \"b\" for `ratchet show` (it takes RUN); see ratchet show --help", NULL, NULL, NULL, NULL, NULL, false},
    {&bare, {"x"}, "unexpected argument \"x\" for `ratchet token` (it takes no arguments); see ratchet token --help", NULL, NULL, NULL, NULL, NULL, false},
    {&bare, {"--log-level", "debug"}, "unknown option --log-level for `ratchet token`; see ratchet token --help", NULL, NULL, NULL, NULL, NULL, false},
};

static void parse_table(void **state)
{
    (void)state;
    for (size_t t = 0; t < sizeof table / sizeof table[0]; t++) {
        const row *r = &table[t];
        char *argv[8] = {"ratchet", "cmd"};
        int argc = 2;
        for (int i = 0; i < 6 && r->argv[i]; i++)
            argv[argc++] = (char *)r->argv[i];
        rt_config cfg;
        rt_error err = {0};
        assert_int_equal(rt_config_from_env(&cfg, &err), RT_OK);
        rt_args a;
        rt_status s = rt_args_parse(r->cmd, &cfg, argc, argv, 2, &a, &err);
        if (r->error) {
            if (s != RT_ERR_INVALID)
                fail_msg("row %zu: parsed, want error \"%s\"", t, r->error);
            assert_string_equal(err.msg, r->error);
            rt_config_free(&cfg);
            continue;
        }
        if (s != RT_OK)
            fail_msg("row %zu: %s", t, err.msg);
        assert_int_equal(a.help, r->help);
        if (!r->help) {
            assert_int_equal(rt_args_given(&a, "--json"), r->json != NULL);
            const char *want[] = {r->data, r->limit};
            const char *got[] = {rt_args_value(&a, "--data"), rt_args_value(&a, "--limit")};
            for (int i = 0; i < 2; i++) {
                if (!want[i])
                    assert_null(got[i]);
                else
                    assert_string_equal(got[i], want[i]);
            }
            assert_int_equal(a.n_pos, (r->pos0 != NULL) + (r->pos1 != NULL));
            if (r->pos0)
                assert_string_equal(a.pos[0], r->pos0);
        }
        rt_config_free(&cfg);
    }
}

static void ints(void **state)
{
    (void)state;
    const char *cases[][2] = {{"5", NULL},
                              {"0", "--limit=0: expected an integer from 1 to 100"},
                              {"101", "--limit=101: expected an integer from 1 to 100"},
                              {"abc", "--limit=abc: expected an integer from 1 to 100"},
                              {"", "--limit=: expected an integer from 1 to 100"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[] = {"ratchet", "cmd", "--limit", (char *)cases[i][0]};
        rt_args a;
        rt_error err;
        assert_int_equal(rt_args_parse(&bare, NULL, 4, argv, 2, &a, &err), RT_OK);
        long n = 42;
        rt_status s = rt_args_int(&a, "--limit", 1, 100, &n, &err);
        if (!cases[i][1]) {
            assert_int_equal(s, RT_OK);
            assert_int_equal(n, 5);
        } else {
            assert_int_equal(s, RT_ERR_INVALID);
            assert_string_equal(err.msg, cases[i][1]);
            assert_int_equal(n, 42);
        }
    }
    char *argv[] = {"ratchet", "cmd"};
    rt_args a;
    rt_error err;
    assert_int_equal(rt_args_parse(&bare, NULL, 2, argv, 2, &a, &err), RT_OK);
    long n = 42;
    assert_int_equal(rt_args_int(&a, "--limit", 1, 100, &n, &err), RT_OK);
    assert_int_equal(n, 42); /* not given: untouched */
}

static void help_text(void **state)
{
    (void)state;
    char buf[2048] = "";
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    assert_non_null(f);
    rt_args_help(&show, f);
    fclose(f);
    assert_non_null(strstr(buf, "usage: ratchet show RUN [options]\n"));
    assert_non_null(strstr(buf, "  one run\n"));
    assert_non_null(strstr(buf, "  --data JSON"));
    assert_non_null(strstr(buf, "the event's data\n"));
    assert_non_null(strstr(buf, "  --json "));
    assert_non_null(strstr(buf, "  --help "));
    assert_non_null(strstr(buf, "settings flags"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_table),
        cmocka_unit_test(ints),
        cmocka_unit_test(help_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
