/* intake.h — everything that brings events in from brokers: one consumer per configured
 * broker feeding ingest (parse, store, trigger, commit, then ack), the process-wide
 * publishers used by the `publish` step, and the janitor that deletes old events. */
#ifndef RT_INTAKE_H
#define RT_INTAKE_H

#include "bus.h"
#include "config.h"
#include "status.h"
#include "workflow.h"

typedef struct rt_intake rt_intake;

/* RATCHET_INGEST_CONSUMERS at most: consumers per broker. */
#define RT_INGEST_CONSUMERS_MAX 8

/* cfg and set are borrowed and must outlive the intake. Consumers connect in the
 * background (with backoff): a broker that is down is not an error here. */
rt_status rt_intake_start(const rt_config *cfg, const rt_workflow_set *set, rt_intake **out, rt_error *err);
/* The workflow set changed (set is a live handle: workflow_live.h): when the patterns it
 * needs differ from what the consumers subscribe to, restarts them with the new ones.
 * Call from one thread at a time, not concurrently with rt_intake_stop. */
rt_status rt_intake_refresh(rt_intake *in, rt_error *err);
/* Publishers for the publish step (NULL when that broker is not configured). */
rt_bus *rt_intake_publisher(rt_intake *in, const char *broker);
/* Messages acknowledged so far by the consumers (each after its batch committed), summed
 * over brokers. Not concurrently with rt_intake_refresh or rt_intake_stop. */
uint64_t rt_intake_acked(const rt_intake *in);
/* Stops consumers (finishing and settling the batch in hand) and the janitor. */
void rt_intake_stop(rt_intake *in);

/* The event-name patterns a workflow set needs delivered: event triggers, cancel_on, and
 * wait_for_event names (">" when one is a template). A JSON array of strings. */
json_t *rt_intake_patterns(const rt_workflow_set *set);

/* Publishes one message (body as given, len bytes) to the broker named by via ("amqp"
 * or "nats") for `ratchet send`; count > 1 sends that many copies with ids "<id>-<i>"
 * (bodies must then be built by make_body), pipelined in batches of `batch` (0: 500) with
 * confirms. */
typedef char *(*rt_body_fn)(void *arg, size_t i, const char **id);
rt_status rt_intake_publish(const rt_config *cfg, const char *via, const char *name, size_t count, size_t batch,
                            rt_body_fn make_body, void *arg, rt_error *err);

#endif
