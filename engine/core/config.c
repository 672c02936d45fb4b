/* config.c — the settings table and its parsers. */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

typedef enum { T_STRING, T_INT, T_BOOL, T_DURATION, T_RETENTION /* a duration, or off = 0 */ } setting_type;

typedef struct setting {
    const char *env;
    const char *flag;
    setting_type type;
    size_t offset;
    const char *def; /* NULL = unset */
    long min, max;   /* T_INT bounds */
    const char *help;
} setting;

#define OFF(f) offsetof(rt_config, f)

static const setting settings[] = {
    {"RATCHET_DATABASE_URL", "--database-url", T_STRING, OFF(database_url), NULL, 0, 0,
     "PostgreSQL URL of the engine's database (required)"},
    {"RATCHET_APP_DATABASE_URL", "--app-database-url", T_STRING, OFF(app_database_url), NULL, 0, 0,
     "database for `sql` steps (default: the engine's)"},
    {"RATCHET_AMQP_URL", "--amqp-url", T_STRING, OFF(amqp_url), NULL, 0, 0, "RabbitMQ URL (optional)"},
    {"RATCHET_NATS_URL", "--nats-url", T_STRING, OFF(nats_url), NULL, 0, 0, "NATS URL (optional)"},
    {"RATCHET_WORKFLOWS", "--workflows", T_STRING, OFF(workflows), "workflows", 0, 0,
     "directory of workflow JSON files"},
    {"RATCHET_HTTP_ADDR", "--http-addr", T_STRING, OFF(http_addr), "127.0.0.1:8288", 0, 0,
     "HTTP API listen address"},
    {"RATCHET_HTTP_STEP_ALLOW_ENGINE_API", "--http-step-allow-engine-api", T_BOOL, OFF(http_step_allow_engine_api),
     "false", 0, 0, "let `http` steps whose URL is a template (or a redirect) reach the engine's own API"},
    {"RATCHET_HTTP_MAX_CONNECTIONS", "--http-max-connections", T_INT, OFF(http_max_connections), "1024", 16,
     1000000, "HTTP API: open connections at most (more are closed at once)"},
    {"RATCHET_HTTP_MAX_CONNECTIONS_PER_IP", "--http-max-connections-per-ip", T_INT, OFF(http_max_connections_per_ip),
     "256", 0, 1000000, "HTTP API: open connections from one client address at most (0: no limit)"},
    {"RATCHET_HTTP_IDLE_TIMEOUT", "--http-idle-timeout", T_DURATION, OFF(http_idle_timeout_ms), "30s", 0, 0,
     "HTTP API: a connection with no traffic for this long is closed"},
    {"RATCHET_HTTP_REQUEST_TIMEOUT", "--http-request-timeout", T_DURATION, OFF(http_request_timeout_ms), "15s", 0, 0,
     "HTTP API: a complete request (headers and body) must arrive within this time of connecting or of the "
     "previous answer"},
    {"RATCHET_WORKERS", "--workers", T_INT, OFF(workers), NULL, 1, 1024,
     "worker threads (default: cores x 4)"},
    {"RATCHET_QUICK_WORKERS", "--quick-workers", T_INT, OFF(quick_workers), NULL, 1, 1024,
     "of the workers, how many claim and run quick steps (transform, log, ...) at once; the others take slow "
     "steps meanwhile (default: cores, at least 2)"},
    {"RATCHET_SCHEDULER_ENABLED", "--scheduler-enabled", T_BOOL, OFF(scheduler_enabled), "true", 0, 0,
     "fire cron ticks from this process"},
    {"RATCHET_WATCH", "--watch", T_BOOL, OFF(watch), "false", 0, 0,
     "serve: apply changes to the workflows directory as they happen (inotify; SIGHUP always does)"},
    {"RATCHET_FOR_EACH_MAX_ITEMS", "--for-each-max-items", T_INT, OFF(for_each_max_items), "10000", 1, 10000000,
     "a for_each expression giving more items than this fails its step"},
    {"RATCHET_LOG_FORMAT", "--log-format", T_STRING, OFF(log_format), "text", 0, 0, "text or json"},
    {"RATCHET_LOG_LEVEL", "--log-level", T_STRING, OFF(log_level), "info", 0, 0,
     "debug, info, warn or error"},
    {"RATCHET_LEASE", "--lease", T_DURATION, OFF(lease_ms), "30s", 0, 0,
     "how long a claimed step is held before another worker may take it over"},
    {"RATCHET_SHUTDOWN_GRACE", "--shutdown-grace", T_DURATION, OFF(shutdown_grace_ms), "30s", 0, 0,
     "on SIGTERM, how long in-flight steps may run before they are released"},
    {"RATCHET_POLL_INTERVAL", "--poll-interval", T_DURATION, OFF(poll_ms), "1s", 0, 0,
     "fallback poll when no NOTIFY arrives"},
    {"RATCHET_CLAIM_BATCH", "--claim-batch", T_INT, OFF(claim_batch), "32", 1, 1000,
     "quick steps a worker claims at once (up to 16x as many, at most 1000, while a full batch keeps coming)"},
    {"RATCHET_INGEST_CONSUMERS", "--ingest-consumers", T_INT, OFF(ingest_consumers), "1", 1, 8,
     "consumers per broker, each storing its batches on its own connections (the broker shares messages out; "
     "more than 1 ingests a backlog faster but gives up the broker's order between batches)"},
    {"RATCHET_RUN_AT_INGEST", "--run-at-ingest", T_BOOL, OFF(run_at_ingest), "true", 0, 0,
     "run a new run's first quick steps (transform, log, sleep, wait_for_event, ...) in the transaction that "
     "stores its event, when this process runs an engine"},
    {"RATCHET_AMQP_QUEUE", "--amqp-queue", T_STRING, OFF(amqp_queue), "ratchet.ingest", 0, 0,
     "RabbitMQ queue the engine consumes events from"},
    {"RATCHET_EVENT_RETENTION", "--event-retention", T_RETENTION, OFF(event_retention_ms), "7d", 0, 0,
     "stored events older than this are deleted; off keeps them forever"},
    {"RATCHET_RUN_RETENTION", "--run-retention", T_RETENTION, OFF(run_retention_ms), "30d", 0, 0,
     "finished runs (and their steps) older than this are deleted; off keeps them forever"},
    {"RATCHET_NATS_JETSTREAM", "--nats-jetstream", T_BOOL, OFF(nats_jetstream), "true", 0, 0,
     "use JetStream when the NATS server has it (false: core NATS, at-most-once delivery)"},
    {"RATCHET_AMQP_PREFETCH", "--amqp-prefetch", T_INT, OFF(amqp_prefetch), "1024", 1, 65535,
     "RabbitMQ basic.qos prefetch: unacked messages one consumer holds"},
    {"RATCHET_NATS_MAX_ACK_PENDING", "--nats-max-ack-pending", T_INT, OFF(nats_max_ack_pending), "4096", 1,
     1000000, "JetStream consumer MaxAckPending"},
    {"RATCHET_NATS_ACK_WAIT", "--nats-ack-wait", T_DURATION, OFF(nats_ack_wait_ms), "30s", 0, 0,
     "JetStream redelivers a message not acked within this time"},
    {"RATCHET_NATS_STREAM_MAX_AGE", "--nats-stream-max-age", T_DURATION, OFF(nats_stream_max_age_ms), "7d", 0, 0,
     "JetStream stream retention (when ratchet creates the stream)"},
    {"RATCHET_NATS_STREAM", "--nats-stream", T_STRING, OFF(nats_stream), "RATCHET_EVENTS", 0, 0,
     "JetStream stream name"},
    {"RATCHET_NATS_SUBJECT_PREFIX", "--nats-subject-prefix", T_STRING, OFF(nats_subject_prefix), "events", 0, 0,
     "NATS subjects are PREFIX.<event name>"},
    {"RATCHET_NATS_CONSUMER", "--nats-consumer", T_STRING, OFF(nats_consumer), "ratchet-ingest", 0, 0,
     "JetStream durable consumer and core NATS queue group"},
    {"RATCHET_MAX_EVENT_BYTES", "--max-event-bytes", T_INT, OFF(max_event_bytes), "1048576", 1024, 1073741824,
     "larger broker messages are dead-lettered"},
    {"RATCHET_TLS_CA", "--tls-ca", T_STRING, OFF(tls_ca), NULL, 0, 0,
     "PEM file of CAs trusted for amqps:// and tls:// (default: system store)"},
    {"RATCHET_TLS_CERT", "--tls-cert", T_STRING, OFF(tls_cert), NULL, 0, 0,
     "client certificate (PEM) for brokers that want mutual TLS"},
    {"RATCHET_TLS_KEY", "--tls-key", T_STRING, OFF(tls_key), NULL, 0, 0, "client private key (PEM)"},
    {"RATCHET_TLS_VERIFY", "--tls-verify", T_BOOL, OFF(tls_verify), "true", 0, 0,
     "verify brokers' certificates and host names"},
    {"RATCHET_APPROVERS", "--approvers", T_STRING, OFF(approvers_file), NULL, 0, 0, "approvers file: `id public-key` lines (ratchet keygen)"},
    {"RATCHET_TOKENS", "--tokens", T_STRING, OFF(tokens_file), NULL, 0, 0,
     "API tokens file (ratchet token create); unset: no authentication, API on loopback only"},
    {"RATCHET_APPROVAL_SKEW", "--approval-skew", T_DURATION, OFF(approval_skew_ms), "5m", 0, 0, "signed decisions older (or newer) than this are refused"},
    {"RATCHET_WEBHOOK_TOLERANCE", "--webhook-tolerance", T_DURATION, OFF(webhook_tolerance_ms), "5m", 0, 0,
     "webhook signatures whose timestamp is further from now than this are refused"},
    {"RATCHET_ALERTS", "--alerts", T_BOOL, OFF(alerts_enabled), "true", 0, 0,
     "publish ratchet.alert.* events when a threshold below is crossed"},
    {"RATCHET_ALERT_INTERVAL", "--alert-interval", T_DURATION, OFF(alert_interval_ms), "15s", 0, 0,
     "how often the alert thresholds are checked"},
    {"RATCHET_ALERT_WINDOW", "--alert-window", T_DURATION, OFF(alert_window_ms), "5m", 0, 0,
     "the window over which the failure rate is computed"},
    {"RATCHET_ALERT_FAILURE_RATE", "--alert-failure-rate", T_INT, OFF(alert_failure_rate_pct), "20", 1, 100,
     "percent of runs ended failed or timed_out in the window that raises failure_rate_high"},
    {"RATCHET_ALERT_FAILURE_MIN_RUNS", "--alert-failure-min-runs", T_INT, OFF(alert_failure_min_runs), "10", 1,
     1000000, "fewer finished runs than this in the window never raise failure_rate_high"},
    {"RATCHET_ALERT_QUEUE_BACKLOG", "--alert-queue-backlog", T_DURATION, OFF(alert_backlog_ms), "5m", 0, 0,
     "the oldest runnable step waiting longer than this raises queue_backlog"},
    {"RATCHET_ALERT_TIMEOUT_GRACE", "--alert-timeout-grace", T_DURATION, OFF(alert_timeout_grace_ms), "30s", 0,
     0, "a step still running this long past its timeout raises execution_timeout"},
    {"RATCHET_ALERT_REPEAT", "--alert-repeat", T_DURATION, OFF(alert_repeat_ms), "15m", 0, 0,
     "an alert that stays raised is published again after this"},
    /* OpenTelemetry (engine/core/otel.c, docs/observability.md): the specification's own
     * names, so the variables a collector's docs give work unchanged. */
    {"OTEL_EXPORTER_OTLP_ENDPOINT", "--otel-endpoint", T_STRING, OFF(otel_endpoint), NULL, 0, 0,
     "OTLP/HTTP base URL: spans go to <it>/v1/traces as JSON (unset: no traces exported)"},
    {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "--otel-traces-endpoint", T_STRING, OFF(otel_traces_endpoint), NULL, 0,
     0, "OTLP/HTTP URL for spans, used as is (wins over OTEL_EXPORTER_OTLP_ENDPOINT)"},
    {"OTEL_EXPORTER_OTLP_HEADERS", "--otel-headers", T_STRING, OFF(otel_headers), NULL, 0, 0,
     "headers sent to the collector, k=v,k2=v2 (URL-encoded values; never logged)"},
    {"OTEL_SERVICE_NAME", "--otel-service-name", T_STRING, OFF(otel_service_name), NULL, 0, 0,
     "service.name of the spans (default: service.name from OTEL_RESOURCE_ATTRIBUTES, else ratchet)"},
    {"OTEL_RESOURCE_ATTRIBUTES", "--otel-resource-attributes", T_STRING, OFF(otel_resource_attributes), NULL, 0, 0,
     "resource attributes, k=v,k2=v2 (URL-encoded values)"},
    {"OTEL_TRACES_SAMPLER", "--otel-traces-sampler", T_STRING, OFF(otel_sampler), "parentbased_always_on", 0, 0,
     "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, "
     "parentbased_traceidratio"},
    {"OTEL_TRACES_SAMPLER_ARG", "--otel-traces-sampler-arg", T_STRING, OFF(otel_sampler_arg), NULL, 0, 0,
     "the ratio (0 to 1) of the traceidratio samplers (default 1)"},
    {"OTEL_BSP_MAX_QUEUE_SIZE", "--otel-queue-size", T_INT, OFF(otel_queue_size), "2048", 1, 1000000,
     "spans waiting for export at most; more are dropped (ratchet_otel_spans_dropped_total)"},
    {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "--otel-batch-size", T_INT, OFF(otel_batch_size), "512", 1, 100000,
     "spans per export request at most"},
    {"OTEL_BSP_SCHEDULE_DELAY", "--otel-schedule-delay", T_INT, OFF(otel_schedule_delay_ms), "1000", 1, 3600000,
     "milliseconds between exports (a full batch goes at once)"},
    {"OTEL_BSP_EXPORT_TIMEOUT", "--otel-export-timeout", T_INT, OFF(otel_export_timeout_ms), "10000", 100,
     3600000, "milliseconds one export request may take"},
    /* Test-only: freezes the process between a claim and the step's start, so that an
     * integration test (tests/integration/t_fence.sh) can let the lease run out
     * deterministically. Inert unless set. */
    {"RATCHET_DEBUG_PAUSE_AFTER_CLAIM", "--debug-pause-after-claim", T_STRING, OFF(debug_pause_after_claim), NULL,
     0, 0, "TEST ONLY: stop this process (SIGSTOP) once, right after it claims a step with this id"},
};

