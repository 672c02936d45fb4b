/* workflow_proposal.h — agents propose, people approve (DESIGN §6; docs/workflows.md):
 * a registry change an agent token asks for (apply, remove, pause, resume) is stored as a
 * proposal awaiting approval and made only after an approver's Ed25519-signed decision
 * (the format and checks of run approvals, approval.h) whose action_hash covers it:
 *   sha256_hex("ratchet.workflow.proposal.v1\n" workflow_id "\n" action "\n" version "\n"
 *              base "\n" on_resume)
 * where version is the proposed definition's content hash (apply) or the current one, base
 * the version current when it was proposed ("" for a new workflow). A decision is refused
 * when the workflow changed since (the approver saw another diff). An agent may never
 * change a `system` workflow, with or without approval: refused and audited. */
#ifndef RT_WORKFLOW_PROPOSAL_H
#define RT_WORKFLOW_PROPOSAL_H

#include <jansson.h>
#include <stdbool.h>

#include "approval.h"
#include "status.h"
#include "store.h"
#include "workflow.h"

typedef struct rt_proposal_request {
    const char *workflow_id;
    const char *action;      /* "apply", "remove", "pause", "resume" */
    const rt_workflow *wf;   /* apply: the validated definition */
    const char *on_resume;   /* resume: "run" | "skip" | NULL */
    const char *actor;       /* "agent:<label>" */
    const char *requester;   /* the agent's identity (token holder or label): it may not approve */
    const char *entity_id;   /* the agent's entity, may be NULL */
} rt_proposal_request;

/* Stores the proposal (and its audit record) or, for a system workflow, the refusal:
 * *refused then holds why (and nothing is proposed). *out: {proposal_id, workflow, action,
 * status "awaiting_approval", action_hash, version, base, diff}. */
rt_status rt_proposal_create(rt_store *st, const rt_proposal_request *rq, bool *refused, char *why, size_t len,
                             json_t **out, rt_error *err);

/* Judges a signed decision on a proposal (decision.run_id is the proposal id) carried by a
 * token (carrier_agent: an agent's, which never approves). Refused decisions are audited
 * and leave the proposal waiting (*why says which check failed); an approval makes the
 * change in the same transaction as actor "approver:<id>". *out: {proposal_id, outcome}. */
rt_status rt_proposal_decide(rt_store *st, const char *proposal_id, const json_t *decision, const char *carrier,
                             bool carrier_agent, rt_refusal *why, char *msg, size_t len, json_t **out,
                             rt_error *err);

void rt_proposal_action_hash(const char *workflow_id, const char *action, const char *version, const char *base,
                             const char *on_resume, char hex[65]);

#endif
