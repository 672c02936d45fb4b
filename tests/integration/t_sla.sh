#!/usr/bin/env bash
# Workflow `sla` (engine/run/alerts.c): a run still unfinished past it raises
# ratchet.alert.sla_exceeded once, and goes on (unlike `timeout`, which ends it). Two serve
# processes check the same database: each overdue run gets exactly one alert event, which
# starts a workflow triggered by it. A run that passed its SLA while no serve ran is
# alerted after the start, and restarting serve raises nothing again. A run that finishes
# within its SLA, or a workflow without one, raises nothing. A run held at its approval
# gate is not alerted while it waits; its SLA counts from the approval. /metrics shows
# ratchet_runs_past_sla and ratchet_alerts_total{alert="sla_exceeded"}.
source "$(dirname "$0")/lib.sh"
rt_test_init sla

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2 RATCHET_LOG_LEVEL=debug
export RATCHET_ALERT_INTERVAL=300ms RATCHET_ALERT_QUEUE_BACKLOG=1h RATCHET_ALERT_TIMEOUT_GRACE=1h \
  RATCHET_ALERT_FAILURE_MIN_RUNS=100000
# Finishes when the file named by event.data.gate exists: late, but not ended by the SLA.
cat >"$W/slow.json" <<'EOF2'
{"id": "slow", "sla": "1s", "steps": [{"id": "wait", "uses": "exec",
 "with": {"command": ["sh", "-c", "while [ ! -e \"$1\" ]; do sleep 0.05; done; echo '{\"ok\": true}'", "sh", "${{ event.data.gate }}"]}}]}
