/* test_bus.c — the broker-independent parts of engine/bus/bus.c, engine/bus/consumer.c and the
 * publish step: pattern rules and their AMQP translation, matching, URL redaction,
 * opening a bus by scheme, option checks, the consumer's backoff and stop against a
 * port where nothing listens, and the publish step's validation. The transports
 * themselves are tested against real brokers in tests/integration/t_bus_*.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus.h"
#include "consumer.h"
#include "step.h"
#include "util.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void test_pattern_check(void **state)
{
    (void)state;
    static const struct {
        const char *p;
        bool ok;
    } cases[] = {
        {"invoice.paid", true}, {"invoice.*", true},   {"invoice.>", true},   {">", true},
        {"*", true},            {"*.paid", true},      {"a.*.c.>", true},     {"order_created-v2:x", true},
        {"", false},            {".a", false},         {"a.", false},         {"a..b", false},
        {"a.>.b", false},       {"a.b*", false},       {"a.>b", false},       {"a b", false},
        {"a.#", false},         {"a/b", false},        {"ä.b", false},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        rt_error err = {0};
        rt_status st = rt_bus_pattern_check(cases[i].p, &err);
        if ((st == RT_OK) != cases[i].ok)
            fail_msg("pattern '%s': expected %s, got %s (%s)", cases[i].p, cases[i].ok ? "ok" : "error",
                     rt_status_name(st), err.msg);
        if (!cases[i].ok)
            assert_non_null(strstr(err.msg, "event pattern"));
    }
}

static void test_pattern_to_amqp(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"invoice.paid", "invoice.paid"}, {"invoice.*", "invoice.*"}, {"invoice.>", "invoice.#"},
        {">", "#"},                       {"*.*.>", "*.*.#"},        {"a.*.c", "a.*.c"},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        char buf[64];
        rt_error err;
        assert_int_equal(rt_bus_pattern_to_amqp(cases[i].in, buf, sizeof buf, &err), RT_OK);
        assert_string_equal(buf, cases[i].out);
    }
    char small[4];
    rt_error err;
    assert_int_equal(rt_bus_pattern_to_amqp("abcdef", small, sizeof small, &err), RT_ERR_INVALID);
    assert_int_equal(rt_bus_pattern_to_amqp("a.>.b", small, sizeof small, &err), RT_ERR_INVALID);
}

static void test_pattern_match(void **state)
{
    (void)state;
    static const struct {
        const char *p, *name;
        bool match;
    } cases[] = {
        {"invoice.paid", "invoice.paid", true},
        {"invoice.paid", "invoice.paid.x", false},
        {"invoice.paid", "invoice", false},
        {"invoice.*", "invoice.paid", true},
        {"invoice.*", "invoice.paid.late", false},
        {"invoice.*", "invoice", false},
        {"invoice.>", "invoice.paid", true},
        {"invoice.>", "invoice.paid.late", true},
        {"invoice.>", "invoice", false},
        {">", "a", true},
        {">", "a.b.c", true},
        {"*", "a", true},
        {"*", "a.b", false},
        {"*.paid", "invoice.paid", true},
        {"*.paid", "invoice.sent", false},
        {"a.*.c", "a.b.c", true},
        {"a.*.c", "a.b.d", false},
        {"a.*.>", "a.b.c.d", true},
        {"a.*.>", "a.b", false},
        {"ab", "a", false},
        {"a", "ab", false},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        if (rt_bus_pattern_match(cases[i].p, cases[i].name) != cases[i].match)
            fail_msg("'%s' vs '%s': expected %s", cases[i].p, cases[i].name, cases[i].match ? "match" : "no match");
    }
}

static void test_url_redact(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"amqp://guest:secret@127.0.0.1:5672/v1", "amqp://127.0.0.1:5672/v1"},
        {"amqps://u:p%40ss@host/", "amqps://host/"},
        {"amqp://127.0.0.1:5672/", "amqp://127.0.0.1:5672/"},
        {"nats://tok@127.0.0.1:4222", "nats://127.0.0.1:4222"},
        {"nats://a:b@h1:4222,nats://c:d@h2:4222", "nats://h1:4222,nats://h2:4222"},
        {"tls://user:pw@nats.example.com:4443", "tls://nats.example.com:4443"},
        {"amqp://u:p@h/v?x=@y", "amqp://h/v?x=@y"},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        char buf[128];
        rt_bus_url_redact(cases[i].in, buf, sizeof buf);
        assert_string_equal(buf, cases[i].out);
        assert_null(strstr(buf, "secret"));
    }
    char tiny[8];
    rt_bus_url_redact("amqp://u:secret@longhostname/", tiny, sizeof tiny);
    assert_int_equal(strlen(tiny), 7);
    assert_null(strstr(tiny, "sec"));
}

static void test_open_by_scheme(void **state)
{
    (void)state;
    static const struct {
        const char *url, *name;
    } cases[] = {
        {"amqp://guest:guest@127.0.0.1:1/", "amqp"},
        {"amqps://127.0.0.1:1/", "amqp"},
        {"AMQP://127.0.0.1:1/", "amqp"},
        {"nats://127.0.0.1:1", "nats"},
        {"tls://127.0.0.1:1", "nats"},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        rt_bus_options o;
        rt_bus_options_init(&o);
        o.url = cases[i].url;
        rt_bus *b = NULL;
        rt_error err;
        assert_int_equal(rt_bus_open(&o, &b, &err), RT_OK);
        assert_string_equal(rt_bus_name(b), cases[i].name);
        assert_false(rt_bus_is_connected(b));
        /* defaults applied */
        assert_int_equal(b->opts.prefetch, 256);
        assert_string_equal(b->opts.stream, RT_BUS_NATS_STREAM);
        assert_string_equal(b->opts.subject_prefix, RT_BUS_NATS_PREFIX);
        assert_string_equal(b->opts.consumer, RT_BUS_NATS_CONSUMER);
        assert_string_equal(b->opts.queue, RT_BUS_AMQP_QUEUE);
        rt_bus_free(b);
    }
    rt_bus_options o;
    rt_bus_options_init(&o);
    rt_bus *b = NULL;
    rt_error err;
    o.url = "http://user:pw@x/";
    assert_int_equal(rt_bus_open(&o, &b, &err), RT_ERR_INVALID);
    assert_null(b);
    assert_non_null(strstr(err.msg, "unknown scheme"));
    assert_null(strstr(err.msg, "pw"));
    o.url = "";
    assert_int_equal(rt_bus_open(&o, &b, &err), RT_ERR_INVALID);
    o.url = "nats://127.0.0.1:1";
    o.stream = "BAD.NAME";
    assert_int_equal(rt_bus_open(&o, &b, &err), RT_ERR_INVALID);
    o.stream = NULL;
    o.subject_prefix = "ev.>";
    assert_int_equal(rt_bus_open(&o, &b, &err), RT_ERR_INVALID);
    o.subject_prefix = NULL;
    o.tls.cert_file = "/x.pem";
    assert_int_equal(rt_bus_open(&o, &b, &err), RT_ERR_INVALID);
    assert_non_null(strstr(err.msg, "RATCHET_TLS_KEY"));
}

