/* test_step_http.c — the http step against a tiny HTTP/1.1 server running in this test on
 * 127.0.0.1 (one thread, canned responses chosen by path, every request recorded). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "step.h"
#include "util.h"

#include "test_helpers.h"

extern const rt_step_type rt_step_http;

/* ---- the server ---------------------------------------------------------------------- */

struct recorded {
    char method[16];
    char path[512];
    json_t *headers; /* lowercased name -> value; repeats joined with ", " */
    char *body;
    size_t body_len;
};

static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;
static struct recorded last;
static int listen_fd = -1, port;
static pthread_t server_thread;
static volatile int server_stop;

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void respond(int fd, const char *status, const char *extra_headers, const char *body, size_t len)
{
    char head[1024];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %s\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n",
                     status, len, extra_headers);
    send_all(fd, head, (size_t)n);
    send_all(fd, body, len);
}

static void handle(int fd)
{
    char buf[65536];
    size_t len = 0;
    char *end = NULL;
    while (!end && len < sizeof buf - 1) {
        ssize_t r = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (r <= 0)
            return;
        len += (size_t)r;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    if (!end)
        return;
    struct recorded req = {.headers = json_object()};
    sscanf(buf, "%15s %511s", req.method, req.path);
    size_t content_length = 0;
    for (char *line = strstr(buf, "\r\n") + 2; line < end; line = strstr(line, "\r\n") + 2) {
        char *eol = strstr(line, "\r\n");
        char *colon = memchr(line, ':', (size_t)(eol - line));
        if (!colon)
            continue;
        char name[128];
        size_t nl = (size_t)(colon - line) < sizeof name - 1 ? (size_t)(colon - line) : sizeof name - 1;
        for (size_t i = 0; i < nl; i++)
            name[i] = (char)((line[i] >= 'A' && line[i] <= 'Z') ? line[i] + 32 : line[i]);
        name[nl] = '\0';
        char *v = colon + 1;
        while (*v == ' ')
            v++;
        char value[4096];
        snprintf(value, sizeof value, "%.*s", (int)(eol - v), v);
        json_t *old = json_object_get(req.headers, name);
        if (old) {
            char joined[8192];
            snprintf(joined, sizeof joined, "%s, %s", json_string_value(old), value);
            json_object_set_new(req.headers, name, json_string(joined));
        } else {
            json_object_set_new(req.headers, name, json_string(value));
        }
        if (strcmp(name, "content-length") == 0)
            content_length = strtoul(value, NULL, 10);
    }
    size_t have = len - (size_t)(end + 4 - buf);
    req.body = malloc(content_length + 1);
    memcpy(req.body, end + 4, have < content_length ? have : content_length);
    while (have < content_length) {
        ssize_t r = recv(fd, req.body + have, content_length - have, 0);
        if (r <= 0)
            break;
        have += (size_t)r;
    }
    req.body_len = have < content_length ? have : content_length;
    req.body[req.body_len] = '\0';

    pthread_mutex_lock(&rec_mu);
    json_decref(last.headers);
    free(last.body);
    last = req;
    pthread_mutex_unlock(&rec_mu);

    const char *p = req.path;
    if (strncmp(p, "/json", 5) == 0) {
        const char *b = "{\"ok\": true, \"n\": [1, 2]}";
        respond(fd, "200 OK", "Content-Type: application/json; charset=utf-8\r\nX-Multi: a\r\nX-Multi: b\r\n",
                b, strlen(b));
    } else if (strcmp(p, "/text") == 0) {
        respond(fd, "201 Created", "Content-Type: text/plain\r\n", "created", 7);
    } else if (strcmp(p, "/badjson") == 0) {
        respond(fd, "200 OK", "Content-Type: application/json\r\n", "not json", 8);
    } else if (strcmp(p, "/problem") == 0) {
        const char *b = "{\"title\": \"amount must be positive\"}";
        respond(fd, "422 Unprocessable Entity", "Content-Type: application/problem+json\r\n", b, strlen(b));
    } else if (strcmp(p, "/404") == 0) {
        respond(fd, "404 Not Found", "Content-Type: text/plain\r\n", "no such thing", 13);
    } else if (strcmp(p, "/500") == 0) {
        respond(fd, "500 Internal Server Error", "", "boom", 4);
    } else if (strcmp(p, "/429") == 0) {
        respond(fd, "429 Too Many Requests", "Retry-After: 7\r\n", "slow down", 9);
    } else if (strcmp(p, "/redirect") == 0) {
        respond(fd, "302 Found", "Location: /json\r\n", "", 0);
    } else if (strcmp(p, "/big") == 0) {
        char *b = malloc(100000);
        memset(b, 'z', 100000);
        respond(fd, "200 OK", "Content-Type: text/plain\r\n", b, 100000);
        free(b);
    } else if (strcmp(p, "/slow") == 0) {
        usleep(2000 * 1000);
        respond(fd, "200 OK", "", "late", 4);
    } else if (strcmp(p, "/empty") == 0) {
        respond(fd, "204 No Content", "", "", 0);
    } else {
        respond(fd, "400 Bad Request", "", "unknown path", 12);
    }
}

static void *serve(void *arg)
{
    while (!server_stop) {
        struct pollfd pf = {.fd = listen_fd, .events = POLLIN};
        if (poll(&pf, 1, 50) <= 0)
            continue;
        int c = accept(listen_fd, NULL, NULL);
        if (c < 0)
            continue;
        handle(c);
        close(c);
    }
    return NULL;
}

static int bind_loopback(int *out_port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0)
        return -1;
    *out_port = ntohs(a.sin_port);
    return fd;
}

