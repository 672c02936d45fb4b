/* test_expr.c — table-driven tests for the expression language and ${{ }} templates
 * (engine/lang/expr.c). Each row is an input, a context and either the expected JSON or a
 * substring of the expected error; every failing row is printed with both values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "expr.h"

/* The value of RATCHET_SECRET_TOKEN during the tests; no error message may contain it. */
#define SECRET "s3cr3t-value"

static const char *const CTX =
    "{\"event\": {\"name\": \"order.created\", \"data\": {\"id\": 42, \"amount\": 12.5,"
    " \"force\": true, \"tags\": [\"a\", \"b\", \"c\"],"
    " \"customer\": {\"name\": \"Ada\", \"email\": \"ADA@Example.com\"},"
    " \"empty\": \"\", \"zero\": 0, \"nothing\": null, \"list\": [], \"obj\": {},"
    " \"nested\": [[1, 2], [3, [4, 5]]], \"big\": 9223372036854775807,"
    " \"small\": -9223372036854775808, \"json\": \"{\\\"k\\\": [1, 2]}\","
    " \"unicode\": \"h\\u00e9llo\", \"k-ey\": \"dash\"}},"
    " \"steps\": {\"fetch-data\": {\"output\": {\"rows\": [{\"hash\": \"abc\", \"n\": 3}]},"
    " \"status\": \"succeeded\"}},"
    " \"run\": {\"id\": \"r1\", \"workflow\": \"wf\", \"attempt\": 2},"
    " \"schedule\": {\"date\": \"2026-01-02\", \"time\": \"2026-01-02T00:00:00.000Z\"},"
    " \"item\": {\"x\": 1}, \"index\": 3,"
    " \"secrets\": {\"TOKEN\": \"from-ctx-must-be-ignored\"}}";

typedef struct expr_case {
    const char *src;
    const char *ctx;  /* JSON text; NULL: CTX */
    const char *want; /* JSON text of the result; NULL when an error is expected */
    const char *err;  /* substring of the error message */
} expr_case;

#define OK(s, w) {s, NULL, w, NULL}
#define OKC(s, c, w) {s, c, w, NULL}
#define ERR(s, e) {s, NULL, NULL, e}
#define ERRC(s, c, e) {s, c, NULL, e}

