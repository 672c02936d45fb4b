#!/usr/bin/env bash
# batch_events: events are collected into one run: a full batch (max_size) starts at once,
# a partial one when `timeout` passed since its first event. Templates see `events` (the
# envelopes, in arrival order) and `event` (the first). A manual run of the workflow is
# not batched and sees `events` = [its event].
# Timing: the events go out from one process (rt_send_events) and the timeout is 10 s, far
# beyond what sending takes on a slow machine; checks are on the engine's due times
# (scheduled_at) and lower bounds, not on how fast a loaded machine starts a run.
source "$(dirname "$0")/lib.sh"
rt_test_init admission_batch

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2
cat > "$W/batch.json" <<'EOF2'
{"id": "ingest-lines", "triggers": [{"event": "line.added"}], "batch_events": {"max_size": 3, "timeout": "10s"},
 "steps": [{"id": "a", "uses": "transform",
            "with": {"value": {"n": "${{ len(events) }}", "first": "${{ event.data.i }}",
                               "ids": "${{ to_json(events) }}"}}}]}
EOF2
"$RATCHET_BIN" migrate >/dev/null
rt_serve_start a
rt_serve_wait_ready a

send() { "$RATCHET_BIN" send line.added --data "{\"i\": $1}" >/dev/null 2>&1; }

ev=()
for i in 1 2 3 4 5 6 7 8; do ev+=("{\"name\": \"line.added\", \"data\": {\"i\": $i}}"); done
rt_send_events a 0 "${ev[@]}" >/dev/null
rt_assert_eq 3 "$(q "select count(*) from ratchet.runs where workflow_id = 'ingest-lines'")" "8 events, max_size 3: three runs"
# The partial batch (events 7 and 8) may complete too while the full ones are checked.
partial=$(q "select id from ratchet.runs where workflow_id = 'ingest-lines' and trigger->'events'->0->'data'->>'i' = '7'")
# The two full batches start without waiting for the timeout.
rt_wait_for 60 '[ "$(q "select count(*) from ratchet.runs where workflow_id = '"'ingest-lines'"' and status = '"'completed'"' and id <> '"'$partial'"'")" = 2 ]'
rt_assert_eq "3:1,3:4" "$(q "select string_agg((output->>'n') || ':' || (output->>'first'), ',' order by created_at)
  from ratchet.runs where workflow_id = 'ingest-lines' and status = 'completed' and id <> '$partial'")" "full batches: 3 events each, event = the first"
# ... each due when its third event came, not at its timeout (10 s after its first).
q "select round(extract(epoch from coalesce(r.scheduled_at, r.created_at) - min(e.received_at)) * 1000) from ratchet.runs r
   cross join jsonb_array_elements(r.trigger->'events') b join ratchet.events e on e.id = b->>'id'
   where r.status = 'completed' and r.id <> '$partial' group by r.id" > "$T/lag"
while read -r lag; do ((lag < 9990)) || rt_fail "a full batch was due ${lag} ms after its first event: it waited for the timeout"; done < "$T/lag"
# Every event went to exactly one run, in order.
q "select r.output->>'ids' from ratchet.runs r where r.status = 'completed' and r.id <> '$partial' order by r.created_at" > "$T/ids"
python3 - "$T/ids" <<'PY' || rt_fail "events of the full batches: $(cat "$T/ids")"
import json, sys
got = [[e["data"]["i"] for e in json.loads(line)] for line in open(sys.argv[1]) if line.strip()]
assert got == [[1, 2, 3], [4, 5, 6]], got
PY
rt_assert_eq 0 "$(q "select count(*) from ratchet.events e where (select count(*) from ratchet.runs r,
  jsonb_array_elements(r.trigger->'events') b where b->>'id' = e.id) <> 1")" "each event is in exactly one run"

# The partial batch (event 7, then 8) starts when its timeout passed.
rt_wait_for 60 '[ "$(q "select status from ratchet.runs where id = '"'$partial'"'")" = completed ]'
rt_assert_eq "2:7" "$(q "select (output->>'n') || ':' || (output->>'first') from ratchet.runs where id = '$partial'")" "partial batch: 2 events"
delay=$(q "select round(extract(epoch from r.started_at - e.received_at) * 1000) from ratchet.runs r
           join ratchet.events e on e.id = r.event_id where r.id = '$partial'")
((delay >= 9990)) || rt_fail "partial batch started ${delay} ms after its first event, expected >= 10 s"

# The next event opens a new batch.
send 9
rt_assert_eq 1 "$(q "select count(*) from ratchet.runs where workflow_id = 'ingest-lines' and status = 'queued'
  and trigger->'events'->0->'data'->>'i' = '9'")" "a new batch after the last one started"

# A manual run is not batched; it sees its own event as the only element of events.
id=$("$RATCHET_BIN" run ingest-lines --data '{"i": 100}' --wait 2>/dev/null)
rt_assert_eq "1:100" "$(q "select (output->>'n') || ':' || (output->>'first') from ratchet.runs where id = '$id'")" "manual run: events = [event]"

rt_serve_stop a
rt_check_log "$T/a.log"
echo "ok: admission batch_events"
