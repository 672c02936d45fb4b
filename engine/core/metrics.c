/* metrics.c — the metric families (one table, like pgbouncer's settings table), their
 * series, and the Prometheus text exposition format 0.0.4. */
#include "metrics.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* ---------------------------------------------------------------------------------
 * The table. Every family is listed on /metrics (HELP and TYPE) before its first sample.
 * --------------------------------------------------------------------------------- */

/* Steps run from a millisecond (transform, log) to an hour (exec, invoke). */
static const double step_duration_buckets[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                               2.5,   5,     10,   30,    60,   120, 300, 900, 3600};
/* From the event's `ts` to its commit in PostgreSQL. */
static const double ingest_lag_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                            2.5,   5,    10,    30,   60,  300,  900, 3600};

static const char *const bad_input_kinds[] = {"event", "workflow", "expression", "cron", "api", "traceparent", NULL};
static const char *const otel_drop_reasons[] = {"queue_full", "export_failed", NULL};
static const char *const priorities[] = {"critical", "high", "normal", "low", NULL};
static const char *const alert_kinds[] = {"failure_rate_high", "queue_backlog", "execution_timeout", "sla_exceeded",
                                          NULL};
static const char *const approval_decisions[] = {"approve", "reject", NULL};
static const char *const lease_lost_at[] = {"start", "renew", NULL};
static const char *const approval_refusals[] = {"agent", "invalid", "unknown_approver", "bad_signature", "hash_mismatch",
                                                "expired", "nonce_reused", "self_approval", "not_awaiting",
                                                "unknown_requester", NULL};

#define BUCKETS(b) .buckets = (b), .n_buckets = sizeof(b) / sizeof((b)[0])

