#!/usr/bin/env bash
# debounce: events with the same key value within `period` of each other make one run,
# which starts `period` after the last one and sees the last event; another key value has
# its own run; after the run started a new event opens a new window; `timeout` caps the
# delay from the first event even while events keep coming.
source "$(dirname "$0")/lib.sh"
rt_test_init admission_debounce

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2
cat > "$W/deb.json" <<'EOF2'
{"id": "recalc", "triggers": [{"event": "balance.changed"}], "debounce": {"period": "1s", "key": "event.data.acct"},
 "steps": [{"id": "a", "uses": "transform", "with": {"value": "${{ event.data.n }}"}}]}
EOF2
cat > "$W/cap.json" <<'EOF2'
{"id": "recalc-capped", "triggers": [{"event": "price.tick"}], "debounce": {"period": "1s", "timeout": "2s"},
 "steps": [{"id": "a", "uses": "transform", "with": {"value": "${{ event.data.n }}"}}]}
EOF2
cat > "$W/late.json" <<'EOF2'
{"id": "recalc-late", "triggers": [{"event": "late.tick"}], "debounce": {"period": "1s"}, "start_timeout": "1s",
 "steps": [{"id": "a", "uses": "transform", "with": {"value": "${{ event.data.n }}"}}]}
EOF2
"$RATCHET_BIN" migrate >/dev/null
rt_serve_start a
rt_serve_wait_ready a

q() { rt_psql "$1"; }
send() { "$RATCHET_BIN" send "$1" --data "$2" >/dev/null 2>&1; }

# Five events for a1 in well under a second (each send is one process), one for a2.
for n in 1 2 3 4 5; do send balance.changed "{\"acct\": \"a1\", \"n\": $n}"; done
send balance.changed '{"acct": "a2", "n": 99}'
rt_assert_eq 2 "$(q "select count(*) from ratchet.runs where workflow_id = 'recalc'")" "one run per key value"
run=$(q "select id from ratchet.runs where workflow_id = 'recalc' and event->'data'->>'acct' = 'a1'")
rt_assert_eq 5 "$(q "select trigger #>> '{admission,requests}' from ratchet.runs where id = '$run'")" "the run counted five requests"
rt_wait_for 10 '[ "$(q "select count(*) from ratchet.runs where workflow_id = '"'recalc'"' and status = '"'completed'"'")" = 2 ]'
rt_assert_eq 5 "$(q "select output::text from ratchet.runs where id = '$run'")" "the run saw the last event"
# It started one period after the last event, not before (10 ms: timestamp rounding).
gap=$(q "select round(extract(epoch from r.started_at - e.received_at) * 1000) from ratchet.runs r
         join ratchet.events e on e.id = r.event->>'id' where r.id = '$run'")
((gap >= 990)) || rt_fail "run started ${gap} ms after the last event, expected >= 1 s"
((gap < 2000)) || rt_fail "run started ${gap} ms after the last event, expected about 1 s"

# The window closed when the run started: a new event makes a new run.
send balance.changed '{"acct": "a1", "n": 6}'
rt_assert_eq 2 "$(q "select count(*) from ratchet.runs where workflow_id = 'recalc' and event->'data'->>'acct' = 'a1'")" "a new window after the run started"
rt_wait_for 10 '[ "$(q "select output::text from ratchet.runs where workflow_id = '"'recalc'"' and event->'"'data'"'->>'"'n'"' = '"'6'"' and status = '"'completed'"'")" = 6 ]'

# timeout: an event every 250 ms for 4.5 s never leaves a 1 s gap, yet a run starts at
# most 2 s after the first event of its window.
for n in $(seq 1 18); do send price.tick "{\"n\": $n}"; sleep 0.25; done
rt_wait_for 10 '[ "$(q "select count(*) from ratchet.runs where workflow_id = '"'recalc-capped'"' and status <> '"'completed'"'")" = 0 ]'
nruns=$(q "select count(*) from ratchet.runs where workflow_id = 'recalc-capped'")
((nruns >= 2)) || rt_fail "timeout: expected at least 2 runs while events kept coming, got $nruns"
# For each run: ms from the first event of its window (the one that created it) to its start.
q "select round(extract(epoch from r.started_at - e.received_at) * 1000), r.output::text
   from ratchet.runs r join ratchet.events e on e.id = r.event_id where r.workflow_id = 'recalc-capped'
   order by r.started_at" > "$T/cap"
while IFS='|' read -r delay out; do
  ((delay >= 1990 && delay < 2700)) || rt_fail "timeout: a run started ${delay} ms after its first event (expected ~2 s): $(cat "$T/cap")"
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
assert rows[-1][0] == 18, rows
PY

# start_timeout counts from when the run is due: moving it moves the deadline too (else
# the run, first due 1 s after the first event, would expire 2 s after it).
for n in 1 2 3 4; do send late.tick "{\"n\": $n}"; sleep 0.6; done
rt_wait_for 10 '[ "$(q "select status || '"':'"' || output::text from ratchet.runs where workflow_id = '"'recalc-late'"'")" = completed:4 ]'

rt_serve_stop a
rt_check_log "$T/a.log"
echo "ok: admission debounce ($nruns capped runs: $(tr '\n' ' ' < "$T/cap"))"
