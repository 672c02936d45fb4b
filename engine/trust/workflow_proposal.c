/* workflow_proposal.c — proposals of agents and their signed decisions (see
 * workflow_proposal.h). Every step is one transaction with its audit record. */
#include "workflow_proposal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "refusal.h"
#include "store_approval.h"
#include "store_audit.h"
#include "store_workflows.h"
#include "util.h"
#include "workflow_catalog.h"

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

void rt_proposal_action_hash(const char *workflow_id, const char *action, const char *version, const char *base,
                             const char *on_resume, char hex[65])
{
    size_t n = strlen(workflow_id) + strlen(action) + strlen(version ? version : "") + strlen(base ? base : "") +
               strlen(on_resume ? on_resume : "") + 64;
    char *buf = malloc(n);
    if (!buf) {
        hex[0] = '\0';
        return;
    }
    int len = snprintf(buf, n, "ratchet.workflow.proposal.v1\n%s\n%s\n%s\n%s\n%s", workflow_id, action,
                       version ? version : "", base ? base : "", on_resume ? on_resume : "");
    rt_sha256_hex(buf, (size_t)len, hex);
    free(buf);
}

/* The current row and definition of a workflow (both NULL when it is not registered). */
static rt_status current(rt_store *st, const char *id, json_t **row, json_t **def, rt_error *err)
{
    *row = *def = NULL;
    rt_status s = rt_store_wf_state(st, id, row, err);
    if (s == RT_ERR_NOT_FOUND)
        return RT_OK;
    if (s == RT_OK && str(*row, "hash"))
        s = rt_store_get_definition(st, str(*row, "hash"), def, err);
    return s;
}

static bool is_system(const json_t *def)
{
    return json_is_true(json_object_get(def, "system"));
}

rt_status rt_proposal_create(rt_store *st, const rt_proposal_request *rq, bool *refused, char *why, size_t len,
                             json_t **out, rt_error *err)
{
    *refused = false;
    *out = NULL;
    bool apply = !strcmp(rq->action, "apply");
    json_t *row = NULL, *def = NULL;
    rt_status s = rt_store_begin(st, err);
    if (s == RT_OK)
        s = rt_store_wf_lock(st, err);
    if (s == RT_OK)
        s = current(st, rq->workflow_id, &row, &def, err);
    bool live = row && !json_is_true(json_object_get(row, "removed"));
    if (s == RT_OK && !apply && !live)
        s = rt_error_set(err, RT_ERR_NOT_FOUND, "workflow \"%.128s\" is not registered", rq->workflow_id);
    if (s == RT_OK && (is_system(def) || (apply && rq->wf->system))) {
        *refused = true;
        snprintf(why, len, "workflow %s is a system workflow: an agent may not %s it, with or without approval",
                 rq->workflow_id, rq->action);
        json_t *details = json_pack("{s:s, s:s, s:s, s:s?}", "action", rq->action, "reason", "system", "message", why,
                                    "entity_id", rq->entity_id);
        s = rt_refusal_record(st, rq->actor, "workflow.refused", rq->workflow_id, details, err);
        json_decref(details);
    } else if (s == RT_OK) {
        const char *base = live ? str(row, "hash") : NULL;
        const char *version = apply ? rq->wf->hash : base;
        char id[37], action_hash[65];
        rt_uuid7(id);
        rt_proposal_action_hash(rq->workflow_id, rq->action, version, base, rq->on_resume, action_hash);
        json_t *prow = json_pack("{s:s, s:s, s:s, s:O?, s:s?, s:s?, s:s?, s:s, s:s, s:s?, s:s?}", "id", id,
                                 "workflow_id", rq->workflow_id, "action", rq->action, "definition",
                                 apply ? rq->wf->definition : NULL, "hash", version, "base_hash", base, "on_resume",
                                 rq->on_resume, "action_hash", action_hash, "requested_by", rq->actor, "requester",
                                 rq->requester, "entity_id", rq->entity_id);
        s = rt_store_wf_propose(st, prow, err);
        json_decref(prow);
        char *diff = NULL;
        if (apply) {
            char la[80], lb[80];
            snprintf(la, sizeof la, base ? "%s@%.12s" : "/dev/null", rq->workflow_id, base);
            snprintf(lb, sizeof lb, "%s@%.12s", rq->workflow_id, version);
            diff = rt_catalog_diff(live ? def : NULL, rq->wf->definition, la, lb);
        }
        *out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?, s:s?, s:s?}", "proposal_id", id, "workflow", rq->workflow_id,
                         "action", rq->action, "status", "awaiting_approval", "action_hash", action_hash, "version",
                         version, "base", base, "diff", diff);
        json_t *details = json_pack("{s:s, s:s, s:s, s:s?, s:s?}", "proposal_id", id, "action", rq->action,
                                    "action_hash", action_hash, "version", version, "entity_id", rq->entity_id);
        if (s == RT_OK) /* AUDIT HOOK (DESIGN §6) */
            s = rt_store_audit_append(st, rq->actor, "workflow.proposal", rq->workflow_id, details, err);
        json_decref(details);
        free(diff);
    }
    s = rt_store_end(st, s, err);
    if (s != RT_OK) {
        json_decref(*out);
        *out = NULL;
    }
    json_decref(row);
    json_decref(def);
    return s;
}