#define N_SETTINGS (sizeof settings / sizeof settings[0])

static rt_status apply(rt_config *cfg, const setting *s, const char *origin, const char *value,
                       rt_error *err)
{
    char *base = (char *)cfg;
    switch (s->type) {
    case T_STRING: {
        char **slot = (char **)(base + s->offset);
        free(*slot);
        *slot = strdup(value);
        return RT_OK;
    }
    case T_INT: {
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno || *value == '\0' || *end != '\0' || v < s->min || v > s->max)
            return rt_error_set(err, RT_ERR_INVALID, "%s=%s: expected an integer from %ld to %ld", origin,
                                value, s->min, s->max);
        *(int *)(base + s->offset) = (int)v;
        return RT_OK;
    }
    case T_BOOL: {
        bool *slot = (bool *)(base + s->offset);
        if (!strcmp(value, "true") || !strcmp(value, "1") || !strcmp(value, "yes") || !strcmp(value, "on"))
            *slot = true;
        else if (!strcmp(value, "false") || !strcmp(value, "0") || !strcmp(value, "no") ||
                 !strcmp(value, "off"))
            *slot = false;
        else
            return rt_error_set(err, RT_ERR_INVALID, "%s=%s: expected true or false", origin, value);
        return RT_OK;
    }
    case T_RETENTION:
        if (!strcmp(value, "off")) {
            *(int64_t *)(base + s->offset) = 0;
            return RT_OK;
        }
        /* fall through */
    case T_DURATION: {
        rt_error derr;
        if (rt_duration_parse(value, (int64_t *)(base + s->offset), &derr) != RT_OK)
            return rt_error_set(err, RT_ERR_INVALID, "%s: %s", origin, derr.msg);
        return RT_OK;
    }
    }
    return RT_ERR_INTERNAL;
}

