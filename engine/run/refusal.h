/* refusal.h — refused actions as audit records (DESIGN §6). Every refusal is counted; an
 * actor's refusals are written to the audit log at most RT_REFUSAL_BURST per minute (the
 * rest are counted, and the next record written says how many were not), and a record's
 * details are bounded, so that a low-privilege caller can neither bloat the log nor keep
 * audited actions queued on the chain's lock. */
#ifndef RT_REFUSAL_H
#define RT_REFUSAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "status.h"
#include "store.h"

#define RT_REFUSAL_BURST 10          /* records per actor per RT_REFUSAL_WINDOW_MS */
#define RT_REFUSAL_WINDOW_MS 60000
#define RT_REFUSAL_DETAILS_MAX 2048  /* bytes of compact JSON a refusal record's details keep */

/* Appends "action" (e.g. "agent.refused") by actor about subject inside the caller's
 * transaction, unless the actor is over its rate: then only counted. details is borrowed
 * (may be NULL) and stored bounded (rt_refusal_bound). Counts
 * ratchet_refusals_total{action} always, ratchet_audit_refusals_suppressed_total{action}
 * when not written. */
rt_status rt_refusal_record(rt_store *st, const char *actor, const char *action, const char *subject,
                            const json_t *details, rt_error *err);
/* The same in a transaction of its own (for refusals outside any transaction). */
rt_status rt_refusal_record_own(rt_store *st, const char *actor, const char *action, const char *subject,
                                const json_t *details, rt_error *err);

/* details as stored: itself when its compact JSON fits RT_REFUSAL_DETAILS_MAX; else its
 * short scalar fields (long strings cut at a character boundary, nested values as
 * "sha256:<hex> (N bytes)") within that budget, plus "truncated": true, "bytes" and
 * "sha256" of the whole. New reference. */
json_t *rt_refusal_bound(const json_t *details);

/* The rate decision alone (for tests): true when actor may write a record at now_ms;
 * *suppressed gets how many of its refusals were not written since its last record. */
bool rt_refusal_admit(const char *actor, int64_t now_ms, int64_t *suppressed);

/* ---- the agent boundary (DESIGN §6) ----------------------------------------------------
 * One rule for every door an agent comes through: an API agent token, an event whose
 * actor.type is "agent" (HTTP, brokers, webhooks), a wait_for_event wake, a cancel_on,
 * a singleton's supersede. */

typedef enum rt_agent_action {
    RT_AGENT_TRIGGER = 0, /* start a run: an event, POST .../runs */
    RT_AGENT_READ_RUN,    /* read a run's status */
    RT_AGENT_CANCEL,      /* cancel a run (API, cancel_on, singleton supersede) */
    RT_AGENT_WAKE,        /* wake a run's wait_for_event step */
    RT_AGENT_APPROVE,     /* decide an approval */
    RT_AGENT_SCHEDULE,    /* pause or resume schedules */
} rt_agent_action;

/* "trigger", "read_run", "cancel", "wake", "approve", "schedule". */
const char *rt_agent_action_name(rt_agent_action a);

/* What an agent acts on; unknown fields NULL/false. */
typedef struct rt_agent_target {
    const char *workflow_id;
    bool system;           /* the workflow is "system": true */
    const char *entity_id; /* the run's entity_id */
} rt_agent_target;

/* May an agent acting for agent_entity (NULL when it has none) do action on target
 * (NULL: nothing known)? Never cancels or wakes a system workflow's run, reads, cancels
 * and wakes only runs of its own entity (an agent without an entity owns none), never
 * approves, never pauses schedules; triggering is decided by the gate, not here. On
 * false *why (may be NULL) gets a constant sentence ("an agent never approves"). */
bool rt_agent_may(const char *agent_entity, rt_agent_action action, const rt_agent_target *target,
                  const char **why);

/* The same for the actor of an event envelope (borrowed): true when it is not an agent;
 * the agent's entity is the envelope's entity_id. */
bool rt_event_may(const json_t *envelope, rt_agent_action action, const rt_agent_target *target,
                  const char **why);

/* Shorthands for runs: may an agent of agent_entity (or an event's actor) cancel a run of a
 * workflow (system or not) whose entity is run_entity? */
bool rt_agent_may_touch(const char *agent_entity, bool system, const char *run_entity, const char **why);
bool rt_event_may_touch(const json_t *envelope, bool system, const char *run_entity, const char **why);

/* Records a refused agent action inside the caller's transaction, through
 * rt_refusal_record: actor "agent:<agent_id>", action "agent.refused", details {action,
 * reason, ...extra (borrowed, may be NULL)}; logs a warning when written. */
rt_status rt_agent_refusal_audit(rt_store *st, const char *agent_id, rt_agent_action action, const char *subject,
                                 const char *reason, const json_t *extra, rt_error *err);

#endif
