/* test_metrics.c — the metrics registry: the table's own rules, exact /metrics lines after
 * known updates (escapes, number spellings, histograms), refused misuse, the series cap,
 * and exact totals under 8 threads. tests/schema/check_metrics_format.py parses the same
 * output with prometheus_client. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"

static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return 1;
    }
    return 0;
}

static void assert_line_(const char *text, const char *line, int want, int where)
{
    if (has_line(text, line) != want) {
        print_error("line %d: %s %s\n--- /metrics ---\n%s", where, want ? "missing:" : "unexpected:", line, text);
        fail();
    }
}
#define assert_line(text, line) assert_line_((text), (line), 1, __LINE__)
#define assert_no_line(text, line) assert_line_((text), (line), 0, __LINE__)

static int setup(void **state)
{
    (void)state;
    rt_metrics_reset();
    return 0;
}

static void test_table(void **state)
{
    (void)state;
    rt_error err;
    if (rt_metrics_check_table(&err) != RT_OK) {
        print_error("%s\n", err.msg);
        fail();
    }
    size_t n;
    const rt_metric_family_def *defs = rt_metrics_families(&n);
    assert_true(n >= 12);
    const char *required[] = {"ratchet_runs_started_total", "ratchet_runs_finished_total", "ratchet_steps_total",
                              "ratchet_step_duration_seconds", "ratchet_events_ingested_total",
                              "ratchet_events_dead_lettered_total", "ratchet_bad_input_total", "ratchet_queue_depth",
                              "ratchet_oldest_runnable_age_seconds", "ratchet_db_up", "ratchet_broker_up"};
    for (size_t r = 0; r < sizeof required / sizeof required[0]; r++) {
        size_t i = 0;
        while (i < n && strcmp(defs[i].name, required[r]) != 0)
            i++;
        if (i == n) {
            print_error("family %s is not declared\n", required[r]);
            fail();
        }
    }
}

static void test_empty_render(void **state)
{
    (void)state;
    char *t = rt_metrics_render();
    assert_non_null(t);
    size_t n;
    const rt_metric_family_def *defs = rt_metrics_families(&n);
    static const char *const types[] = {"counter", "gauge", "histogram"};
    for (size_t i = 0; i < n; i++) {
        char line[512];
        snprintf(line, sizeof line, "# HELP %s %s", defs[i].name, defs[i].help);
        assert_line(t, line);
        snprintf(line, sizeof line, "# TYPE %s %s", defs[i].name, types[defs[i].type]);
        assert_line(t, line);
    }
    /* unlabeled families and presets exist at 0; labeled ones have no series yet */
    assert_line(t, "ratchet_db_up 0");
    assert_line(t, "ratchet_oldest_runnable_age_seconds 0");
    assert_line(t, "ratchet_queue_depth{priority=\"critical\"} 0");
    assert_line(t, "ratchet_queue_depth{priority=\"low\"} 0");
    assert_line(t, "ratchet_bad_input_total{kind=\"expression\"} 0");
    assert_null(strstr(t, "ratchet_runs_started_total{"));
    assert_null(strstr(t, "ratchet_step_duration_seconds_bucket"));
    assert_int_equal(t[strlen(t) - 1], '\n');
    free(t);
}

