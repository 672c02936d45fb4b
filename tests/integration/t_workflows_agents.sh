#!/usr/bin/env bash
# Agents propose, people approve: an agent token's PUT (and pause) of a workflow becomes a
# proposal awaiting approval, listed by `ratchet approvals` and the API; its decision is
# refused without a signature, with a forged one, with the proposer's own (self), from an
# unlisted key and when an agent carries it; a valid signed decision applies exactly the
# proposed definition. An agent's change to a `system` workflow is refused and audited,
# even before any approval. Every step is in the audit log.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/wf_lib.sh"
rt_test_init workflows_agents

W=$T/workflows K=$T/keys TOKENS=$T/tokens
mkdir -p "$W" "$K"
: > "$TOKENS"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2 RATCHET_APPROVERS=$T/approvers
for who in ops-lead agent-bob mallory; do "$RATCHET_BIN" keygen --approver $who --out "$K" >/dev/null 2>&1; done
cat "$K/ops-lead.pub" "$K/agent-bob.pub" > "$RATCHET_APPROVERS" # mallory has a key but is not listed
mint() { local out; out=$("$RATCHET_BIN" token create "$@" 2>/dev/null); sed -n 2p <<<"$out" >>"$TOKENS"; sed -n 1p <<<"$out"; }
AG=$(mint --role agent --entity acct_1 --holder agent-bob)
OP=$(mint --role operator)
wf_write "$W/wk.json" wk v1
cat > "$W/sysw.json" <<'EOF2'
{"id": "sysw", "system": true, "steps": [{"id": "v", "uses": "transform", "with": {"value": "s"}}]}
EOF2
"$RATCHET_BIN" migrate >/dev/null
RATCHET_TOKENS=$TOKENS rt_serve_start a
rt_serve_wait_ready a
U=$(rt_serve_url a)
http() { # TOKEN METHOD PATH [BODY] -> "STATUS BODY" (recorded for rt_contract_check)
  local code
  code=$(rt_http "$2" "$U$3" -m 10 -H "Authorization: Bearer $1" -H 'content-type: application/json' ${4:+--data-binary "$4"})
  printf '%s %s\n' "$code" "$(<"$T/http.body")"
}
jget() { python3 -c 'import json,sys; v=json.loads(sys.argv[2].split(" ",1)[1]); print(eval("v" + sys.argv[1]))' "$1" "$2"; }
v1=$(rt_psql "select hash from ratchet.workflow_registry where workflow_id = 'wk'")
refusals() { rt_psql "select count(*) from ratchet.audit_log where action = 'workflow.proposal.refused' and details->>'reason' = '$1'"; }

# 1. The agent's PUT is a proposal: 202, nothing changes, it is listed.
def2='{"id": "wk", "steps": [{"id": "v", "uses": "transform", "with": {"value": "v2"}}]}'
out=$(http "$AG" PUT /api/v1/workflows/wk "$def2")
[[ ${out%% *} == 202 ]] || rt_fail "agent PUT: $out"
P=$(jget '["proposal_id"]' "$out")
H=$(jget '["action_hash"]' "$out")
[[ $(jget '["diff"]' "$out") == *'"value": "v2"'* ]] || rt_fail "proposal without the diff: $out"
rt_assert_eq "$v1" "$(rt_psql "select hash from ratchet.workflow_registry where workflow_id = 'wk'")" "a proposal changes nothing"
"$RATCHET_BIN" approvals | grep -q "$P" || rt_fail "ratchet approvals does not list proposal $P"
out=$(http "$OP" GET /api/v1/workflow-proposals)
[[ $out == *"$P"* && $out == *"$H"* ]] || rt_fail "proposals list: $out"
rt_assert_eq 1 "$(rt_psql "select count(*) from ratchet.audit_log where action = 'workflow.proposal' and subject = 'wk'")" "proposal audited"

sign() { "$RATCHET_BIN" approve "$P" --as "$1" --key "$K/$1.key" --hash "$H" --print 2>/dev/null; }
decide() { http "${2:-$OP}" POST "/api/v1/workflow-proposals/$P/decision" "$1"; }
still_v1() { rt_assert_eq "$v1" "$(rt_psql "select hash from ratchet.workflow_registry where workflow_id = 'wk'")" "$1: nothing applied"; }

# 2. Refused: no signature, a forged one, the proposer's own, an unlisted key, an agent carrier.
good=$(sign ops-lead)
[ -n "$good" ] || rt_fail "ratchet approve --print made no decision"
unsigned=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d.pop("sig"); print(json.dumps(d))' "$good")
out=$(decide "$unsigned"); [[ ${out%% *} == 400 ]] || rt_fail "unsigned decision: $out"; still_v1 unsigned
forged=$(python3 -c 'import json,sys,base64; d=json.loads(sys.argv[1]); s=bytearray(base64.b64decode(d["sig"])); s[5]^=1; d["sig"]=base64.b64encode(bytes(s)).decode(); print(json.dumps(d))' "$good")
out=$(decide "$forged"); [[ ${out%% *} == 403 && $out == *bad_signature* ]] || rt_fail "forged: $out"; still_v1 forged
out=$(decide "$(sign agent-bob)"); [[ ${out%% *} == 403 && $out == *self_approval* ]] || rt_fail "self: $out"; still_v1 self
out=$(decide "$(sign mallory)"); [[ ${out%% *} == 403 && $out == *unknown_approver* ]] || rt_fail "mallory: $out"; still_v1 mallory
out=$(decide "$good" "$AG"); [[ ${out%% *} == 403 && $out == *agent* ]] || rt_fail "agent carrier: $out"; still_v1 agent
other=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["action_hash"]="0"*64; print(json.dumps(d))' "$good")
out=$(decide "$other"); [[ ${out%% *} == 403 ]] || rt_fail "a signature over another hash: $out"; still_v1 "other hash"
for r in invalid bad_signature self_approval unknown_approver agent; do
  [ "$(refusals $r)" -ge 1 ] || rt_fail "no audited refusal $r"
