#!/usr/bin/env bash
# Two serve processes: a workflow changed (CLI apply) while a run of the old version
# sleeps — the sleeping run finishes on the old version (whichever process wakes it), new
# runs through the other process use the new one, and `ratchet show` names each run's
# version. Removing a workflow with runs in flight: no new runs (API 404, events start
# nothing), the runs in flight finish; --cancel-running cancels them.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/wf_lib.sh"
rt_test_init workflows_versions

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2
nap='{"id": "nap", "uses": "sleep", "with": {"duration": "3s"}}'
wf_write "$W/ver.json" ver v1 '[{"event": "ver.go"}]' "$nap"
"$RATCHET_BIN" migrate >/dev/null
rt_serve_start a
rt_serve_start b
rt_serve_wait_ready a
rt_serve_wait_ready b
v1=$(rt_psql "select hash from ratchet.workflow_registry where workflow_id = 'ver'")
status_of() { rt_psql "select status from ratchet.runs where id = '$1'"; }

# 1. A run of v1 sleeps; v2 is applied; a run through b uses v2; the first ends on v1.
first=$(wf_api_run a ver)
rt_wait_for 60 '[ "$(rt_psql "select status from ratchet.steps where run_id = '"'$first'"' and step_id = '"'nap'"'")" = sleeping ]'
wf_write "$T/ver2.json" ver v2 '[{"event": "ver.go"}]'
"$RATCHET_BIN" workflows apply "$T/ver2.json" >/dev/null
v2=$(rt_psql "select hash from ratchet.workflow_registry where workflow_id = 'ver'")
[ "$v1" != "$v2" ] || rt_fail "apply did not make a new version"
rt_wait_for 10 'curl -sS "$(rt_serve_url b)/api/v1/workflows/ver" | grep -q "$v2"'
second=$(wf_api_run b ver)
rt_wait_for 60 '[ "$(status_of "$first")" = completed ] && [ "$(status_of "$second")" = completed ]'
rt_assert_eq '"v1"' "$(rt_psql "select output::text from ratchet.runs where id = '$first'")" "the sleeping run kept v1"
rt_assert_eq '"v2"' "$(rt_psql "select output::text from ratchet.runs where id = '$second'")" "the new run used v2"
"$RATCHET_BIN" show "$first" | grep -q "^version   $v1" || rt_fail "show does not name v1: $("$RATCHET_BIN" show "$first")"
"$RATCHET_BIN" show "$second" --json | grep -q "\"version\": \"$v2\"" || rt_fail "show --json does not name v2"

# 2. Remove with runs in flight: they finish; nothing new starts.
longnap='{"id": "nap", "uses": "sleep", "with": {"duration": "12s"}}' # outlasts the removal on a slow machine
wf_write "$T/ver3.json" ver v3 '[{"event": "ver.go"}]' "$longnap"
"$RATCHET_BIN" workflows apply "$T/ver3.json" >/dev/null
rt_wait_for 10 'curl -sS "$(rt_serve_url a)/api/v1/workflows/ver" | grep -q "v3"'
r1=$(wf_api_run a ver)
r2=$(wf_api_run b ver)
rt_wait_for 60 '[ "$(rt_psql "select count(*) from ratchet.steps where run_id in ('"'$r1', '$r2'"') and step_id = '"'nap'"' and status = '"'sleeping'"'")" = 2 ]'
out=$("$RATCHET_BIN" workflows remove ver)
[[ $out == *"2 run(s) in flight finish"* ]] || rt_fail "remove: $out"
rt_wait_for 10 '[ "$(wf_http b POST /api/v1/workflows/ver/runs "{}" | cut -d" " -f1)" = 404 ]'
rt_wait_for 10 '[ "$(wf_http a POST /api/v1/workflows/ver/runs "{}" | cut -d" " -f1)" = 404 ]'
if "$RATCHET_BIN" run ver 2>"$T/run.err"; then rt_fail "ratchet run of a removed workflow started"; fi
grep -q "was removed" "$T/run.err" || rt_fail "ratchet run: $(cat "$T/run.err")"
n=$(wf_runs ver)
wf_http a POST /api/v1/events '{"name": "ver.go", "data": {}}' >/dev/null
rt_wait_for 60 '[ "$(status_of "$r1")" = completed ] && [ "$(status_of "$r2")" = completed ]'
rt_assert_eq "$n" "$(wf_runs ver)" "runs after the removal (the event started none)"
rt_assert_eq '"v3"' "$(rt_psql "select output::text from ratchet.runs where id = '$r1'")" "in-flight run finished on its version"
"$RATCHET_BIN" workflows --json | python3 -c '
import json, sys
r = {w["id"]: w for w in json.load(sys.stdin)}["ver"]
assert r["removed"] and not r["enabled"], r' || rt_fail "list after remove"

# 3. Back (apply), then remove --cancel-running (through the API): the sleepers are cancelled.
"$RATCHET_BIN" workflows apply "$T/ver3.json" >/dev/null
rt_wait_for 10 '[ "$(wf_http b POST /api/v1/workflows/ver/runs "{}" | cut -d" " -f1)" = 201 ]'
r3=$(rt_psql "select id from ratchet.runs where workflow_id = 'ver' order by created_at desc limit 1")
rt_wait_for 60 '[ "$(rt_psql "select status from ratchet.steps where run_id = '"'$r3'"' and step_id = '"'nap'"'")" = sleeping ]'
out=$(wf_http a DELETE "/api/v1/workflows/ver?cancel_running=true")
[[ ${out%% *} == 200 && $out == *'"cancelled":1'* ]] || rt_fail "DELETE cancel_running: $out"
rt_wait_for 30 '[ "$(status_of "$r3")" = cancelled ]'
rt_assert_eq 2 "$(rt_psql "select count(*) from ratchet.audit_log where action = 'workflow.remove' and subject = 'ver'")" "remove audit records"
"$RATCHET_BIN" workflows history ver | grep -c " remove by " | grep -q 2 || rt_fail "history without the removals"

rt_serve_stop a
rt_serve_stop b
rt_contract_check # every API answer above against schemas/openapi.yaml
echo "ok: workflows versions"