static const expr_case EXPR_CASES[] = {
    /* literals */
    OK("null", "null"),
    OK("true", "true"),
    OK("false", "false"),
    OK("42", "42"),
    OK("0", "0"),
    OK("3.25", "3.25"),
    OK("1e3", "1000.0"),
    OK("2.5E-1", "0.25"),
    OK("'single'", "\"single\""),
    OK("\"double\"", "\"double\""),
    OK("'it\\'s'", "\"it's\""),
    OK("\"a\\\"b\"", "\"a\\\"b\""),
    OK("'\\n\\t\\\\\\/'", "\"\\n\\t\\\\/\""),
    OK("'\\u00e9'", "\"\\u00e9\""),
    OK("'\\ud83d\\ude00'", "\"\\ud83d\\ude00\""),
    OK("'caf\\u00E9' == 'caf\xc3\xa9'", "true"),
    OK("''", "\"\""),
    OK("9223372036854775807", "9223372036854775807"),
    OK("  42  ", "42"),
    ERR("9223372036854775808", "column 1: integer literal out of range"),
    ERR("1e999", "column 1: number out of range"),
    ERR("1e", "column 1: malformed number"),
    ERR("12abc", "column 1: malformed number"),
    /* paths */
    OK("event.name", "\"order.created\""),
    OK("event.data.id", "42"),
    OK("event.data.customer.name", "\"Ada\""),
    OK("event.data.customer", "{\"name\": \"Ada\", \"email\": \"ADA@Example.com\"}"),
    OK("event.data.tags[1]", "\"b\""),
    OK("event.data.tags[0 + 2]", "\"c\""),
    OK("event.data.tags[index - 1]", "\"c\""),
    OK("event.data['customer']['name']", "\"Ada\""),
    OK("event[\"data\"].id", "42"),
    OK("event.data.nested[1][1][0]", "4"),
    OK("event.data.nested [1] [1] [1]", "5"),
    OK("steps.fetch-data.output.rows[0].hash", "\"abc\""),
    OK("steps['fetch-data'].status", "\"succeeded\""),
    OK("event.data.k-ey", "\"dash\""),
    OK("event.data.id -1", "41"),
    OK("item.x", "1"),
    OK("event.data.big", "9223372036854775807"),
    OK("event.missing", "null"),
    OK("nosuchroot.a.b", "null"),
    OK("event.data.nothing.deeper", "null"),
    OK("event.data.tags[10]", "null"),
    OK("event.data.tags[-1]", "null"),
    OK("event.data.tags['x']", "null"),
    OK("event.data.customer[0]", "null"),
    OK("event.data.id.x", "null"),
    OK("event.data.tags.x", "null"),
    OK("event.data.tags[event.missing]", "null"),
    OK("event.data.tags[1.0]", "\"b\""),
    OK("from_json(event.data.json).k[1]", "2"),
    OKC("a.b", NULL, "null"),
    OKC("a", "{}", "null"),
    OKC("a", "[1, 2]", "null"),
    ERR("event.data.tags[true]", "column 16: index must be an integer or a string, got boolean"),
    ERR("event.data.tags[1.5]", "index must be an integer or a string, got a fraction"),
    ERR("event.data.tags[event.data.tags]", "got array"),
    ERR("event.", "column 7: expected a name after '.'"),
    ERR("event..name", "column 7: expected a name after '.'"),
    ERR("event.data.tags[1", "column 18: expected ']', got the end"),
    /* arithmetic */
    OK("1 + 2", "3"),
    OK("7 - 10", "-3"),
    OK("6 * 7", "42"),
    OK("7 / 2", "3.5"),
    OK("8 / 2", "4"),
    OK("-8 / 2", "-4"),
    OK("7 % 3", "1"),
    OK("-7 % 3", "-1"),
    OK("1 + 2.5", "3.5"),
    OK("0.5 * 4", "2.0"),
    OK("2 + 3 * 4", "14"),
    OK("(2 + 3) * 4", "20"),
    OK("10 - 2 - 3", "5"),
    OK("100 / 10 / 5", "2"),
    OK("-event.data.id", "-42"),
    OK("- -3", "3"),
    OK("--3", "3"),
    OK("-1.5", "-1.5"),
    OK("event.data.amount * 2", "25.0"),
    OK("5.5 % 2", "1.5"),
    OK("event.data.small % -1", "0"),
    OK("event.data.big - 1 + 1", "9223372036854775807"),
    ERR("1 / 0", "column 3: division by zero"),
    ERR("1 % 0", "column 3: modulo by zero"),
    ERR("1.5 / 0", "division by zero"),
    ERR("1.5 % 0.0", "modulo by zero"),
    ERR("event.data.big + 1", "column 16: integer overflow in operator +"),
    ERR("event.data.small - 1", "integer overflow in operator -"),
    ERR("event.data.big * 2", "integer overflow in operator *"),
    ERR("-event.data.small", "column 1: integer overflow in operator -"),
    ERR("event.data.small / -1", "integer overflow in operator /"),
    ERR("1e308 * 10", "operator *: result out of range"),
    ERRC("a - \"x\"", "{\"a\": 1}", "expression `a - \"x\"`: column 3: operator - needs numbers, got string"),
    ERR("'a' * 2", "operator * needs numbers, got string on the left"),
    ERR("event.missing / event.nope", "operator / needs numbers, got null and null"),
    ERR("null + 1", "operator + needs two numbers or two strings, got null and number"),
    ERR("'a' + 1", "operator + needs two numbers or two strings, got string and number"),
    ERR("event.data.tags + event.data.tags", "got array and array"),
    ERR("-'x'", "column 1: operator - needs a number, got string"),
    ERR("-event.data.customer", "operator - needs a number, got object"),
    /* strings */
    OK("'ab' + 'cd'", "\"abcd\""),
    OK("'' + ''", "\"\""),
    OK("event.data.customer.name + ' Lovelace'", "\"Ada Lovelace\""),
    OK("'n=' + to_json(1)", "\"n=1\""),
    OK("'h\\u00e9' + 'llo' == event.data.unicode", "true"),
    /* comparisons and equality */
    OK("1 < 2", "true"),
    OK("2 <= 2", "true"),
    OK("3 > 4", "false"),
    OK("3 >= 3.0", "true"),
    OK("2.5 > 2", "true"),
    OK("1 == 1.0", "true"),
    OK("1 != 1.0", "false"),
    OK("0.1 + 0.2 == 0.3", "false"),
    OK("'abc' < 'abd'", "true"),
    OK("'b' > 'abc'", "true"),
    OK("'ab' < 'abc'", "true"),
    OK("'abc' == 'abc'", "true"),
    OK("event.data.big > 9.2e18", "true"),
    OK("event.data.big == 9223372036854775807.0", "false"),
    OK("event.data.big < 9223372036854775807.0", "true"),
    OK("event.data.small == -9223372036854775808.0", "true"),
    OK("9007199254740993 == 9007199254740992.0", "false"),
    OK("9007199254740993 > 9007199254740992.0", "true"),
    OK("event.data.tags == from_json('[\"a\",\"b\",\"c\"]')", "true"),
    OK("from_json('{\"a\":[1,2.0]}') == from_json('{\"a\":[1.0,2]}')", "true"),
    OK("from_json('{\"a\":1}') == from_json('{\"a\":1,\"b\":2}')", "false"),
    OK("from_json('{\"a\":1,\"b\":2}') == from_json('{\"b\":2,\"a\":1}')", "true"),
    OK("event.data.customer == event.data.customer", "true"),
    OK("event.missing == null", "true"),
    OK("event.data.nothing == event.missing", "true"),
    OK("'1' == 1", "false"),
    OK("true == 1", "false"),
    OK("event.data.list != event.data.obj", "true"),
    OK("1 < 2 == true", "true"),
    OK("1 + 1 == 2 && 2 * 2 == 4", "true"),
    ERR("'a' < 1", "column 5: operator < needs two numbers or two strings, got string and number"),
    ERR("null < 1", "operator < needs two numbers or two strings, got null and number"),
    ERR("true >= false", "operator >= needs two numbers or two strings, got boolean and boolean"),
    ERR("1 < 2 < 3", "operator < needs two numbers or two strings, got boolean and number"),
    /* logic */
    OK("true && false", "false"),
    OK("true || false", "true"),
    OK("!true", "false"),
    OK("!event.missing", "true"),
    OK("!!'x'", "true"),
    OK("'a' && 'b'", "true"),
    OK("0 || ''", "false"),
    OK("false && 1 / 0", "false"),
    OK("true || 1 / 0", "true"),
    OK("event.missing && event.missing.x > 1", "false"),
    OK("event.data.force == true && event.data.id > 40", "true"),
    OK("!event.data.list", "true"),
    OK("!event.data.obj", "true"),
    OK("!event.data.zero", "true"),
    OK("!event.data.empty", "true"),
    OK("!0.0", "true"),
    OK("false || event.missing || 'x' == 'x'", "true"),
    OK("true || false && false", "true"),
    OK("(true || false) && false", "false"),
    ERR("true && 1 / 0", "division by zero"),
    ERR("false || -'x'", "operator - needs a number, got string"),
    /* in */
    OK("'b' in event.data.tags", "true"),
    OK("'z' in event.data.tags", "false"),
    OK("'ell' in 'hello'", "true"),
    OK("'' in 'abc'", "true"),
    OK("'name' in event.data.customer", "true"),
    OK("'nope' in event.data.customer", "false"),
    OK("2 in from_json('[1,2.0,3]')", "true"),
    OK("from_json('[1]') in event.data.nested", "false"),
    OK("from_json('[1,2]') in event.data.nested", "true"),
    OK("'x' in event.missing", "false"),
    OK("!('z' in event.data.tags)", "true"),
    OK("'o' + 'rder' in event.name", "true"),
    ERR("1 in 'abc'", "column 3: operator in needs a string on the left to search a string, got number"),
    ERR("1 in event.data.customer", "operator in needs a string on the left to search an object, got number"),
    ERR("'a' in 5", "operator in needs an array, string or object on the right, got number"),
    ERR("'a' in true", "got boolean"),
    /* functions */
    OK("len('h\\u00e9llo')", "5"),
    OK("len(event.data.unicode)", "5"),
    OK("len(event.data.tags)", "3"),
    OK("len(event.data.customer)", "2"),
    OK("len(event.missing)", "0"),
    OK("len('')", "0"),
    OK("lower(event.data.customer.email)", "\"ada@example.com\""),
    OK("upper('abc-\\u00e9')", "\"ABC-\\u00e9\""),
    OK("upper(lower('MiXeD'))", "\"MIXED\""),
    OK("default(event.missing, 'fallback')", "\"fallback\""),
    OK("default(event.data.zero, 5)", "0"),
    OK("default(event.data.id, 1 / 0)", "42"),
    OK("default(null, null)", "null"),
    OK("default(event.missing, event.data.tags)[2]", "\"c\""),
    OK("sha256('abc')", "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\""),
    OK("sha256('')", "\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\""),
    OK("to_json(event.data.customer)", "\"{\\\"name\\\":\\\"Ada\\\",\\\"email\\\":\\\"ADA@Example.com\\\"}\""),
    OK("to_json('a\"b\\n')", "\"\\\"a\\\\\\\"b\\\\n\\\"\""),
    OK("to_json(0.1)", "\"0.1\""),
    OK("to_json(2.0)", "\"2.0\""),
    OK("to_json(null)", "\"null\""),
    OK("to_json(event.data.nested)", "\"[[1,2],[3,[4,5]]]\""),
    OK("from_json('3')", "3"),
    OK("from_json('\"s\"')", "\"s\""),
    OK("from_json(' [true, null] ')[0]", "true"),
    OK("from_json(to_json(event.data.nested)) == event.data.nested", "true"),
    OK("len(now())", "24"),
    OK("now() > '2020-01-01T00:00:00.000Z'", "true"),
    OK("now() < '2200'", "true"),
    ERR("len(5)", "column 1: len() needs a string, array or object, got number"),
    ERR("len()", "len() takes 1 argument, got 0"),
    ERR("len(1, 2)", "len() takes 1 argument, got 2"),
    ERR("len(1, 2, 3)", "len() takes 1 argument, got 3"),
    ERR("lower(1)", "lower() needs a string, got number"),
    ERR("upper(null)", "upper() needs a string, got null"),
    ERR("default(1)", "default() takes 2 arguments, got 1"),
    ERR("sha256(1)", "sha256() needs a string, got number"),
    ERR("from_json('{bad')", "from_json(): not valid JSON"),
    ERR("from_json(1)", "from_json() needs a string, got number"),
    ERR("now(1)", "now() takes 0 arguments, got 1"),
    ERR("  nosuch(1)", "column 3: unknown function nosuch()"),
    ERR("len(event.data.tags,)", "expected a value, got ')'"),
    ERR("len(1 2)", "column 7: expected ',' or ')', got '2'"),
    ERR("len", "len"), /* a root named len: null, see below */
    /* syntax errors name the column */
    ERR("", "column 1: expected a value"),
    ERR("a +", "expression `a +`: column 4: expected a value"),
    ERR("1 +* 2", "column 4: expected a value, got '*'"),
    ERR("(1 + 2", "column 7: expected ')', got the end"),
    ERR("1 + 2)", "column 6: unexpected ')'"),
    ERR("1 2", "column 3: unexpected '2'"),
    ERR("'abc", "column 1: unterminated string"),
    ERR("x == \"abc", "column 6: unterminated string"),
    ERR("'abc\\", "column 1: unterminated string"),
    ERR("1 # 2", "column 3: unexpected character '#'"),
    ERR("a = 1", "column 3: unexpected '=' (compare with ==)"),
    ERR("a & b", "column 3: unexpected '&' (use &&)"),
    ERR("a | b", "column 3: unexpected '|' (use ||)"),
    ERR("'\\q'", "column 2: unknown escape \\q"),
    ERR("'\\u12'", "column 2: \\u needs 4 hex digits"),
    ERR("'\\ud800'", "high surrogate in \\u escape without a low one"),
    ERR("'\\udc00'", "lone low surrogate"),
    ERR("'\xc3\xa9' + #", "column 7: unexpected character '#'"),
    ERR("'\xff'", "column 1: string is not valid UTF-8"),
    ERR("1 + \x01", "column 5: unexpected byte 0x01"),
    ERR("()", "column 2: expected a value, got ')'"),
    ERR("[1]", "column 1: expected a value, got '['"),
    /* secrets: from the environment only, never ctx; values never in messages */
    OK("secrets.TOKEN", "\"" SECRET "\""),
    OK("secrets['TOKEN']", "\"" SECRET "\""),
    OK("secrets.UNSET_ONE", "null"),
    OK("len(secrets.TOKEN)", "12"),
    OK("secrets.TOKEN.x", "null"),
    OK("'Bearer ' + secrets.TOKEN", "\"Bearer " SECRET "\""),
    OK("default(secrets.UNSET_ONE, 'dev')", "\"dev\""),
    OK("sha256(secrets.TOKEN) == sha256('" SECRET "')", "true"),
    ERR("secrets.TOKEN - 1", "operator - needs numbers, got string on the left"),
    ERR("secrets.TOKEN < 1", "got string and number"),
    ERR("from_json(secrets.TOKEN)", "from_json(): not valid JSON"),
    ERR("secrets.TOKEN in 1", "got number"),
    ERR("-secrets.TOKEN", "operator - needs a number, got string"),
    ERR("secrets", "column 1: secrets needs a name: secrets.NAME"),
    ERR("secrets[event.name]", "column 9: secrets[...] needs a quoted name"),
    ERR("secrets.BAD-NAME", "column 9: secret names hold only letters, digits and _"),
    ERR("secrets['']", "secret name is empty"),
    ERR("secrets.", "secret name is empty"),
};

