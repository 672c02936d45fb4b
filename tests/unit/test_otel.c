/* test_otel.c — W3C traceparent parsing (engine/core/tracectx.h) as a table, derived ids,
 * the sampler and settings of the OTLP exporter (engine/core/otel.h), and its bookkeeping:
 * every span handed to it is exported or counted as dropped, exactly once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "metrics.h"
#include "otel.h"
#include "tracectx.h"

#define TID "4bf92f3577b34da6a3ce929d0e0e4736"
#define SID "00f067aa0ba902b7"

static const struct {
    const char *in;
    bool ok;
    uint8_t flags;
} cases[] = {
    {"00-" TID "-" SID "-01", true, 1},
    {"00-" TID "-" SID "-00", true, 0},
    {"00-" TID "-" SID "-03", true, 1},          /* unassigned flag bits are dropped */
    {"  00-" TID "-" SID "-01\t", true, 1},      /* HTTP optional whitespace */
    {"01-" TID "-" SID "-01-extra", true, 1},    /* a later version may add fields */
    {"01-" TID "-" SID "-01", true, 1},
    {"01-" TID "-" SID "-02-more", true, 0},     /* fuzz_traceparent crash: only the sampled bit is kept */
    {"00-" TID "-" SID "-01-extra", false, 0},   /* version 00 is exactly 55 characters */
    {"01-" TID "-" SID "-01extra", false, 0},
    {"ff-" TID "-" SID "-01", false, 0},         /* version ff is invalid */
    {"00-4BF92F3577B34DA6A3CE929D0E0E4736-" SID "-01", false, 0}, /* uppercase */
    {"00-00000000000000000000000000000000-" SID "-01", false, 0},
    {"00-" TID "-0000000000000000-01", false, 0},
    {"00-" TID "-" SID "-0g", false, 0},
    {"00-" TID "-" SID "01", false, 0},
    {"00_" TID "-" SID "-01", false, 0},
    {"00-" TID "-" SID "-1", false, 0},
    {"0-" TID "-" SID "-01x", false, 0},
    {"", false, 0},
    {"00-" TID "-" SID, false, 0},
    {"00-4bf92f3577b34da6a3ce929d0e0e473-" SID "0-01", false, 0},
};

static void traceparent_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rt_trace_ctx c;
        memset(&c, 0xee, sizeof c);
        bool ok = rt_traceparent_parse(cases[i].in, strlen(cases[i].in), &c);
        if (ok != cases[i].ok)
            fail_msg("case %zu [%s]: parse gave %d, want %d", i, cases[i].in, ok, cases[i].ok);
        if (!ok) {
            assert_int_equal(c.flags, 0xee); /* untouched */
            continue;
        }
        assert_int_equal(c.flags, cases[i].flags);
        char out[RT_TRACEPARENT_LEN + 1];
        rt_traceparent_format(&c, out);
        assert_memory_equal(out + 3, TID "-" SID, 49);
        assert_int_equal(strlen(out), RT_TRACEPARENT_LEN);
        rt_trace_ctx again;
        assert_true(rt_traceparent_parse(out, strlen(out), &again));
        assert_memory_equal(&again, &c, sizeof c);
    }
    rt_trace_ctx c;
    assert_false(rt_traceparent_parse(NULL, 0, &c));
    /* not NUL-terminated: only len bytes count */
    const char *s = "00-" TID "-" SID "-01ZZZ";
    assert_true(rt_traceparent_parse(s, RT_TRACEPARENT_LEN, &c));
}