/* Connecting to a port where nothing listens: errors name the broker without the
 * password, and say "unavailable". */
static void test_connect_refused(void **state)
{
    (void)state;
    const char *urls[] = {"amqp://guest:hunter2@127.0.0.1:1/", "nats://user:hunter2@127.0.0.1:1"};
    for (size_t i = 0; i < COUNT(urls); i++) {
        rt_bus_options o;
        rt_bus_options_init(&o);
        o.url = urls[i];
        o.connect_timeout_ms = 1000;
        rt_bus *b;
        rt_error err;
        assert_int_equal(rt_bus_open(&o, &b, &err), RT_OK);
        rt_status st = rt_bus_connect(b, &err);
        assert_int_equal(st, RT_ERR_UNAVAILABLE);
        assert_null(strstr(err.msg, "hunter2"));
        assert_non_null(strstr(err.msg, "127.0.0.1:1"));
        /* the publishing side fails the same way, and the bus stays usable */
        rt_bus_out out = {.name = "a.b", .body = "{}", .len = 2};
        st = rt_bus_publish(b, &out, 1, 1000, &err);
        assert_int_equal(st, RT_ERR_UNAVAILABLE);
        assert_null(strstr(err.msg, "hunter2"));
        rt_bus_close(b);
        rt_bus_free(b);
    }
}

