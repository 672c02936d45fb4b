#!/usr/bin/env bash
# throttle (GCRA), limit 5 per 1s with burst 2: 20 requests at once are all created (none
# dropped); burst + 1 are due at once, then one every 200 ms. No 1 s window holds more
# than limit + burst due times, the due rate is within 10 % of the limit, no run starts
# before it is due, and another key value has its own budget.
# Timing: the requests arrive in one POST (one admission call, so the due times do not
# depend on how fast a loaded machine starts sender processes), and the checks are on
# admission's decisions and on lower bounds. How late a run starts after it is due is the
# machine's speed (printed, not asserted): a stalled worker may start due runs together.
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

N=20 LIMIT=5 BURST=2
ev='['
for i in $(seq 1 $N); do ev+="{\"name\": \"api.call\", \"data\": {\"tenant\": \"t1\", \"i\": $i}}, "; done
ev+='{"name": "api.call", "data": {"tenant": "t2", "i": 0}}]'
rt_send_events a 0 "$ev" >/dev/null || rt_fail "POST /api/v1/events failed"
rt_assert_eq $((N + 1)) "$(q "select count(*) from ratchet.runs where workflow_id = 'call-api'")" "every request made a run"
rt_wait_for 60 '[ "$(q "select count(*) from ratchet.runs where workflow_id = '"'call-api'"' and status <> '"'completed'"'")" = 0 ]'

# t2's budget is its own: admission gave it no throttle slot (a run held back gets
# trigger.admission.not_before), however long the batch's transaction took on a loaded
# machine (comparing created_at with the due time measured that, not the throttle).
t2=$(q "select coalesce(trigger->'admission'->>'not_before', 'none') from ratchet.runs where event->'data'->>'tenant' = 't2'")
rt_assert_eq none "$t2" "t2 was held back behind t1's throttle (not_before)"
held=$(q "select count(*) from ratchet.runs where event->'data'->>'tenant' = 't1' and trigger->'admission' ? 'not_before'")
((held >= N - LIMIT - BURST)) || rt_fail "only $held of t1's $N runs were held back: the not_before check above proves nothing"

# Due times (admission's decision; immediate runs have none) and measured start times, ms.
q "select round(extract(epoch from coalesce(scheduled_at, created_at)) * 1000)::bigint from ratchet.runs
   where event->'data'->>'tenant' = 't1' order by 1" > "$T/due"
q "select round(extract(epoch from started_at - coalesce(scheduled_at, created_at)) * 1000)::bigint from ratchet.runs
   where event->'data'->>'tenant' = 't1' order by 1" > "$T/late"
python3 - "$T/due" "$T/late" $LIMIT $BURST <<'PY' > "$T/report" || rt_fail "$(cat "$T/report")"
import sys
due = [int(x) for x in open(sys.argv[1])]
lates = [int(x) for x in open(sys.argv[2])]
limit, burst = int(sys.argv[3]), int(sys.argv[4])
def most_in_window(ts, width):
    return max(sum(1 for u in ts if t <= u < t + width) for t in ts)
cap = limit + burst
d = most_in_window(due, 1000)
due_rate = (len(due) - 1 - burst) / ((due[-1] - due[0]) / 1000.0)  # the first burst + 1 are due together
print(f"due: max {d} per 1 s window; steady rate {due_rate:.2f}/s due (limit {limit}/s); "
      f"starts {min(lates)} to {max(lates)} ms after due")
assert d <= cap, f"due times: {d} in one 1 s window > limit + burst = {cap}"
assert abs(due_rate - limit) <= 0.1 * limit, f"due rate {due_rate:.2f}/s not within 10% of {limit}/s"
# 10 ms: timestamp rounding.
assert min(lates) >= -10, f"a run started {-min(lates)} ms before it was due"
PY

rt_serve_stop a
rt_check_log "$T/a.log"
echo "ok: admission throttle: $(cat "$T/report")"