static const rt_metric_family_def family_defs[] = {
    {.name = "ratchet_runs_started_total", .type = RT_METRIC_COUNTER, .labels = {"workflow"},
     .help = "Runs started, by workflow."},
    {.name = "ratchet_runs_finished_total", .type = RT_METRIC_COUNTER, .labels = {"workflow", "status"},
     .help = "Runs that reached a final status (completed, partial, failed, cancelled, expired, timed_out), "
             "by workflow."},
    {.name = "ratchet_steps_total", .type = RT_METRIC_COUNTER, .labels = {"type", "status"},
     .help = "Step executions finished, by step type and status."},
    {.name = "ratchet_step_duration_seconds", .type = RT_METRIC_HISTOGRAM, .labels = {"type"},
     BUCKETS(step_duration_buckets), .help = "Time one step execution took, by step type."},
    {.name = "ratchet_events_ingested_total", .type = RT_METRIC_COUNTER, .labels = {"transport"},
     .help = "Events stored (after de-duplication), by transport."},
    {.name = "ratchet_event_ingest_lag_seconds", .type = RT_METRIC_HISTOGRAM, .labels = {"transport"},
     BUCKETS(ingest_lag_buckets), .help = "Time from an event's ts to its commit in PostgreSQL, by transport."},
    {.name = "ratchet_ingest_first_steps_failed_total", .type = RT_METRIC_COUNTER,
     .help = "Ingest batches whose first steps could not run at ingest (stored again without them; the runs went "
             "to the workers)."},
    {.name = "ratchet_otel_spans_exported_total", .type = RT_METRIC_COUNTER,
     .help = "Spans the OTLP collector accepted (engine/core/otel.c)."},
    {.name = "ratchet_otel_spans_dropped_total", .type = RT_METRIC_COUNTER, .labels = {"reason"},
     .preset = otel_drop_reasons,
     .help = "Spans lost, by reason: queue_full (export cannot keep up) or export_failed (collector down or "
             "refusing). Runs never wait for spans."},
    {.name = "ratchet_events_dead_lettered_total", .type = RT_METRIC_COUNTER, .labels = {"transport", "reason"},
     .help = "Messages refused and dead-lettered (too_large, not_json, invalid, ...), by transport and reason."},
    {.name = "ratchet_step_lease_lost_total", .type = RT_METRIC_COUNTER, .labels = {"at"}, .preset = lease_lost_at,
     .help = "Leases a worker found lost, by where: start (a step or for_each item given up untouched because its "
             "lease ran out before it started) or renew (the keeper could not extend a lease in time)."},
    {.name = "ratchet_bad_input_total", .type = RT_METRIC_COUNTER, .labels = {"kind"}, .preset = bad_input_kinds,
     .help = "Inputs refused as invalid, by kind (event, workflow, expression, cron, api, traceparent)."},
    {.name = "ratchet_queue_depth", .type = RT_METRIC_GAUGE, .labels = {"priority"}, .preset = priorities,
     .help = "Runnable steps waiting to be claimed, by priority."},
    {.name = "ratchet_oldest_runnable_age_seconds", .type = RT_METRIC_GAUGE,
     .help = "Age in seconds of the oldest step that is runnable but not claimed yet (0 when none)."},
    {.name = "ratchet_db_up", .type = RT_METRIC_GAUGE, .help = "1 when PostgreSQL answered the last check, else 0."},
    {.name = "ratchet_broker_up", .type = RT_METRIC_GAUGE, .labels = {"transport"},
     .help = "1 when the broker connection is up, else 0, by transport."},
    {.name = "ratchet_alerts_total", .type = RT_METRIC_COUNTER, .labels = {"alert"}, .preset = alert_kinds,
     .help = "Alert events this process stored (ratchet.alert.<alert>), by alert."},
    {.name = "ratchet_steps_past_timeout", .type = RT_METRIC_GAUGE,
     .help = "Steps still running longer than their timeout plus RATCHET_ALERT_TIMEOUT_GRACE at the last alert "
             "check (stays 0 with RATCHET_ALERTS=false)."},
    {.name = "ratchet_runs_past_sla", .type = RT_METRIC_GAUGE,
     .help = "Unfinished runs past their workflow's sla at the last alert check (stays 0 with RATCHET_ALERTS=false)."},
    {.name = "ratchet_records_processed_total", .type = RT_METRIC_COUNTER, .labels = {"workflow"},
     .help = "Sum of the records_processed numbers that completed steps put in their output, by workflow."},
    {.name = "ratchet_progress_lines_invalid_total", .type = RT_METRIC_COUNTER,
     .help = "Lines an exec step wrote to RATCHET_PROGRESS_FD that were not a valid progress object (or too long)."},
    {.name = "ratchet_approval_decisions_total", .type = RT_METRIC_COUNTER, .labels = {"decision"}, .preset = approval_decisions, .help = "Signed approval decisions accepted, by decision (approve, reject)."},
    {.name = "ratchet_approval_refusals_total", .type = RT_METRIC_COUNTER, .labels = {"reason"}, .preset = approval_refusals, .help = "Approval decisions refused, by reason (bad_signature, hash_mismatch, expired, nonce_reused, ...)."},
    {.name = "ratchet_run_control_total", .type = RT_METRIC_COUNTER, .labels = {"action"},
     .help = "Runs paused, resumed, cancelled or replayed by a person or a token (single or bulk), by action."},
    {.name = "ratchet_refusals_total", .type = RT_METRIC_COUNTER, .labels = {"action"},
     .help = "Refused actions (agent.refused, approval.refused, api.refused), written to the audit log or not."},
    {.name = "ratchet_audit_refusals_suppressed_total", .type = RT_METRIC_COUNTER, .labels = {"action"},
     .help = "Refusals counted but not written to the audit log: their actor was over its rate (10 a minute)."},
    {.name = "ratchet_webhook_received_total", .type = RT_METRIC_COUNTER, .labels = {"hook"},
     .help = "Webhook deliveries accepted and stored (duplicates included), by hook (stripe, generic/<name>)."},
    {.name = "ratchet_webhook_refused_total", .type = RT_METRIC_COUNTER, .labels = {"hook", "reason"},
     .help = "Webhook deliveries refused, nothing stored, by hook and reason (malformed, bad_signature, expired, "
             "bad_body, not_configured, reserved_name)."},
};