typedef struct template_case {
    const char *value; /* JSON text */
    const char *want;  /* JSON text, or NULL */
    const char *err;
} template_case;

static const template_case TEMPLATE_CASES[] = {
    {"\"${{ event.data.id }}\"", "42", NULL},
    {"\"${{event.data.amount}}\"", "12.5", NULL},
    {"\"${{ event.data.tags }}\"", "[\"a\", \"b\", \"c\"]", NULL},
    {"\"${{ event.missing }}\"", "null", NULL},
    {"\"${{ event.data.force }}\"", "true", NULL},
    {"\"${{\\n  event.data.id\\n}}\"", "42", NULL},
    {"\" ${{ event.data.id }}\"", "\" 42\"", NULL},
    {"\"${{ event.data.id }} \"", "\"42 \"", NULL},
    {"\"id=${{ event.data.id }}\"", "\"id=42\"", NULL},
    {"\"${{ event.data.customer.name }} <${{ lower(event.data.customer.email) }}>\"",
     "\"Ada <ada@example.com>\"", NULL},
    {"\"${{ 1 }}${{ 2 }}\"", "\"12\"", NULL},
    {"\"x${{ event.missing }}y\"", "\"xy\"", NULL},
    {"\"t=${{ event.data.tags }}\"", "\"t=[\\\"a\\\",\\\"b\\\",\\\"c\\\"]\"", NULL},
    {"\"f=${{ event.data.force }} r=${{ 0.1 }} i=${{ 7 / 2 }}\"", "\"f=true r=0.1 i=3.5\"", NULL},
    {"\"${{ event.data.customer }}!\"", "\"{\\\"name\\\":\\\"Ada\\\",\\\"email\\\":\\\"ADA@Example.com\\\"}!\"", NULL},
    {"\"no templates here\"", "\"no templates here\"", NULL},
    {"\"${ {1}} and $ {{ 2 }}\"", "\"${ {1}} and $ {{ 2 }}\"", NULL},
    {"\"$${{ 1 }}\"", "\"$1\"", NULL},
    {"\"${{ 'a }}' }}\"", "\"a }}\"", NULL},
    {"\"${{ '${{' }}\"", "\"${{\"", NULL},
    {"\"${{ \\\"}}\\\" + '}}' }}\"", "\"}}}}\"", NULL},
    {"\"${{ event.data.unicode }}\"", "\"h\\u00e9llo\"", NULL},
    {"\"${{ to_json('x') }}\"", "\"\\\"x\\\"\"", NULL},
    {"\"${{ secrets.TOKEN }}\"", "\"" SECRET "\"", NULL},
    {"\"${{ steps.fetch-data.output.rows[0] }}\"", "{\"hash\": \"abc\", \"n\": 3}", NULL},
    {"{\"a\": \"${{ event.data.id }}\", \"b\": [\"${{ run.attempt }}\", 1, {\"c\": \"${{ schedule.date }}\"}], \"d\": true}",
     "{\"a\": 42, \"b\": [2, 1, {\"c\": \"2026-01-02\"}], \"d\": true}", NULL},
    {"{\"${{ not.a.key }}\": 1}", "{\"${{ not.a.key }}\": 1}", NULL},
    {"[[\"${{ index }}\"], [], {}, null, 1.5]", "[[3], [], {}, null, 1.5]", NULL},
    {"42", "42", NULL},
    {"null", "null", NULL},
    {"\"${{ event.data.id\"", NULL, "unterminated ${{ at column 1"},
    {"\"ok ${{ 1 }} then ${{ 2\"", NULL, "unterminated ${{ at column 18"},
    {"\"${{ }}\"", NULL, "column 1: expected a value"},
    {"\"${{ 1 }} ${{ }}\"", NULL, "expected a value"},
    {"[\"${{ 1 +}}\"]", NULL, "[0]: expression `1 +`: column 4: expected a value"},
    {"{\"p\": [\"ok\", \"${{ 1 / 0 }}\"]}", NULL, "p[1]: expression `1 / 0`: column 3: division by zero"},
    {"{\"a\": {\"b\": \"x ${{ secrets.TOKEN - 1 }}\"}}", NULL, "a.b: expression `secrets.TOKEN - 1`: column 15: operator - needs numbers"},
    {"\"${{ 'abc }}\"", NULL, "column 1: unterminated string"},
};

