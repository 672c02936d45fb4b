#!/usr/bin/env bash
# Who requested a run, for the no-self-approval rule (DESIGN §6,
# docs/approvals-and-security.md "Who requested a run"): the API stamps every event and
# manual run with its token's identity (the holder's
# approver id when the tokens file declares `holder=ID`, else the token's label) and
# refuses another actor.id (403), also for agents; approvers and holders share one
# namespace, compared without case; a gated run whose requester has no id cannot be
# approved (unknown_requester). Another approver still approves.
source "$(dirname "$0")/lib.sh"
rt_test_init approval_identity

PY=/usr/bin/python3
W=$T/workflows K=$T/keys
mkdir -p "$W" "$K"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2 RATCHET_APPROVERS=$T/approvers
cat > "$W/gate.json" <<'EOF2'
{"id": "gate", "triggers": [{"event": "gate.task"}],
 "approval": {"required_for": ["user", "agent", "service"], "approvers": ["ops-lead", "cfo"]},
 "steps": [{"id": "a", "uses": "transform", "with": {"value": "${{ event.actor }}"}}]}
EOF2
for who in ops-lead cfo; do "$RATCHET_BIN" keygen --approver $who --out "$K" >/dev/null 2>&1; done
cat "$K/ops-lead.pub" "$K/cfo.pub" > "$RATCHET_APPROVERS"

TOKENS=$T/tokens
: >"$TOKENS"
declare -A TOK=()
mint() { # NAME LINE-SUFFIX: a token whose tokens-file line is "hash SUFFIX"
  local out
  out=$("$RATCHET_BIN" token create --role operator 2>/dev/null)
  TOK[$1]=$(sed -n 1p <<<"$out")
  printf '%s %s\n' "$(sed -n 2p <<<"$out" | cut -d' ' -f1)" "$2" >>"$TOKENS"
}
mint op_plain "operator"
mint op_lead "operator holder=ops-lead"
mint agent_lead "agent acct_1 holder=ops-lead"
label_of() { printf 'token:%s' "$(printf '%s' "${TOK[$1]}" | sha256sum | cut -c1-12)"; }
"$RATCHET_BIN" migrate >/dev/null
RATCHET_TOKENS=$TOKENS rt_serve_start a
rt_serve_wait_ready a
U=$(rt_serve_url a)

post() { # TOKEN-NAME PATH BODY: sets CODE, BODY
  CODE=$(curl -sS -m 30 -o "$T/resp" -w '%{http_code}' -X POST -H "Authorization: Bearer ${TOK[$1]}" \
    -H 'Content-Type: application/json' --data-binary "$3" "$U$2")
  BODY=$(cat "$T/resp")
}
run_of() { rt_psql "select id from ratchet.runs where trigger->>'event_id' = '$1'"; }
actor_of() { rt_psql "select (envelope->'actor'->>'type') || '|' || (envelope->'actor'->>'id') from ratchet.events where id = '$1'"; }
field() { "$PY" -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], "-"))' "$1"; }
decide() { "$RATCHET_BIN" approve "$1" --as "$2" --key "$K/$2.key" --json 2>/dev/null || true; }
expect_refused() { # REASON RUN APPROVER
  local out; out=$(decide "$2" "$3")
  rt_assert_eq "$1" "$(printf '%s' "$out" | field reason)" "$3 approving $2"
  rt_assert_eq awaiting_approval "$(status "$2")" "$1: the run still waits"
  rt_assert_eq 1 "$(rt_psql "select count(*) from ratchet.audit_log where action = 'approval.refused' and subject = '$2' and details->>'reason' = '$1'")" "$1: audited"
}

# 1. A token cannot name another requester: an operator token without holder may not say
#    the event comes from "someone-else" (then approve it with its own key).
post op_plain /api/v1/events '{"name": "gate.task", "id": "ev-forged", "actor": {"type": "user", "id": "someone-else"}}'
rt_assert_eq 403 "$CODE" "an operator token naming another actor.id: $BODY"
post op_plain /api/v1/events '{"name": "gate.task", "id": "ev-plain", "actor": {"type": "user"}}'
rt_assert_eq 200 "$CODE" "operator event: $BODY"
rt_assert_eq "user|$(label_of op_plain)" "$(actor_of ev-plain)" "the event speaks for the token"
# The same for agents, who could set actor.id freely before.
post agent_lead /api/v1/events '{"name": "gate.task", "id": "ev-agent-forged", "actor": {"type": "agent", "id": "agent-x"}}'
rt_assert_eq 403 "$CODE" "an agent token naming another actor.id: $BODY"

# 2. holder=: the person holding the token is the requester, in the approvers' namespace.
post op_lead /api/v1/events '{"name": "gate.task", "id": "ev-lead", "actor": {"type": "user"}}'
rt_assert_eq 200 "$CODE" "holder's event: $BODY"
rt_assert_eq "user|ops-lead" "$(actor_of ev-lead)" "the holder is the actor"
L=$(run_of ev-lead)
rt_assert_eq awaiting_approval "$(status "$L")" "the holder's run waits"
expect_refused self_approval "$L" ops-lead
post op_lead /api/v1/workflows/gate/runs '{"data": {}}'
rt_assert_eq 201 "$CODE" "holder's manual run: $BODY"
M=$(printf '%s' "$BODY" | field id)
rt_assert_eq "user|ops-lead" "$(rt_psql "select (event->'actor'->>'type') || '|' || (event->'actor'->>'id') from ratchet.runs where id = '$M'")" "manual run speaks for the holder"
expect_refused self_approval "$M" ops-lead
# An agent token held by ops-lead: ops-lead does not approve what their agent asks.
post agent_lead /api/v1/events '{"name": "gate.task", "id": "ev-agent"}'
rt_assert_eq 200 "$CODE" "agent event: $BODY"
rt_assert_eq "agent|ops-lead" "$(actor_of ev-agent)" "the agent's event names its holder"
expect_refused self_approval "$(run_of ev-agent)" ops-lead

# 3. Case does not make another person; no id makes no requester.
C=$(run_of "$("$RATCHET_BIN" send gate.task --actor-type user --actor-id OPS-LEAD 2>/dev/null)")
expect_refused self_approval "$C" ops-lead
N=$(run_of "$("$RATCHET_BIN" send gate.task --actor-type service 2>/dev/null)")
rt_assert_eq awaiting_approval "$(status "$N")" "an anonymous service event waits"
post op_plain "/api/v1/runs/$N/approval" "$("$RATCHET_BIN" approve "$N" --as cfo --key "$K/cfo.key" --print 2>/dev/null)"
rt_assert_eq 403 "$CODE" "approving a run of unknown requester: $BODY"
rt_assert_eq unknown_requester "$(printf '%s' "$BODY" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["error"]["reason"])')" "reason"
rt_assert_eq awaiting_approval "$(status "$N")" "unknown requester: the run still waits"
CODE=$(curl -sS -o "$T/metrics" -w '%{http_code}' -H "Authorization: Bearer ${TOK[op_plain]}" "$U/metrics")
rt_assert_eq 1 "$(grep -c '^ratchet_approval_refusals_total{reason="unknown_requester"} 1$' "$T/metrics")" "counted"

# 4. Another approver approves all of them.
for r in "$L" "$M" "$C" "$(run_of ev-plain)"; do
  rt_assert_eq approved "$(decide "$r" cfo | field outcome)" "cfo approves $r"
  rt_wait_for 10 '[ "$(status '"$r"')" = completed ]'
done