#define N_FAMILIES (sizeof family_defs / sizeof family_defs[0])

const rt_metric_family_def *rt_metrics_families(size_t *n)
{
    *n = N_FAMILIES;
    return family_defs;
}

/* ---------------------------------------------------------------------------------
 * Series: insert-only hash chains. Readers walk them without a lock (a new series is
 * fully built before it is published with a release store); writers of new series take
 * the family's mutex. Values are atomics.
 * --------------------------------------------------------------------------------- */

#define SERIES_BUCKETS 64

typedef struct series {
    struct series *next; /* never changes once published */
    uint64_t hash;
    char **values;            /* label values, one per label name */
    _Atomic uint64_t value;   /* counter: the count; gauge: the bits of a double */
    _Atomic uint64_t sum;     /* histogram: the bits of a double */
    _Atomic uint64_t counts[]; /* histogram: per bucket (not cumulative), then +Inf */
} series;

typedef struct family {
    const rt_metric_family_def *def;
    size_t n_labels;
    uint64_t name_hash;
    pthread_mutex_t lock; /* guards inserting series and n_series */
    size_t n_series;
    _Atomic(series *) heads[SERIES_BUCKETS];
    atomic_bool warned;
} family;

static family families[N_FAMILIES];
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static atomic_int unknown_family_warnings;

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

#define FNV_BASIS 14695981039346656037ULL