typedef struct check_case {
    const char *value;
    const char *prefix;
    const char *err; /* NULL: valid */
} check_case;

static const check_case CHECK_CASES[] = {
    {"{\"params\": [\"${{ a }}\", \"${{ a + }}\"]}", "with",
     "with.params[1]: expression `a +`: column 4: expected a value"},
    {"\"${{ 1 +}}\"", "if", "if: expression `1 +`: column 4: expected a value"},
    {"{\"a\": {\"b\": \"x ${{ len( }}\"}}", "", "a.b: expression `len(`: column 5: expected a value"},
    {"{\"a\": \"${{ nosuch() }}\"}", "with", "with.a: expression `nosuch()`: column 1: unknown function nosuch()"},
    {"{\"a\": \"${{ len(1, 2) }}\"}", NULL, "a: expression `len(1, 2)`: column 1: len() takes 1 argument, got 2"},
    {"{\"a\": [\"${{ ok }}\", {\"b\": \"${{ unterminated\"}]}", "with", "with.a[1].b: unterminated ${{ at column 1"},
    {"[[[\"${{ ) }}\"]]]", NULL, "[0][0][0]: expression `)`: column 1: expected a value, got ')'"},
    {"{\"a\": \"${{ secrets.X-Y }}\"}", "with", "with.a: expression `secrets.X-Y`: column 9: secret names"},
    {"{\"a\": [\"${{ event.x }}\", 1, null, \"plain\", {\"k\": \"${{ 1 / 0 }}\"}]}", "with", NULL},
    {"\"${{ default(x, 1 / 0) }} and ${{ false && -'x' }}\"", "", NULL},
    {"{\"${{ keys are not templates\": 1}", "with", NULL},
    {"\"plain\"", NULL, NULL},
};