/* Makes the approved change, in the decision's transaction. */
static rt_status carry_out(rt_store *st, const json_t *p, const char *actor, rt_error *err)
{
    const char *action = str(p, "action"), *id = str(p, "workflow_id");
    bool changed = false;
    size_t a = 0, b = 0;
    if (!strcmp(action, "remove"))
        return rt_catalog_remove_tx(st, id, actor, false, &a, err);
    if (!strcmp(action, "pause"))
        return rt_catalog_pause_tx(st, id, actor, &changed, err);
    if (!strcmp(action, "resume"))
        return rt_catalog_resume_tx(st, id, actor, str(p, "on_resume"), &changed, &a, &b, err);
    rt_workflow *wf = NULL;
    rt_status s = rt_workflow_from_json(json_object_get(p, "definition"), NULL, &wf, err);
    if (s == RT_OK) { /* the version the approver signed for (jsonb may print it differently) */
        snprintf(wf->hash, sizeof wf->hash, "%s", str(p, "hash"));
        s = rt_catalog_apply_tx(st, wf, "api", actor, &changed, err);
    }
    rt_workflow_free(wf);
    return s;
}

/* The checks a locked, awaiting proposal p must pass against what is stored now: its action
 * hash (as signed, and recomputed from the workflow's current version), the nonce, no
 * self-approval, no system workflow. A failed one sets *why and msg. */
static rt_status check_proposal(rt_store *st, const char *proposal_id, const json_t *d, json_t *p,
                                const char *approver, int64_t skew, rt_refusal *why, char *msg, size_t len,
                                rt_error *err)
{
    rt_status s = RT_OK;
    json_t *row = NULL, *def = NULL;
    if (strcmp(str(p, "action_hash"), str(d, "action_hash"))) {
        *why = RT_REFUSAL_HASH_MISMATCH;
        snprintf(msg, len, "action_hash %.16s... is not proposal %s's (%.16s...)", str(d, "action_hash"), proposal_id,
                 str(p, "action_hash"));
    }
    if (s == RT_OK && !*why)
        s = current(st, str(p, "workflow_id"), &row, &def, err);
    if (s == RT_OK && !*why) {
        /* Recomputed from what would change now: the workflow must still be at the
         * version the proposal was made against, and the hash must cover this change. */
        const char *base = row && !json_is_true(json_object_get(row, "removed")) ? str(row, "hash") : NULL;
        char now_hash[65];
        rt_proposal_action_hash(str(p, "workflow_id"), str(p, "action"),
                                !strcmp(str(p, "action"), "apply") ? str(p, "hash") : base, base, str(p, "on_resume"),
                                now_hash);
        if (strcmp(now_hash, str(p, "action_hash"))) {
            *why = RT_REFUSAL_HASH_MISMATCH;
            snprintf(msg, len, "workflow %s changed since proposal %s was made: propose again", str(p, "workflow_id"),
                     proposal_id);
        }
    }
    if (s == RT_OK && !*why) {
        bool fresh = false;
        s = rt_store_approval_use_nonce(st, approver, str(d, "nonce"), NULL, 2 * skew + 3600 * 1000, &fresh, err);
        if (s == RT_OK && !fresh) {
            *why = RT_REFUSAL_NONCE_REUSED;
            snprintf(msg, len, "nonce %.40s of %s was used before", str(d, "nonce"), approver);
        }
    }
    const char *requester = str(p, "requester");
    if (s == RT_OK && !*why && (!requester || !strcasecmp(requester, approver))) {
        *why = requester ? RT_REFUSAL_SELF_APPROVAL : RT_REFUSAL_UNKNOWN_REQUESTER;
        snprintf(msg, len, requester ? "%s proposed this change: no self-approval" : "%s: the proposer is unknown",
                 approver);
    }
    if (s == RT_OK && !*why && (is_system(def) || is_system(json_object_get(p, "definition")))) {
        *why = RT_REFUSAL_AGENT;
        snprintf(msg, len, "workflow %s is a system workflow: an agent's change is never made", str(p, "workflow_id"));
    }
    json_decref(row);
    json_decref(def);
    return s;
}

