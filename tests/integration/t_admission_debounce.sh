#!/usr/bin/env bash
# debounce: events with the same key value within `period` of each other make one run,
# which starts `period` after the last one and sees the last event; another key value has
# its own run; after the run started a new event opens a new window; `timeout` caps the
# delay from the first event even while events keep coming.
# Timed sequences go out from one process (rt_send_events) with gaps far inside the
# windows, and the checks are on the engine's decisions (scheduled_at, start_deadline) and
# lower bounds: a slow machine only makes runs start later, never changes what is asserted.
source "$(dirname "$0")/lib.sh"
rt_test_init admission_debounce

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2
cat > "$W/deb.json" <<'EOF2'
{"id": "recalc", "triggers": [{"event": "balance.changed"}], "debounce": {"period": "5s", "key": "event.data.acct"},
 "steps": [{"id": "a", "uses": "transform", "with": {"value": "${{ event.data.n }}"}}]}
EOF2
cat > "$W/cap.json" <<'EOF2'
{"id": "recalc-capped", "triggers": [{"event": "price.tick"}], "debounce": {"period": "3s", "timeout": "6s"},
 "steps": [{"id": "a", "uses": "transform", "with": {"value": "${{ event.data.n }}"}}]}
EOF2
cat > "$W/late.json" <<'EOF2'
{"id": "recalc-late", "triggers": [{"event": "late.tick"}], "debounce": {"period": "3s"}, "start_timeout": "6s",
 "steps": [{"id": "a", "uses": "transform", "with": {"value": "${{ event.data.n }}"}}]}
EOF2
"$RATCHET_BIN" migrate >/dev/null
rt_serve_start a
rt_serve_wait_ready a

send() { "$RATCHET_BIN" send "$1" --data "$2" >/dev/null 2>&1; }

