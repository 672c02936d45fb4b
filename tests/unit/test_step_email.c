/* test_step_email.c — the email step's checks of `with`, at load time and once rendered
 * (before anything connects). Delivery itself is tested against a real SMTP server in
 * tests/integration/t_email.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "step.h"

#include "test_helpers.h"

extern const rt_step_type rt_step_email;

#define BASE "\"url\": \"smtp://mail.example.com:587\", \"from\": \"ops@example.com\", "

static void test_validate(void **state)
{
    static const struct {
        const char *with, *needle;
    } bad[] = {
        {"{}", "needs \"url\""},
        {"{\"url\": \"smtp://m.test\", \"to\": \"a@b.c\", \"subject\": \"s\", \"text\": \"t\"}", "needs \"from\""},
        {"{" BASE "\"subject\": \"s\", \"text\": \"t\"}", "needs \"to\""},
        {"{" BASE "\"to\": \"a@b.c\", \"text\": \"t\"}", "needs \"subject\""},
        {"{" BASE "\"to\": \"a@b.c\", \"subject\": \"s\"}", "needs \"text\" or \"html\""},
        {"{" BASE "\"to\": \"a@b.c\", \"subject\": \"s\", \"text\": \"t\", \"bcc\": \"x@y.z\"}", "unknown key \"bcc\""},
        {"{\"url\": \"http://m.test\", \"from\": \"o@e.c\", \"to\": \"a@b.c\", \"subject\": \"s\", \"text\": \"t\"}",
         "smtp or smtps, not http"},
        {"{\"url\": \"smtp://\", \"from\": \"o@e.c\", \"to\": \"a@b.c\", \"subject\": \"s\", \"text\": \"t\"}", "url"},
        {"{" BASE "\"tls\": \"maybe\", \"to\": \"a@b.c\", \"subject\": \"s\", \"text\": \"t\"}",
         "\"tls\" must be \"required\", \"starttls\" or \"none\""},
        {"{\"url\": \"smtps://m.test\", \"tls\": \"starttls\", \"from\": \"o@e.c\", \"to\": \"a@b.c\", \"subject\": \"s\", "
         "\"text\": \"t\"}",
         "smtps:// URL is TLS from the start"},
        {"{" BASE "\"to\": \"a@b.c\", \"subject\": \"s\", \"text\": \"t\", \"password\": \"p\"}",
         "\"password\" needs \"username\""},
        {"{" BASE "\"to\": \"a@b.c\", \"subject\": \"hi\\r\\nBcc: v@x.y\", \"text\": \"t\"}",
         "\"subject\" has a line break: header injection refused"},
        {"{" BASE "\"to\": \"a@b.c\\nBcc: v@x.y\", \"subject\": \"s\", \"text\": \"t\"}",
         "\"to\" has a line break: header injection refused"},
        {"{" BASE "\"to\": [\"a@b.c\", \"b@c.d\\r\\n\"], \"subject\": \"s\", \"text\": \"t\"}",
         "\"to\"[1] has a line break"},
        {"{\"url\": \"smtp://m.test\", \"from\": \"Ops <ops@e.c>\\r\\nX: y\", \"to\": \"a@b.c\", \"subject\": \"s\", "
         "\"text\": \"t\"}",
         "\"from\" has a line break"},
        {"{" BASE "\"to\": \"a@b.c, d@e.f\", \"subject\": \"s\", \"text\": \"t\"}", "give several recipients as a list"},
        {"{" BASE "\"to\": \"not an address\", \"subject\": \"s\", \"text\": \"t\"}", "is not an address"},
        {"{" BASE "\"to\": \"Ada <ada@example.com\", \"subject\": \"s\", \"text\": \"t\"}", "must end with '>'"},
        {"{" BASE "\"to\": [], \"subject\": \"s\", \"text\": \"t\"}", "non-empty list"},
        {"{" BASE "\"to\": [5], \"subject\": \"s\", \"text\": \"t\"}", "\"to\"[0] must be a string"},
        {"{" BASE "\"to\": \"a@b.c\", \"cc\": {}, \"subject\": \"s\", \"text\": \"t\"}", "\"cc\" must be"},
        {"{" BASE "\"to\": \"a@b.c\", \"subject\": \"s\", \"text\": \"t\", \"timeout\": \"soon\"}", "timeout"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_invalid(&rt_step_email, bad[i].with, bad[i].needle);
    rt_error err;
    assert_int_equal(rt_step_email.validate(NULL, &err), RT_ERR_INVALID);

    expect_valid(&rt_step_email, "{" BASE "\"to\": \"Ada Lovelace <ada@example.com>\", \"subject\": \"s\", \"text\": \"t\"}");
    expect_valid(&rt_step_email,
                 "{\"url\": \"smtps://mail.example.com\", \"tls\": \"required\", \"username\": \"${{ secrets.U }}\", "
                 "\"password\": \"${{ secrets.P }}\", \"from\": \"\\\"Ops, Team\\\" <ops@example.com>\", "
                 "\"to\": [\"a@b.c\", \"${{ event.data.to }}\"], \"cc\": \"${{ event.data.cc }}\", "
                 "\"subject\": \"Grüße ${{ event.data.n }}\", \"html\": \"<p>x</p>\", \"ca_file\": \"/etc/ca.pem\", "
                 "\"timeout\": \"10s\"}");
    expect_valid(&rt_step_email, "{\"url\": \"${{ secrets.SMTP_URL }}\", \"tls\": \"${{ event.data.tls }}\", "
                                 "\"from\": \"${{ event.data.from }}\", \"to\": \"${{ event.data.to }}\", "
                                 "\"subject\": \"${{ event.data.s }}\", \"text\": \"${{ event.data.t }}\"}");
}

/* What a template rendered is checked before anything connects (no server here: a check
 * that let it through would fail with a connection error instead). */
static void test_rendered_checks(void **state)
{
    rt_step_ctx ctx = {.step_key = "r1:send"};
    rt_step_result res;
    run_step(&rt_step_email, &ctx,
             json_pack("{s:s,s:s,s:s,s:s,s:s}", "url", "smtp://127.0.0.1:1", "from", "ops@example.com", "to",
                       "a@example.com", "subject", "hi\r\nBcc: victim@example.com", "text", "t"),
             &res);
    expect_fail(&res, false, "header injection refused");
    assert_null(strstr(res.error, "victim"));
    rt_step_result_clear(&res);

    run_step(&rt_step_email, &ctx,
             json_pack("{s:s,s:s,s:s,s:s,s:n,s:s}", "url", "smtp://127.0.0.1:1", "from", "ops@example.com", "to",
                       "a@example.com", "subject", "s", "password", "username", "x"),
             &res);
    expect_fail(&res, false, NULL);
    rt_step_result_clear(&res);

    run_step(&rt_step_email, &ctx,
             json_pack("{s:s,s:s,s:s,s:s,s:n,s:n}", "url", "smtp://127.0.0.1:1", "from", "ops@example.com", "to",
                       "a@example.com", "subject", "s", "text", "html"),
             &res);
    expect_fail(&res, false, "both rendered as null");
    rt_step_result_clear(&res);

    run_step(&rt_step_email, &ctx,
             json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "url", "smtp://127.0.0.1:1", "from", "ops@example.com", "to",
                       "a@example.com", "subject", "s", "text", "t", "username", "u", "password", "s3cret-pw"),
             &res);
    expect_fail(&res, true, NULL); /* tls "required" by default; nothing listens on port 1 */
    assert_null(strstr(res.error, "s3cret-pw"));
    rt_step_result_clear(&res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_rendered_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