static int setup(void **state)
{
    listen_fd = bind_loopback(&port);
    if (listen_fd < 0 || listen(listen_fd, 16) != 0)
        return -1;
    return pthread_create(&server_thread, NULL, serve, NULL) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    server_stop = 1;
    pthread_join(server_thread, NULL);
    close(listen_fd);
    json_decref(last.headers);
    free(last.body);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------------- */

static volatile sig_atomic_t cancel_flag;

static rt_step_ctx make_ctx(void)
{
    cancel_flag = 0;
    return (rt_step_ctx){.workflow_id = "wf", .run_id = "run-1", .step_id = "call",
                         .step_key = "run-1:call", .attempt = 1, .cancelled = &cancel_flag};
}

static char *url(const char *path)
{
    static __thread char buf[256];
    snprintf(buf, sizeof buf, "http://127.0.0.1:%d%s", port, path);
    return buf;
}

static void run(rt_step_ctx *ctx, json_t *with, rt_step_result *res)
{
    run_step(&rt_step_http, ctx, with, res);
}

static void run_default(json_t *with, rt_step_result *res)
{
    rt_step_ctx ctx = make_ctx();
    run(&ctx, with, res);
}

/* A copy of the last request's header (or NULL); caller frees. */
static char *recorded_header(const char *name)
{
    pthread_mutex_lock(&rec_mu);
    const char *v = json_string_value(json_object_get(last.headers, name));
    char *copy = v ? strdup(v) : NULL;
    pthread_mutex_unlock(&rec_mu);
    return copy;
}

static void expect_header(const char *name, const char *value)
{
    char *v = recorded_header(name);
    if (!v || strcmp(v, value) != 0)
        fail_msg("request header %s: expected \"%s\", got \"%s\"", name, value, v ? v : "(absent)");
    free(v);
}

/* ---- tests --------------------------------------------------------------------------- */

static void test_get_json(void **state)
{
    rt_step_result res;
    run_default(json_pack("{s:s}", "url", url("/json")), &res);
    expect_ok(&res);
    assert_int_equal(json_integer_value(json_object_get(res.output, "status")), 200);
    json_t *body = json_object_get(res.output, "body");
    assert_true(json_is_true(json_object_get(body, "ok")));
    assert_int_equal(json_integer_value(json_array_get(json_object_get(body, "n"), 1)), 2);
    json_t *headers = json_object_get(res.output, "headers");
    assert_string_equal(json_string_value(json_object_get(headers, "content-type")),
                        "application/json; charset=utf-8");
    assert_string_equal(json_string_value(json_object_get(headers, "x-multi")), "a, b");
    rt_step_result_clear(&res);

    pthread_mutex_lock(&rec_mu);
    assert_string_equal(last.method, "GET");
    assert_int_equal(last.body_len, 0);
    pthread_mutex_unlock(&rec_mu);
    char *ua = recorded_header("user-agent");
    assert_non_null(ua);
    assert_int_equal(strncmp(ua, "ratchet/", 8), 0);
    free(ua);
}

static void test_post_text_201(void **state)
{
    rt_step_result res;
    run_default(json_pack("{s:s,s:s,s:s}", "method", "POST", "url", url("/text"), "body", "hello raw"), &res);
    expect_ok(&res);
    assert_int_equal(json_integer_value(json_object_get(res.output, "status")), 201);
    assert_string_equal(json_string_value(json_object_get(res.output, "body")), "created");
    rt_step_result_clear(&res);
    pthread_mutex_lock(&rec_mu);
    assert_string_equal(last.method, "POST");
    assert_string_equal(last.body, "hello raw");
    pthread_mutex_unlock(&rec_mu);
    expect_header("content-type", "text/plain; charset=utf-8");
}

static void test_json_body_and_types(void **state)
{
    rt_step_result res;
    run_default(json_pack("{s:s,s:s,s:{s:i,s:[b]}}", "method", "put", "url", url("/json"), "body", "a", 1,
                          "list", 1),
                &res);
    expect_ok(&res);
    rt_step_result_clear(&res);
    pthread_mutex_lock(&rec_mu);
    assert_string_equal(last.method, "PUT");
    assert_string_equal(last.body, "{\"a\":1,\"list\":[true]}");
    pthread_mutex_unlock(&rec_mu);
    expect_header("content-type", "application/json");

    /* A content type the workflow gives wins. */
    run_default(json_pack("{s:s,s:s,s:{s:s},s:[i]}", "method", "PATCH", "url", url("/json"), "headers",
                          "Content-Type", "application/merge-patch+json", "body", 1),
                &res);
    expect_ok(&res);
    rt_step_result_clear(&res);
    expect_header("content-type", "application/merge-patch+json");

    /* application/json that does not parse stays a string; 204 has no body: null. */
    run_default(json_pack("{s:s}", "url", url("/badjson")), &res);
    expect_ok(&res);
    assert_string_equal(json_string_value(json_object_get(res.output, "body")), "not json");
    rt_step_result_clear(&res);
    run_default(json_pack("{s:s,s:s}", "method", "DELETE", "url", url("/empty")), &res);
    expect_ok(&res);
    assert_int_equal(json_integer_value(json_object_get(res.output, "status")), 204);
    assert_true(json_is_null(json_object_get(res.output, "body")));
    rt_step_result_clear(&res);
    run_default(json_pack("{s:s,s:s}", "method", "HEAD", "url", url("/json")), &res);
    expect_ok(&res);
    assert_true(json_is_null(json_object_get(res.output, "body")));
    rt_step_result_clear(&res);
    pthread_mutex_lock(&rec_mu);
    assert_string_equal(last.method, "HEAD");
    pthread_mutex_unlock(&rec_mu);
}

static void test_404_not_retriable(void **state)
{
    rt_step_result res;
    run_default(json_pack("{s:s,s:{s:s}}", "url", url("/404"), "headers", "Authorization", "Bearer topsecret"),
                &res);
    expect_fail(&res, false, "HTTP 404 Not Found: no such thing");
    assert_null(strstr(res.error, "topsecret"));
    assert_int_equal(json_integer_value(json_object_get(res.error_detail, "status")), 404);
    assert_string_equal(json_string_value(json_object_get(res.error_detail, "body")), "no such thing");
    char *detail = json_dumps(res.error_detail, 0);
    assert_null(strstr(detail, "topsecret"));
    free(detail);
    rt_step_result_clear(&res);

    run_default(json_pack("{s:s,s:s}", "method", "POST", "url", url("/problem")), &res);
    expect_fail(&res, false, "HTTP 422 Unprocessable Entity: {\"title\": \"amount must be positive\"}");
    rt_step_result_clear(&res);
}

static void test_500_retriable(void **state)
{
    rt_step_result res;
    run_default(json_pack("{s:s}", "url", url("/500")), &res);
    expect_fail(&res, true, "HTTP 500 Internal Server Error: boom");
    assert_int_equal(res.retry_after_ms, 0);
    rt_step_result_clear(&res);
}

static void test_429_retry_after(void **state)
{
    rt_step_result res;
    run_default(json_pack("{s:s}", "url", url("/429")), &res);
    expect_fail(&res, true, "HTTP 429");
    assert_int_equal(res.retry_after_ms, 7000);
    rt_step_result_clear(&res);
}

static void test_timeout(void **state)
{
    rt_step_result res;
    int64_t t0 = rt_mono_ms();
    run_default(json_pack("{s:s,s:s}", "url", url("/slow"), "timeout", "300ms"), &res);
    int64_t took = rt_mono_ms() - t0;
    expect_fail(&res, true, "timed out after 300ms");
    assert_true(took < 1500);
    rt_step_result_clear(&res);

    rt_step_ctx ctx = make_ctx();
    ctx.deadline_mono_ms = rt_mono_ms() + 300;
    run(&ctx, json_pack("{s:s}", "url", url("/slow")), &res);
    expect_fail(&res, true, "(step deadline)");
    rt_step_result_clear(&res);
}

static void *set_cancel_later(void *arg)
{
    usleep(200 * 1000);
    cancel_flag = 1;
    return NULL;
}

static void test_cancel(void **state)
{
    rt_step_ctx ctx = make_ctx();
    pthread_t th;
    pthread_create(&th, NULL, set_cancel_later, NULL);
    rt_step_result res;
    run(&ctx, json_pack("{s:s}", "url", url("/slow")), &res);
    pthread_join(th, NULL);
    expect_fail(&res, true, "cancelled");
    rt_step_result_clear(&res);
}

static void test_connection_refused(void **state)
{
    int closed_port = 0;
    int fd = bind_loopback(&closed_port);
    assert_true(fd >= 0);
    close(fd); /* nothing listens there now */
    char u[256];
    snprintf(u, sizeof u, "http://127.0.0.1:%d/x?token=supersecret", closed_port);
    rt_step_result res;
    run_default(json_pack("{s:s,s:{s:s}}", "url", u, "headers", "X-Api-Key", "keysecret"), &res);
    expect_fail(&res, true, NULL);
    assert_null(strstr(res.error, "supersecret"));
    assert_null(strstr(res.error, "keysecret"));
    rt_step_result_clear(&res);
}

static void test_hmac_signature(void **state)
{
    const char *secret = "whsec_123";
    const char *body = "{\"amount\":1250,\"id\":\"in_1\"}";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, strlen(body), mac, &mac_len);
    char expected[80] = "sha256=";
    for (unsigned i = 0; i < mac_len; i++)
        sprintf(expected + 7 + 2 * i, "%02x", mac[i]);

    rt_step_result res;
    run_default(json_pack("{s:s,s:s,s:{s:i,s:s},s:{s:s}}", "method", "POST", "url", url("/json"), "body",
                          "amount", 1250, "id", "in_1", "hmac", "secret", secret),
                &res);
    expect_ok(&res);
    rt_step_result_clear(&res);
    pthread_mutex_lock(&rec_mu);
    assert_string_equal(last.body, body);
    pthread_mutex_unlock(&rec_mu);
    expect_header("x-ratchet-signature", expected);

    /* Another header name; the signature replaces a same-named header from the workflow. */
    run_default(json_pack("{s:s,s:s,s:{s:i,s:s},s:{s:s},s:{s:s,s:s,s:s}}", "method", "POST", "url",
                          url("/json"), "body", "amount", 1250, "id", "in_1", "headers", "X-Sig", "forged",
                          "hmac", "secret", secret, "header", "X-Sig", "algorithm", "sha256"),
                &res);
    expect_ok(&res);
    rt_step_result_clear(&res);
    expect_header("x-sig", expected);
    char *def = recorded_header("x-ratchet-signature");
    assert_null(def);
}

