#!/usr/bin/env bash
# Approval gates end to end through the database (`ratchet send/approve --via db`; the
# broker transports are t_approval_brokers.sh): an agent's event starts a run that waits
# (nothing runs, ratchet.approval.requested is stored, `approvals` lists it); a signed
# approval releases it within about a second; a rejection ends it `rejected`; no decision
# before approval.timeout ends it `expired`; the approval step does the same mid-workflow.
# Every refusal — forged signature, a real signature over another run, a changed payload
# (hash), a replayed nonce, an expired decision, an unknown approver, an approver not of
# this workflow, self-approval, an agent approving, a malformed decision — is refused with
# its reason, leaves the run waiting, and is an audit record. Agents never cancel a system
# workflow's runs (cancel_on), nor another entity's. Finally the audit chain verifies.
source "$(dirname "$0")/lib.sh"
rt_test_init approval

W=$T/workflows K=$T/keys
mkdir -p "$W" "$K"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2 RATCHET_APPROVERS=$T/approvers
cp "$RATCHET_SOURCE_DIR/workflows/agent-task.json" "$W/"
cat > "$W/short.json" <<'EOF2'
{"id": "short-gate", "triggers": [{"event": "short.task"}], "on_failure": {"event": "gate.failed"},
 "approval": {"required_for": ["agent"], "approvers": ["ops-lead"], "timeout": "10s"},
 "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF2
cat > "$W/self.json" <<'EOF2'
{"id": "user-gate", "triggers": [{"event": "user.task"}],
 "approval": {"required_for": ["user", "agent"], "approvers": ["ops-lead", "cfo"]},
 "steps": [{"id": "a", "uses": "transform", "with": {"value": "${{ event.actor.id }}"}}]}
EOF2
cat > "$W/pay.json" <<'EOF2'
{"id": "pay", "on_failure": {"event": "pay.failed"}, "steps": [
  {"id": "quote", "uses": "transform", "with": {"value": {"amount": "${{ event.data.amount }}"}}},
  {"id": "gate", "uses": "approval", "with": {"approvers": ["cfo"], "timeout": "${{ default(event.data.timeout, '1h') }}",
     "message": "pay ${{ steps.quote.output.amount }} EUR", "details": "${{ steps.quote.output }}"}},
  {"id": "pay", "uses": "transform", "with": {"value": "${{ steps.gate.output }}"}}
]}
EOF2
cat > "$W/sys.json" <<'EOF2'
{"id": "sys-job", "system": true, "cancel_on": [{"event": "job.stop"}],
 "steps": [{"id": "nap", "uses": "sleep", "with": {"duration": "1h"}}]}
EOF2
cat > "$W/ent.json" <<'EOF2'
{"id": "ent-job", "triggers": [{"event": "ent.start"}], "cancel_on": [{"event": "ent.stop"}],
 "steps": [{"id": "nap", "uses": "sleep", "with": {"duration": "1h"}}]}
EOF2

for who in ops-lead cfo mallory; do "$RATCHET_BIN" keygen --approver $who --out "$K" >/dev/null 2>&1; done
cat "$K/ops-lead.pub" "$K/cfo.pub" > "$RATCHET_APPROVERS" # mallory has a key but is not listed
[ "$(stat -c %a "$K/ops-lead.key")" = 600 ] || rt_fail "private key mode is $(stat -c %a "$K/ops-lead.key")"
"$RATCHET_BIN" migrate >/dev/null
rt_serve_start a
rt_serve_wait_ready a

run_of() { rt_psql "select id from ratchet.runs where trigger->>'event_id' = '$1'"; }
audit_reason() { rt_psql "select coalesce(details->>'reason', action) from ratchet.audit_log where details->>'event_id' = '$1'"; }
agent_task() { # EVENT_NAME ENTITY -> run id (awaiting approval)
  local ev
  ev=$("$RATCHET_BIN" send "$1" --actor-type agent --actor-id agent-7 --entity "$2" --data '{"task": "rotate keys"}' 2>/dev/null)
  run_of "$ev"
}
# A refused decision: REASON, the run is still waiting, the refusal is audited.
expect_refused() { # REASON RUN OUTPUT_JSON
  local got
  got=$(printf '%s' "$3" | json_get '["reason"]')
  rt_assert_eq "$1" "$got" "refusal reason"
  rt_assert_eq awaiting_approval "$(status "$2")" "$1: the run still waits"
  rt_assert_eq "$1" "$(audit_reason "$(printf '%s' "$3" | json_get '["event_id"]')")" "$1: audit record"
}
decide() { "$RATCHET_BIN" "$@" --json 2>/dev/null || true; }

# 1. Happy path: the shipped agent-task example.
r1=$(agent_task agent.task.requested acct_1)
[ -n "$r1" ] || rt_fail "no run started"
rt_assert_eq awaiting_approval "$(status "$r1")" "agent's run waits"
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.queue where run_id = '$r1'")" "nothing queued"
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.steps where run_id = '$r1'")" "no step rows"
rt_assert_eq 1 "$(rt_psql "select count(*) from ratchet.events where name = 'ratchet.approval.requested' and envelope->'data'->>'run_id' = '$r1' and envelope->'data'->>'action_hash' ~ '^[0-9a-f]{64}$' and envelope->'data'->'expires_at' is not null")" "requested event stored"
"$RATCHET_BIN" approvals | grep -q "$r1" || rt_fail "approvals does not list $r1"
rt_assert_eq "$r1" "$("$RATCHET_BIN" approvals --json | json_get '[0]["run_id"]')" "approvals --json"
sleep 1
[ "$(status "$r1")" = awaiting_approval ] || rt_fail "a waiting run must not start"
t0=$(rt__now_ms)
"$RATCHET_BIN" approve "$r1" --as ops-lead --key "$K/ops-lead.key" --comment "go" >/dev/null 2>&1 || rt_fail "approve failed"
rt_wait_for 60 '[ "$(status '"$r1"')" = completed ]'
echo "approval to completion: $(($(rt__now_ms) - t0)) ms"
rt_assert_eq 1 "$(rt_psql "select count(*) from app_agent_tasks where run_id = '$r1' and entity_id = 'acct_1'")" "the task ran once"
rt_assert_eq 1 "$(rt_psql "select count(*) from ratchet.audit_log where action = 'approval.approved' and subject = '$r1' and actor = 'approver:ops-lead'")" "approval audited"
out=$(decide approve "$r1" --as ops-lead --key "$K/ops-lead.key" --hash "$(rt_psql "select action_hash from ratchet.approvals where run_id = '$r1'")")
rt_assert_eq not_awaiting "$(printf '%s' "$out" | json_get '["reason"]')" "a second approval of a started run"

# 2. Rejection.
r2=$(agent_task agent.task.requested acct_2)
out=$(decide reject "$r2" --as ops-lead --key "$K/ops-lead.key" --comment "not today")
rt_assert_eq rejected "$(printf '%s' "$out" | json_get '["outcome"]')" "reject outcome"
rt_assert_eq rejected "$(status "$r2")" "rejected run"
rt_assert_eq "rejected by ops-lead: not today" "$(rt_psql "select error from ratchet.runs where id = '$r2'")" "rejection error"

# 3. Timeout: no decision within approval.timeout (10 s: the run must still wait when
#    checked right after it was started, on a slow machine too) -> expired.
r3=$(agent_task short.task acct_3)
rt_assert_eq awaiting_approval "$(status "$r3")" "short gate waits"
rt_wait_for 60 '[ "$(status '"$r3"')" = expired ]'
rt_assert_eq 1 "$(rt_psql "select count(*) from ratchet.audit_log where action = 'approval.expired' and subject = '$r3'")" "expiry audited"
rt_assert_eq "gate.failed|expired" "$(rt_psql "select name || '|' || (envelope->'data'->>'status') from ratchet.events where id like 'ratchet:%:on_failure:$r3'")" "on_failure of an expired run"
out=$(decide approve "$r3" --as ops-lead --key "$K/ops-lead.key" --hash "$(rt_psql "select action_hash from ratchet.approvals where run_id = '$r3'")")
rt_assert_eq not_awaiting "$(printf '%s' "$out" | json_get '["reason"]')" "approving an expired run"

# 4. Refusals, each leaving its run waiting.
A=$(agent_task agent.task.requested acct_a)
B=$(agent_task agent.task.requested acct_b)
hashA=$(rt_psql "select action_hash from ratchet.approvals where run_id = '$A'")
hashB=$(rt_psql "select action_hash from ratchet.approvals where run_id = '$B'")
[ "$hashA" != "$hashB" ] || rt_fail "two payloads, one hash"
send_decision() { # JSON [send args...] -> decision event id
  local d=$1; shift
  "$RATCHET_BIN" send ratchet.approval.decided --data "$d" "$@" 2>/dev/null
}
print_decision() { "$RATCHET_BIN" approve "$@" --print 2>/dev/null; }

# forged signature: a well-formed signature that ops-lead never made
d=$(print_decision "$A" --as ops-lead --key "$K/ops-lead.key")
forged=$(printf '%s' "$d" | python3 -c 'import json,sys,base64; d=json.load(sys.stdin); s=bytearray(base64.b64decode(d["sig"])); s[5]^=1; d["sig"]=base64.b64encode(bytes(s)).decode(); print(json.dumps(d))')
e=$(send_decision "$forged"); rt_assert_eq bad_signature "$(audit_reason "$e")" "forged signature"
rt_assert_eq awaiting_approval "$(status "$A")" "forged: still waiting"
# a real signature over another run (B's decision, pointed at A)
dB=$(print_decision "$B" --as ops-lead --key "$K/ops-lead.key")
moved=$(printf '%s' "$dB" | python3 -c 'import json,sys; d=json.load(sys.stdin); d["run_id"]=sys.argv[1]; print(json.dumps(d))' "$A")
e=$(send_decision "$moved"); rt_assert_eq bad_signature "$(audit_reason "$e")" "signature over another run"
rt_assert_eq awaiting_approval "$(status "$A")" "moved: still waiting"
# changed payload: ops-lead signs A with the hash of another payload (B's)
expect_refused hash_mismatch "$A" "$(decide approve "$A" --as ops-lead --key "$K/ops-lead.key" --hash "$hashB")"
# expired decision: signed 10 minutes ago (skew 5m)
expect_refused expired "$A" "$(decide approve "$A" --as ops-lead --key "$K/ops-lead.key" --ts $(($(date +%s%3N) - 600000)))"
# replayed nonce: the nonce of an accepted decision, in a new (validly signed) one
rC=$(agent_task agent.task.requested acct_c)
decide approve "$rC" --as ops-lead --key "$K/ops-lead.key" --nonce replayed-nonce-0001 >/dev/null
rt_wait_for 60 '[ "$(status '"$rC"')" = completed ]'
expect_refused nonce_reused "$A" "$(decide approve "$A" --as ops-lead --key "$K/ops-lead.key" --nonce replayed-nonce-0001)"
# the very same decision event content again (new event id): also a replay
e=$(send_decision "$(print_decision "$A" --as ops-lead --key "$K/ops-lead.key" --nonce replayed-nonce-0001)")
rt_assert_eq nonce_reused "$(audit_reason "$e")" "replayed decision"
# unknown approver: mallory has a key, but is not in the approvers file
expect_refused unknown_approver "$A" "$(decide approve "$A" --as mallory --key "$K/mallory.key" --hash "$hashA")"
# listed in the file, but not an approver of this workflow
expect_refused unknown_approver "$A" "$(decide approve "$A" --as cfo --key "$K/cfo.key")"
# self-approval: ops-lead started this run
ev=$("$RATCHET_BIN" send user.task --actor-type user --actor-id ops-lead 2>/dev/null)
S=$(run_of "$ev")
expect_refused self_approval "$S" "$(decide approve "$S" --as ops-lead --key "$K/ops-lead.key")"
# an agent approving (even with a valid signature it somehow holds)
e=$(send_decision "$(print_decision "$A" --as ops-lead --key "$K/ops-lead.key")" --actor-type agent --actor-id agent-7)
rt_assert_eq agent "$(audit_reason "$e")" "agent approving"
rt_assert_eq "an agent never approves" "$(rt_psql "select left(details->>'message', 23) from ratchet.audit_log where details->>'event_id' = '$e'")" "agent message"
# malformed
e=$(send_decision '{"run_id": "'"$A"'", "decision": "yes"}'); rt_assert_eq invalid "$(audit_reason "$e")" "malformed decision"
rt_assert_eq awaiting_approval "$(status "$A")" "A waits after every refusal"
# and then the real thing still works; cfo may approve the user-started run
out=$(decide approve "$S" --as cfo --key "$K/cfo.key"); rt_assert_eq approved "$(printf '%s' "$out" | json_get '["outcome"]')" "cfo approves"
rt_wait_for 60 '[ "$(status '"$S"')" = completed ]'
out=$(decide approve "$A" --as ops-lead --key "$K/ops-lead.key"); rt_assert_eq approved "$(printf '%s' "$out" | json_get '["outcome"]')" "A approved at last"
rt_wait_for 60 '[ "$(status '"$A"')" = completed ]'

# 5. The approval step, mid-workflow (started by a user, so the run itself has no gate).
P=$("$RATCHET_BIN" run pay --data '{"amount": 120}')
rt_wait_for 60 '[ "$(status '"$P"')" = waiting ]'
rt_assert_eq completed "$(rt_psql "select status from ratchet.steps where run_id = '$P' and step_id = 'quote'")" "before the gate: done"
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.steps where run_id = '$P' and step_id = 'pay'")" "after the gate: not started"
rt_assert_eq "gate|pay 120 EUR" "$("$RATCHET_BIN" approvals --json | python3 -c 'import json,sys; a=[g for g in json.load(sys.stdin) if g["run_id"]==sys.argv[1]][0]; print(a["step_id"] + "|" + a["details"]["message"])' "$P")" "approvals lists the step gate"
expect_step_refused() { rt_assert_eq "$1" "$(printf '%s' "$2" | json_get '["reason"]')" "step: $1"; rt_assert_eq waiting "$(status "$P")" "step: still waiting"; }
expect_step_refused unknown_approver "$(decide approve "$P" --as ops-lead --key "$K/ops-lead.key")"
out=$(decide approve "$P" --as cfo --key "$K/cfo.key" --comment "within budget")
rt_assert_eq approved "$(printf '%s' "$out" | json_get '["outcome"]')" "step approved"
rt_wait_for 60 '[ "$(status '"$P"')" = completed ]'
rt_assert_eq '{"comment": "within budget", "approver": "cfo", "decision": "approve"}' "$(rt_psql "select output::text from ratchet.runs where id = '$P'")" "step output"
P2=$("$RATCHET_BIN" run pay --data '{"amount": 9000}')
rt_wait_for 60 '[ "$(status '"$P2"')" = waiting ]'
decide reject "$P2" --as cfo --key "$K/cfo.key" --comment "too much" >/dev/null
rt_assert_eq rejected "$(status "$P2")" "step rejection ends the run"
rt_assert_eq "pay.failed|rejected" "$(rt_psql "select name || '|' || (envelope->'data'->>'status') from ratchet.events where id like 'ratchet:%:on_failure:$P2'")" "on_failure of a rejected run"
rt_assert_eq "failed|rejected by cfo: too much" "$(rt_psql "select status || '|' || error from ratchet.steps where run_id = '$P2' and step_id = 'gate'")" "gate step failed"
P3=$("$RATCHET_BIN" run pay --data '{"amount": 1, "timeout": "1s"}')
rt_wait_for 60 '[ "$(status '"$P3"')" = expired ]'

# 6. Agents: no cancel of a system job, nor of another entity's run, through cancel_on.
J=$("$RATCHET_BIN" run sys-job)
rt_wait_for 60 '[ "$(status '"$J"')" = sleeping ]'
e=$("$RATCHET_BIN" send job.stop --actor-type agent --actor-id agent-7 --entity acct_1 2>/dev/null)
rt_assert_eq sleeping "$(status "$J")" "an agent does not cancel a system job"
rt_assert_eq 1 "$(rt_psql "select count(*) from ratchet.audit_log where action = 'agent.refused' and subject = '$J' and actor = 'agent:agent-7' and details->>'event_id' = '$e'")" "refusal audited"
"$RATCHET_BIN" send job.stop --actor-type user --actor-id ops >/dev/null 2>&1
rt_assert_eq cancelled "$(status "$J")" "a person may"
E1=$(run_of "$("$RATCHET_BIN" send ent.start --actor-type service --entity acct_1 2>/dev/null)")
rt_wait_for 60 '[ "$(status '"$E1"')" = sleeping ]'
"$RATCHET_BIN" send ent.stop --actor-type agent --actor-id agent-9 --entity acct_2 >/dev/null 2>&1
rt_assert_eq sleeping "$(status "$E1")" "an agent does not cancel another entity's run"
"$RATCHET_BIN" send ent.stop --actor-type agent --actor-id agent-7 --entity acct_1 >/dev/null 2>&1
rt_assert_eq cancelled "$(status "$E1")" "its own entity's run it may"

# 7. Another implementation (Python's cryptography): it recomputes the action_hash from what
#    `approvals --json` shows, verifies the CLI's signature and signs a decision the engine
#    accepts (docs/approvals-and-security.md "Worked example").
python3 -c 'import cryptography' 2>/dev/null || rt_fail "python3-cryptography is missing (scripts/lib/deps.sh installs it): the interop check cannot run"
if true; then
  X=$(agent_task agent.task.requested acct_py)
  "$RATCHET_BIN" approvals --json > "$T/pending.json"
  print_decision "$X" --as ops-lead --key "$K/ops-lead.key" > "$T/cli-decision.json"
  py=$(python3 - "$X" "$T/pending.json" "$T/cli-decision.json" "$RATCHET_APPROVERS" "$K/ops-lead.key" <<'PY'
import base64, hashlib, json, os, sys, time
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
run_id, pending, cli_decision, approvers, key_file = sys.argv[1:]
canon = lambda v: json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
gate = [g for g in json.load(open(pending)) if g["run_id"] == run_id][0]
want = hashlib.sha256((gate["workflow_hash"] + "\n" + canon(gate["event"])).encode()).hexdigest()
assert want == gate["action_hash"], ("action_hash", want, gate["action_hash"])
keys = dict(line.split() for line in open(approvers) if line.strip())
pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(keys["ops-lead"]))
d = json.load(open(cli_decision))
sig = base64.b64decode(d.pop("sig"))
pub.verify(sig, b"ratchet.approval.v1\n" + canon(d).encode())  # raises when it does not verify
key = serialization.load_pem_private_key(open(key_file, "rb").read(), password=None)
mine = {"run_id": run_id, "decision": "approve", "approver": "ops-lead", "comment": "signed in Python \u2713",
        "ts": int(time.time() * 1000), "nonce": os.urandom(12).hex(), "action_hash": gate["action_hash"]}
mine["sig"] = base64.b64encode(key.sign(b"ratchet.approval.v1\n" + canon(mine).encode())).decode()
print(json.dumps(mine, ensure_ascii=False))
PY
) || rt_fail "python interop"
  e=$(send_decision "$py")
  rt_assert_eq approval.approved "$(audit_reason "$e")" "a decision signed in Python"
  rt_wait_for 60 '[ "$(status '"$X"')" = completed ]'
fi

# 8. The chain: every action above is in it, and it verifies.
for a in approval.requested approval.approved approval.rejected approval.refused approval.expired agent.refused run.manual; do
  [ "$(rt_psql "select count(*) from ratchet.audit_log where action = '$a'")" -gt 0 ] || rt_fail "no $a record"
done
"$RATCHET_BIN" audit verify | grep -Eq '^ok: [0-9]+ records, head [0-9a-f]{64}$' || rt_fail "audit verify: $("$RATCHET_BIN" audit verify)"
rt_serve_stop a
echo "ok: approval"