static void tracestate_and_derive(void **state)
{
    (void)state;
    assert_true(rt_tracestate_valid("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", 39));
    assert_false(rt_tracestate_valid("a=b\r\nx: y", 9));
    assert_false(rt_tracestate_valid("", 0));
    char big[RT_TRACESTATE_MAX + 2];
    memset(big, 'a', sizeof big);
    assert_false(rt_tracestate_valid(big, sizeof big));

    uint8_t a[16], b[16], c[16];
    rt_trace_derive(a, 16, "run", "0190-aaaa", 0);
    rt_trace_derive(b, 16, "run", "0190-aaaa", 0);
    rt_trace_derive(c, 16, "run", "0190-aaab", 0);
    assert_memory_equal(a, b, 16); /* the same names: the same id, in every process */
    assert_memory_not_equal(a, c, 16);
    rt_trace_derive(b, 16, "run", "0190-aaaa", 1);
    assert_memory_not_equal(a, b, 16);
    /* "ab" + "c" and "a" + "bc" are different names */
    rt_trace_derive(b, 16, "ab", "c", 0);
    rt_trace_derive(c, 16, "a", "bc", 0);
    assert_memory_not_equal(b, c, 16);
}

static void config_of(rt_config *cfg, const char *sampler, const char *arg)
{
    rt_error err;
    assert_int_equal(rt_config_from_env(cfg, &err), RT_OK);
    free(cfg->otel_endpoint);
    free(cfg->otel_traces_endpoint);
    cfg->otel_endpoint = cfg->otel_traces_endpoint = NULL;
    free(cfg->otel_sampler);
    cfg->otel_sampler = sampler ? strdup(sampler) : NULL;
    free(cfg->otel_sampler_arg);
    cfg->otel_sampler_arg = arg ? strdup(arg) : NULL;
}

static int sampled_of(int n, const rt_trace_ctx *parent)
{
    int yes = 0;
    for (int i = 0; i < n; i++) {
        uint8_t tid[16];
        rt_trace_derive(tid, 16, "sample", NULL, i);
        yes += rt_otel_sample(parent, tid);
    }
    return yes;
}

static void sampler(void **state)
{
    (void)state;
    rt_config cfg;
    rt_error err;
    rt_trace_ctx on = {.flags = RT_TRACE_FLAG_SAMPLED}, off = {.flags = 0};

    config_of(&cfg, "always_off", NULL);
    assert_int_equal(rt_otel_start(&cfg, &err), RT_OK);
    assert_false(rt_otel_enabled()); /* no endpoint: nothing exported */
    assert_int_equal(sampled_of(100, NULL), 0);
    assert_int_equal(sampled_of(100, &on), 0); /* not parent-based */
    rt_config_free(&cfg);

    config_of(&cfg, "parentbased_always_off", NULL);
    assert_int_equal(rt_otel_start(&cfg, &err), RT_OK);
    assert_int_equal(sampled_of(100, NULL), 0);
    assert_int_equal(sampled_of(100, &on), 100);
    rt_config_free(&cfg);

    config_of(&cfg, "parentbased_always_on", NULL);
    assert_int_equal(rt_otel_start(&cfg, &err), RT_OK);
    assert_int_equal(sampled_of(100, NULL), 100);
    assert_int_equal(sampled_of(100, &off), 0);
    rt_config_free(&cfg);

    config_of(&cfg, "traceidratio", "0.25");
    assert_int_equal(rt_otel_start(&cfg, &err), RT_OK);
    int got = sampled_of(4000, NULL);
    if (got < 800 || got > 1200)
        fail_msg("traceidratio 0.25 sampled %d of 4000", got);
    assert_int_equal(sampled_of(4000, NULL), got); /* a decision, not a coin toss */
    rt_config_free(&cfg);

    config_of(&cfg, "parentbased_traceidratio", "0");
    assert_int_equal(rt_otel_start(&cfg, &err), RT_OK);
    assert_int_equal(sampled_of(100, NULL), 0);
    assert_int_equal(sampled_of(100, &on), 100);
    rt_config_free(&cfg);

    config_of(&cfg, "sometimes", NULL);
    assert_int_equal(rt_otel_start(&cfg, &err), RT_ERR_INVALID);
    assert_non_null(strstr(err.msg, "OTEL_TRACES_SAMPLER=sometimes"));
    rt_config_free(&cfg);
    config_of(&cfg, "traceidratio", "1.5");
    assert_int_equal(rt_otel_start(&cfg, &err), RT_ERR_INVALID);
    assert_non_null(strstr(err.msg, "OTEL_TRACES_SAMPLER_ARG"));
    rt_config_free(&cfg);
}