/* The signing itself is checked against botocore in tests/integration/t_http_s3.sh; here:
 * the headers S3 needs are there and nothing is signed that is not sent. */
static void test_aws_sigv4_headers(void **state)
{
    const char *body = "{\"a\":1}";
    char hex[65];
    rt_sha256_hex(body, strlen(body), hex);
    rt_step_result res;
    run_default(json_pack("{s:s,s:s,s:s,s:{s:s,s:s,s:s,s:s}}", "method", "PUT", "url", url("/json"), "body", body,
                          "aws_sigv4", "region", "eu-test-1", "service", "s3", "access_key", "AKID", "secret_key",
                          "not-in-any-header"),
                &res);
    expect_ok(&res);
    rt_step_result_clear(&res);
    expect_header("x-amz-content-sha256", hex);
    char *auth = recorded_header("authorization");
    assert_non_null(auth);
    assert_non_null(strstr(auth, "AWS4-HMAC-SHA256 Credential=AKID/"));
    assert_non_null(strstr(auth, "/eu-test-1/s3/aws4_request"));
    assert_non_null(strstr(auth, "x-amz-content-sha256"));
    assert_null(strstr(auth, "expect"));
    assert_null(strstr(auth, "not-in-any-header"));
    free(auth);
    char *date = recorded_header("x-amz-date");
    assert_non_null(date);
    free(date);
}

