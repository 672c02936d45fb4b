/* fuzz_expr.c — libFuzzer target for engine/lang/expr.c: the input is evaluated as an
 * expression and as a condition, checked, and rendered as a template string (alone and
 * inside an object) against a fixed context. Beyond crashes and leaks it aborts when a
 * result breaks the contract: an error with a value, success without one, a syntax check
 * that rejects what evaluates, or an error message that shows a secret's value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"

#define SECRET "fuzz-secret-Zq9"

static const char *const CTX =
    "{\"event\": {\"name\": \"order.created\", \"data\": {\"id\": 42, \"amount\": 12.5,"
    " \"tags\": [\"a\", \"b\"], \"customer\": {\"name\": \"Ada\"}, \"big\": 9223372036854775807,"
    " \"small\": -9223372036854775808, \"json\": \"{\\\"k\\\": [1, 2.5]}\", \"s\": \"\\\\\\\"x\"}},"
    " \"steps\": {\"fetch-data\": {\"output\": {\"rows\": [{\"n\": 3}]}, \"status\": \"ok\"}},"
    " \"item\": [1, \"x\", null, true, {}], \"index\": 1}";

static json_t *ctx;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setenv("RATCHET_SECRET_TOKEN", SECRET, 1);
    setenv("RATCHET_SECRET_JSON", "{\"a\": \"" SECRET "\"}", 1);
    ctx = json_loads(CTX, 0, NULL);
    if (!ctx)
        abort();
    return 0;
}

/* The input being tested; messages quote it, so the secret may show up only when the
 * input itself spells it out. */
static const char *input;
static size_t input_len;

static void check_error(rt_status st, const rt_error *err)
{
    if (st != RT_OK && strstr(err->msg, SECRET) && !memmem(input, input_len, SECRET, strlen(SECRET)))
        abort(); /* a secret's value reached an error message */
}

/* Renders v; what renders must also pass rt_template_check. */
static void render(json_t *v)
{
    json_t *out = NULL;
    rt_error err = {0};
    rt_status st = rt_template_render(v, ctx, &out, &err);
    check_error(st, &err);
    if ((st == RT_OK) != (out != NULL))
        abort();
    json_decref(out);
    rt_error cerr = {0};
    rt_status cst = rt_template_check(v, "with", &cerr);
    check_error(cst, &cerr);
    if (st == RT_OK && cst != RT_OK)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 2 * RT_EXPR_MAX_LEN)
        return 0;
    char *src = malloc(size + 1);
    if (!src)
        return 0;
    memcpy(src, data, size);
    src[size] = '\0';
    input = src;
    input_len = size;

    json_t *out = NULL;
    rt_error err = {0};
    rt_status st = rt_expr_eval(src, ctx, &out, &err);
    check_error(st, &err);
    if ((st == RT_OK) != (out != NULL))
        abort();
    json_decref(out);
    rt_error cerr = {0};
    rt_status cst = rt_expr_check(src, &cerr);
    check_error(cst, &cerr);
    if (st == RT_OK && cst != RT_OK)
        abort(); /* the check rejected an expression that evaluates */

    bool b = false;
    st = rt_expr_condition(src, ctx, &b, &err);
    check_error(st, &err);
    cst = rt_expr_condition_check(src, &cerr);
    check_error(cst, &cerr);
    if (st == RT_OK && cst != RT_OK)
        abort();

    json_t *s = json_stringn(src, size); /* NULL unless valid UTF-8 */
    if (s) {
        render(s);
        json_t *v = json_pack("{s:[O,i,n],s:{s:O}}", "params", s, 1, "data", "x", s); /* O increfs */
        if (v)
            render(v);
        json_decref(v);
        json_decref(s);
    }
    free(src);
    return 0;
}