static uint64_t bits_of(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double double_of(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static void atomic_add_double(_Atomic uint64_t *a, double delta)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(a, &old, bits_of(double_of(old) + delta), memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

static uint64_t values_hash(size_t n, const char *const *pairs)
{
    uint64_t h = FNV_BASIS;
    for (size_t i = 0; i < n; i++) {
        h = fnv1a(h, pairs[2 * i + 1]);
        h = (h ^ 0xff) * 1099511628211ULL; /* separator: ("ab","c") differs from ("a","bc") */
    }
    return h;
}

static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned char c = *p;
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        p += n + 1;
    }
    return true;
}

static size_t n_counts(const family *f)
{
    return f->def->type == RT_METRIC_HISTOGRAM ? f->def->n_buckets + 1 : 0;
}

static void series_free(series *s, size_t n_labels)
{
    if (!s)
        return;
    for (size_t i = 0; s->values && i < n_labels; i++)
        free(s->values[i]);
    free(s->values);
    free(s);
}

static series *series_new(const family *f, uint64_t h, const char *const *pairs)
{
    size_t nc = n_counts(f);
    series *s = calloc(1, sizeof *s + nc * sizeof s->counts[0]);
    if (!s)
        return NULL;
    s->hash = h;
    atomic_init(&s->value, f->def->type == RT_METRIC_GAUGE ? bits_of(0.0) : 0);
    atomic_init(&s->sum, bits_of(0.0));
    for (size_t i = 0; i < nc; i++)
        atomic_init(&s->counts[i], 0);
    s->values = calloc(f->n_labels ? f->n_labels : 1, sizeof *s->values);
    if (!s->values) {
        free(s);
        return NULL;
    }
    for (size_t i = 0; i < f->n_labels; i++) {
        if (!(s->values[i] = strdup(pairs[2 * i + 1]))) {
            series_free(s, f->n_labels);
            return NULL;
        }
    }
    return s;
}

static series *series_find(family *f, uint64_t h, const char *const *pairs)
{
    series *s = atomic_load_explicit(&f->heads[h % SERIES_BUCKETS], memory_order_acquire);
    for (; s; s = s->next) {
        if (s->hash != h)
            continue;
        size_t i = 0;
        while (i < f->n_labels && strcmp(s->values[i], pairs[2 * i + 1]) == 0)
            i++;
        if (i == f->n_labels)
            return s;
    }
    return NULL;
}

/* The series for these label values, created on first use. NULL: out of memory or over
 * the series limit. */
static series *series_get(family *f, const char *const *pairs)
{
    uint64_t h = values_hash(f->n_labels, pairs);
    series *s = series_find(f, h, pairs);
    if (s)
        return s;
    pthread_mutex_lock(&f->lock);
    s = series_find(f, h, pairs); /* another thread may have just made it */
    if (!s && f->n_series < RT_METRICS_MAX_SERIES && (s = series_new(f, h, pairs)) != NULL) {
        _Atomic(series *) *head = &f->heads[h % SERIES_BUCKETS];
        s->next = atomic_load_explicit(head, memory_order_relaxed);
        atomic_store_explicit(head, s, memory_order_release);
        f->n_series++;
    }
    pthread_mutex_unlock(&f->lock);
    return s;
}

static void family_clear(family *f)
{
    for (size_t b = 0; b < SERIES_BUCKETS; b++) {
        series *s = atomic_load_explicit(&f->heads[b], memory_order_acquire);
        while (s) {
            series *next = s->next;
            series_free(s, f->n_labels);
            s = next;
        }
        atomic_store_explicit(&f->heads[b], NULL, memory_order_release);
    }
    f->n_series = 0;
}

/* Unlabeled families have their one series from the start (so /metrics shows "0"), and
 * presets theirs. */
static void family_seed(family *f)
{
    if (f->n_labels == 0) {
        series_get(f, NULL);
    } else if (f->def->preset && f->n_labels == 1) {
        for (const char *const *v = f->def->preset; *v; v++)
            series_get(f, (const char *const[]){f->def->labels[0], *v});
    }
}

static void init_families(void)
{
    for (size_t i = 0; i < N_FAMILIES; i++) {
        family *f = &families[i];
        f->def = &family_defs[i];
        while (f->n_labels < RT_METRICS_MAX_LABELS && f->def->labels[f->n_labels])
            f->n_labels++;
        f->name_hash = fnv1a(FNV_BASIS, f->def->name);
        pthread_mutex_init(&f->lock, NULL);
        for (size_t b = 0; b < SERIES_BUCKETS; b++)
            atomic_init(&f->heads[b], NULL);
        atomic_init(&f->warned, false);
        family_seed(f);
    }
}

static family *family_find(const char *name)
{
    pthread_once(&init_once, init_families);
    if (!name)
        return NULL;
    /* Call sites pass string literals, which the linker usually merges with the table's:
     * try the pointers first, then the hashed names. */
    for (size_t i = 0; i < N_FAMILIES; i++) {
        if (families[i].def->name == name)
            return &families[i];
    }
    uint64_t h = fnv1a(FNV_BASIS, name);
    for (size_t i = 0; i < N_FAMILIES; i++) {
        if (families[i].name_hash == h && strcmp(families[i].def->name, name) == 0)
            return &families[i];
    }
    return NULL;
}

static rt_status misuse(family *f, const char *name, const char *what)
{
    if (f) {
        if (!atomic_exchange(&f->warned, true))
            rt_log(RT_LOG_WARN, NULL, "metrics: %s: %s (further problems with this metric are not logged)",
                   f->def->name, what);
    } else if (atomic_fetch_add(&unknown_family_warnings, 1) < 5) {
        rt_log(RT_LOG_WARN, NULL, "metrics: %s is not in the metrics table (engine/core/metrics.c)",
               name ? name : "(null)");
    }
    return f ? RT_ERR_INVALID : RT_ERR_NOT_FOUND;
}

/* The series a call addresses, after checking it against the table. */
static rt_status resolve(const char *name, rt_metric_type type, size_t n_pairs, const char *const *pairs,
                         series **out, family **fam)
{
    *out = NULL;
    family *f = family_find(name);
    *fam = f;
    if (!f)
        return misuse(NULL, name, NULL);
    if (f->def->type != type)
        return misuse(f, name, "updated as the wrong metric type");
    if (n_pairs != f->n_labels)
        return misuse(f, name, "called with the wrong number of labels");
    for (size_t i = 0; i < n_pairs; i++) {
        if (pairs[2 * i] != f->def->labels[i] && (!pairs[2 * i] || strcmp(pairs[2 * i], f->def->labels[i]) != 0))
            return misuse(f, name, "called with label names that differ from the table");
        if (!pairs[2 * i + 1])
            return misuse(f, name, "called with a NULL label value");
    }
    series *s = series_find(f, values_hash(f->n_labels, pairs), pairs);
    if (!s) {
        /* new series only: the check is too slow for every update, and not needed then */
        for (size_t i = 0; i < n_pairs; i++) {
            if (!utf8_valid(pairs[2 * i + 1]))
                return misuse(f, name, "called with a label value that is not UTF-8");
        }
        s = series_get(f, pairs);
        if (!s)
            return misuse(f, name, "too many series (or out of memory): new label values are dropped");
    }
    *out = s;
    return RT_OK;
}

rt_status rt_metrics_counter_add_v(const char *family_name, size_t n_pairs, const char *const *pairs, uint64_t n)
{
    series *s;
    family *f;
    rt_status st = resolve(family_name, RT_METRIC_COUNTER, n_pairs, pairs, &s, &f);
    if (st == RT_OK)
        atomic_fetch_add_explicit(&s->value, n, memory_order_relaxed);
    return st;
}

rt_status rt_metrics_gauge_set_v(const char *family_name, size_t n_pairs, const char *const *pairs, double v)
{
    series *s;
    family *f;
    rt_status st = resolve(family_name, RT_METRIC_GAUGE, n_pairs, pairs, &s, &f);
    if (st == RT_OK)
        atomic_store_explicit(&s->value, bits_of(v), memory_order_relaxed);
    return st;
}

rt_status rt_metrics_gauge_add_v(const char *family_name, size_t n_pairs, const char *const *pairs, double delta)
{
    series *s;
    family *f;
    rt_status st = resolve(family_name, RT_METRIC_GAUGE, n_pairs, pairs, &s, &f);
    if (st == RT_OK)
        atomic_add_double(&s->value, delta);
    return st;
}

rt_status rt_metrics_histogram_observe_v(const char *family_name, size_t n_pairs, const char *const *pairs,
                                         double v)
{
    if (isnan(v)) /* would turn _sum into NaN for good */
        return misuse(family_find(family_name), family_name, "observed NaN");
    series *s;
    family *f;
    rt_status st = resolve(family_name, RT_METRIC_HISTOGRAM, n_pairs, pairs, &s, &f);
    if (st != RT_OK)
        return st;
    size_t i = 0, nb = f->def->n_buckets;
    while (i < nb && v > f->def->buckets[i])
        i++;
    atomic_fetch_add_explicit(&s->counts[i], 1, memory_order_relaxed);
    atomic_add_double(&s->sum, v);
    return RT_OK;
}

void rt_metrics_reset(void)
{
    pthread_once(&init_once, init_families);
    for (size_t i = 0; i < N_FAMILIES; i++) {
        pthread_mutex_lock(&families[i].lock);
        family_clear(&families[i]);
        pthread_mutex_unlock(&families[i].lock);
        atomic_store(&families[i].warned, false);
        family_seed(&families[i]);
    }
    atomic_store(&unknown_family_warnings, 0);
}

/* ---------------------------------------------------------------------------------
 * Rendering.
 * --------------------------------------------------------------------------------- */

/* Shortest text that reads back as the same double; Prometheus spellings for the rest. */
static void format_double(char *buf, size_t cap, double v)
{
    if (isnan(v)) {
        snprintf(buf, cap, "NaN");
    } else if (isinf(v)) {
        snprintf(buf, cap, v > 0 ? "+Inf" : "-Inf");
    } else if (v == rint(v) && fabs(v) < 1e15) {
        snprintf(buf, cap, "%.0f", v);
    } else {
        snprintf(buf, cap, "%.15g", v);
        if (strtod(buf, NULL) != v)
            snprintf(buf, cap, "%.17g", v);
    }
}

static void put_escaped(FILE *o, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", o);
        else if (*s == '\n')
            fputs("\\n", o);
        else if (*s == '"' && quote)
            fputs("\\\"", o);
        else
            fputc(*s, o);
    }
}