static void test_exact_lines(void **state)
{
    (void)state;
    assert_int_equal(rt_metrics_counter_add("ratchet_events_ingested_total", "transport", "amqp", 1), RT_OK);
    rt_metrics_counter_add("ratchet_events_ingested_total", "transport", "amqp", 2);
    rt_metrics_counter_add("ratchet_events_ingested_total", "transport", "nats", 5);
    rt_metrics_counter_add("ratchet_runs_finished_total", "workflow", "bank-sync", "status", "partial", 1);
    rt_metrics_counter_add("ratchet_runs_finished_total", "workflow", "bank-sync", "status", "completed", 7);
    rt_metrics_counter_add("ratchet_runs_finished_total", "workflow", "a-first", "status", "failed", 1);
    rt_metrics_counter_add("ratchet_events_dead_lettered_total", "transport", "amqp", "reason", "too_large", 1);
    rt_metrics_counter_add("ratchet_runs_started_total", "workflow", "q\"u\\o\nte", 1);
    rt_metrics_counter_add("ratchet_bad_input_total", "kind", "cron", 18446744073709551615ULL);
    rt_metrics_gauge_set("ratchet_db_up", 1);
    rt_metrics_gauge_set("ratchet_oldest_runnable_age_seconds", 0.1);
    rt_metrics_gauge_set("ratchet_queue_depth", "priority", "high", 12);
    rt_metrics_gauge_add("ratchet_queue_depth", "priority", "normal", 2.5);
    rt_metrics_gauge_add("ratchet_queue_depth", "priority", "normal", -4);
    rt_metrics_gauge_set("ratchet_broker_up", "transport", "amqp", 1e20);
    rt_metrics_gauge_set("ratchet_broker_up", "transport", "nats", INFINITY);
    rt_metrics_gauge_set("ratchet_broker_up", "transport", "http", -INFINITY);
    rt_metrics_gauge_set("ratchet_broker_up", "transport", "x", NAN);
    rt_metrics_gauge_set("ratchet_broker_up", "transport", "y", 1.0 / 3);
    rt_metrics_histogram_observe("ratchet_step_duration_seconds", "type", "http", 0.001); /* le is inclusive */
    rt_metrics_histogram_observe("ratchet_step_duration_seconds", "type", "http", 0.3);
    rt_metrics_histogram_observe("ratchet_step_duration_seconds", "type", "http", 1e9);

    char *t = rt_metrics_render();
    assert_non_null(t);
    assert_line(t, "ratchet_events_ingested_total{transport=\"amqp\"} 3");
    assert_line(t, "ratchet_events_ingested_total{transport=\"nats\"} 5");
    assert_line(t, "ratchet_runs_finished_total{workflow=\"bank-sync\",status=\"completed\"} 7");
    assert_line(t, "ratchet_events_dead_lettered_total{transport=\"amqp\",reason=\"too_large\"} 1");
    assert_line(t, "ratchet_runs_started_total{workflow=\"q\\\"u\\\\o\\nte\"} 1");
    assert_line(t, "ratchet_bad_input_total{kind=\"cron\"} 18446744073709551615");
    assert_line(t, "ratchet_db_up 1");
    assert_line(t, "ratchet_oldest_runnable_age_seconds 0.1");
    assert_line(t, "ratchet_queue_depth{priority=\"high\"} 12");
    assert_line(t, "ratchet_queue_depth{priority=\"normal\"} -1.5");
    assert_line(t, "ratchet_broker_up{transport=\"amqp\"} 1e+20");
    assert_line(t, "ratchet_broker_up{transport=\"nats\"} +Inf");
    assert_line(t, "ratchet_broker_up{transport=\"http\"} -Inf");
    assert_line(t, "ratchet_broker_up{transport=\"x\"} NaN");
    assert_line(t, "ratchet_broker_up{transport=\"y\"} 0.33333333333333331");
    assert_line(t, "ratchet_step_duration_seconds_bucket{type=\"http\",le=\"0.001\"} 1");
    assert_line(t, "ratchet_step_duration_seconds_bucket{type=\"http\",le=\"0.25\"} 1");
    assert_line(t, "ratchet_step_duration_seconds_bucket{type=\"http\",le=\"0.5\"} 2");
    assert_line(t, "ratchet_step_duration_seconds_bucket{type=\"http\",le=\"3600\"} 2");
    assert_line(t, "ratchet_step_duration_seconds_bucket{type=\"http\",le=\"+Inf\"} 3");
    assert_line(t, "ratchet_step_duration_seconds_sum{type=\"http\"} 1000000000.301");
    assert_line(t, "ratchet_step_duration_seconds_count{type=\"http\"} 3");

    /* series are sorted by label values, whatever the order they appeared in */
    const char *a = strstr(t, "workflow=\"a-first\"");
    const char *c = strstr(t, "workflow=\"bank-sync\",status=\"completed\"");
    const char *p = strstr(t, "workflow=\"bank-sync\",status=\"partial\"");
    assert_true(a && c && p && a < c && c < p);
    /* each family's samples follow its own TYPE line */
    const char *type = strstr(t, "# TYPE ratchet_events_ingested_total counter\n");
    const char *sample = strstr(t, "ratchet_events_ingested_total{");
    assert_true(type && sample && type < sample);
    free(t);
}

