#!/usr/bin/env bash
# Approval gates over the brokers: an agent's event over RabbitMQ (then NATS JetStream)
# starts a run that waits; `ratchet approve --via amqp|nats` signs and publishes the
# decision, serve's consumer verifies it and the run completes; a forged decision over the
# broker is refused and counted on /metrics. Any client may send the same signed event:
# one arrives through POST /api/v1/events.
source "$(dirname "$0")/lib.sh"
rt_test_init approval_brokers
rt_use_amqp
rt_use_nats
tag=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
export RATCHET_NATS_STREAM="T_$tag" RATCHET_NATS_SUBJECT_PREFIX="t$tag" RATCHET_NATS_CONSUMER="c$tag"

W=$T/workflows K=$T/keys
mkdir -p "$W" "$K"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2 RATCHET_APPROVERS=$T/approvers
cp "$RATCHET_SOURCE_DIR/workflows/agent-task.json" "$W/"
"$RATCHET_BIN" keygen --approver ops-lead --out "$K" > "$RATCHET_APPROVERS" 2>/dev/null
"$RATCHET_BIN" migrate >/dev/null
rt_serve_start a
rt_serve_wait_ready a
rt_wait_for 60 'grep -q "amqp consumer: connected" "$T/a.log" && grep -q "nats consumer: connected" "$T/a.log"'


for via in amqp nats; do
  ev=$("$RATCHET_BIN" send agent.task.requested --via $via --actor-type agent --actor-id agent-7 --entity "acct_$via" \
    --data '{"task": "over '"$via"'"}' 2>/dev/null)
  rt_wait_for 60 '[ -n "$(rt_psql "select id from ratchet.runs where trigger->>'"'event_id'"' = '"'$ev'"'")" ]'
  R=$(rt_psql "select id from ratchet.runs where trigger->>'event_id' = '$ev'")
  rt_assert_eq awaiting_approval "$(status "$R")" "$via: waits"
  rt_assert_eq "$via" "$(rt_psql "select transport from ratchet.events where id = '$ev'")" "$via: came over the broker"
  # A forged decision over the broker: refused, the run still waits.
  d=$("$RATCHET_BIN" approve "$R" --as ops-lead --key "$K/ops-lead.key" --print 2>/dev/null)
  forged=$(printf '%s' "$d" | python3 -c 'import json,sys,base64; d=json.load(sys.stdin); s=bytearray(base64.b64decode(d["sig"])); s[0]^=1; d["sig"]=base64.b64encode(bytes(s)).decode(); print(json.dumps(d))')
  fe=$("$RATCHET_BIN" send ratchet.approval.decided --via $via --data "$forged" 2>/dev/null)
  rt_wait_for 60 '[ "$(rt_psql "select details->>'"'reason'"' from ratchet.audit_log where details->>'"'event_id'"' = '"'$fe'"'")" = bad_signature ]'
  rt_assert_eq awaiting_approval "$(status "$R")" "$via: forged decision refused"
  # The real one, signed and sent by the CLI over the broker.
  out=$("$RATCHET_BIN" approve "$R" --as ops-lead --key "$K/ops-lead.key" --via $via --json --wait-timeout 120s 2>/dev/null) ||
    rt_fail "$via: approve: $out"
  rt_assert_eq approved "$(printf '%s' "$out" | json_get '["outcome"]')" "$via: approved"
  rt_wait_for 60 '[ "$(status '"$R"')" = completed ]'
  rt_assert_eq 1 "$(rt_psql "select count(*) from app_agent_tasks where run_id = '$R'")" "$via: ran once"
done
rt_assert_eq 2 "$(metric a 'ratchet_approval_refusals_total{reason="bad_signature"}')" "refusals counted by serve"
rt_assert_eq 2 "$(metric a 'ratchet_approval_decisions_total{decision="approve"}')" "decisions counted by serve"

# Any client: the signed event through the HTTP API.
ev=$("$RATCHET_BIN" send agent.task.requested --actor-type agent --actor-id agent-7 --entity acct_http --data '{"task": "t"}' 2>/dev/null)
R=$(rt_psql "select id from ratchet.runs where trigger->>'event_id' = '$ev'")
d=$("$RATCHET_BIN" approve "$R" --as ops-lead --key "$K/ops-lead.key" --print 2>/dev/null)
body=$(printf '%s' "$d" | python3 -c 'import json,sys; print(json.dumps({"name": "ratchet.approval.decided", "id": "http-decision-1", "actor": {"type": "user", "id": "ops-lead"}, "data": json.load(sys.stdin)}))')
curl -fsS -X POST -H 'Content-Type: application/json' --data "$body" "$(rt_serve_url a)/api/v1/events" >/dev/null || rt_fail "POST /api/v1/events"
rt_wait_for 60 '[ "$(status '"$R"')" = completed ]'
rt_assert_eq approval.approved "$(rt_psql "select action from ratchet.audit_log where details->>'event_id' = 'http-decision-1'")" "decided through the API"
"$RATCHET_BIN" audit verify | grep -q '^ok: ' || rt_fail "audit verify"
rt_serve_stop a
echo "ok: approval_brokers"