EOF2
cat >"$W/nap.json" <<'EOF2'
{"id": "nap", "sla": "1s", "steps": [{"id": "nap", "uses": "sleep", "with": {"duration": "1h"}}]}
EOF2
cat >"$W/quick.json" <<'EOF2'
{"id": "quick", "sla": "1h", "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF2
cat >"$W/no-sla.json" <<'EOF2'
{"id": "no-sla", "steps": [{"id": "nap", "uses": "sleep", "with": {"duration": "1h"}}]}
EOF2
cat >"$W/gated-nap.json" <<'EOF2'
{"id": "gated-nap", "sla": "1s", "triggers": [{"event": "nap.requested"}],
 "approval": {"required_for": ["agent"], "approvers": ["ops-lead"]},
 "steps": [{"id": "nap", "uses": "sleep", "with": {"duration": "1h"}}]}
EOF2
rt_use_approver ops-lead
cat >"$W/on-sla.json" <<'EOF2'
{"id": "on-sla", "triggers": [{"event": "ratchet.alert.sla_exceeded"}],
 "steps": [{"id": "note", "uses": "transform", "with": {"value": "${{ event.data.run_id }}"}}]}
EOF2
"$RATCHET_BIN" validate "$W" >/dev/null || rt_fail "validate"
printf '{"id": "bad-sla", "sla": "10 minutes", "steps": [{"id": "a", "uses": "log", "with": {"message": "x"}}]}' >"$T/bad.json"
"$RATCHET_BIN" validate "$T/bad.json" >"$T/bad.out" 2>&1 && rt_fail "an invalid sla validates"
grep -q 'sla' "$T/bad.out" || rt_fail "the error does not name sla: $(cat "$T/bad.out")"

q() { rt_psql "$1"; }
alerts_for() { q "select count(*) from ratchet.events where name = 'ratchet.alert.sla_exceeded' and envelope->'data'->>'run_id' = '$1'"; }
"$RATCHET_BIN" migrate >/dev/null

# 1. A nap run whose SLA passes while no serve is running.
early=$("$RATCHET_BIN" run nap 2>/dev/null)
q "update ratchet.runs set created_at = now() - interval '1 minute' where id = '$early'" >/dev/null

rt_serve_start a
rt_serve_start b
rt_serve_wait_ready a
rt_serve_wait_ready b
rt_wait_for 60 '[ "$(alerts_for "$early")" = 1 ]'

# 2. Two processes, four more overdue runs: each alerted exactly once; they keep running.
g=$T/gate
slow=$("$RATCHET_BIN" run slow --data "{\"gate\": \"$g\"}" 2>/dev/null)
naps=()
for _ in 1 2 3; do naps+=("$("$RATCHET_BIN" run nap 2>/dev/null)"); done
quick=$("$RATCHET_BIN" run quick --wait 2>/dev/null)
nosla=$("$RATCHET_BIN" run no-sla 2>/dev/null)
for r in "$slow" "${naps[@]}"; do
  rt_wait_for 60 '[ "$(alerts_for "$r")" -ge 1 ]'
done
rt_assert_eq running "$(q "select status from ratchet.runs where id = '$slow'")" "the slow run goes on past its SLA"
touch "$g"
rt_wait_for 60 '[ "$(q "select status from ratchet.runs where id = '"'$slow'"'")" = completed ]'
data=$(q "select envelope->'data' from ratchet.events where name = 'ratchet.alert.sla_exceeded' and envelope->'data'->>'run_id' = '$slow'")
python3 - "$data" "$slow" <<'EOF2' || rt_fail "alert data: $data"
import json, sys
d = json.loads(sys.argv[1])
assert d["run_id"] == sys.argv[2] and d["workflow"] == "slow" and d["sla"] == "1s" and d["sla_s"] == 1, d
assert d["status"] == "running" and d["late_s"] >= 0 and d["due_at"] > d["since"], d
EOF2
ev=$(q "select id from ratchet.events where name = 'ratchet.alert.sla_exceeded' and envelope->'data'->>'run_id' = '$slow'")
[[ $ev == ratchet:*:alert:sla_exceeded:$slow ]] || rt_fail "event id $ev"
rt_wait_for 60 '[ "$(q "select count(*) from ratchet.runs where workflow_id = '"'on-sla'"' and status = '"'completed'"' and output = to_jsonb('"'$slow'"'::text)")" = 1 ]'
rt_assert_eq 1 "$(q "select count(*) from ratchet.runs where workflow_id = 'on-sla' and output = to_jsonb('$slow'::text)")" "one handler run per alert"

# Both processes check three more times: still one alert per run.
n_checks() { grep -c "run(s) past their sla" "$T/$1.log" || true; }
# shellcheck disable=SC2034 # read inside rt_wait_for conditions
ca=$(n_checks a) cb=$(n_checks b)
rt_wait_for 60 '[ "$(n_checks a)" -ge $((ca + 3)) ] && [ "$(n_checks b)" -ge $((cb + 3)) ]'
for r in "$early" "$slow" "${naps[@]}"; do rt_assert_eq 1 "$(alerts_for "$r")" "one alert for $r"; done
rt_assert_eq 0 "$(alerts_for "$quick")" "a run that finished within its SLA"
rt_assert_eq 0 "$(alerts_for "$nosla")" "a workflow without an SLA"
rt_assert_eq 5 "$(q "select count(*) from ratchet.runs where sla_alerted_at is not null")" "marked runs"
rt_assert_eq 5 "$(q "select count(*) from ratchet.events where name = 'ratchet.alert.sla_exceeded'")" "alert events in all"
U=$(rt_serve_url a)
m=$(curl -fsS -m 30 "$U/metrics")
# The slow run finished; the early one and the three naps are still past their SLA.
grep -qE '^ratchet_runs_past_sla 4$' <<<"$m" || rt_fail "ratchet_runs_past_sla: $(grep past_sla <<<"$m")"
sa=$(curl -fsS -m 30 "$U/metrics" | awk '$1 == "ratchet_alerts_total{alert=\"sla_exceeded\"}" {print $2}')
sb=$(curl -fsS -m 30 "$(rt_serve_url b)/metrics" | awk '$1 == "ratchet_alerts_total{alert=\"sla_exceeded\"}" {print $2}')
rt_assert_eq 5 "$((sa + sb))" "alerts counted across the two processes"

# 3. A restart raises nothing again.
rt_serve_stop a
rt_serve_stop b
rt_serve_start c
rt_serve_wait_ready c
rt_wait_for 60 '[ "$(n_checks c)" -ge 3 ]'
rt_assert_eq 5 "$(q "select count(*) from ratchet.events where name = 'ratchet.alert.sla_exceeded'")" "no alert again after a restart"

# 4. Held at its approval gate well past 1 s: no alert while it waits; after the approval,
# one, counted from the approval.
ev=$("$RATCHET_BIN" send nap.requested --actor-type agent --actor-id bot --entity acct_1 --data '{}' 2>/dev/null)
held=$(q "select id from ratchet.runs where event_id = '$ev'")
rt_assert_eq awaiting_approval "$(q "select status from ratchet.runs where id = '$held'")" "the agent's run is held"
q "update ratchet.runs set created_at = now() - interval '1 minute' where id = '$held'" >/dev/null
# shellcheck disable=SC2034 # read inside rt_wait_for conditions
cc=$(n_checks c)
rt_wait_for 60 '[ "$(n_checks c)" -ge $((cc + 3)) ]'
rt_assert_eq 0 "$(alerts_for "$held")" "no SLA alert while the run waits for approval"
"$RATCHET_BIN" approve "$held" --as ops-lead --key "$T/ops-lead.key" >/dev/null 2>&1 || rt_fail "approve"
rt_wait_for 60 '[ "$(alerts_for "$held")" = 1 ]'
since=$(q "select envelope->'data'->>'since' from ratchet.events where name = 'ratchet.alert.sla_exceeded' and envelope->'data'->>'run_id' = '$held'")
decided=$(q "select ratchet.ts(decided_at) from ratchet.approvals where run_id = '$held' and step_id = ''")
rt_assert_eq "$decided" "$since" "the SLA counts from the approval"
rt_serve_stop c
echo "ok"