# Five events for a1 back to back (one process, far inside the 5 s period), one for a2.
ev=()
for n in 1 2 3 4 5; do ev+=("{\"name\": \"balance.changed\", \"data\": {\"acct\": \"a1\", \"n\": $n}}"); done
ev+=('{"name": "balance.changed", "data": {"acct": "a2", "n": 99}}')
widest=$(rt_send_events a 0 "${ev[@]}")
rt_assert_eq 2 "$(q "select count(*) from ratchet.runs where workflow_id = 'recalc'")" "one run per key value (widest gap between sends ${widest} ms)"
run=$(q "select id from ratchet.runs where workflow_id = 'recalc' and event->'data'->>'acct' = 'a1'")
rt_assert_eq 5 "$(q "select trigger #>> '{admission,requests}' from ratchet.runs where id = '$run'")" "the run counted five requests"
rt_wait_for 60 '[ "$(q "select count(*) from ratchet.runs where workflow_id = '"'recalc'"' and status = '"'completed'"'")" = 2 ]'
rt_assert_eq 5 "$(q "select output::text from ratchet.runs where id = '$run'")" "the run saw the last event"
# It was due one period after the last event and did not start before (10 ms: timestamp
# rounding). How much later it started is the machine's speed, not asserted.
read -r due gap < <(rt_psql "select round(extract(epoch from r.scheduled_at - e.received_at) * 1000),
         round(extract(epoch from r.started_at - e.received_at) * 1000) from ratchet.runs r
         join ratchet.events e on e.id = r.event->>'id' where r.id = '$run'" -F ' ')
((due >= 4990)) || rt_fail "run due ${due} ms after the last event, expected >= 5 s"
((gap >= 4990)) || rt_fail "run started ${gap} ms after the last event, expected >= 5 s"

# The window closed when the run started: a new event makes a new run.
send balance.changed '{"acct": "a1", "n": 6}'
rt_assert_eq 2 "$(q "select count(*) from ratchet.runs where workflow_id = 'recalc' and event->'data'->>'acct' = 'a1'")" "a new window after the run started"
rt_wait_for 60 '[ "$(q "select output::text from ratchet.runs where workflow_id = '"'recalc'"' and event->'"'data'"'->>'"'n'"' = '"'6'"' and status = '"'completed'"'")" = 6 ]'

# timeout: an event every 500 ms for 12.5 s never leaves a 3 s gap, yet each run is due at
# most 6 s after the first event of its window.
ev=()
for n in $(seq 1 26); do ev+=("{\"name\": \"price.tick\", \"data\": {\"n\": $n}}"); done
widest=$(rt_send_events a 0.5 "${ev[@]}")
((widest < 3000)) || rt_fail "timeout: the sender left a ${widest} ms gap (period 3 s): the machine stalled, the case proves nothing"
rt_wait_for 60 '[ "$(q "select count(*) from ratchet.runs where workflow_id = '"'recalc-capped'"' and status <> '"'completed'"'")" = 0 ]'
nruns=$(q "select count(*) from ratchet.runs where workflow_id = 'recalc-capped'")
((nruns >= 2)) || rt_fail "timeout: expected at least 2 runs while events kept coming, got $nruns"
# For each run: ms from the first request of its window (admission's clock) to its due
# time, and from the first event of its window (the one that created it) to its start.
# Every run but the last was cut by the timeout: due exactly 6 s after its first request.
q "select round(extract(epoch from r.scheduled_at) * 1000) - (r.trigger #>> '{admission,first}')::bigint,
          round(extract(epoch from r.started_at - e.received_at) * 1000)
   from ratchet.runs r join ratchet.events e on e.id = r.event_id where r.workflow_id = 'recalc-capped'
   order by r.started_at" > "$T/cap"
while IFS='|' read -r due delay; do
  ((due >= 5999 && due <= 6001)) || rt_fail "timeout: a run was due ${due} ms after its first request (expected 6 s): $(cat "$T/cap")"
  ((delay >= 5990)) || rt_fail "timeout: a run started ${delay} ms after its first event (expected >= 6 s): $(cat "$T/cap")"
done < <(head -n -1 "$T/cap")
# The windows split the events: each run saw the event just before the one that opened
# the next window (events are numbered in the order they were sent), the last run the last.
q "select r.output::text || ' ' || (e.envelope->'data'->>'n') from ratchet.runs r join ratchet.events e on e.id = r.event_id
   where r.workflow_id = 'recalc-capped' order by r.created_at" > "$T/windows"
python3 - "$T/windows" <<'PY' || rt_fail "timeout: runs did not see the last event of their windows: $(cat "$T/windows")"
import sys
rows = [tuple(int(x) for x in line.split()) for line in open(sys.argv[1]) if line.strip()]
assert rows[0][1] == 1, rows
for (saw, _), (_, opened) in zip(rows, rows[1:]):
    assert saw == opened - 1, rows
assert rows[-1][0] == 26, rows
PY

# start_timeout counts from when the run is due: moving it moves the deadline too (else
# the run, first due 3 s after the first event, would expire 9 s after it, while the
# events below keep it pending until 10 s after the first).
ev=()
for n in $(seq 1 8); do ev+=("{\"name\": \"late.tick\", \"data\": {\"n\": $n}}"); done
widest=$(rt_send_events a 1 "${ev[@]}")
((widest < 3000)) || rt_fail "start_timeout: the sender left a ${widest} ms gap (period 3 s): the machine stalled"
rt_assert_eq 6000 "$(q "select round(extract(epoch from start_deadline - scheduled_at) * 1000) from ratchet.runs
  where workflow_id = 'recalc-late'")" "start_timeout: the deadline is 6 s after the (moved) due time"
rt_wait_for 60 '[ "$(q "select status || '"':'"' || output::text from ratchet.runs where workflow_id = '"'recalc-late'"'")" = completed:8 ]'

rt_serve_stop a
rt_check_log "$T/a.log"
echo "ok: admission debounce ($nruns capped runs: $(tr '\n' ' ' < "$T/cap"))"