typedef struct cond_case {
    const char *src;
    int want; /* 0/1, or -1 when an error is expected */
    const char *err;
} cond_case;

static const cond_case COND_CASES[] = {
    {"event.data.force == true", 1, NULL},
    {"${{ event.data.force == true }}", 1, NULL},
    {"  ${{ event.data.id > 100 }}  ", 0, NULL},
    {"${{event.data.id>40}}", 1, NULL},
    {"event.missing", 0, NULL},
    {"'x'", 1, NULL},
    {"event.data.tags", 1, NULL},
    {"event.data.list", 0, NULL},
    {"secrets.TOKEN == '" SECRET "'", 1, NULL},
    {"event.name == 'order.created' && 'b' in event.data.tags", 1, NULL},
    {"${{ event.data.id }} == 42", -1, "exactly one ${{ }}"},
    {"${{ event.data.id", -1, "unterminated ${{"},
    {"", -1, "column 1: expected a value"},
    {"${{ }}", -1, "expected a value"},
    {"1 / 0 == 1", -1, "division by zero"},
    {"secrets.TOKEN + 1 > 0", -1, "got string and number"},
};

/* ---------------------------------------------------------------- helpers */

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
    if (!j)
        fail_msg("test JSON does not parse: %s: %s", text, e.text);
    return j;
}

static char *show(const json_t *j)
{
    return j ? json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT) : strdup("(no value)");
}

/* Checks one outcome against a row; prints the row and both values when they differ.
 * Returns 1 on a mismatch. */
static int judge(const char *kind, size_t row, const char *input, rt_status st, json_t *got,
                 const rt_error *err, const char *want, const char *want_err)
{
    int bad = 0;
    if (err->msg[0] && strstr(err->msg, SECRET)) {
        print_error("%s row %zu `%s`: error message leaks the secret: %s\n", kind, row, input,
                    err->msg);
        bad = 1;
    }
    if (want) {
        json_t *w = load(want);
        if (st != RT_OK || !got || !json_equal(w, got)) {
            char *ws = show(w), *gs = show(got);
            print_error("%s row %zu `%s`:\n   want %s\n    got %s (status %s, error \"%s\")\n",
                        kind, row, input, ws, gs, rt_status_name(st),
                        st ? err->msg : "");
            free(ws);
            free(gs);
            bad = 1;
        }
        json_decref(w);
    } else if (st == RT_OK || !strstr(err->msg, want_err) || got) {
        char *gs = show(got);
        print_error("%s row %zu `%s`:\n   want error containing \"%s\"\n    got status %s, "
                    "error \"%s\", value %s\n",
                    kind, row, input, want_err, rt_status_name(st), st ? err->msg : "", gs);
        free(gs);
        bad = 1;
    } else if (st != RT_ERR_INVALID) {
        print_error("%s row %zu `%s`: want status invalid, got %s\n", kind, row, input,
                    rt_status_name(st));
        bad = 1;
    }
    return bad;
}

