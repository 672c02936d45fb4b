#!/usr/bin/env bash
# An approval decision that arrives after the gate's expires_at is refused ("expired",
# audited and counted like every refusal) even when no sweeper has run yet: no `serve`
# runs in this test, so nothing ends the run on its deadline; the decision path itself
# must compare expires_at with the database's clock. A decision within the deadline on
# another run of the same workflow is still accepted.
source "$(dirname "$0")/lib.sh"
rt_test_init approval_expiry

W=$T/workflows K=$T/keys
mkdir -p "$W" "$K"
export RATCHET_WORKFLOWS=$W RATCHET_APPROVERS=$T/approvers
cat > "$W/short.json" <<'EOF2'
{"id": "short-gate", "triggers": [{"event": "short.task"}],
 "approval": {"required_for": ["agent"], "approvers": ["ops-lead"], "timeout": "2s"},
 "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF2
cat > "$W/long.json" <<'EOF2'
{"id": "long-gate", "triggers": [{"event": "long.task"}],
 "approval": {"required_for": ["agent"], "approvers": ["ops-lead"], "timeout": "1h"},
 "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF2
"$RATCHET_BIN" keygen --approver ops-lead --out "$K" >/dev/null 2>&1
cp "$K/ops-lead.pub" "$RATCHET_APPROVERS"
"$RATCHET_BIN" migrate >/dev/null

run_of() { rt_psql "select id from ratchet.runs where trigger->>'event_id' = '$1'"; }
reason_of() { python3 -c 'import json,sys; print(json.load(sys.stdin).get("reason", "-"))'; }

ev=$("$RATCHET_BIN" send short.task --actor-type agent --actor-id agent-7 --entity acct_1 2>/dev/null)
R=$(run_of "$ev")
rt_assert_eq awaiting_approval "$(status "$R")" "the agent's run waits"
# The deadline passes (by the database's clock); nothing sweeps: there is no serve.
rt_wait_for 20 '[ "$(rt_psql "select count(*) from ratchet.approvals where run_id = '"'$R'"' and expires_at < now()")" = 1 ]'
out=$("$RATCHET_BIN" approve "$R" --as ops-lead --key "$K/ops-lead.key" --via db --json 2>/dev/null || true)
rt_assert_eq expired "$(printf '%s' "$out" | reason_of)" "a decision after expires_at is refused"
rt_assert_eq awaiting_approval "$(status "$R")" "the refused decision started nothing (the sweeper will end it)"
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.steps where run_id = '$R'")" "no step ran"
rt_assert_eq 1 "$(rt_psql "select count(*) from ratchet.audit_log where action = 'approval.refused' and subject = '$R' and details->>'reason' = 'expired' and details->>'message' like '%expired at%'")" "the refusal is audited"
rt_assert_eq pending "$(rt_psql "select status from ratchet.approvals where run_id = '$R'")" "the gate stays for the sweeper"

# Within its deadline a decision still counts.
ev=$("$RATCHET_BIN" send long.task --actor-type agent --actor-id agent-7 --entity acct_1 2>/dev/null)
L=$(run_of "$ev")
out=$("$RATCHET_BIN" approve "$L" --as ops-lead --key "$K/ops-lead.key" --via db --json 2>/dev/null || true)
rt_assert_eq approved "$(printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("outcome"))')" "a timely decision is taken"
rt_assert_eq queued "$(status "$L")" "the approved run is released (queued: no worker runs here)"
