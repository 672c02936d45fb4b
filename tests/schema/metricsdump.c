/* metricsdump.c — feeds tests/schema/check_metrics_format.py: `metricsdump --families`
 * lists the table ("name type label,label"), `metricsdump --empty` prints /metrics before
 * any sample, and `metricsdump` prints it after the fixed samples below (the script
 * expects exactly these values). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

/* a label value that needs every escape the format has, and some UTF-8 */
#define TRICKY "a\"b\\c\nd \xc3\xa9 \xe2\x9c\x93"

static void record_samples(void)
{
    rt_metrics_counter_add("ratchet_runs_started_total", "workflow", "daily-ledger-checkpoint", 3);
    rt_metrics_counter_add("ratchet_runs_started_total", "workflow", TRICKY, 1);
    rt_metrics_counter_add("ratchet_runs_started_total", "workflow", "", 1);
    rt_metrics_counter_add("ratchet_runs_finished_total", "workflow", "bank-sync", "status", "completed", 2);
    rt_metrics_counter_add("ratchet_steps_total", "type", "http", "status", "failed", 5);
    const double obs[] = {0.003, 0.2, 7, 5000};
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++)
        rt_metrics_histogram_observe("ratchet_step_duration_seconds", "type", "http", obs[i]);
    rt_metrics_histogram_observe("ratchet_event_ingest_lag_seconds", "transport", "nats", 0.01);
    rt_metrics_counter_add("ratchet_events_ingested_total", "transport", "amqp", 10);
    rt_metrics_counter_add("ratchet_events_dead_lettered_total", "transport", "amqp", "reason", "not_json", 1);
    rt_metrics_counter_add("ratchet_bad_input_total", "kind", "event", 4);
    rt_metrics_gauge_set("ratchet_queue_depth", "priority", "high", 12);
    rt_metrics_gauge_add("ratchet_queue_depth", "priority", "normal", 3);
    rt_metrics_gauge_add("ratchet_queue_depth", "priority", "normal", -1);
    rt_metrics_gauge_set("ratchet_oldest_runnable_age_seconds", 1.5);
    rt_metrics_gauge_set("ratchet_db_up", 1);
    rt_metrics_gauge_set("ratchet_broker_up", "transport", "nats", 0);
    rt_metrics_gauge_set("ratchet_broker_up", "transport", "amqp", 1);
}

int main(int argc, char **argv)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    if (argc > 1 && strcmp(argv[1], "--families") == 0) {
        size_t n;
        const rt_metric_family_def *defs = rt_metrics_families(&n);
        for (size_t i = 0; i < n; i++) {
            printf("%s %s ", defs[i].name, types[defs[i].type]);
            for (size_t l = 0; defs[i].labels[l]; l++)
                printf("%s%s", l ? "," : "", defs[i].labels[l]);
            printf("\n");
        }
        return 0;
    }
    if (argc == 1)
        record_samples();
    else if (strcmp(argv[1], "--empty") != 0) {
        fprintf(stderr, "usage: metricsdump [--families | --empty]\n");
        return 2;
    }
    char *text = rt_metrics_render();
    if (!text)
        return 1;
    fputs(text, stdout);
    free(text);
    return 0;
}