static void ingest_never(void *arg, rt_bus_msg *const *msgs, size_t n, rt_ingest_verdict *verdicts)
{
    (void)arg;
    (void)msgs;
    (void)n;
    (void)verdicts;
    fail_msg("ingest called without a broker");
}

/* The consumer keeps retrying with backoff, and stops promptly when asked. */
static void test_consumer_backoff_and_stop(void **state)
{
    (void)state;
    const char *urls[] = {"amqp://127.0.0.1:1/", "nats://127.0.0.1:1"};
    for (size_t i = 0; i < COUNT(urls); i++) {
        rt_consumer_options co = {0};
        rt_bus_options_init(&co.bus);
        co.bus.url = urls[i];
        co.bus.connect_timeout_ms = 500;
        const char *pats[] = {"a.*", "b.>"};
        co.patterns = pats;
        co.n_patterns = 2;
        co.ingest = ingest_never;
        rt_consumer *c;
        rt_error err;
        assert_int_equal(rt_consumer_start(&co, &c, &err), RT_OK);
        assert_string_equal(rt_consumer_broker(c), i == 0 ? "amqp" : "nats");
        struct timespec ts = {0, 800 * 1000000L};
        nanosleep(&ts, NULL); /* 100 + 200 + 400 ms of backoff: 3-4 attempts */
        rt_consumer_stats s;
        rt_consumer_stats_get(c, &s);
        assert_false(s.connected);
        assert_true(s.connect_failures >= 2);
        assert_true(s.connect_failures <= 5);
        int64_t t0 = rt_mono_ms();
        rt_consumer_stop(c);
        assert_true(rt_mono_ms() - t0 < 1500);
    }
    rt_consumer_options co = {0};
    rt_bus_options_init(&co.bus);
    co.bus.url = "amqp://127.0.0.1:1/";
    co.ingest = ingest_never;
    const char *bad[] = {"a.>.b"};
    co.patterns = bad;
    co.n_patterns = 1;
    rt_consumer *c = NULL;
    rt_error err;
    assert_int_equal(rt_consumer_start(&co, &c, &err), RT_ERR_INVALID);
    assert_null(c);
}

static void test_publish_validate(void **state)
{
    (void)state;
    const rt_step_type *t = rt_step_type_find("publish");
    assert_non_null(t);
    static const struct {
        const char *with;
        const char *error; /* NULL: valid */
    } cases[] = {
        {"{\"topic\":\"ledger.checkpoint.created\",\"data\":{\"a\":1}}", NULL},
        {"{\"topic\":\"a.b\",\"data\":[1,2],\"id\":\"x-1\",\"via\":\"nats\",\"entity_id\":\"acct_1\"}", NULL},
        {"{\"topic\":\"${{ event.data.t }}\",\"data\":null,\"via\":\"${{ x }}\"}", NULL},
        {"{\"topic\":\"a.b\"}", NULL},
        {"{\"data\":{}}", "needs \"topic\""},
        {"{\"topic\":5}", "must be a string"},
        {"{\"topic\":\"a.*\"}", "no wildcards"},
        {"{\"topic\":\"a..b\"}", "empty token"},
        {"{\"topic\":\"a.b\",\"via\":\"kafka\"}", "\"amqp\" or \"nats\""},
        {"{\"topic\":\"a.b\",\"id\":\"\"}", "\"id\""},
        {"{\"topic\":\"a.b\",\"id\":\"has space\"}", "visible ASCII"},
        {"{\"topic\":\"a.b\",\"extra\":1}", "unknown key \"extra\""},
        {"[]", "needs an object"},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        json_error_t je;
        json_t *w = json_loads(cases[i].with, 0, &je);
        assert_non_null(w);
        rt_error err = {0};
        rt_status st = t->validate(w, &err);
        json_decref(w);
        if (!cases[i].error) {
            if (st != RT_OK)
                fail_msg("%s: unexpected error: %s", cases[i].with, err.msg);
        } else {
            if (st == RT_OK)
                fail_msg("%s: expected an error with '%s'", cases[i].with, cases[i].error);
            if (!strstr(err.msg, cases[i].error))
                fail_msg("%s: error '%s' lacks '%s'", cases[i].with, err.msg, cases[i].error);
        }
    }
}

