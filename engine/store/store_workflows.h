/* store_workflows.h — the SQL of the workflow registry (schemas/migrations/030): which
 * version of each workflow is current, removed or paused, the change history, and the
 * run requests held while a workflow is paused. No policy here (run/workflow_catalog.c). */
#ifndef RT_STORE_WORKFLOWS_H
#define RT_STORE_WORKFLOWS_H

#include <jansson.h>
#include <stdbool.h>

#include "status.h"
#include "store.h"

#define RT_WORKFLOWS_CHANNEL "ratchet_workflows" /* NOTIFY on every registry change */

/* Serializes registry changes (a transaction-scoped advisory lock). */
rt_status rt_store_wf_lock(rt_store *st, rt_error *err);
/* Every registry row: [{workflow_id, hash, source, file, file_hash, removed, paused,
 * paused_at, paused_by}]; *out new reference. */
rt_status rt_store_wf_states(rt_store *st, json_t **out, rt_error *err);
/* One row as above, or RT_ERR_NOT_FOUND. */
rt_status rt_store_wf_state(rt_store *st, const char *id, json_t **out, rt_error *err);
/* Makes hash (stored already) the current version: source "file" (then file, file_hash)
 * or "api" (file columns kept). Clears removed. */
rt_status rt_store_wf_set_current(rt_store *st, const char *id, const char *hash, const char *source,
                                  const char *file, rt_error *err);
/* forget_file: its file is gone, so the same content added back is applied again. */
rt_status rt_store_wf_set_removed(rt_store *st, const char *id, bool forget_file, rt_error *err);
rt_status rt_store_wf_set_paused(rt_store *st, const char *id, bool paused, const char *actor, rt_error *err);
/* Appends one change (details borrowed, may be NULL). */
rt_status rt_store_wf_change(rt_store *st, const char *id, const char *action, const char *hash, const char *source,
                             const char *actor, const json_t *details, rt_error *err);
/* The changes of a workflow, oldest first: [{seq, action, hash, source, actor, at,
 * details, definition}] (definition for apply). */
rt_status rt_store_wf_changes(rt_store *st, const char *id, json_t **out, rt_error *err);
/* The current, not removed versions: [{workflow_id, hash, definition, paused}]. */
rt_status rt_store_wf_current(rt_store *st, json_t **out, rt_error *err);
/* Of the workflow ids (JSON array), those paused or removed: {id: "paused"|"removed"}. */
rt_status rt_store_wf_blocked(rt_store *st, json_t *ids, json_t **out, rt_error *err);
/* Stores held requests: [{workflow_id, hold_key, trigger, event, run_at (ms or 0),
 * dedupe_key, parent_run_id, parent_step_id}]; a hold_key already held is replaced. */
rt_status rt_store_wf_hold(rt_store *st, json_t *rows, rt_error *err);
/* Takes (deletes and returns, oldest first) the held requests of a workflow, as stored. */
rt_status rt_store_wf_take_held(rt_store *st, const char *id, json_t **out, rt_error *err);
/* The list `ratchet workflows` shows: registry rows with the current definition's
 * triggers, the last run and its status, runs in flight and requests held. */
rt_status rt_store_wf_list(rt_store *st, json_t **out, rt_error *err);
/* Proposals (migration 031). row: {id, workflow_id, action, definition?, hash?, base_hash?,
 * on_resume?, action_hash, requested_by, requester?, entity_id?}. */
rt_status rt_store_wf_propose(rt_store *st, const json_t *row, rt_error *err);
/* One proposal, locked (FOR UPDATE), or RT_ERR_NOT_FOUND. */
rt_status rt_store_wf_proposal_lock(rt_store *st, const char *id, json_t **out, rt_error *err);
rt_status rt_store_wf_proposal_decide(rt_store *st, const char *id, const char *status, const char *approver,
                                      const char *comment, rt_error *err);
/* Proposals awaiting a decision, oldest first, with the proposed `definition` (apply) and
 * the `base_definition` it would replace. */
rt_status rt_store_wf_proposals_pending(rt_store *st, json_t **out, rt_error *err);

/* NOTIFY RT_WORKFLOWS_CHANNEL (delivered at commit). */
rt_status rt_store_wf_notify(rt_store *st, rt_error *err);

#endif
