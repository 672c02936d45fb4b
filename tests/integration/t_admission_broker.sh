#!/usr/bin/env bash
# Admission when many events arrive in one ingest transaction (a JetStream fetch batch):
# requests of the same call see each other. 9 copies of an event, published while serve
# is down and then ingested together, make: one run for one idempotency value, one for one
# singleton key (skip), one debounced run seeing the last copy, 3 batches of 3; with
# singleton cancel each copy's run cancels the one before (exactly one is left).
source "$(dirname "$0")/lib.sh"
rt_test_init admission_broker
rt_use_nats
tag=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
export RATCHET_NATS_STREAM="T_$tag" RATCHET_NATS_SUBJECT_PREFIX="t$tag" RATCHET_NATS_CONSUMER="c$tag"

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2
wf() { # ID BLOCK
  cat > "$W/$1.json" <<EOF2
{"id": "$1", "triggers": [{"event": "copy.made"}], $2,
 "steps": [{"id": "nap", "uses": "sleep", "with": {"duration": "1h"}}]}
EOF2
}
wf b-idem '"idempotency": "event.data.day"'
wf b-skip '"singleton": {"key": "event.data.day", "mode": "skip"}'
wf b-cancel '"singleton": {"key": "event.data.day", "mode": "cancel"}'
wf b-debounce '"debounce": {"period": "500ms", "key": "event.data.day"}'
cat > "$W/b-batch.json" <<'EOF2'
{"id": "b-batch", "triggers": [{"event": "copy.made"}], "batch_events": {"max_size": 3, "timeout": "1h"},
 "steps": [{"id": "a", "uses": "transform", "with": {"value": "${{ len(events) }}"}}]}
EOF2
"$RATCHET_BIN" migrate >/dev/null

# The stream exists once serve has connected; stop it, publish, start it again.
rt_serve_start a
rt_wait_for 60 'grep -q "nats consumer: connected" "$T/a.log"'
rt_serve_stop a
"$RATCHET_BIN" send copy.made --via nats --id copy --count 9 --data '{"day": "d1"}' >/dev/null 2>&1
RATCHET_LOG_LEVEL=debug rt_serve_start a
rt_wait_for 60 '[ "$(q "select count(*) from ratchet.events")" = 9 ]'
grep -q "created by an earlier request of the same batch" "$T/a.log" ||
  rt_fail "the copies did not arrive in one ingest transaction (nothing joined within a call)"

count() { q "select count(*) from ratchet.runs where workflow_id = '$1' ${2:+and $2}"; }
rt_assert_eq 1 "$(count b-idem)" "idempotency: one run"
rt_assert_eq 1 "$(count b-skip)" "singleton skip: one run"
rt_assert_eq "9|1" "$(count b-cancel)|$(count b-cancel "status <> 'cancelled'")" "singleton cancel: 9 runs, one left"
rt_assert_eq 8 "$(q "select count(*) from ratchet.runs o join ratchet.runs n on o.error = 'cancelled by singleton: newer run ' || n.id
  where o.workflow_id = 'b-cancel' and n.created_at >= o.created_at")" "singleton cancel: each names its successor"
rt_assert_eq 1 "$(count b-debounce)" "debounce: one run"
rt_assert_eq "copy-8" "$(q "select event->>'id' from ratchet.runs where workflow_id = 'b-debounce'")" "debounce: the last copy"
rt_assert_eq "3|3" "$(count b-batch)|$(q "select min(jsonb_array_length(trigger->'events')) from ratchet.runs where workflow_id = 'b-batch'")" "batch: 3 runs of 3"
rt_assert_eq 9 "$(q "select count(distinct e->>'id') from ratchet.runs r, jsonb_array_elements(r.trigger->'events') e where r.workflow_id = 'b-batch'")" "batch: every copy once"
rt_wait_for 60 '[ "$(count b-batch "status = '"'completed'"' and output::text = '"'3'"'")" = 3 ]'
rt_serve_stop a
rt_check_log "$T/a.log"
echo "ok: admission within one ingest batch"
