/* metrics.h — the process's Prometheus metrics (DESIGN §8): one declarative table of
 * metric families in metrics.c, cheap thread-safe updates, and /metrics text rendering. */
#ifndef RT_METRICS_H
#define RT_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* The Content-Type of rt_metrics_render's output (text exposition format 0.0.4). */
#define RT_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define RT_METRICS_MAX_LABELS 4
/* Series per family beyond this are dropped (and logged once): a label fed by unbounded
 * input must not eat the process's memory. */
#define RT_METRICS_MAX_SERIES 10000

typedef enum rt_metric_type {
    RT_METRIC_COUNTER = 0,
    RT_METRIC_GAUGE,
    RT_METRIC_HISTOGRAM,
} rt_metric_type;

/* One row of the table in metrics.c. Adding a metric is adding a row there. */
typedef struct rt_metric_family_def {
    const char *name;
    rt_metric_type type;
    const char *help;
    const char *labels[RT_METRICS_MAX_LABELS + 1]; /* label names, NULL-terminated */
    const double *buckets;                         /* histograms: upper bounds, increasing, no +Inf */
    size_t n_buckets;
    /* Optional, single-label families only: label values whose series exist (at 0) from
     * the start, so rate() and alerts see them before a first sample. NULL-terminated. */
    const char *const *preset;
} rt_metric_family_def;

/* The table, in the order /metrics lists it; *n gets its length. */
const rt_metric_family_def *rt_metrics_families(size_t *n);

/* Checks the table itself (names, label names, buckets, help text); the unit tests call it. */
rt_status rt_metrics_check_table(rt_error *err);

/* Updates take the family name, then its label names and values as pairs in the table's
 * order, then the amount:
 *
 *     rt_metrics_counter_add("ratchet_events_ingested_total", "transport", "amqp", 1);
 *     rt_metrics_histogram_observe("ratchet_step_duration_seconds", "type", "http", 0.25);
 *     rt_metrics_gauge_set("ratchet_db_up", 1);
 *
 * An odd number of label arguments does not compile. A family that is not in the table,
 * label names that differ from it, a NULL or non-UTF-8 value, a NaN, or a family over
 * RT_METRICS_MAX_SERIES return an error (logged once per family) and change nothing.
 * Thread-safe and lock-free once a series exists: a family lookup, a hash of the label
 * values and an atomic add. Label values are copied. */
#define rt_metrics_counter_add(family, ...) RT_METRICS_CALL(rt_metrics_counter_add_v, family, __VA_ARGS__)
#define rt_metrics_gauge_set(family, ...) RT_METRICS_CALL(rt_metrics_gauge_set_v, family, __VA_ARGS__)
#define rt_metrics_gauge_add(family, ...) RT_METRICS_CALL(rt_metrics_gauge_add_v, family, __VA_ARGS__)
#define rt_metrics_histogram_observe(family, ...) \
    RT_METRICS_CALL(rt_metrics_histogram_observe_v, family, __VA_ARGS__)

/* The functions behind the macros: pairs holds n_pairs (name, value) pairs. */
rt_status rt_metrics_counter_add_v(const char *family, size_t n_pairs, const char *const *pairs, uint64_t n);
rt_status rt_metrics_gauge_set_v(const char *family, size_t n_pairs, const char *const *pairs, double v);
rt_status rt_metrics_gauge_add_v(const char *family, size_t n_pairs, const char *const *pairs, double delta);
rt_status rt_metrics_histogram_observe_v(const char *family, size_t n_pairs, const char *const *pairs, double v);

/* Every family with its HELP and TYPE lines (also those without samples yet), series
 * sorted by label values. Caller frees with free(); NULL only when out of memory. */
char *rt_metrics_render(void);

/* Forgets every series (presets come back at 0). For tests: no other thread may touch
 * the metrics while it runs. */
void rt_metrics_reset(void);

/* Argument counting for the macros above: 1 argument = no labels, 3 = one pair, ... */
#define RT_METRICS_NARG(...) RT_METRICS_NARG_(__VA_ARGS__, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define RT_METRICS_NARG_(a1, a2, a3, a4, a5, a6, a7, a8, a9, n, ...) n
#define RT_METRICS_CAT(a, b) RT_METRICS_CAT_(a, b)
#define RT_METRICS_CAT_(a, b) a##b
#define RT_METRICS_CALL(fn, family, ...) \
    RT_METRICS_CAT(RT_METRICS_CALL_, RT_METRICS_NARG(__VA_ARGS__))(fn, family, __VA_ARGS__)
/* an even count means a label name without its value (or the amount is missing) */
#define RT_METRICS_CALL_2(...) rt_metrics_label_names_and_values_must_come_in_pairs
#define RT_METRICS_CALL_4(...) rt_metrics_label_names_and_values_must_come_in_pairs
#define RT_METRICS_CALL_6(...) rt_metrics_label_names_and_values_must_come_in_pairs
#define RT_METRICS_CALL_8(...) rt_metrics_label_names_and_values_must_come_in_pairs
#define RT_METRICS_CALL_1(fn, f, x) fn((f), 0, NULL, (x))
#define RT_METRICS_CALL_3(fn, f, k1, v1, x) fn((f), 1, (const char *const[]){k1, v1}, (x))
#define RT_METRICS_CALL_5(fn, f, k1, v1, k2, v2, x) fn((f), 2, (const char *const[]){k1, v1, k2, v2}, (x))
#define RT_METRICS_CALL_7(fn, f, k1, v1, k2, v2, k3, v3, x) \
    fn((f), 3, (const char *const[]){k1, v1, k2, v2, k3, v3}, (x))
#define RT_METRICS_CALL_9(fn, f, k1, v1, k2, v2, k3, v3, k4, v4, x) \
    fn((f), 4, (const char *const[]){k1, v1, k2, v2, k3, v3, k4, v4}, (x))

#endif