/* {a="x",b="y"[,le="0.5"]}, or nothing when there are no labels at all. */
static void put_labels(FILE *o, const family *f, const series *s, const char *le)
{
    if (f->n_labels == 0 && !le)
        return;
    fputc('{', o);
    for (size_t i = 0; i < f->n_labels; i++) {
        fprintf(o, "%s%s=\"", i ? "," : "", f->def->labels[i]);
        put_escaped(o, s->values[i], true);
        fputc('"', o);
    }
    if (le)
        fprintf(o, "%sle=\"%s\"", f->n_labels ? "," : "", le);
    fputc('}', o);
}

static size_t sort_labels; /* label count for compare_series (set under render_lock) */
static pthread_mutex_t render_lock = PTHREAD_MUTEX_INITIALIZER;

static int compare_series(const void *a, const void *b)
{
    const series *x = *(series *const *)a, *y = *(series *const *)b;
    for (size_t i = 0; i < sort_labels; i++) {
        int c = strcmp(x->values[i], y->values[i]);
        if (c)
            return c;
    }
    return 0;
}

static const char *const type_names[] = {"counter", "gauge", "histogram"};

static void render_family(FILE *o, family *f)
{
    const rt_metric_family_def *d = f->def;
    fprintf(o, "# HELP %s ", d->name);
    put_escaped(o, d->help, false);
    fprintf(o, "\n# TYPE %s %s\n", d->name, type_names[d->type]);

    pthread_mutex_lock(&f->lock); /* holds n_series still while we collect */
    size_t n = 0;
    series **list = f->n_series ? malloc(f->n_series * sizeof *list) : NULL;
    for (size_t b = 0; list && b < SERIES_BUCKETS; b++) {
        for (series *s = atomic_load_explicit(&f->heads[b], memory_order_acquire); s && n < f->n_series;
             s = s->next)
            list[n++] = s;
    }
    pthread_mutex_unlock(&f->lock);
    sort_labels = f->n_labels;
    if (n > 1)
        qsort(list, n, sizeof *list, compare_series);

    char num[64];
    for (size_t k = 0; k < n; k++) {
        series *s = list[k];
        if (d->type == RT_METRIC_COUNTER) {
            fputs(d->name, o);
            put_labels(o, f, s, NULL);
            fprintf(o, " %llu\n", (unsigned long long)atomic_load_explicit(&s->value, memory_order_relaxed));
        } else if (d->type == RT_METRIC_GAUGE) {
            fputs(d->name, o);
            put_labels(o, f, s, NULL);
            format_double(num, sizeof num, double_of(atomic_load_explicit(&s->value, memory_order_relaxed)));
            fprintf(o, " %s\n", num);
        } else {
            /* _count is the +Inf bucket of the same snapshot, so they always agree */
            uint64_t cum = 0;
            for (size_t i = 0; i <= d->n_buckets; i++) {
                cum += atomic_load_explicit(&s->counts[i], memory_order_relaxed);
                if (i < d->n_buckets)
                    format_double(num, sizeof num, d->buckets[i]);
                fprintf(o, "%s_bucket", d->name);
                put_labels(o, f, s, i < d->n_buckets ? num : "+Inf");
                fprintf(o, " %llu\n", (unsigned long long)cum);
            }
            format_double(num, sizeof num, double_of(atomic_load_explicit(&s->sum, memory_order_relaxed)));
            fprintf(o, "%s_sum", d->name);
            put_labels(o, f, s, NULL);
            fprintf(o, " %s\n%s_count", num, d->name);
            put_labels(o, f, s, NULL);
            fprintf(o, " %llu\n", (unsigned long long)cum);
        }
    }
    free(list);
}

