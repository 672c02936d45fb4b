#!/usr/bin/env bash
# ratchet.approval.requested starts workflows for both kinds of gate (DESIGN §6): an agent's
# run held at its run gate and an approval step waiting mid-run each start the
# approver-paging workflow once, with {kind: run|step, run_id, step_id, workflow, actor,
# entity_id, expires_at}. A paging workflow that is itself gated does not page about its
# own gate (no loop). Nobody but the engine makes the event: over the API (agent token) it
# is refused 400, over RabbitMQ dead-lettered (reason reserved_name); neither starts a run.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/gate_lib.sh"
rt_test_init approval_requested_trigger
rt_use_amqp

W=$T/workflows TOKENS=$T/tokens
mkdir -p "$W"
: >"$TOKENS"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2
cat >"$W/held.json" <<'EOF2'
{"id": "held-task", "triggers": [{"event": "held.task"}],
 "approval": {"required_for": ["agent"], "approvers": ["ops-lead"], "timeout": "1h"},
 "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF2
cat >"$W/pay.json" <<'EOF2'
{"id": "pay", "triggers": [{"event": "pay.requested"}], "steps": [
  {"id": "gate", "uses": "approval", "with": {"approvers": ["ops-lead"], "timeout": "1h", "message": "pay?"}},
  {"id": "done", "uses": "transform", "with": {"value": 1}}]}
EOF2
cat >"$W/page.json" <<'EOF2'
{"id": "page-approvers", "triggers": [{"event": "ratchet.approval.requested"}],
 "steps": [{"id": "page", "uses": "transform", "with": {"value": {
   "kind": "${{ event.data.kind }}", "run_id": "${{ event.data.run_id }}", "step_id": "${{ event.data.step_id }}",
   "workflow": "${{ event.data.workflow }}", "actor": "${{ event.data.actor.id }}",
   "entity_id": "${{ event.data.entity_id }}", "expires_at": "${{ event.data.expires_at }}",
   "event_id": "${{ event.id }}"}}}]}
EOF2
# Gated itself (the requested event's actor is the engine, type system): held, and its
# own hold must start no paging run.
cat >"$W/page-gated.json" <<'EOF2'
{"id": "page-gated", "triggers": [{"event": "ratchet.approval.requested"}],
 "approval": {"required_for": ["system"], "approvers": ["ops-lead"]},
 "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF2
rt_use_approver ops-lead
AGENT=$(gate_mint agent acct_9)
# shellcheck disable=SC2034 # read inside rt_wait_for conditions
ADMIN=$(gate_mint admin)
gate_serve_with_tokens
rt_wait_for 90 'grep -q "amqp consumer: connected" "$T/a.log"'

q() { rt_psql "$1"; }
page_of() { # RUN FIELD: the paging run's output field for gated run RUN
  q "select output->>'$2' from ratchet.runs where workflow_id = 'page-approvers' and output->>'run_id' = '$1'"
}

# 1. A run gate: an agent's run is held; the paging workflow runs with kind "run".
ev=$("$RATCHET_BIN" send held.task --actor-type agent --actor-id agent-7 --entity acct_9 --data '{}' 2>/dev/null)
r1=$(q "select id from ratchet.runs where event_id = '$ev'")
[ -n "$r1" ] || rt_fail "no held run"
rt_assert_eq awaiting_approval "$(gate_status "$r1")" "the agent's run is held"
rt_wait_for 60 '[ "$(q "select count(*) from ratchet.runs where workflow_id = '"'page-approvers'"' and status = '"'completed'"' and output->>'"'run_id'"' = '"'$r1'"'")" = 1 ]'
rt_assert_eq run "$(page_of "$r1" kind)" "kind of a run gate"
rt_assert_eq held-task "$(page_of "$r1" workflow)" "workflow"
rt_assert_eq agent-7 "$(page_of "$r1" actor)" "actor"
rt_assert_eq acct_9 "$(page_of "$r1" entity_id)" "entity"
rt_assert_eq "" "$(page_of "$r1" step_id)" "no step for a run gate"
[[ $(page_of "$r1" expires_at) =~ ^20[0-9-]+T ]] || rt_fail "expires_at: $(page_of "$r1" expires_at)"
[[ $(page_of "$r1" event_id) == ratchet:* ]] || rt_fail "event id not in the engine's namespace: $(page_of "$r1" event_id)"

# 2. A step gate: kind "step" with its step id.
ev=$("$RATCHET_BIN" send pay.requested --actor-type service --actor-id billing --entity acct_3 --data '{}' 2>/dev/null)
r2=$(q "select id from ratchet.runs where event_id = '$ev'")
rt_wait_for 60 '[ "$(q "select count(*) from ratchet.runs where workflow_id = '"'page-approvers'"' and status = '"'completed'"' and output->>'"'run_id'"' = '"'$r2'"'")" = 1 ]'
rt_assert_eq step "$(page_of "$r2" kind)" "kind of a step gate"
rt_assert_eq gate "$(page_of "$r2" step_id)" "step id"
rt_assert_eq pay "$(page_of "$r2" workflow)" "workflow"
rt_assert_eq billing "$(page_of "$r2" actor)" "actor"
rt_assert_eq acct_3 "$(page_of "$r2" entity_id)" "entity"

# 3. No loop: page-gated ran (held) once per gate above, and its own holds paged nobody.
rt_wait_for 30 '[ "$(q "select count(*) from ratchet.runs where workflow_id = '"'page-gated'"'")" = 2 ]'
rt_assert_eq 2 "$(q "select count(*) from ratchet.runs where workflow_id = 'page-gated' and status = 'awaiting_approval'")" "page-gated runs are held"
rt_assert_eq 4 "$(q "select count(*) from ratchet.events where name = 'ratchet.approval.requested'")" "requested events (2 gates + 2 page-gated holds)"
rt_assert_eq 2 "$(q "select count(*) from ratchet.runs where workflow_id = 'page-approvers'")" "one paging run per original gate"

# 4. Not forgeable: the API refuses it (agent token), RabbitMQ dead-letters it.
code=$(curl -s -o "$T/forge.out" -w '%{http_code}' -m 30 -H "Authorization: Bearer $AGENT" -H 'Content-Type: application/json' \
  -d '{"name": "ratchet.approval.requested", "entity_id": "acct_9", "data": {"kind": "run", "run_id": "x"}}' "$U/api/v1/events")
rt_assert_eq 400 "$code" "API refuses a producer's ratchet.approval.requested ($(cat "$T/forge.out"))"
grep -q reserved "$T/forge.out" || rt_fail "the refusal does not say why: $(cat "$T/forge.out")"
printf '%s' '{"name": "ratchet.approval.requested", "id": "forged-1", "data": {"kind": "run", "run_id": "y"}}' >"$T/raw.json"
"$RATCHET_BIN" send ratchet.approval.requested --via amqp --raw-file "$T/raw.json" 2>/dev/null || rt_fail "publish"
rt_wait_for 60 '[ "$(gate_metric "$U" ratchet_events_dead_lettered_total '"'reason=\"reserved_name\"'"' "$ADMIN")" -ge 1 ]'
rt_assert_eq 0 "$(q "select count(*) from ratchet.events where id = 'forged-1'")" "the forged event is not stored"
rt_assert_eq 2 "$(q "select count(*) from ratchet.runs where workflow_id = 'page-approvers'")" "forgeries start no paging run"
"$RATCHET_BIN" send ratchet.approval.requested --data '{}' >/dev/null 2>&1 && rt_fail "the CLI sends a reserved name"

rt_serve_stop a
echo "ok"