static uint64_t counter(const char *series)
{
    char *text = rt_metrics_render();
    assert_non_null(text);
    uint64_t v = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        size_t n = strlen(series);
        if (strncmp(line, series, n) == 0 && line[n] == ' ')
            v = strtoull(line + n + 1, NULL, 10);
    }
    free(text);
    return v;
}

static void settings_and_accounting(void **state)
{
    (void)state;
    rt_config cfg;
    rt_error err;
    config_of(&cfg, NULL, NULL);
    cfg.otel_endpoint = strdup("http://127.0.0.1:1/"); /* nobody listens on port 1 */
    cfg.otel_headers = strdup("x-api-key=TOPSECRET\nevil: 1");
    assert_int_equal(rt_otel_start(&cfg, &err), RT_ERR_INVALID);
    assert_null(strstr(err.msg, "TOPSECRET")); /* header values are secrets */
    assert_false(rt_otel_enabled());
    free(cfg.otel_headers);
    cfg.otel_headers = strdup("x-api-key=TOP%2CSECRET, x-other = 2");
    cfg.otel_resource_attributes = strdup("service.name=from-attrs,team=payments%20core");
    cfg.otel_service_name = strdup("billing");
    cfg.otel_queue_size = 4;
    cfg.otel_batch_size = 4;
    cfg.otel_export_timeout_ms = 2000;
    assert_int_equal(rt_otel_start(&cfg, &err), RT_OK);
    assert_true(rt_otel_enabled());

    json_t *req = rt_otel_request_json(NULL, 0);
    char *text = json_dumps(req, JSON_COMPACT);
    assert_non_null(strstr(text, "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"billing\"}}"));
    assert_non_null(strstr(text, "{\"key\":\"team\",\"value\":{\"stringValue\":\"payments core\"}}"));
    assert_non_null(strstr(text, "\"scopeSpans\":[{\"scope\":{\"name\":\"ratchet\""));
    free(text);
    json_decref(req);

    uint64_t before = counter("ratchet_otel_spans_exported_total") +
                      counter("ratchet_otel_spans_dropped_total{reason=\"queue_full\"}") +
                      counter("ratchet_otel_spans_dropped_total{reason=\"export_failed\"}");
    json_t *attrs = json_pack("{s:s, s:i, s:b}", "a", "x", "n", 3, "ok", 1);
    for (int i = 0; i < 25; i++) {
        rt_span s = {.name = "t", .kind = RT_SPAN_INTERNAL, .start_ms = 1000, .end_ms = 2000, .attributes = attrs};
        rt_trace_derive(s.trace_id, 16, "t", NULL, i);
        rt_trace_derive(s.span_id, 8, "s", NULL, i);
        rt_otel_emit(&s);
    }
    json_decref(attrs);
    rt_otel_stop();
    assert_false(rt_otel_enabled());
    uint64_t after = counter("ratchet_otel_spans_exported_total") +
                     counter("ratchet_otel_spans_dropped_total{reason=\"queue_full\"}") +
                     counter("ratchet_otel_spans_dropped_total{reason=\"export_failed\"}");
    assert_int_equal(after - before, 25); /* each span once: exported, or dropped and counted */
    assert_int_equal(counter("ratchet_otel_spans_exported_total"), 0); /* nobody listened */
    /* (how many of the 25 found the 4-slot queue full depends on the export thread's timing) */
    rt_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(traceparent_table),
        cmocka_unit_test(tracestate_and_derive),
        cmocka_unit_test(sampler),
        cmocka_unit_test(settings_and_accounting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
