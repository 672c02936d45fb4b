/* config.h — every setting in one declarative table (name, environment variable, flag,
 * type, default, help), read from the environment and then from command-line flags. */
#ifndef RT_CONFIG_H
#define RT_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "status.h"

typedef struct rt_config {
    char *database_url;
    char *app_database_url;
    char *amqp_url;
    char *nats_url;
    char *workflows;
    char *http_addr;
    bool http_step_allow_engine_api;
    /* HTTP server limits (engine/api/api.c) */
    int http_max_connections;
    int http_max_connections_per_ip;
    int64_t http_idle_timeout_ms;
    int64_t http_request_timeout_ms;
    int workers;
    int quick_workers; /* of the workers, how many run quick batches at once (executor.c) */
    bool scheduler_enabled;
    bool watch; /* serve --watch: sync the workflows directory on inotify events */
    int for_each_max_items;
    char *log_format;
    char *log_level;
    int64_t lease_ms;
    int64_t shutdown_grace_ms;
    int64_t poll_ms;
    int claim_batch;
    int ingest_consumers; /* per broker (intake.c) */
    bool run_at_ingest; /* first quick steps in the ingest transaction (ingest.h) */
    int64_t event_retention_ms;
    int64_t run_retention_ms;
    /* brokers (engine/run/bus.h) */
    bool nats_jetstream;
    int amqp_prefetch;
    int nats_max_ack_pending;
    int64_t nats_ack_wait_ms;
    int64_t nats_stream_max_age_ms;
    char *nats_stream;
    char *nats_subject_prefix;
    char *nats_consumer;
    char *amqp_queue;
    int max_event_bytes;
    char *tls_ca;
    char *tls_cert;
    char *tls_key;
    bool tls_verify;
    /* approvals (engine/trust/approval.h) */
    char *approvers_file;
    char *tokens_file; /* RATCHET_TOKENS: the API's tokens file, or NULL (loopback only, no auth) */
    int64_t approval_skew_ms;
    /* webhooks (engine/api/api_hooks.c) */
    int64_t webhook_tolerance_ms;
    /* alert events (engine/run/alerts.c) */
    bool alerts_enabled;
    int64_t alert_interval_ms;
    int64_t alert_window_ms;
    int alert_failure_rate_pct;
    int alert_failure_min_runs;
    int64_t alert_backlog_ms;
    int64_t alert_timeout_grace_ms;
    int64_t alert_repeat_ms;
    /* OpenTelemetry traces (engine/core/otel.c): the standard OTEL_* variables */
    char *otel_endpoint;        /* OTEL_EXPORTER_OTLP_ENDPOINT: <it>/v1/traces */
    char *otel_traces_endpoint; /* OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: used as is */
    char *otel_headers;         /* OTEL_EXPORTER_OTLP_HEADERS: secrets, never logged */
    char *otel_service_name;
    char *otel_resource_attributes;
    char *otel_sampler;
    char *otel_sampler_arg;
    int otel_queue_size;        /* OTEL_BSP_MAX_QUEUE_SIZE */
    int otel_batch_size;        /* OTEL_BSP_MAX_EXPORT_BATCH_SIZE */
    int otel_schedule_delay_ms; /* OTEL_BSP_SCHEDULE_DELAY */
    int otel_export_timeout_ms; /* OTEL_BSP_EXPORT_TIMEOUT */
    /* test only (engine/run/executor.c): step id to SIGSTOP after claiming, or NULL */
    char *debug_pause_after_claim;
} rt_config;

/* Fills cfg with defaults, then the environment. Returns RT_ERR_INVALID with one clear
 * line ("RATCHET_WORKERS=abc: expected an integer from 1 to 1024") on a bad value. */
rt_status rt_config_from_env(rt_config *cfg, rt_error *err);

/* If argv[*i] is a known settings flag (--database-url URL or --database-url=URL),
 * applies it, advances *i past its value and returns RT_OK; RT_ERR_NOT_FOUND when the
 * flag is not a setting; RT_ERR_INVALID on a bad value or a missing argument. */
rt_status rt_config_apply_flag(rt_config *cfg, int argc, char **argv, int *i, rt_error *err);

/* Checks what a command needs (e.g. a database URL) and applies log settings. */
rt_status rt_config_require_database(const rt_config *cfg, rt_error *err);
rt_status rt_config_apply_logging(const rt_config *cfg, rt_error *err);

/* Prints the settings table (for `ratchet help`). */
void rt_config_print_help(void);

void rt_config_free(rt_config *cfg);

#endif