static void test_idempotency_key(void **state)
{
    rt_step_result res;
    run_default(json_pack("{s:s,s:s}", "method", "POST", "url", url("/json")), &res);
    expect_ok(&res);
    rt_step_result_clear(&res);
    expect_header("idempotency-key", "run-1:call");
    expect_header("content-length", "0");

    run_default(json_pack("{s:s,s:s,s:{s:s}}", "method", "POST", "url", url("/json"), "headers",
                          "idempotency-key", "mine"),
                &res);
    expect_ok(&res);
    rt_step_result_clear(&res);
    expect_header("idempotency-key", "mine"); /* and only once */
}

/* The claim's fencing token travels next to the idempotency key; an unleased step (fence
 * 0) sends none. */
static void test_fence_header(void **state)
{
    rt_step_result res;
    rt_step_ctx ctx = make_ctx();
    ctx.fence = 42;
    run(&ctx, json_pack("{s:s,s:s}", "method", "POST", "url", url("/json")), &res);
    expect_ok(&res);
    rt_step_result_clear(&res);
    expect_header("x-ratchet-fence", "42");
    expect_header("idempotency-key", "run-1:call");

    run_default(json_pack("{s:s,s:s}", "method", "POST", "url", url("/json")), &res);
    expect_ok(&res);
    rt_step_result_clear(&res);
    char *none = recorded_header("x-ratchet-fence");
    assert_null(none);
}

