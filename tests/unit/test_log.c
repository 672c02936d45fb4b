/* test_log.c — log lines as a reader (or a log shipper) sees them: whatever a message
 * interpolates (event names, URLs, error texts from outside), a text line stays one line
 * with no terminal escapes, and a JSON line is always written and always valid UTF-8.
 * stderr is captured through a temporary file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Runs one rt_log_write of msg (as a %s argument) with ctx in the given format and
 * returns everything it wrote to stderr (caller frees). */
static char *logged(bool json, const rt_log_ctx *ctx, const char *msg)
{
    char path[] = "/tmp/rt-test-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    rt_log_configure(RT_LOG_DEBUG, json);
    rt_log_write(RT_LOG_WARN, ctx, "event %s refused", msg);
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t n = lseek(fd, 0, SEEK_END);
    char *out = calloc(1, (size_t)n + 1);
    assert_non_null(out);
    assert_int_equal(pread(fd, out, (size_t)n, 0), n);
    close(fd);
    return out;
}

static int count_char(const char *s, char c)
{
    int n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

static void assert_one_line(const char *out, const char *name)
{
    size_t n = strlen(out);
    if (n == 0 || out[n - 1] != '\n' || count_char(out, '\n') != 1 || strchr(out, '\r') || strchr(out, '\x1b'))
        fail_msg("case %s: not exactly one clean line: [%s]", name, out);
}

static void test_text_escapes_controls(void **state)
{
    (void)state;
    static const struct {
        const char *name, *msg, *want;
    } cases[] = {
        {"newline forging a line", "a\n2026-01-01T00:00:00.000Z info  approved by ops-lead",
         "event a\\n2026-01-01T00:00:00.000Z info  approved by ops-lead refused"},
        {"carriage return", "a\rb", "event a\\rb refused"},
        {"terminal escape", "\x1b[2Jx", "event \\x1b[2Jx refused"},
        {"tab and DEL", "a\tb\x7f", "event a\\tb\\x7f refused"},
        {"C1 control (NEL)", "a\xc2\x85z", "event a\\u0085z refused"},
        {"line separator", "a\xe2\x80\xa8z", "event a\\u2028z refused"},
        {"invalid UTF-8", "a\xff\xfez", "event a\xef\xbf\xbd\xef\xbf\xbdz refused"},
        {"plain UTF-8 stays", "caf\xc3\xa9 \xe2\x82\xac", "event caf\xc3\xa9 \xe2\x82\xac refused"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = logged(false, NULL, cases[i].msg);
        assert_one_line(out, cases[i].name);
        if (!strstr(out, cases[i].want))
            fail_msg("case %s: [%s] does not hold [%s]", cases[i].name, out, cases[i].want);
        free(out);
    }
    /* context values are escaped too */
    rt_log_ctx ctx = {.workflow = "wf\nforged", .run_id = "r\x1b", .step_id = "s\r"};
    char *out = logged(false, &ctx, "x");
    assert_one_line(out, "context");
    assert_non_null(strstr(out, "workflow=wf\\nforged run=r\\x1b step=s\\r event x refused"));
    free(out);
}

static void test_json_never_drops(void **state)
{
    (void)state;
    static const struct {
        const char *name, *msg, *want;
    } cases[] = {
        {"invalid UTF-8", "a\xff\xfez", "event a\xef\xbf\xbd\xef\xbf\xbdz refused"},
        {"truncated sequence", "end\xe2\x82", "event end\xef\xbf\xbd refused"},
        {"overlong slash", "\xc0\xaf", "event \xef\xbf\xbd\xef\xbf\xbd refused"},
        {"surrogate", "\xed\xa0\x80", "event \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd refused"},
        {"newline", "a\nb", "event a\nb refused"},
        {"plain", "caf\xc3\xa9", "event caf\xc3\xa9 refused"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = logged(true, NULL, cases[i].msg);
        assert_one_line(out, cases[i].name);
        json_error_t jerr;
        json_t *o = json_loads(out, 0, &jerr);
        if (!o)
            fail_msg("case %s: not JSON: [%s]: %s", cases[i].name, out, jerr.text);
        const char *m = json_string_value(json_object_get(o, "msg"));
        if (!m || strcmp(m, cases[i].want) != 0)
            fail_msg("case %s: msg [%s], want [%s]", cases[i].name, m ? m : "(none)", cases[i].want);
        assert_string_equal(json_string_value(json_object_get(o, "level")), "warn");
        json_decref(o);
        free(out);
    }
    rt_log_ctx ctx = {.workflow = "w\xff", .run_id = "r", .step_id = "s"};
    char *out = logged(true, &ctx, "x");
    json_t *o = json_loads(out, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "workflow")), "w\xef\xbf\xbd");
    json_decref(o);
    free(out);
}

/* A message cut at the buffer's end in the middle of a character still makes a line. */
static void test_long_messages(void **state)
{
    (void)state;
    size_t n = 5000;
    char *big = malloc(n + 1);
    assert_non_null(big);
    for (size_t i = 0; i < n; i += 2) {
        big[i] = '\xc3';
        big[i + 1] = '\xa9';
    }
    big[n] = '\0';
    big[1] = '\n';
    for (int json = 0; json < 2; json++) {
        char *out = logged(json, NULL, big + 1); /* odd offset: cuts land mid-character */
        assert_one_line(out, json ? "long json" : "long text");
        if (json) {
            json_t *o = json_loads(out, 0, NULL);
            assert_non_null(o);
            json_decref(o);
        }
        free(out);
    }
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_escapes_controls),
        cmocka_unit_test(test_json_never_drops),
        cmocka_unit_test(test_long_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
