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

/* The agent boundary on runs (DESIGN §6): may an agent of entity agent_entity (NULL: none)
 * touch — cancel, wake, join — a run of a workflow (system or not) whose entity is
 * run_entity? Never a system workflow's run, never another entity's. *why (may be NULL)
 * gets the reason when not. */
bool rt_agent_may_touch(const char *agent_entity, bool system, const char *run_entity, const char **why);

/* The same for an event envelope (borrowed): true when its actor is not an agent. */
bool rt_event_may_touch(const json_t *envelope, bool system, const char *run_entity, const char **why);

#endif