rt_status rt_config_from_env(rt_config *cfg, rt_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->workers = (int)(cores > 0 ? cores * 4 : 4);
    cfg->quick_workers = (int)(cores > 2 ? cores : 2);
    for (size_t i = 0; i < N_SETTINGS; i++) {
        if (settings[i].def && apply(cfg, &settings[i], settings[i].env, settings[i].def, err) != RT_OK)
            return RT_ERR_INTERNAL;
    }
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const char *v = getenv(settings[i].env);
        if (v && *v) {
            rt_status st = apply(cfg, &settings[i], settings[i].env, v, err);
            if (st != RT_OK)
                return st;
        }
    }
    return RT_OK;
}

static bool bool_word(const char *v)
{
    static const char *const words[] = {"true", "false", "1", "0", "yes", "no", "on", "off", NULL};
    for (size_t i = 0; v && words[i]; i++)
        if (!strcmp(v, words[i]))
            return true;
    return false;
}

rt_status rt_config_apply_flag(rt_config *cfg, int argc, char **argv, int *i, rt_error *err)
{
    const char *arg = argv[*i];
    for (size_t k = 0; k < N_SETTINGS; k++) {
        size_t n = strlen(settings[k].flag);
        if (strncmp(arg, settings[k].flag, n) != 0)
            continue;
        const char *value;
        if (arg[n] == '=') {
            value = arg + n + 1;
        } else if (arg[n] == '\0' && settings[k].type == T_BOOL && !bool_word(*i + 1 < argc ? argv[*i + 1] : NULL)) {
            value = "true"; /* a bare boolean flag: --watch */
        } else if (arg[n] == '\0') {
            if (*i + 1 >= argc)
                return rt_error_set(err, RT_ERR_INVALID, "%s needs a value", settings[k].flag);
            value = argv[++*i];
        } else {
            continue;
        }
        return apply(cfg, &settings[k], settings[k].flag, value, err);
    }
    return RT_ERR_NOT_FOUND;
}