static int setup(void **state)
{
    (void)state;
    setenv("RATCHET_SECRET_TOKEN", SECRET, 1);
    unsetenv("RATCHET_SECRET_UNSET_ONE");
    return 0;
}

/* ---------------------------------------------------------------- tables */

static void test_expr_table(void **state)
{
    (void)state;
    json_t *ctx = load(CTX);
    int bad = 0;
    for (size_t i = 0; i < sizeof EXPR_CASES / sizeof EXPR_CASES[0]; i++) {
        const expr_case *c = &EXPR_CASES[i];
        /* `len` alone is a root path (null), so the row above wants an error only from
         * the check below; it documents that function names are not reserved. */
        if (strcmp(c->src, "len") == 0) {
            json_t *out;
            rt_error err = {0};
            assert_int_equal(rt_expr_eval("len", ctx, &out, &err), RT_OK);
            assert_true(json_is_null(out));
            json_decref(out);
            continue;
        }
        json_t *cctx = c->ctx ? load(c->ctx) : json_incref(ctx), *out = NULL;
        rt_error err = {0};
        rt_status st = rt_expr_eval(c->src, cctx, &out, &err);
        bad += judge("expr", i, c->src, st, out, &err, c->want, c->err);
        /* Syntax check agrees: every evaluable row checks, and rows that fail in the
         * parser fail rt_expr_check with the same message. */
        rt_error cerr = {0};
        rt_status cst = rt_expr_check(c->src, &cerr);
        if (st == RT_OK && cst != RT_OK) {
            print_error("expr row %zu `%s`: evaluates but check says: %s\n", i, c->src, cerr.msg);
            bad++;
        }
        json_decref(out);
        json_decref(cctx);
    }
    json_decref(ctx);
    print_message("%zu expression rows\n", sizeof EXPR_CASES / sizeof EXPR_CASES[0]);
    assert_int_equal(bad, 0);
}

static void test_template_table(void **state)
{
    (void)state;
    json_t *ctx = load(CTX);
    int bad = 0;
    for (size_t i = 0; i < sizeof TEMPLATE_CASES / sizeof TEMPLATE_CASES[0]; i++) {
        const template_case *c = &TEMPLATE_CASES[i];
        json_t *v = load(c->value), *out = NULL;
        rt_error err = {0};
        rt_status st = rt_template_render(v, ctx, &out, &err);
        bad += judge("template", i, c->value, st, out, &err, c->want, c->err);
        /* Whatever renders also passes the syntax check. */
        rt_error cerr = {0};
        if (st == RT_OK && rt_template_check(v, "", &cerr) != RT_OK) {
            print_error("template row %zu `%s`: renders but check says: %s\n", i, c->value,
                        cerr.msg);
            bad++;
        }
        json_decref(out);
        json_decref(v);
    }
    json_decref(ctx);
    assert_int_equal(bad, 0);
}

static void test_template_check_table(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof CHECK_CASES / sizeof CHECK_CASES[0]; i++) {
        const check_case *c = &CHECK_CASES[i];
        json_t *v = load(c->value);
        rt_error err = {0};
        rt_status st = rt_template_check(v, c->prefix, &err);
        if (c->err ? (st != RT_ERR_INVALID || !strstr(err.msg, c->err)) : st != RT_OK) {
            print_error("check row %zu `%s`:\n   want %s%s\n    got status %s, error \"%s\"\n",
                        i, c->value, c->err ? "error containing " : "ok", c->err ? c->err : "",
                        rt_status_name(st), st ? err.msg : "");
            bad++;
        }
        json_decref(v);
    }
    assert_int_equal(bad, 0);
}

static void test_condition_table(void **state)
{
    (void)state;
    json_t *ctx = load(CTX);
    int bad = 0;
    for (size_t i = 0; i < sizeof COND_CASES / sizeof COND_CASES[0]; i++) {
        const cond_case *c = &COND_CASES[i];
        bool got = false;
        rt_error err = {0};
        rt_status st = rt_expr_condition(c->src, ctx, &got, &err);
        bool ok = c->want < 0 ? st == RT_ERR_INVALID && strstr(err.msg, c->err)
                              : st == RT_OK && got == (c->want == 1);
        if (!ok || strstr(err.msg, SECRET)) {
            print_error("condition row %zu `%s`:\n   want %s%s\n    got status %s, value %s, "
                        "error \"%s\"\n",
                        i, c->src, c->want < 0 ? "error containing " : c->want ? "true" : "false",
                        c->want < 0 ? c->err : "", rt_status_name(st), got ? "true" : "false",
                        st ? err.msg : "");
            bad++;
        }
        /* The syntax check agrees with evaluation on syntax errors. */
        rt_error cerr = {0};
        rt_status cst = rt_expr_condition_check(c->src, &cerr);
        if (st == RT_OK && cst != RT_OK) {
            print_error("condition row %zu `%s`: evaluates but check says: %s\n", i, c->src,
                        cerr.msg);
            bad++;
        }
        (void)cst;
    }
    json_decref(ctx);
    assert_int_equal(bad, 0);
}

/* ---------------------------------------------------------------- generated inputs */

