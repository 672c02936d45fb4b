#!/usr/bin/env bash
# wait_for_event: an event after the wait, an event before the wait (lookback), a
# timeout (output null), any-of several names, an `if` over `async`; cancel_on cancels a
# sleeping run. Events come in through `ratchet send` (the broker tests cover transports).
source "$(dirname "$0")/lib.sh"
rt_test_init wait_events

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2
cat > "$W/waiter.json" <<'EOF2'
{"id": "waiter", "steps": [
  {"id": "nap", "uses": "sleep", "with": {"duration": "${{ default(event.data.nap, '10ms') }}"}},
  {"id": "wait", "uses": "wait_for_event", "with": {"event": ["order.shipped", "order.lost"],
     "if": "async.data.order == event.data.order", "timeout": "${{ default(event.data.timeout, '60s') }}"}},
  {"id": "after", "uses": "transform", "with": {"value": "${{ steps.wait.output }}"}}
]}
EOF2
cat > "$W/cancellable.json" <<'EOF2'
{"id": "cancellable", "cancel_on": [{"event": "order.cancelled", "if": "async.data.order == event.data.order"}],
 "steps": [{"id": "nap", "uses": "sleep", "with": {"duration": "1h"}}, {"id": "never", "uses": "transform", "with": {"value": 1}}]}
EOF2
cat > "$W/lookback.json" <<'EOF2'
{"id": "lookback", "steps": [{"id": "wait", "uses": "wait_for_event",
  "with": {"event": "flag.raised", "lookback": "1h", "timeout": "30s"}}]}
EOF2
"$RATCHET_BIN" migrate >/dev/null
rt_serve_start a

output() { rt_psql "select output->'data'->>'order' || '/' || (output->>'name') from ratchet.runs where id = '$1'"; }
step_status() { rt_psql "select status from ratchet.steps where run_id = '$1' and step_id = '$2'"; }

# 1. Event after the wait; another order's event does not match the `if`.
r1=$("$RATCHET_BIN" run waiter --data '{"order": "o1"}')
rt_wait_for 60 '[ "$(step_status '"$r1"' wait)" = waiting ]'
[ "$(status "$r1")" = waiting ] || rt_fail "run should be waiting, is $(status "$r1")"
"$RATCHET_BIN" send order.shipped --data '{"order": "other"}' >/dev/null
sleep 0.5 # a wrong event must not complete it: nothing to await, give it a moment
rt_assert_eq waiting "$(step_status "$r1" wait)" "an event for another order does not match"
"$RATCHET_BIN" send order.shipped --data '{"order": "o1"}' >/dev/null
rt_wait_for 60 '[ "$(status '"$r1"')" = completed ]'
rt_assert_eq "o1/order.shipped" "$(output "$r1")" "the matched event is the step's output"
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.waits where run_id = '$r1'")" "wait rows removed"

# 2. Any of several names.
r2=$("$RATCHET_BIN" run waiter --data '{"order": "o2"}')
rt_wait_for 60 '[ "$(step_status '"$r2"' wait)" = waiting ]'
"$RATCHET_BIN" send order.lost --data '{"order": "o2"}' >/dev/null
rt_wait_for 60 '[ "$(status '"$r2"')" = completed ]'
rt_assert_eq "o2/order.lost" "$(output "$r2")" "any-of"

# 3. Event before the wait was registered (while the run sleeps): found by lookback.
r3=$("$RATCHET_BIN" run waiter --data '{"order": "o3", "nap": "2s"}')
rt_wait_for 60 '[ "$(step_status '"$r3"' nap)" = sleeping ]'
"$RATCHET_BIN" send order.shipped --data '{"order": "o3"}' >/dev/null
rt_wait_for 60 '[ "$(status '"$r3"')" = completed ]'
rt_assert_eq "o3/order.shipped" "$(output "$r3")" "an event before the wait counts (default lookback: run start)"

# 4. lookback reaching before the run started.
"$RATCHET_BIN" send flag.raised --id early-flag >/dev/null
r4=$("$RATCHET_BIN" run lookback --wait)
rt_assert_eq "early-flag" "$(rt_psql "select output->>'id' from ratchet.runs where id = '$r4'")" "lookback: 1h"

# 5. Timeout: output null, run completes.
r5=$("$RATCHET_BIN" run waiter --data '{"order": "o5", "timeout": "1s"}' --wait)
rt_assert_eq "null" "$(rt_psql "select coalesce(output::text, 'null') from ratchet.runs where id = '$r5'")" "timeout gives null"

# 6. cancel_on cancels a sleeping run (only the matching one).
c1=$("$RATCHET_BIN" run cancellable --data '{"order": "c1"}')
c2=$("$RATCHET_BIN" run cancellable --data '{"order": "c2"}')
rt_wait_for 60 '[ "$(status '"$c1"')" = sleeping ] && [ "$(status '"$c2"')" = sleeping ]'
"$RATCHET_BIN" send order.cancelled --data '{"order": "c1"}' >/dev/null
rt_assert_eq cancelled "$(status "$c1")" "cancel_on cancels the matching run at ingest"
rt_assert_eq sleeping "$(status "$c2")" "the other run keeps sleeping"
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.queue where run_id = '$c1'")" "its queue item is gone"
rt_serve_stop a
echo "ok: wait_events"