char *rt_metrics_render(void)
{
    pthread_once(&init_once, init_families);
    char *buf = NULL;
    size_t len = 0;
    FILE *o = open_memstream(&buf, &len);
    if (!o)
        return NULL;
    pthread_mutex_lock(&render_lock);
    for (size_t i = 0; i < N_FAMILIES; i++)
        render_family(o, &families[i]);
    pthread_mutex_unlock(&render_lock);
    bool failed = ferror(o) != 0;
    if (fclose(o) != 0 || failed) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ---------------------------------------------------------------------------------
 * The table's own rules (the exposition format's names, and ours).
 * --------------------------------------------------------------------------------- */

static bool metric_name_valid(const char *s)
{
    if (!s || !*s || !(isalpha((unsigned char)*s) || *s == '_' || *s == ':'))
        return false;
    for (const char *p = s; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != ':')
            return false;
    }
    return true;
}

static bool label_name_valid(const char *s)
{
    if (!s || !*s || !(isalpha((unsigned char)*s) || *s == '_') || strncmp(s, "__", 2) == 0)
        return false;
    for (const char *p = s; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '_')
            return false;
    }
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

rt_status rt_metrics_check_table(rt_error *err)
{
    for (size_t i = 0; i < N_FAMILIES; i++) {
        const rt_metric_family_def *d = &family_defs[i];
        if (!metric_name_valid(d->name) || strncmp(d->name, "ratchet_", 8) != 0)
            return rt_error_set(err, RT_ERR_INVALID, "family %zu: bad name \"%s\"", i, d->name ? d->name : "");
        if (!d->help || !*d->help)
            return rt_error_set(err, RT_ERR_INVALID, "%s: no help text", d->name);
        if ((unsigned)d->type > RT_METRIC_HISTOGRAM)
            return rt_error_set(err, RT_ERR_INVALID, "%s: bad type", d->name);
        if ((d->type == RT_METRIC_COUNTER) != ends_with(d->name, "_total"))
            return rt_error_set(err, RT_ERR_INVALID, "%s: counters, and only counters, end in _total", d->name);
        for (size_t k = 0; k < i; k++) {
            if (strcmp(family_defs[k].name, d->name) == 0)
                return rt_error_set(err, RT_ERR_INVALID, "%s: listed twice", d->name);
        }
        size_t nl = 0;
        while (nl < RT_METRICS_MAX_LABELS && d->labels[nl])
            nl++;
        if (d->labels[RT_METRICS_MAX_LABELS])
            return rt_error_set(err, RT_ERR_INVALID, "%s: more than %d labels", d->name, RT_METRICS_MAX_LABELS);
        for (size_t l = 0; l < nl; l++) {
            if (!label_name_valid(d->labels[l]) || strcmp(d->labels[l], "le") == 0 ||
                strcmp(d->labels[l], "quantile") == 0)
                return rt_error_set(err, RT_ERR_INVALID, "%s: bad label name \"%s\"", d->name, d->labels[l]);
            for (size_t k = 0; k < l; k++) {
                if (strcmp(d->labels[k], d->labels[l]) == 0)
                    return rt_error_set(err, RT_ERR_INVALID, "%s: label \"%s\" twice", d->name, d->labels[l]);
            }
        }
        if (d->type == RT_METRIC_HISTOGRAM) {
            if (!d->buckets || d->n_buckets == 0)
                return rt_error_set(err, RT_ERR_INVALID, "%s: a histogram needs buckets", d->name);
            for (size_t b = 0; b < d->n_buckets; b++) {
                if (!isfinite(d->buckets[b]) || (b && d->buckets[b] <= d->buckets[b - 1]))
                    return rt_error_set(err, RT_ERR_INVALID, "%s: buckets must be finite and increasing",
                                        d->name);
            }
        } else if (d->buckets || d->n_buckets) {
            return rt_error_set(err, RT_ERR_INVALID, "%s: only histograms have buckets", d->name);
        }
        if (d->preset) {
            if (nl != 1)
                return rt_error_set(err, RT_ERR_INVALID, "%s: presets need exactly one label", d->name);
            for (const char *const *v = d->preset; *v; v++) {
                if (!utf8_valid(*v))
                    return rt_error_set(err, RT_ERR_INVALID, "%s: preset value not UTF-8", d->name);
            }
        }
    }
    return RT_OK;
}
