#!/usr/bin/env bash
# Broker triggers end to end, on RabbitMQ and on NATS JetStream: matching workflows start
# (and no others), a redelivered id starts nothing new, poison messages (bad JSON, no
# name, 10 MiB) are dead-lettered and the next good event still runs, and no event is
# lost while the broker restarts and serve is killed with SIGKILL (ack only after commit).
source "$(dirname "$0")/lib.sh"
rt_test_init brokers
rt_use_amqp
rt_use_nats
# This test's own JetStream stream, subjects and consumer on the shared NATS server.
tag=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
export RATCHET_NATS_STREAM="T_$tag" RATCHET_NATS_SUBJECT_PREFIX="t$tag" RATCHET_NATS_CONSUMER="c$tag"
: "${RATCHET_TEST_STATE_DIR:?RATCHET_TEST_STATE_DIR must name the services state dir (scripts/dev.sh test sets it)}"

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=4 RATCHET_LOG_LEVEL=info
cat > "$W/paid.json" <<'EOF2'
{"id": "on-paid", "triggers": [{"event": "invoice.paid", "if": "event.data.amount > 0"}],
 "steps": [{"id": "a", "uses": "transform", "with": {"value": "${{ event.data.amount }}"}}]}
EOF2
cat > "$W/any.json" <<'EOF2'
{"id": "on-invoice", "triggers": [{"event": "invoice.>"}], "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF2
cat > "$W/user.json" <<'EOF2'
{"id": "on-user", "triggers": [{"event": "user.created"}], "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF2
cat > "$W/failing.json" <<'EOF2'
{"id": "failing", "retries": {"max_attempts": 1}, "on_failure": {"event": "job.failed"},
 "steps": [{"id": "x", "uses": "exec", "with": {"command": ["false"]}}]}
EOF2
cat > "$W/load.json" <<'EOF2'
{"id": "on-load", "triggers": [{"event": "load.*"}], "steps": [{"id": "a", "uses": "transform", "with": {"value": "${{ event.id }}"}}]}
EOF2
"$RATCHET_BIN" migrate >/dev/null

started() { rt_psql "select coalesce(string_agg(workflow_id, ',' order by workflow_id), '') from ratchet.runs where trigger->>'event_id' = '$1'"; }
stored() { rt_psql "select count(*) from ratchet.events where id = '$1'"; }

rt_serve_start a
rt_wait_for 60 'grep -q "amqp consumer: connected" "$T/a.log" && grep -q "nats consumer: connected" "$T/a.log"'

printf 'this is not json{' > "$T/bad.json"
echo '{"data": {"x": 1}}' > "$T/noname.json"
python3 -c 'import json; print(json.dumps({"name": "invoice.big", "data": {"blob": "x" * (10 << 20)}}))' > "$T/big.json"

for via in amqp nats; do
  # Matching, wildcards and if filters.
  "$RATCHET_BIN" send invoice.paid --via $via --id "$via-e1" --data '{"amount": 5}' >/dev/null
  "$RATCHET_BIN" send invoice.paid --via $via --id "$via-e2" --data '{"amount": 0}' >/dev/null
  "$RATCHET_BIN" send user.created --via $via --id "$via-e3" >/dev/null
  rt_wait_for 60 '[ "$(stored '"$via-e3"')" = 1 ]'
  rt_assert_eq "on-invoice,on-paid" "$(started "$via-e1")" "$via: exact + wildcard"
  rt_assert_eq "on-invoice" "$(started "$via-e2")" "$via: if filters"
  rt_assert_eq "on-user" "$(started "$via-e3")" "$via: other name"
  rt_assert_eq "$via" "$(rt_psql "select transport from ratchet.events where id = '$via-e1'")" "$via: transport recorded"

  # The same id again: stored once, nothing new starts.
  "$RATCHET_BIN" send invoice.paid --via $via --id "$via-e1" --data '{"amount": 5}' >/dev/null
  "$RATCHET_BIN" send user.created --via $via --id "$via-e4" >/dev/null
  rt_wait_for 60 '[ "$(stored '"$via-e4"')" = 1 ]'
  rt_assert_eq 2 "$(rt_psql "select count(*) from ratchet.runs where trigger->>'event_id' = '$via-e1'")" "$via: duplicate id starts nothing"

  # Poison: dead-lettered, logged with broker and position; the stream goes on.
  before=$(grep -c "poison message dead-lettered" "$T/a.log" || true)
  "$RATCHET_BIN" send invoice.bad --via $via --raw-file "$T/bad.json" 2>/dev/null
  "$RATCHET_BIN" send invoice.bad --via $via --raw-file "$T/noname.json" 2>/dev/null
  "$RATCHET_BIN" send invoice.big --via $via --raw-file "$T/big.json" 2>/dev/null || true # a broker may refuse 10 MiB itself
  "$RATCHET_BIN" send invoice.paid --via $via --id "$via-after-poison" --data '{"amount": 1}' >/dev/null
  rt_wait_for 90 '[ "$(started '"$via-after-poison"')" = "on-invoice,on-paid" ]'
  rt_wait_for 60 '[ $(( $(grep -c "poison message dead-lettered\|dead-lettered" "$T/a.log" || true) - before )) -ge 2 ]'
  grep "dead-lettered" "$T/a.log" | grep -q "$via\|jetstream" || rt_fail "$via: dead-letter log lacks the broker/position"
done
# Events the engine makes (on_failure here) are published to the brokers from the outbox:
# the mark clears only after both brokers confirmed them.
if fid=$("$RATCHET_BIN" run failing --wait); then rt_fail "failing must fail"; fi
rt_assert_eq 1 "$(rt_psql "select count(*) from ratchet.events where id like 'ratchet:%:on_failure:$fid' and transport = 'engine'")" "on_failure event stored"
rt_wait_for 60 '[ "$(rt_psql "select outbox from ratchet.events where id like '"'ratchet:%:on_failure:$fid'"'")" = f ]'
# RabbitMQ keeps dead letters in ratchet.events.dead.
dead=$(rt_rabbitmqctl "$RATCHET_TEST_STATE_DIR" list_queues -p "$RT_TEST_VHOST" name messages 2>/dev/null | awk '$1 == "ratchet.events.dead" {print $2}')
[ "${dead:-0}" -ge 2 ] || rt_fail "amqp: expected >= 2 messages in ratchet.events.dead, got '${dead:-none}'"
rt_serve_stop a
echo "ok: matching, duplicates and poison on both transports"

# Several serve processes on one database and one broker: each event stored once and
# each matching workflow started once.
rt_serve_start m1
rt_serve_start m2
rt_wait_for 60 '[ $(grep -c "consumer: connected" "$T/m1.log") -ge 2 ] && [ $(grep -c "consumer: connected" "$T/m2.log") -ge 2 ]'
for via in amqp nats; do
  "$RATCHET_BIN" send "load.multi$via" --via $via --id "M$via" --count 2000 >/dev/null 2>&1
done
rt_wait_for 120 '[ "$(rt_psql "select count(*) from ratchet.events where name like '"'load.multi%'"'")" = 4000 ]'
rt_wait_for 120 '[ "$(rt_psql "select count(*) from ratchet.runs where trigger->>'"'event'"' like '"'load.multi%'"' and status = '"'completed'"'")" = 4000 ]'
rt_assert_eq 0 "$(rt_psql "select count(*) from (select trigger->>'event_id' from ratchet.runs where trigger->>'event' like 'load.multi%' group by 1 having count(*) > 1) d")" "two serves: no event started twice"
rt_serve_stop m1
rt_serve_stop m2
echo "ok: two serve processes share the brokers: 4,000 events, 4,000 runs"

# No loss: 10,000 events per transport while the broker restarts once and serve is killed
# with SIGKILL twice. Afterwards exactly 10,000 stored events and 10,000 runs each.
N=${RATCHET_TEST_LOAD_EVENTS:-10000}
for via in amqp nats; do
  rt_serve_start "load-$via"
  "$RATCHET_BIN" send "load.$via" --via $via --id "L$via" --count "$N" >"$T/pub-$via.log" 2>&1 &
  pub=$!
  rt_wait_for 60 '[ "$(rt_psql "select count(*) from ratchet.events where name = '"'load.$via'"'")" -ge $((N / 10)) ]'
  rt_serve_kill9 "load-$via"
  if [ $via = amqp ]; then rt_rabbit_restart "$RATCHET_TEST_STATE_DIR" >/dev/null 2>&1; else rt_nats_restart "$RATCHET_TEST_STATE_DIR" >/dev/null 2>&1; fi
  rt_serve_start "load-$via"
  rt_wait_for 120 '[ "$(rt_psql "select count(*) from ratchet.events where name = '"'load.$via'"'")" -ge $((N / 2)) ]'
  rt_serve_kill9 "load-$via"
  rt_serve_start "load-$via"
  wait "$pub" || rt_fail "$via: publisher failed: $(tail -5 "$T/pub-$via.log")"
  rt_wait_for 180 '[ "$(rt_psql "select count(*) from ratchet.events where name = '"'load.$via'"'")" = "$N" ]'
  rt_wait_for 120 '[ "$(rt_psql "select count(*) from ratchet.runs where workflow_id = '"'on-load'"' and trigger->>'"'event'"' = '"'load.$via'"' and status = '"'completed'"'")" = "$N" ]'
  rt_assert_eq "$N" "$(rt_psql "select count(*) from ratchet.runs where workflow_id = 'on-load' and trigger->>'event' = 'load.$via'")" "$via: one run per event"
  rt_assert_eq 0 "$(rt_psql "select count(*) from (select trigger->>'event_id' from ratchet.runs where workflow_id = 'on-load' group by 1 having count(*) > 1) d")" "$via: no event started twice"
  rt_serve_stop "load-$via"
  echo "ok: $via: $N events, broker restart, 2 x SIGKILL: nothing lost, nothing doubled"
done
echo "ok: brokers"