static void test_publish_without_broker(void **state)
{
    (void)state;
    const rt_step_type *t = rt_step_type_find("publish");
    rt_step_env env = {0};
    rt_step_ctx ctx = {.env = &env, .step_key = "run1:pub", .workflow_id = "w", .run_id = "run1", .step_id = "pub"};
    /* No broker and no via: the event is handed to the engine to store (outbox). */
    json_t *w0 = json_loads("{\"topic\":\"a.b\",\"data\":{\"x\":1},\"entity_id\":\"e1\"}", 0, NULL);
    rt_step_result r0 = {0};
    t->execute(&ctx, w0, &r0);
    json_decref(w0);
    assert_int_equal(r0.outcome, RT_STEP_OK);
    assert_non_null(r0.emit);
    assert_string_equal(json_string_value(json_object_get(r0.emit, "name")), "a.b");
    assert_string_equal(json_string_value(json_object_get(r0.emit, "id")), "run1:pub");
    assert_string_equal(json_string_value(json_object_get(r0.emit, "entity_id")), "e1");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r0.emit, "data"), "x")), 1);
    assert_true(json_is_false(json_object_get(r0.output, "published")));
    rt_step_result_clear(&r0);
    /* A broker asked for by name that is not configured: a clear, final failure. */
    const char *withs[] = {"{\"topic\":\"a.b\",\"via\":\"amqp\"}", "{\"topic\":\"a.b\",\"via\":\"nats\"}"};
    const char *msgs[] = {"RATCHET_AMQP_URL", "RATCHET_NATS_URL"};
    for (size_t i = 0; i < COUNT(withs); i++) {
        json_t *w = json_loads(withs[i], 0, NULL);
        rt_step_result res = {0};
        t->execute(&ctx, w, &res);
        json_decref(w);
        assert_int_equal(res.outcome, RT_STEP_FAIL);
        assert_false(res.retriable);
        assert_non_null(strstr(res.error, msgs[i]));
        rt_step_result_clear(&res);
    }
    /* A broker that is down: a retriable failure. */
    rt_bus_options o;
    rt_bus_options_init(&o);
    o.url = "nats://127.0.0.1:1";
    o.connect_timeout_ms = 500;
    rt_error err;
    assert_int_equal(rt_bus_open(&o, &env.bus_nats, &err), RT_OK);
    json_t *w = json_loads("{\"topic\":\"a.b\",\"data\":{\"x\":1}}", 0, NULL);
    rt_step_result res = {0};
    t->execute(&ctx, w, &res);
    json_decref(w);
    assert_int_equal(res.outcome, RT_STEP_FAIL);
    assert_true(res.retriable);
    assert_non_null(strstr(res.error, "publish a.b via nats"));
    rt_step_result_clear(&res);
    rt_bus_free(env.bus_nats);
}

static int teardown_all(void **state)
{
    (void)state;
    rt_bus_shutdown();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pattern_check),
        cmocka_unit_test(test_pattern_to_amqp),
        cmocka_unit_test(test_pattern_match),
        cmocka_unit_test(test_url_redact),
        cmocka_unit_test(test_open_by_scheme),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_consumer_backoff_and_stop),
        cmocka_unit_test(test_publish_validate),
        cmocka_unit_test(test_publish_without_broker),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_all);
}