static char *repeat(const char *head, const char *unit, int n, const char *tail)
{
    size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
    char *s = malloc(hl + ul * (size_t)n + tl + 1), *p = s;
    assert_non_null(s);
    memcpy(p, head, hl);
    p += hl;
    for (int i = 0; i < n; i++, p += ul)
        memcpy(p, unit, ul);
    memcpy(p, tail, tl + 1);
    return s;
}

static void expect_eval(const char *src, json_t *ctx, const char *want, const char *want_err)
{
    json_t *out = NULL;
    rt_error err = {0};
    rt_status st = rt_expr_eval(src, ctx, &out, &err);
    char shown[80];
    snprintf(shown, sizeof shown, "%.60s%s (%zu bytes)", src, strlen(src) > 60 ? "..." : "",
             strlen(src));
    int bad = judge("limits", 0, shown, st, out, &err, want, want_err);
    json_decref(out);
    assert_int_equal(bad, 0);
}

static void test_limits(void **state)
{
    (void)state;
    char *s;
    char close[RT_EXPR_MAX_DEPTH + 300];

    /* 60 nested parentheses are fine, 200 are an error (not a stack overflow). */
    memset(close, ')', 60);
    close[60] = '\0';
    s = repeat("", "(", 60, "1");
    s = realloc(s, strlen(s) + 61);
    strcat(s, close);
    expect_eval(s, NULL, "1", NULL);
    free(s);

    memset(close, ')', 200);
    close[200] = '\0';
    s = repeat("", "(", 200, "1");
    s = realloc(s, strlen(s) + 201);
    strcat(s, close);
    expect_eval(s, NULL, NULL, "nested deeper than 64 levels");
    free(s);

    s = repeat("", "(", 4000, ""); /* unbalanced and deep */
    expect_eval(s, NULL, NULL, "nested deeper than 64 levels");
    free(s);

    s = repeat("", "!", 200, "true");
    expect_eval(s, NULL, NULL, "nested deeper than 64 levels");
    free(s);

    s = repeat("", "-", 3000, "1");
    expect_eval(s, NULL, NULL, "nested deeper than 64 levels");
    free(s);

    s = repeat("", "!", 20, "true");
    expect_eval(s, NULL, "true", NULL);
    free(s);

    s = repeat("a", "[a", 100, "");
    expect_eval(s, NULL, NULL, "nested deeper than 64 levels");
    free(s);

    s = repeat("", "len(", 100, "1");
    expect_eval(s, NULL, NULL, "nested deeper than 64 levels");
    free(s);

    /* Long but flat input is fine up to RT_EXPR_MAX_LEN; past it, an error. */
    s = repeat("1", "+1", (RT_EXPR_MAX_LEN - 1) / 2, "");
    assert_true(strlen(s) <= RT_EXPR_MAX_LEN);
    char want[16];
    snprintf(want, sizeof want, "%d", (RT_EXPR_MAX_LEN - 1) / 2 + 1);
    expect_eval(s, NULL, want, NULL);
    free(s);

    s = repeat("1", "+1", RT_EXPR_MAX_LEN, "");
    expect_eval(s, NULL, NULL, "longer than 4096 bytes");
    free(s);

    s = repeat("'", "x", RT_EXPR_MAX_LEN, "'");
    expect_eval(s, NULL, NULL, "longer than 4096 bytes");
    free(s);

    s = repeat("'", "\\u00e9", 600, "'"); /* long literal with escapes (heap scratch) */
    json_t *out = NULL;
    rt_error err = {0};
    assert_int_equal(rt_expr_eval(s, NULL, &out, &err), RT_OK);
    assert_int_equal(json_string_length(out), 1200);
    json_decref(out);
    free(s);

    s = repeat("'", "y", 3000, "' + 'z' + 'é' - 1"); /* column counts characters */
    expect_eval(s, NULL, NULL, "column 3016: operator - needs numbers, got string on the left");
    free(s);

    /* Strings built by + and to_json() stay under RT_EXPR_MAX_STRING. */
    char *big = malloc(RT_EXPR_MAX_STRING / 2 + 10);
    memset(big, 'q', RT_EXPR_MAX_STRING / 2 + 9);
    big[RT_EXPR_MAX_STRING / 2 + 9] = '\0';
    json_t *ctx = json_pack("{s:s}", "s", big);
    expect_eval("s + s", ctx, NULL, "operator +: string longer than 1048576 bytes");
    snprintf(want, sizeof want, "%d", RT_EXPR_MAX_STRING / 2 + 10);
    expect_eval("len(s + 'x')", ctx, want, NULL);
    json_decref(ctx);
    free(big);

    /* to_json of escaped text doubles it; nesting it must hit the bound, not the heap. */
    ctx = json_pack("{s:s}", "s", "\\\\\\\\\\\\\\\\");
    s = repeat("", "to_json(", 40, "s");
    s = realloc(s, strlen(s) + 41);
    memset(close, ')', 40);
    close[40] = '\0';
    strcat(s, close);
    expect_eval(s, ctx, NULL, "to_json(): result longer than 1048576 bytes");
    free(s);
    json_decref(ctx);
}

/* ---------------------------------------------------------------- other behaviour */