/* The verdict, in this transaction: a refusal audited, or the decision stored (and, when
 * approved, carried out) and audited; *out is the caller's answer then. */
static rt_status record_decision(rt_store *st, const char *proposal_id, const json_t *d, json_t *p,
                                 const char *actor, const char *carrier, bool approve, rt_refusal why,
                                 const char *msg, json_t **out, rt_error *err)
{
    rt_status s = RT_OK;
    if (why) {
        json_t *details = json_pack("{s:s, s:s, s:s, s:s?}", "proposal_id", proposal_id, "reason", rt_refusal_name(why),
                                    "message", msg, "carrier", carrier);
        s = rt_refusal_record(st, actor, "workflow.proposal.refused", p ? str(p, "workflow_id") : proposal_id, details,
                              err);
        json_decref(details);
    } else {
        const char *comment = str(d, "comment");
        s = rt_store_wf_proposal_decide(st, proposal_id, approve ? "approved" : "rejected", str(d, "approver"),
                                        comment, err);
        if (s == RT_OK && approve)
            s = carry_out(st, p, actor, err);
        json_t *details = json_pack("{s:s, s:s, s:s, s:s?}", "proposal_id", proposal_id, "action", str(p, "action"),
                                    "requested_by", str(p, "requested_by"), "comment", comment);
        if (s == RT_OK) /* AUDIT HOOK (DESIGN §6) */
            s = rt_store_audit_append(st, actor, approve ? "workflow.proposal.approved" : "workflow.proposal.rejected",
                                      str(p, "workflow_id"), details, err);
        json_decref(details);
        if (s == RT_OK)
            *out = json_pack("{s:s, s:s, s:s}", "proposal_id", proposal_id, "outcome", approve ? "approved" : "rejected",
                             "workflow", str(p, "workflow_id"));
    }
    return s;
}

rt_status rt_proposal_decide(rt_store *st, const char *proposal_id, const json_t *d, const char *carrier,
                             bool carrier_agent, rt_refusal *why, char *msg, size_t len, json_t **out, rt_error *err)
{
    *out = NULL;
    *why = RT_REFUSAL_NONE;
    msg[0] = '\0';
    int64_t skew = 0;
    json_t *p = NULL;
    rt_status s = RT_OK;
    if (carrier_agent) {
        *why = RT_REFUSAL_AGENT;
        snprintf(msg, len, "an agent never approves (%s)", carrier);
    } else {
        s = rt_approval_check_signed(d, why, msg, len, &skew, err);
    }
    const char *approver = json_is_object(d) ? str(d, "approver") : NULL;
    if (s == RT_OK && !*why && strcmp(str(d, "run_id"), proposal_id)) {
        *why = RT_REFUSAL_INVALID;
        snprintf(msg, len, "$.run_id: the decision names %s, not proposal %s", str(d, "run_id"), proposal_id);
    }
    if (s == RT_OK)
        s = rt_store_begin(st, err);
    if (s == RT_OK)
        s = rt_store_wf_lock(st, err);
    if (s == RT_OK && !*why) {
        s = rt_store_wf_proposal_lock(st, proposal_id, &p, err);
        if (s == RT_ERR_NOT_FOUND) {
            s = RT_OK;
            *why = RT_REFUSAL_NOT_AWAITING;
            snprintf(msg, len, "there is no proposal %s", proposal_id);
        } else if (s == RT_OK && strcmp(str(p, "status"), "awaiting_approval")) {
            *why = RT_REFUSAL_NOT_AWAITING;
            snprintf(msg, len, "proposal %s is %s, not awaiting approval", proposal_id, str(p, "status"));
        }
    }
    if (s == RT_OK && !*why)
        s = check_proposal(st, proposal_id, d, p, approver, skew, why, msg, len, err);
    char actor[200];
    snprintf(actor, sizeof actor, "approver:%.100s", approver && !carrier_agent ? approver : carrier);
    bool approve = s == RT_OK && !*why && !strcmp(str(d, "decision"), "approve");
    if (s == RT_OK)
        s = record_decision(st, proposal_id, d, p, actor, carrier, approve, *why, msg, out, err);
    if (s == RT_OK || rt_store_healthy(st))
        s = rt_store_end(st, s, err);
    json_decref(p);
    return s;
}