rt_status rt_config_require_database(const rt_config *cfg, rt_error *err)
{
    if (!cfg->database_url || !*cfg->database_url)
        return rt_error_set(err, RT_ERR_INVALID,
                            "RATCHET_DATABASE_URL is not set (e.g. postgresql://user@127.0.0.1:5432/ratchet); "
                            "set it or pass --database-url");
    return RT_OK;
}

rt_status rt_config_apply_logging(const rt_config *cfg, rt_error *err)
{
    rt_log_level level;
    if (!rt_log_level_parse(cfg->log_level, &level))
        return rt_error_set(err, RT_ERR_INVALID, "RATCHET_LOG_LEVEL=%s: expected debug, info, warn or error",
                            cfg->log_level);
    bool json;
    if (!strcmp(cfg->log_format, "json"))
        json = true;
    else if (!strcmp(cfg->log_format, "text"))
        json = false;
    else
        return rt_error_set(err, RT_ERR_INVALID, "RATCHET_LOG_FORMAT=%s: expected json or text", cfg->log_format);
    rt_log_configure(level, json);
    return RT_OK;
}

void rt_config_print_help(void)
{
    printf("Settings (environment variable, flag, default):\n");
    for (size_t i = 0; i < N_SETTINGS; i++)
        printf("  %-28s %-22s %-16s %s\n", settings[i].env, settings[i].flag,
               settings[i].def ? settings[i].def : "-", settings[i].help);
}

void rt_config_free(rt_config *cfg)
{
    for (size_t i = 0; i < N_SETTINGS; i++) {
        if (settings[i].type == T_STRING) {
            char **slot = (char **)((char *)cfg + settings[i].offset);
            free(*slot);
            *slot = NULL;
        }
    }
}
