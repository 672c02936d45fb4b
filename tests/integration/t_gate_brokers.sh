#!/usr/bin/env bash
# Broker side doors (DESIGN §6), on RabbitMQ and on NATS JetStream:
#   5    a body whose `name` differs from its routing key / subject would start the
#        workflows of another event than the broker's permissions allowed the publisher:
#        it is dead-lettered (reason name_mismatch), stored nowhere, starts nothing; a
#        body whose name is its routing key still works
#   6c   an id in the engine's namespace "ratchet:" is dead-lettered (reason reserved_id)
#   3b   (t_gate_relay.sh case 3, through a broker) an event a run publishes over RabbitMQ
#        or NATS carries the run's actor and entity, so the gated workflow it triggers waits
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/gate_lib.sh"
rt_test_init gate_brokers
rt_use_amqp
rt_use_nats
tag=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
export RATCHET_NATS_STREAM="T_$tag" RATCHET_NATS_SUBJECT_PREFIX="t$tag" RATCHET_NATS_CONSUMER="c$tag"

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2
cat >"$W/orders.json" <<'EOF'
{"id": "on-orders", "triggers": [{"event": "orders.created"}],
 "steps": [{"id": "a", "uses": "transform", "with": {"value": "${{ event.id }}"}}]}
EOF
cat >"$W/refund.json" <<'EOF'
{"id": "on-refund", "triggers": [{"event": "payments.refund"}],
 "steps": [{"id": "a", "uses": "transform", "with": {"value": "${{ event.data.amount }}"}}]}
EOF
for via in amqp nats; do
  cat >"$W/relay-$via.json" <<EOF
{"id": "relay-$via", "triggers": [{"event": "p.$via"}],
 "steps": [{"id": "pub", "uses": "publish", "with": {"topic": "g.$via", "via": "$via", "data": {"x": 1}}}]}
EOF
  cat >"$W/gated-$via.json" <<EOF
{"id": "gated-$via", "triggers": [{"event": "g.$via"}], "approval": {"required_for": ["agent"], "approvers": ["ops-lead"]},
 "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF
done
rt_use_approver ops-lead
"$RATCHET_BIN" migrate >/dev/null
rt_serve_start a
rt_serve_wait_ready a 60
rt_wait_for 90 'grep -q "amqp consumer: connected" "$T/a.log" && grep -q "nats consumer: connected" "$T/a.log"'
U=$(rt_serve_url a) # shellcheck disable=SC2034 # read inside rt_wait_for conditions

publish_raw() { # VIA ROUTING-KEY JSON
  printf '%s' "$3" >"$T/raw.json"
  "$RATCHET_BIN" send "$2" --via "$1" --raw-file "$T/raw.json" 2>"$T/pub.err" || rt_fail "publish via $1: $(cat "$T/pub.err")"
}
good_after() { # VIA ID: a well-formed orders.created behind the bad message; waits for its run
  "$RATCHET_BIN" send orders.created --via "$1" --id "$2" --actor-type service --actor-id svc-1 >/dev/null 2>&1 ||
    rt_fail "send orders.created via $1"
  rt_wait_for 90 '[ "$(q "select count(*) from ratchet.runs where workflow_id = '"'on-orders'"' and event_id = '"'$2'"'")" = 1 ]'
}

case_name_mismatch() { # VIA
  local via=$1
  publish_raw "$via" orders.created "{\"name\": \"payments.refund\", \"id\": \"mm-$via\", \"data\": {\"amount\": 100}}"
  good_after "$via" "ok-$via"
  rt_assert_eq "0|0" "$(q "select (select count(*) from ratchet.events where id = 'mm-$via' or (name = 'payments.refund' and transport = '$via'))
                          || '|' || (select count(*) from ratchet.runs where workflow_id = 'on-refund' and event_id = 'mm-$via')")" \
    "$via: a body named payments.refund published as orders.created must be stored nowhere and start nothing (event rows|on-refund runs)"
  rt_wait_for 60 '[ "$(gate_metric "$U" ratchet_events_dead_lettered_total "transport=\"'"$via"'\",reason=\"name_mismatch\"")" -ge 1 ]'
}
case_5_amqp() { case_name_mismatch amqp; }
case_5_nats() { case_name_mismatch nats; }
gate_case 5.amqp "RabbitMQ: a body naming another event than its routing key is dead-lettered (name_mismatch)" case_5_amqp
gate_case 5.nats "NATS: a body naming another event than its subject is dead-lettered (name_mismatch)" case_5_nats

case_reserved_id() { # VIA
  local via=$1
  publish_raw "$via" orders.created "{\"name\": \"orders.created\", \"id\": \"ratchet:squat-$via\", \"data\": {}}"
  good_after "$via" "ok2-$via"
  rt_assert_eq 0 "$(q "select count(*) from ratchet.events where id = 'ratchet:squat-$via'")" \
    "$via: an event with id ratchet:squat-$via (the engine's namespace) must not be stored"
  rt_wait_for 60 '[ "$(gate_metric "$U" ratchet_events_dead_lettered_total "transport=\"'"$via"'\",reason=\"reserved_id\"")" -ge 1 ]'
}
case_6c_amqp() { case_reserved_id amqp; }
case_6c_nats() { case_reserved_id nats; }
gate_case 6c.amqp "RabbitMQ: an id in the reserved \"ratchet:\" namespace is dead-lettered (reserved_id)" case_6c_amqp
gate_case 6c.nats "NATS: an id in the reserved \"ratchet:\" namespace is dead-lettered (reserved_id)" case_6c_nats

case_publish_via() { # VIA
  local via=$1 ev P G
  ev=$("$RATCHET_BIN" send "p.$via" --actor-type agent --actor-id agent-1 --entity e1 2>/dev/null) || rt_fail "send p.$via"
  P=$(q "select id from ratchet.runs where event_id = '$ev'")
  [[ -n $P ]] || rt_fail "the agent's p.$via started no relay run"
  rt_wait_for 90 '[ "$(gate_status '"$P"')" = completed ]'
  rt_wait_for 90 '[ -n "$(q "select id from ratchet.runs where workflow_id = '"'gated-$via'"'")" ]'
  G=$(q "select id from ratchet.runs where workflow_id = 'gated-$via'")
  rt_assert_eq "awaiting_approval|agent|e1" \
    "$(q "select status || '|' || coalesce(event->'actor'->>'type', '') || '|' || coalesce(entity_id, '') from ratchet.runs where id = '$G'")" \
    "$via: the gated run triggered by what the agent's relay run published must await approval with actor agent, entity e1 (status|actor|entity)"
}
case_3b_amqp() { case_publish_via amqp; }
case_3b_nats() { case_publish_via nats; }
gate_case 3b.amqp "publish over RabbitMQ keeps the agent actor and entity" case_3b_amqp
gate_case 3b.nats "publish over NATS keeps the agent actor and entity" case_3b_nats

gate_done
rt_serve_stop a
rt_check_log "$T/a.log"
echo "ok: gate brokers"
