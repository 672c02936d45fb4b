#!/usr/bin/env bash
# Pausing a whole workflow: events that arrive through RabbitMQ while it is paused are
# stored and their runs held (none starts), across two serve processes and a restart;
# a manual run is held too; resume starts every held run (on_resume run), or drops them
# (--on-resume skip); a replay is held as well. A paused cron workflow holds one run per
# trigger. Each change is audited.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/wf_lib.sh"
rt_test_init workflows_pause
rt_use_amqp

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2
wf_write "$W/ev.json" ev done '[{"event": "pz.tick"}]'
wf_write "$W/cr.json" cr tick '[{"cron": "* * * * * *"}]'
"$RATCHET_BIN" migrate >/dev/null
rt_serve_start a
rt_serve_start b
rt_serve_wait_ready a
rt_serve_wait_ready b
rt_wait_for 60 'grep -q "consuming events matching.*pz.tick" "$T/a.log" && grep -q "consuming events matching.*pz.tick" "$T/b.log"'

held() { rt_psql "select count(*) from ratchet.workflow_held where workflow_id = '$1'"; }
events() { rt_psql "select count(*) from ratchet.events where name = 'pz.tick'"; }

# 1. Pause, then 100 events through RabbitMQ: stored, held, no run.
"$RATCHET_BIN" workflows pause ev | grep -q '^paused ev' || rt_fail "pause"
"$RATCHET_BIN" send pz.tick --via amqp --count 100 --id p >/dev/null
rt_wait_for 60 '[ "$(events)" = 100 ]'
rt_wait_for 60 '[ "$(held ev)" = 100 ]'
rt_assert_eq 0 "$(wf_runs ev)" "runs of the paused workflow"
# A manual run is held as well (202), through either process.
out=$(wf_http b POST /api/v1/workflows/ev/runs '{}')
[[ ${out%% *} == 202 && $out == *'"status":"held"'* ]] || rt_fail "manual run while paused: $out"
rt_assert_eq 101 "$(held ev)" "held after the manual run"

# 2. It stays paused across a restart of every process.
rt_serve_stop a
rt_serve_stop b
rt_serve_start a
rt_serve_wait_ready a
"$RATCHET_BIN" send pz.tick --via amqp --count 5 --id r >/dev/null
rt_wait_for 60 '[ "$(held ev)" = 106 ]'
rt_assert_eq 0 "$(wf_runs ev)" "runs after the restart"
"$RATCHET_BIN" workflows --json | python3 -c '
import json, sys
r = {w["id"]: w for w in json.load(sys.stdin)}["ev"]
assert r["paused"] and r["held"] == 106 and r["in_flight"] == 0, r' || rt_fail "list while paused"

# 3. Resume (on_resume run, the default): every held run starts, once.
out=$("$RATCHET_BIN" workflows resume ev)
[[ $out == *"106 held run(s) started, 0 skipped"* ]] || rt_fail "resume: $out"
rt_wait_for 120 '[ "$(wf_runs ev "status = '"'completed'"'")" = 106 ]'
rt_assert_eq 0 "$(held ev)" "held after resume"
rt_assert_eq 106 "$(rt_psql "select count(distinct event->>'id') from ratchet.runs where workflow_id = 'ev'")" "one run per held request"

# 4. The skip variant: pause, 100 more events, resume --on-resume skip: none runs.
"$RATCHET_BIN" workflows pause ev >/dev/null
"$RATCHET_BIN" send pz.tick --via amqp --count 100 --id q >/dev/null
rt_wait_for 60 '[ "$(events)" = 205 ]'
rt_wait_for 60 '[ "$(held ev)" = 100 ]'
# A replay through the API is held too: 202 like a manual run, no Location (no run yet).
done1=$(rt_psql "select id from ratchet.runs where workflow_id = 'ev' and status = 'completed' limit 1")
code=$(rt_http POST "$(rt_serve_url a)/api/v1/runs/$done1/replay" -H 'content-type: application/json' --data-binary '{}')
[[ $code == 202 && $(<"$T/http.body") == *'"status":"held"'* ]] || rt_fail "replay while paused: $code $(<"$T/http.body")"
if grep -qi '^location:' "$T/http.hdrs"; then rt_fail "a held replay names a run: $(cat "$T/http.hdrs")"; fi
rt_assert_eq 101 "$(held ev)" "held after the replay"
out=$(wf_http a POST /api/v1/workflows/ev/resume '{"on_resume": "skip"}')
[[ ${out%% *} == 200 && $out == *'"skipped":101'* && $out == *'"started":0'* ]] || rt_fail "resume skip: $out"
rt_assert_eq 0 "$(held ev)" "held after resume skip"
rt_assert_eq 106 "$(wf_runs ev)" "runs after resume skip"
# After a resume, events start runs again.
"$RATCHET_BIN" send pz.tick --via amqp --count 1 --id after >/dev/null
rt_wait_for 60 '[ "$(wf_runs ev)" = 107 ]'

# 5. A paused cron workflow: its ticks fold into one held run per trigger.
rt_wait_for 60 '[ "$(wf_runs cr)" -ge 1 ]'
"$RATCHET_BIN" workflows pause cr >/dev/null
n=$(wf_runs cr)
rt_wait_for 30 '[ "$(held cr)" = 1 ] && [ "$(rt_psql "select count(*) from ratchet.schedules where workflow_id = '"'cr'"' and last_fire_at > now() - interval '"'1 second'"'")" = 1 ]'
sleep 2.5 # ticks keep coming while paused: they must not make more runs or more held rows
rt_assert_eq "$n" "$(wf_runs cr)" "cron runs while paused"
rt_assert_eq 1 "$(held cr)" "held rows of a per-second cron paused for seconds"
"$RATCHET_BIN" workflows resume cr | grep -q "1 held run(s) started" || rt_fail "cron resume"

rt_assert_eq 3 "$(rt_psql "select count(*) from ratchet.audit_log where action = 'workflow.pause'")" "pause audit records"
rt_assert_eq 3 "$(rt_psql "select count(*) from ratchet.audit_log where action = 'workflow.resume'")" "resume audit records"
"$RATCHET_BIN" audit verify >/dev/null || rt_fail "audit chain broken"
rt_serve_stop a
rt_contract_check # every API answer above against schemas/openapi.yaml
echo "ok: workflows pause"