static void test_redirects(void **state)
{
    rt_step_result res;
    run_default(json_pack("{s:s}", "url", url("/redirect")), &res);
    expect_fail(&res, false, "HTTP 302 Found");
    rt_step_result_clear(&res);

    run_default(json_pack("{s:s,s:b}", "url", url("/redirect"), "follow_redirects", 1), &res);
    expect_ok(&res);
    assert_int_equal(json_integer_value(json_object_get(res.output, "status")), 200);
    assert_null(json_object_get(json_object_get(res.output, "headers"), "location"));
    rt_step_result_clear(&res);
}

static void test_max_response_bytes(void **state)
{
    rt_step_result res;
    run_default(json_pack("{s:s,s:i}", "url", url("/big"), "max_response_bytes", 1000), &res);
    expect_fail(&res, false, "max_response_bytes");
    rt_step_result_clear(&res);

    run_default(json_pack("{s:s}", "url", url("/big")), &res);
    expect_ok(&res);
    assert_int_equal(json_string_length(json_object_get(res.output, "body")), 100000);
    rt_step_result_clear(&res);
}

static void *worker(void *p)
{
    struct worker_arg *w = p;
    for (int i = 0; i < 10; i++) {
        rt_step_ctx ctx = {.run_id = "r", .step_key = "r:s", .attempt = 1};
        rt_step_result res;
        memset(&res, 0, sizeof res);
        json_t *with = json_pack("{s:s}", "url", url("/json"));
        rt_step_http.execute(&ctx, with, &res);
        if (res.outcome != RT_STEP_OK || !json_is_true(json_object_get(json_object_get(res.output, "body"), "ok")))
            w->failures++;
        rt_step_result_clear(&res);
        json_decref(with);
    }
    return NULL;
}

