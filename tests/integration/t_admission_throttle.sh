#!/usr/bin/env bash
# throttle (GCRA), limit 5 per 1s with burst 2: 20 requests at once are all created (none
# dropped); burst + 1 start at once, then one every 200 ms. No 1 s window holds more than
# limit + burst due times, the measured start rate is within 10 % of the limit, and
# another key value has its own budget.
source "$(dirname "$0")/lib.sh"
rt_test_init admission_throttle

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=4
cat > "$W/thr.json" <<'EOF2'
{"id": "call-api", "triggers": [{"event": "api.call"}], "throttle": {"limit": 5, "period": "1s", "burst": 2, "key": "event.data.tenant"},
 "steps": [{"id": "a", "uses": "transform", "with": {"value": "${{ event.data.i }}"}}]}
EOF2
"$RATCHET_BIN" migrate >/dev/null
rt_serve_start a
rt_serve_wait_ready a

q() { rt_psql "$1"; }
N=20 LIMIT=5 BURST=2
pids=()
for i in $(seq 1 $N); do
  "$RATCHET_BIN" send api.call --data "{\"tenant\": \"t1\", \"i\": $i}" >/dev/null 2>&1 & pids+=($!)
done
"$RATCHET_BIN" send api.call --data '{"tenant": "t2", "i": 0}' >/dev/null 2>&1 & pids+=($!)
for p in "${pids[@]}"; do wait "$p" || rt_fail "a send failed"; done
rt_assert_eq $((N + 1)) "$(q "select count(*) from ratchet.runs where workflow_id = 'call-api'")" "every request made a run"
rt_wait_for 60 '[ "$(q "select count(*) from ratchet.runs where workflow_id = '"'call-api'"' and status <> '"'completed'"'")" = 0 ]'

# t2's budget is its own: it was not queued behind t1.
lag=$(q "select round(extract(epoch from started_at - created_at) * 1000) from ratchet.runs where event->'data'->>'tenant' = 't2'")
((lag < 500)) || rt_fail "t2 waited ${lag} ms behind t1's throttle"

# Due times (admission's decision; immediate runs have none) and measured start times, ms.
q "select round(extract(epoch from coalesce(scheduled_at, created_at)) * 1000)::bigint from ratchet.runs
   where event->'data'->>'tenant' = 't1' order by 1" > "$T/due"
q "select round(extract(epoch from started_at) * 1000)::bigint from ratchet.runs
   where event->'data'->>'tenant' = 't1' order by 1" > "$T/start"
python3 - "$T/due" "$T/start" $LIMIT $BURST <<'PY' > "$T/report" || rt_fail "$(cat "$T/report")"
import sys
due = [int(x) for x in open(sys.argv[1])]
start = [int(x) for x in open(sys.argv[2])]
limit, burst = int(sys.argv[3]), int(sys.argv[4])
def most_in_window(ts, width):
    return max(sum(1 for u in ts if t <= u < t + width) for t in ts)
cap = limit + burst
d = most_in_window(due, 1000)
# Start times also carry the engine's wake-up latency: the waker sleeps up to 250 ms
# after signalling a due item, so an item due soon after is started up to that late.
# Count starts in windows shortened by that much.
s = most_in_window(start, 700)
span = (start[-1] - start[0]) / 1000.0
rate = (len(start) - 1 - burst) / span  # the first burst + 1 start together
due_rate = (len(due) - 1 - burst) / ((due[-1] - due[0]) / 1000.0)
late = max(b - a for a, b in zip(due, start))
print(f"due: max {d} per 1 s window; starts: max {s} per 0.7 s window, latest start {late} ms after due; "
      f"span {span:.2f} s; steady rate {rate:.2f}/s started, {due_rate:.2f}/s due (limit {limit}/s)")
assert d <= cap, f"due times: {d} in one 1 s window > limit + burst = {cap}"
assert s <= cap, f"start times: {s} in one 0.7 s window > limit + burst = {cap}"
assert abs(rate - limit) <= 0.1 * limit, f"rate {rate:.2f}/s not within 10% of {limit}/s"
PY

rt_serve_stop a
rt_check_log "$T/a.log"
echo "ok: admission throttle: $(cat "$T/report")"
