/* executor.h — the engine's workers: claim due steps from the queue, run them, memoize
 * their results and make successors runnable, many steps per commit. Also the wake-up
 * listener (LISTEN/NOTIFY + next due time), the lease keeper and the deadline sweeper. */
#ifndef RT_EXECUTOR_H
#define RT_EXECUTOR_H

#include <stdint.h>

#include "config.h"
#include "status.h"

typedef struct rt_engine rt_engine;

/* cfg is borrowed and must outlive the engine. */
rt_status rt_engine_new(const rt_config *cfg, rt_engine **out, rt_error *err);
/* The publishers the `publish` step uses (borrowed; NULL when not configured). Call
 * before rt_engine_start. */
struct rt_bus;
struct rt_workflow_set;
/* The loaded workflows, for invoke and on_failure (borrowed). Call before start. */
void rt_engine_set_workflows(rt_engine *e, const struct rt_workflow_set *set);
void rt_engine_set_publishers(rt_engine *e, struct rt_bus *amqp, struct rt_bus *nats);
/* Starts worker, wake-up, lease-keeper and deadline-sweeper threads. */
rt_status rt_engine_start(rt_engine *e, rt_error *err);
/* Stops claiming, lets in-flight steps finish within grace_ms, then cancels what still
 * runs, gives every lease this process holds back to the queue and joins the threads. */
void rt_engine_stop(rt_engine *e, int64_t grace_ms);
void rt_engine_free(rt_engine *e);

/* Counters for `ratchet bench`; read after rt_engine_stop. */
typedef struct rt_engine_stats {
    uint64_t claims;         /* claim statements that returned work */
    uint64_t steps;          /* step executions */
    /* Latency of the claim statements that returned work, each connection's first left out
     * (it plans the statement and meets cold caches): */
    double claim_p50_ms;
    double claim_p99_ms;
    double claim_first_ms;   /* the slowest first claim of a connection */
} rt_engine_stats;
void rt_engine_stats_get(rt_engine *e, rt_engine_stats *out);
/* Step executions so far, while the engine runs (a hint: a run's transaction may still
 * roll back). */
uint64_t rt_engine_steps_run(rt_engine *e);

#endif