static void test_misuse_changes_nothing(void **state)
{
    (void)state;
    rt_log_configure(RT_LOG_ERROR, false); /* misuse is logged once; keep the test output quiet */
    char *before = rt_metrics_render();
    assert_int_equal(rt_metrics_counter_add("ratchet_no_such_total", "x", "y", 1), RT_ERR_NOT_FOUND);
    assert_int_equal(rt_metrics_counter_add_v(NULL, 0, NULL, 1), RT_ERR_NOT_FOUND);
    assert_int_equal(rt_metrics_counter_add("ratchet_events_ingested_total", "transprt", "amqp", 1), RT_ERR_INVALID);
    assert_int_equal(rt_metrics_counter_add("ratchet_events_ingested_total", 1), RT_ERR_INVALID);
    assert_int_equal(rt_metrics_counter_add("ratchet_runs_finished_total", "status", "ok", "workflow", "w", 1),
                     RT_ERR_INVALID); /* pairs in the table's order */
    assert_int_equal(rt_metrics_counter_add("ratchet_events_ingested_total", "transport", NULL, 1), RT_ERR_INVALID);
    assert_int_equal(rt_metrics_counter_add("ratchet_events_ingested_total", "transport", "bad\xff", 1),
                     RT_ERR_INVALID);
    assert_int_equal(rt_metrics_counter_add("ratchet_queue_depth", "priority", "high", 1), RT_ERR_INVALID);
    assert_int_equal(rt_metrics_gauge_set("ratchet_steps_total", "type", "x", "status", "y", 1), RT_ERR_INVALID);
    assert_int_equal(rt_metrics_histogram_observe("ratchet_db_up", 1), RT_ERR_INVALID);
    assert_int_equal(rt_metrics_histogram_observe("ratchet_step_duration_seconds", "type", "http", NAN),
                     RT_ERR_INVALID);
    char *after = rt_metrics_render();
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static void test_series_cap(void **state)
{
    (void)state;
    rt_log_configure(RT_LOG_ERROR, false);
    char v[32];
    for (int i = 0; i < RT_METRICS_MAX_SERIES; i++) {
        snprintf(v, sizeof v, "wf-%05d", i);
        assert_int_equal(rt_metrics_counter_add("ratchet_runs_started_total", "workflow", v, 1), RT_OK);
    }
    assert_int_equal(rt_metrics_counter_add("ratchet_runs_started_total", "workflow", "one-too-many", 1),
                     RT_ERR_INVALID);
    /* existing series still count; other families are not affected */
    assert_int_equal(rt_metrics_counter_add("ratchet_runs_started_total", "workflow", "wf-00042", 1), RT_OK);
    assert_int_equal(rt_metrics_counter_add("ratchet_steps_total", "type", "log", "status", "completed", 1), RT_OK);
    char *t = rt_metrics_render();
    assert_line(t, "ratchet_runs_started_total{workflow=\"wf-00042\"} 2");
    assert_line(t, "ratchet_runs_started_total{workflow=\"wf-09999\"} 1");
    assert_null(strstr(t, "one-too-many"));
    free(t);
}

static void test_reset(void **state)
{
    (void)state;
    rt_metrics_counter_add("ratchet_bad_input_total", "kind", "api", 3);
    rt_metrics_counter_add("ratchet_bad_input_total", "kind", "other", 1);
    rt_metrics_gauge_set("ratchet_db_up", 1);
    rt_metrics_reset();
    char *t = rt_metrics_render();
    assert_line(t, "ratchet_bad_input_total{kind=\"api\"} 0");
    assert_null(strstr(t, "kind=\"other\""));
    assert_line(t, "ratchet_db_up 0");
    free(t);
}

/* ------------------------------------------------------------------------------------ */

#define THREADS 8
#define INCREMENTS 100000

static void *hammer(void *arg)
{
    int id = (int)(intptr_t)arg;
    char own[16];
    snprintf(own, sizeof own, "t%d", id);
    for (int i = 0; i < INCREMENTS; i++) {
        rt_metrics_counter_add("ratchet_steps_total", "type", "http", "status", "completed", 1);
        /* new series appear while others are being read */
        if (i % 1000 == 0) {
            char v[32];
            snprintf(v, sizeof v, "wf-%d-%d", id, i / 1000);
            rt_metrics_counter_add("ratchet_runs_started_total", "workflow", v, 1);
        }
        if (i % 10 == 0) {
            rt_metrics_histogram_observe("ratchet_step_duration_seconds", "type", own, 0.5);
            rt_metrics_histogram_observe("ratchet_step_duration_seconds", "type", "shared", 0.5);
            rt_metrics_gauge_add("ratchet_queue_depth", "priority", "normal", 1);
        }
    }
    return NULL;
}

static void *render_loop(void *arg)
{
    atomic_int *stop = arg;
    while (!atomic_load(stop)) {
        char *t = rt_metrics_render();
        assert_non_null(t);
        free(t);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t th[THREADS], reader;
    atomic_int stop = 0;
    assert_int_equal(pthread_create(&reader, NULL, render_loop, (void *)&stop), 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, hammer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    atomic_store(&stop, 1);
    pthread_join(reader, NULL);

    char *t = rt_metrics_render();
    char line[128];
    snprintf(line, sizeof line, "ratchet_steps_total{type=\"http\",status=\"completed\"} %d", THREADS * INCREMENTS);
    assert_line(t, line);
    snprintf(line, sizeof line, "ratchet_step_duration_seconds_count{type=\"shared\"} %d",
             THREADS * INCREMENTS / 10);
    assert_line(t, line);
    snprintf(line, sizeof line, "ratchet_step_duration_seconds_sum{type=\"shared\"} %d", THREADS * INCREMENTS / 20);
    assert_line(t, line);
    assert_line(t, "ratchet_step_duration_seconds_count{type=\"t7\"} 10000");
    snprintf(line, sizeof line, "ratchet_queue_depth{priority=\"normal\"} %d", THREADS * INCREMENTS / 10);
    assert_line(t, line);
    assert_line(t, "ratchet_runs_started_total{workflow=\"wf-3-99\"} 1");
    size_t n = 0;
    for (const char *p = t; (p = strstr(p, "ratchet_runs_started_total{")) != NULL; p++)
        n++;
    assert_int_equal(n, THREADS * INCREMENTS / 1000);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_table, setup),
        cmocka_unit_test_setup(test_empty_render, setup),
        cmocka_unit_test_setup(test_exact_lines, setup),
        cmocka_unit_test_setup(test_misuse_changes_nothing, setup),
        cmocka_unit_test_setup(test_series_cap, setup),
        cmocka_unit_test_setup(test_reset, setup),
        cmocka_unit_test_setup(test_threads, setup),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rt_metrics_reset();
    return rc;
}
