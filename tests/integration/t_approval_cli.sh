#!/usr/bin/env bash
# `ratchet approve` shows the approver everything they sign for — workflow id and pinned
# definition hash, the whole trigger event pretty-printed (not its first 300 bytes), and
# for a step gate the rendered `with` — and recomputes the action_hash from the pinned
# definition hash and the stored event instead of trusting the stored hash: when the two
# disagree (someone changed the run's event in the database), it refuses to sign; the
# engine, recomputing as well, refuses a decision signed over the stored hash.
source "$(dirname "$0")/lib.sh"
rt_test_init approval_cli

W=$T/workflows K=$T/keys
mkdir -p "$W" "$K"
export RATCHET_WORKFLOWS=$W RATCHET_APPROVERS=$T/approvers
cat > "$W/gate.json" <<'EOF2'
{"id": "gate", "triggers": [{"event": "gate.task"}],
 "approval": {"required_for": ["agent"], "approvers": ["ops-lead"]},
 "steps": [{"id": "a", "uses": "transform", "with": {"value": "${{ event.data }}"}}]}
EOF2
cat > "$W/pay.json" <<'EOF2'
{"id": "pay", "steps": [
  {"id": "gate", "uses": "approval", "with": {"approvers": ["ops-lead"], "message": "pay ${{ event.data.amount }} EUR to ${{ event.data.iban }}"}},
  {"id": "pay", "uses": "transform", "with": {"value": 1}}]}
EOF2
"$RATCHET_BIN" keygen --approver ops-lead --out "$K" >/dev/null 2>&1
cp "$K/ops-lead.pub" "$RATCHET_APPROVERS"
"$RATCHET_BIN" migrate >/dev/null

run_of() { rt_psql "select id from ratchet.runs where trigger->>'event_id' = '$1'"; }
pad=$(printf 'x%.0s' $(seq 1 400))

# 1. The whole event is shown, whatever its size, with the workflow and its pinned hash.
ev=$("$RATCHET_BIN" send gate.task --actor-type agent --actor-id agent-7 --entity acct_1 \
  --data "{\"task\": \"rotate keys\", \"pad\": \"$pad\", \"last\": \"MARKER_AT_THE_END\"}" 2>/dev/null)
R=$(run_of "$ev")
wf_hash=$(rt_psql "select workflow_hash from ratchet.runs where id = '$R'")
"$RATCHET_BIN" approve "$R" --as ops-lead --key "$K/ops-lead.key" >"$T/out" 2>"$T/err" || rt_fail "approve failed: $(cat "$T/err")"
grep -q 'MARKER_AT_THE_END' "$T/err" || rt_fail "the end of the event is not shown: $(cat "$T/err")"
grep -q "workflow gate" "$T/err" || rt_fail "workflow id not shown: $(cat "$T/err")"
grep -q "$wf_hash" "$T/err" || rt_fail "pinned definition hash not shown: $(cat "$T/err")"
grep -q '^    "task": "rotate keys",\?$' "$T/err" || rt_fail "the event is not pretty-printed: $(cat "$T/err")"
grep -q 'recomputed' "$T/err" || rt_fail "no word on the recomputed action_hash: $(cat "$T/err")"
rt_assert_eq queued "$(status "$R")" "approved"

# 2. The run's event changed behind the gate's back: the CLI recomputes and refuses to sign.
ev=$("$RATCHET_BIN" send gate.task --actor-type agent --actor-id agent-7 --entity acct_1 --data '{"task": "rotate keys"}' 2>/dev/null)
X=$(run_of "$ev")
rt_psql "update ratchet.runs set event = jsonb_set(event, '{data,task}', '\"drop all tables\"') where id = '$X'" >/dev/null
rc=0
"$RATCHET_BIN" approve "$X" --as ops-lead --key "$K/ops-lead.key" >"$T/out" 2>"$T/err" || rc=$?
rt_assert_eq 1 "$rc" "exit status of a refused signature ($(cat "$T/err"))"
grep -q 'refusing to sign' "$T/err" || rt_fail "no refusal: $(cat "$T/err")"
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.events where name = 'ratchet.approval.decided' and envelope->'data'->>'run_id' = '$X'")" "nothing was signed or sent"
rt_assert_eq awaiting_approval "$(status "$X")" "the run still waits"
"$RATCHET_BIN" approve "$X" --as ops-lead --key "$K/ops-lead.key" --print >"$T/out" 2>"$T/err" && rt_fail "--print signed a mismatched action"
[ -s "$T/out" ] && rt_fail "--print printed a decision"

# ... and the engine recomputes too: a decision signed over the gate's stored hash does not
# carry the changed event.
stored=$(rt_psql "select action_hash from ratchet.approvals where run_id = '$X'")
out=$("$RATCHET_BIN" approve "$X" --as ops-lead --key "$K/ops-lead.key" --hash "$stored" --json 2>/dev/null || true)
rt_assert_eq hash_mismatch "$(printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("reason"))')" "the engine refuses the changed run"
rt_assert_eq awaiting_approval "$(status "$X")" "the changed run still waits"

# 3. A step gate: the rendered `with` is shown (and hashed) too.
P=$("$RATCHET_BIN" run pay --data '{"amount": 120, "iban": "DE89370400440532013000"}' 2>/dev/null)
rt_serve_start a
rt_serve_wait_ready a
rt_wait_for 20 '[ "$(status '"$P"')" = waiting ]'
rt_wait_for 10 '[ "$(rt_psql "select count(*) from ratchet.approvals where run_id = '"'$P'"'")" = 1 ]'
"$RATCHET_BIN" approve "$P" --as ops-lead --key "$K/ops-lead.key" >"$T/out" 2>"$T/err" || rt_fail "step approve failed: $(cat "$T/err")"
grep -q 'at step gate' "$T/err" || rt_fail "step not named: $(cat "$T/err")"
grep -q '"message": "pay 120 EUR to DE89370400440532013000"' "$T/err" || rt_fail "rendered with not shown: $(cat "$T/err")"
rt_wait_for 20 '[ "$(status '"$P"')" = completed ]'