/* Worker threads send requests side by side (and share curl's one-time initialisation). */
static void test_concurrent(void **state)
{
    run_workers(worker, 4);
}

static void test_validate(void **state)
{
    static const struct {
        const char *with, *needle;
    } bad[] = {
        {"{}", "needs \"url\""},
        {"{\"url\": 5}", "\"url\" must be a string"},
        {"{\"url\": \"ftp://example.com/x\"}", "http or https"},
        {"{\"url\": \"file:///etc/passwd\"}", "http or https"},
        {"{\"url\": \"not a url\"}", "not a valid"},
        {"{\"url\": \"https://x.test\", \"method\": \"TRACE\"}", "method"},
        {"{\"url\": \"https://x.test\", \"headers\": [\"A: b\"]}", "headers"},
        {"{\"url\": \"https://x.test\", \"headers\": {\"Bad Name\": \"v\"}}", "not a valid header name"},
        {"{\"url\": \"https://x.test\", \"headers\": {\"X-A\": \"v\\r\\nInjected: 1\"}}", "line break"},
        {"{\"url\": \"https://x.test\", \"headers\": {\"X-A\": {}}}", "must be a string"},
        {"{\"url\": \"https://x.test\", \"timeout\": \"forever\"}", "timeout"},
        {"{\"url\": \"https://x.test\", \"hmac\": {}}", "needs \"secret\""},
        {"{\"url\": \"https://x.test\", \"hmac\": {\"secret\": \"s\", \"algorithm\": \"sha1\"}}", "sha256"},
        {"{\"url\": \"https://x.test\", \"hmac\": {\"secret\": \"s\", \"key\": 1}}", "unknown key \"key\""},
        {"{\"url\": \"https://x.test\", \"hmac\": \"s\"}", "hmac"},
        {"{\"url\": \"https://x.test\", \"follow_redirects\": \"yes\"}", "follow_redirects"},
        {"{\"url\": \"https://x.test\", \"max_response_bytes\": -1}", "max_response_bytes"},
        {"{\"url\": \"https://x.test\", \"retries\": 3}", "unknown key \"retries\""},
        {"{\"url\": \"https://x.test\", \"aws_sigv4\": \"s\"}", "\"aws_sigv4\" must be an object"},
        {"{\"url\": \"https://x.test\", \"aws_sigv4\": {\"service\": \"s3\", \"access_key\": \"a\", \"secret_key\": \"s\"}}",
         "\"aws_sigv4\" needs \"region\""},
        {"{\"url\": \"https://x.test\", \"aws_sigv4\": {\"region\": \"r\", \"access_key\": \"a\", \"secret_key\": \"s\"}}",
         "\"aws_sigv4\" needs \"service\""},
        {"{\"url\": \"https://x.test\", \"aws_sigv4\": {\"region\": \"r\", \"service\": \"s3\", \"secret_key\": \"s\"}}",
         "\"aws_sigv4\" needs \"access_key\""},
        {"{\"url\": \"https://x.test\", \"aws_sigv4\": {\"region\": \"r\", \"service\": \"s3\", \"access_key\": \"a\"}}",
         "\"aws_sigv4\" needs \"secret_key\""},
        {"{\"url\": \"https://x.test\", \"aws_sigv4\": {\"region\": \"us:east\", \"service\": \"s3\", \"access_key\": \"a\", \"secret_key\": \"s\"}}",
         "\"aws_sigv4.region\" must be letters"},
        {"{\"url\": \"https://x.test\", \"aws_sigv4\": {\"region\": \"r\", \"service\": \"s3\", \"access_key\": \"\", \"secret_key\": \"s\"}}",
         "\"aws_sigv4.access_key\" must be a non-empty string"},
        {"{\"url\": \"https://x.test\", \"aws_sigv4\": {\"region\": \"r\", \"service\": \"s3\", \"access_key\": \"a\", \"secret_key\": \"s\", \"token\": 1}}",
         "\"aws_sigv4\" has unknown key \"token\""},
        {"{\"url\": \"https://x.test\", \"headers\": {\"authorization\": \"x\"}, \"aws_sigv4\": {\"region\": \"r\", \"service\": \"s3\", \"access_key\": \"a\", \"secret_key\": \"s\"}}",
         "sets Authorization"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_invalid(&rt_step_http, bad[i].with, bad[i].needle);
    rt_error err;
    assert_int_equal(rt_step_http.validate(NULL, &err), RT_ERR_INVALID);

    expect_valid(&rt_step_http, "{\"url\": \"https://api.example.com/v1/x?y=1\"}");
    expect_valid(&rt_step_http,
                 "{\"method\": \"post\", \"url\": \"http://127.0.0.1:8080/hook\", \"headers\": {\"X-N\": 1}, "
                 "\"body\": [1, 2], \"timeout\": \"10s\", \"hmac\": {\"secret\": \"s\", \"header\": \"X-Sig\", "
                 "\"algorithm\": \"sha256\"}, \"follow_redirects\": true, \"max_response_bytes\": 1024}");
    expect_valid(&rt_step_http,
                 "{\"url\": \"${{ event.data.callback }}\", \"method\": \"${{ event.data.m }}\", "
                 "\"headers\": {\"Authorization\": \"Bearer ${{ secrets.TOKEN }}\"}, "
                 "\"hmac\": {\"secret\": \"${{ secrets.HOOK }}\"}}");

    expect_valid(&rt_step_http,
                 "{\"method\": \"PUT\", \"url\": \"https://s3.example.com/b/k\", \"body\": \"x\", \"aws_sigv4\": "
                 "{\"region\": \"${{ default(secrets.R, 'us-east-1') }}\", \"service\": \"s3\", "
                 "\"access_key\": \"${{ secrets.AK }}\", \"secret_key\": \"${{ secrets.SK }}\"}}");

    /* Rendered values are checked again at run time. */
    rt_step_result res;
    run_default(json_pack("{s:s}", "url", "gopher://127.0.0.1/"), &res);
    expect_fail(&res, false, "http or https");
    rt_step_result_clear(&res);
    run_default(json_pack("{s:s,s:{s:s}}", "url", url("/json"), "headers", "X-A", "a\r\nX-B: injected"), &res);
    expect_fail(&res, false, "line break");
    assert_null(strstr(res.error, "injected"));
    rt_step_result_clear(&res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_json),
        cmocka_unit_test(test_post_text_201),
        cmocka_unit_test(test_json_body_and_types),
        cmocka_unit_test(test_404_not_retriable),
        cmocka_unit_test(test_500_retriable),
        cmocka_unit_test(test_429_retry_after),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_hmac_signature),
        cmocka_unit_test(test_aws_sigv4_headers),
        cmocka_unit_test(test_idempotency_key),
        cmocka_unit_test(test_fence_header),
        cmocka_unit_test(test_redirects),
        cmocka_unit_test(test_max_response_bytes),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_validate),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