done

# 3. A valid decision applies exactly the proposed definition, as the approver.
out=$(decide "$good"); [[ ${out%% *} == 200 && $out == *approved* ]] || rt_fail "valid decision: $out"
rt_wait_for 10 '[[ $(http "$OP" GET /api/v1/workflows/wk) == *"\"value\":\"v2\""* ]]'
rt_assert_eq "approved" "$(rt_psql "select status from ratchet.workflow_proposals where id = '$P'")" "proposal status"
rt_assert_eq "approver:ops-lead" "$(rt_psql "select actor from ratchet.workflow_changes where workflow_id = 'wk' order by seq desc limit 1")" "who applied it"
rt_assert_eq 1 "$(rt_psql "select count(*) from ratchet.audit_log where action = 'workflow.proposal.approved' and actor = 'approver:ops-lead'")" "approval audited"
out=$(decide "$good"); [[ ${out%% *} == 409 ]] || rt_fail "the same decision again: $out"
out=$(http "$OP" POST /api/v1/workflows/wk/runs); [[ ${out%% *} == 201 ]] || rt_fail "run of wk: $out"
run=$(jget '["id"]' "$out")
rt_wait_for 60 '[ "$(rt_psql "select output::text from ratchet.runs where id = '"'$run'"' and status = '"'completed'"'")" = "\"v2\"" ]'

# 4. Pause is proposed too, and applied only once approved.
out=$(http "$AG" POST /api/v1/workflows/wk/pause); [[ ${out%% *} == 202 ]] || rt_fail "agent pause: $out"
P=$(jget '["proposal_id"]' "$out"); H=$(jget '["action_hash"]' "$out")
rt_assert_eq f "$(rt_psql "select paused from ratchet.workflow_registry where workflow_id = 'wk'")" "pause before approval"
out=$(decide "$(sign ops-lead)"); [[ ${out%% *} == 200 ]] || rt_fail "pause decision: $out"
rt_assert_eq t "$(rt_psql "select paused from ratchet.workflow_registry where workflow_id = 'wk'")" "paused after approval"

# 5. A new workflow with a cron trigger (a new schedule) is a proposal as well.
out=$(http "$AG" PUT /api/v1/workflows/nightly '{"id": "nightly", "triggers": [{"cron": "0 3 * * *"}], "steps": [{"id": "v", "uses": "transform", "with": {"value": 1}}]}')
[[ ${out%% *} == 202 ]] || rt_fail "agent's new cron workflow: $out"
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.workflow_registry where workflow_id = 'nightly'")" "no new schedule before approval"
# Decided from the CLI: the proposer's own key is refused, a listed approver's applies it.
PN=$(jget '["proposal_id"]' "$out")
if "$RATCHET_BIN" workflows approve "$PN" --as agent-bob --key "$K/agent-bob.key" 2>"$T/self.err"; then rt_fail "CLI self-approval applied"; fi
grep -q self_approval "$T/self.err" || rt_fail "CLI self-approval: $(cat "$T/self.err")"
"$RATCHET_BIN" workflows approve "$PN" --as ops-lead --key "$K/ops-lead.key" 2>/dev/null | grep -q "$PN approved" || rt_fail "CLI approval"
rt_assert_eq 1 "$(rt_psql "select count(*) from ratchet.workflow_registry where workflow_id = 'nightly' and not removed")" "nightly applied after approval"

# 6. System workflows: refused outright (403) and audited; nothing is proposed.
n=$(rt_psql "select count(*) from ratchet.workflow_proposals")
out=$(http "$AG" PUT /api/v1/workflows/sysw '{"id": "sysw", "system": true, "steps": [{"id": "v", "uses": "transform", "with": {"value": "x"}}]}')
[[ ${out%% *} == 403 && $out == *system* ]] || rt_fail "agent PUT of a system workflow: $out"
out=$(http "$AG" POST /api/v1/workflows/sysw/pause); [[ ${out%% *} == 403 ]] || rt_fail "agent pause of a system workflow: $out"
out=$(http "$AG" DELETE /api/v1/workflows/sysw); [[ ${out%% *} == 403 ]] || rt_fail "agent DELETE of a system workflow: $out"
out=$(http "$AG" PUT /api/v1/workflows/wk '{"id": "wk", "system": true, "steps": [{"id": "v", "uses": "transform", "with": {"value": "x"}}]}')
[[ ${out%% *} == 403 ]] || rt_fail "agent making a workflow system: $out"
rt_assert_eq "$n" "$(rt_psql "select count(*) from ratchet.workflow_proposals")" "no proposal for a system workflow"
rt_assert_eq 4 "$(rt_psql "select count(*) from ratchet.audit_log where action = 'workflow.refused' and details->>'reason' = 'system'")" "system refusals audited"
"$RATCHET_BIN" audit verify >/dev/null || rt_fail "audit chain broken"
rt_serve_stop a
rt_contract_check # every API answer above against schemas/openapi.yaml
echo "ok: workflows agents"
