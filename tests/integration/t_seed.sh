#!/usr/bin/env bash
# The seed's acceptance test for a job system: 100 runs started at once (one API request
# of 100 events) all complete with no failure, while the limits hold: at most 2 running
# steps per account (concurrency key, 5 accounts), and a throttle of 40 run starts per
# second with a burst of 5. Each run's exec step appends "start|end ACCOUNT NS" lines.
source "$(dirname "$0")/lib.sh"
rt_test_init seed

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=8
cat > "$W/job.json" <<EOF2
{"id": "seed-job", "triggers": [{"event": "seed.job"}],
 "concurrency": {"limit": 2, "key": "event.data.account"},
 "throttle": {"limit": 40, "period": "1s", "burst": 5},
 "steps": [
  {"id": "work", "uses": "exec", "with": {"command": ["sh", "-c",
    "echo start \${{ event.data.account }} \$(date +%s%N) >> $T/lines; sleep 0.05; echo end \${{ event.data.account }} \$(date +%s%N) >> $T/lines; echo \${{ event.data.n }}"]}},
  {"id": "done", "uses": "transform", "with": {"value": "\${{ steps.work.output * 2 }}"}}]}
EOF2
"$RATCHET_BIN" validate "$W" >/dev/null || rt_fail "workflow invalid"
"$RATCHET_BIN" migrate >/dev/null
rt_serve_start a
rt_serve_wait_ready a

python3 -c '
import json
print(json.dumps([{"name": "seed.job", "id": "seed-%d" % n, "data": {"account": "acct-%d" % (n % 5), "n": n}}
                  for n in range(100)]))' > "$T/events.json"
code=$(curl -sS -o "$T/answer.json" -w '%{http_code}' -H 'Content-Type: application/json' \
  --data-binary @"$T/events.json" "$(rt_serve_url a)/api/v1/events")
[[ $code == 200 || $code == 201 || $code == 202 ]] || rt_fail "POST /api/v1/events: $code $(cat "$T/answer.json")"
rt_assert_eq 100 "$(rt_psql "select count(*) from ratchet.runs where workflow_id = 'seed-job'")" "100 runs created"

unfinished() { rt_psql "select count(*) from ratchet.runs where workflow_id = 'seed-job' and status in ('queued', 'running')"; }
rt_wait_for 120 '[ "$(unfinished)" = 0 ]'
rt_assert_eq "completed 100" "$(rt_psql "select status || ' ' || count(*) from ratchet.runs where workflow_id = 'seed-job' group by status")" "every run completed"
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.step_attempts")" "no failed attempt"
rt_assert_eq 9900 "$(rt_psql "select sum((output)::int) from ratchet.runs where workflow_id = 'seed-job'")" "every run's output (2 × n)"

per_account=$(python3 "$RT_INTEGRATION_DIR/peak.py" "$T/lines" --per-key)
[ "$per_account" -le 2 ] || rt_fail "concurrency limit 2 exceeded: $per_account at once for one account"
rt_assert_eq 100 "$(grep -c '^start ' "$T/lines")" "executions"
python3 - "$T/lines" <<'PY' > "$T/report" || rt_fail "$(cat "$T/report")"
import sys
starts = sorted(int(line.split()[2]) for line in open(sys.argv[1]) if line.startswith("start "))
most = max(sum(1 for u in starts if s <= u < s + 700_000_000) for s in starts)
print(f"max starts in 0.7 s {most}; span {(starts[-1] - starts[0]) / 1e9:.2f} s")
assert most <= 45, "throttle 40/s + burst 5 exceeded"
PY
echo "max running per account $per_account"
cat "$T/report"
rt_serve_stop a
echo "PASS seed"