/* Rendering shares what it does not change: the engine renders every step's input. */
static void test_render_shares_untemplated_values(void **state)
{
    (void)state;
    json_t *ctx = load(CTX);
    json_t *v = load("{\"query\": \"select 1\", \"params\": [1, \"${{ event.data.id }}\"],"
                     " \"opts\": {\"a\": [1, 2]}}");
    json_t *out = NULL;
    rt_error err = {0};

    json_t *plain = json_object_get(v, "opts");
    assert_int_equal(rt_template_render(plain, ctx, &out, &err), RT_OK);
    assert_ptr_equal(out, plain); /* no template: the same object, one more reference */
    json_decref(out);

    assert_int_equal(rt_template_render(v, ctx, &out, &err), RT_OK);
    assert_ptr_not_equal(out, v);
    assert_ptr_equal(json_object_get(out, "opts"), json_object_get(v, "opts"));
    assert_ptr_equal(json_object_get(out, "query"), json_object_get(v, "query"));
    json_t *params = json_object_get(out, "params");
    assert_ptr_equal(json_array_get(params, 0), json_array_get(json_object_get(v, "params"), 0));
    assert_int_equal(json_integer_value(json_array_get(params, 1)), 42);
    /* The input is untouched. */
    assert_string_equal(json_string_value(json_array_get(json_object_get(v, "params"), 1)),
                        "${{ event.data.id }}");
    /* Key order is kept. */
    const char *keys[] = {"query", "params", "opts"};
    size_t k = 0;
    const char *key;
    json_t *child;
    json_object_foreach(out, key, child) assert_string_equal(key, keys[k++]);
    json_decref(out);

    /* An exact template returns the context's own value, not a copy. */
    json_t *one = json_string("${{ event.data.customer }}");
    assert_int_equal(rt_template_render(one, ctx, &out, &err), RT_OK);
    assert_ptr_equal(out, json_object_get(json_object_get(json_object_get(ctx, "event"), "data"),
                                          "customer"));
    json_decref(out);
    json_decref(one);

    json_decref(v);
    json_decref(ctx);
}

static void test_truthy(void **state)
{
    (void)state;
    const struct {
        const char *json;
        bool want;
    } rows[] = {
        {"null", false}, {"false", false}, {"0", false},     {"0.0", false}, {"\"\"", false},
        {"[]", false},   {"{}", false},    {"true", true},   {"1", true},    {"-0.5", true},
        {"\"0\"", true}, {"[0]", true},    {"{\"a\":0}", true},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        json_t *j = load(rows[i].json);
        if (rt_expr_truthy(j) != rows[i].want)
            fail_msg("truthy(%s): want %d, got %d", rows[i].json, rows[i].want,
                     rt_expr_truthy(j));
        json_decref(j);
    }
    assert_false(rt_expr_truthy(NULL));
}

static void test_check_and_misc(void **state)
{
    (void)state;
    rt_error err = {0};
    assert_int_equal(rt_expr_check("event.data.x == 1 && len(steps.a.output) > 0", &err), RT_OK);
    assert_int_equal(rt_expr_check("1 / 0", &err), RT_OK); /* not evaluated */
    assert_int_equal(rt_expr_check("default(x, 1 / 0)", &err), RT_OK);
    assert_int_equal(rt_expr_check("a +", &err), RT_ERR_INVALID);
    assert_string_equal(err.msg, "expression `a +`: column 4: expected a value");
    assert_int_equal(rt_expr_check("nosuch()", &err), RT_ERR_INVALID);
    assert_int_equal(rt_expr_check("len(1, 2)", &err), RT_ERR_INVALID);
    assert_int_equal(rt_expr_check(NULL, &err), RT_ERR_INVALID);
    assert_int_equal(rt_expr_check("secrets", NULL), RT_ERR_INVALID); /* err may be NULL */

    json_t *out = (json_t *)&err; /* must be reset on error */
    assert_int_equal(rt_expr_eval("1 +", NULL, &out, NULL), RT_ERR_INVALID);
    assert_null(out);
    assert_int_equal(rt_expr_eval("event.x", NULL, &out, &err), RT_OK); /* ctx may be NULL */
    assert_true(json_is_null(out));
    json_decref(out);

    assert_true(rt_template_present("a ${{ b }}"));
    assert_false(rt_template_present("a ${ b }"));
    assert_false(rt_template_present(NULL));

    /* A long expression is quoted shortened in messages. */
    char *s = repeat("1", " + 1", 300, " +");
    assert_int_equal(rt_expr_check(s, &err), RT_ERR_INVALID);
    assert_non_null(strstr(err.msg, "...`: column 1204: expected a value"));
    free(s);

    /* now() is RFC 3339 UTC with milliseconds. */
    assert_int_equal(rt_expr_eval("now()", NULL, &out, &err), RT_OK);
    const char *t = json_string_value(out);
    assert_int_equal(strlen(t), 24);
    assert_true(t[4] == '-' && t[10] == 'T' && t[19] == '.' && t[23] == 'Z');
    json_decref(out);

    /* Secrets never come from ctx. */
    json_t *ctx = load("{\"secrets\": {\"ONLY_IN_CTX\": \"x\"}}");
    assert_int_equal(rt_expr_eval("secrets.ONLY_IN_CTX", ctx, &out, &err), RT_OK);
    assert_true(json_is_null(out));
    json_decref(out);
    json_decref(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expr_table),
        cmocka_unit_test(test_template_table),
        cmocka_unit_test(test_template_check_table),
        cmocka_unit_test(test_condition_table),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_render_shares_untemplated_values),
        cmocka_unit_test(test_truthy),
        cmocka_unit_test(test_check_and_misc),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
