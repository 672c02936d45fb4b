#!/usr/bin/env bash
# The registry across processes: a workflow applied through one serve (CLI, then API PUT
# on the other) can be triggered through the other within 1 s, by a manual run and by an
# event; a bad definition is refused with the validator's message and JSON path; every
# change is an audit record and a history entry with a diff.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/wf_lib.sh"
rt_test_init workflows_apply

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2
wf_write "$W/seed.json" seed s1
"$RATCHET_BIN" migrate >/dev/null
rt_serve_start a
rt_serve_start b
rt_serve_wait_ready a
rt_serve_wait_ready b
rt_wait_for 30 'grep -q "registry reloaded" "$T/a.log" && grep -q "registry reloaded" "$T/b.log"'

# 1. Applied through the CLI, started through b's API: within 1 s of the apply.
wf_write "$T/fresh.json" fresh f1 '[{"event": "fresh.ping"}]'
out=$(python3 "$RT_INTEGRATION_DIR/wf_propagation.py" "[\"$RATCHET_BIN\", \"workflows\", \"apply\", \"$T/fresh.json\"]" \
  POST "$(rt_serve_url b)/api/v1/workflows/fresh/runs" 201) || rt_fail "fresh never runnable through b: $out"
ms=${out%% *}
((ms <= 1000)) || rt_fail "the first run through b came $ms ms after the apply"
run1=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "${out#* }")
echo "ok: applied through the CLI, run through b $ms ms after the apply"
rt_wait_for 60 '[ "$(rt_psql "select status from ratchet.runs where id = '"'$run1'"'")" = completed ]'
# ... and its event trigger is subscribed in b too.
out=$(wf_http b POST /api/v1/events '{"name": "fresh.ping", "data": {}}')
[[ ${out%% *} == 202 || ${out%% *} == 201 || ${out%% *} == 200 ]] || rt_fail "event via b: $out"
rt_wait_for 30 '[ "$(wf_runs fresh "trigger->>'"'type'"' = '"'event'"'")" = 1 ]'

# 2. A new version through b's API (PUT), run through a within 1 s: the new version runs.
def2='{"id": "fresh", "triggers": [{"event": "fresh.ping"}], "steps": [{"id": "v", "uses": "transform", "with": {"value": "f2"}}]}'
out=$(python3 "$RT_INTEGRATION_DIR/wf_propagation.py" "[\"PUT\", \"$(rt_serve_url b)/api/v1/workflows/fresh\", $(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$def2")]" \
  GET "$(rt_serve_url a)/api/v1/workflows/fresh" 200 '"value":"f2"') || rt_fail "a never had the PUT's version: $out"
ms=${out%% *}
((ms <= 1000)) || rt_fail "a had the new version $ms ms after the PUT"
v2=$(rt_psql "select hash from ratchet.workflow_registry where workflow_id = 'fresh'")
run2=$(wf_api_run a fresh)
echo "ok: PUT through b, new version in a $ms ms after it"
rt_wait_for 60 '[ "$(rt_psql "select status from ratchet.runs where id = '"'$run2'"'")" = completed ]'
rt_assert_eq '"f2"' "$(rt_psql "select output::text from ratchet.runs where id = '$run2'")" "run after the PUT uses the new version"
rt_assert_eq "$v2" "$(rt_psql "select workflow_hash from ratchet.runs where id = '$run2'")" "run pinned to the new version"

# 3. The same PUT again changes nothing (200, changed false).
out=$(wf_http a PUT /api/v1/workflows/fresh "$def2")
[[ ${out%% *} == 200 && $out == *'"changed":false'* ]] || rt_fail "repeated PUT: $out"

# 4. A bad definition: 400 with the validator's message and JSON path; nothing stored.
out=$(wf_http a PUT /api/v1/workflows/fresh '{"id": "fresh", "steps": [{"id": "v", "uses": "transfrom"}]}')
[[ ${out%% *} == 400 && $out == *'$.steps[0].uses'* && $out == *'unknown step type'* ]] || rt_fail "bad PUT: $out"
echo '{"id": "fresh", "steps": [{"id": "v", "uses": "transfrom"}]}' > "$T/bad.json"
if "$RATCHET_BIN" workflows apply "$T/bad.json" 2>"$T/bad.err"; then rt_fail "apply of a bad file succeeded"; fi
grep -q '\$.steps\[0\].uses' "$T/bad.err" || rt_fail "apply error without the JSON path: $(cat "$T/bad.err")"
out=$(wf_http a PUT /api/v1/workflows/other "$def2")
[[ ${out%% *} == 400 && $out == *'$.id'* ]] || rt_fail "PUT with another id: $out"
rt_assert_eq "$v2" "$(rt_psql "select hash from ratchet.workflow_registry where workflow_id = 'fresh'")" "bad definitions left the version alone"

# 5. The listing, the history with a diff, and the audit records.
"$RATCHET_BIN" workflows --json | python3 -c '
import json, sys
rows = {r["id"]: r for r in json.load(sys.stdin)}
f = rows["fresh"]
assert f["version"] == sys.argv[1] and f["source"] == "api" and f["enabled"] and not f["paused"], f
assert f["last_run"]["status"] == "completed" and f["in_flight"] == 0, f
assert f["triggers"] == [{"event": "fresh.ping"}], f
assert rows["seed"]["source"] == "file", rows["seed"]' "$v2" || rt_fail "workflows --json"
"$RATCHET_BIN" workflows history fresh > "$T/history.txt"
grep -qE -- '^- +"value": "f1"' "$T/history.txt" && grep -qE -- '^\+ +"value": "f2"' "$T/history.txt" ||
  rt_fail "history without the diff f1 -> f2: $(cat "$T/history.txt")"
out=$(wf_http a GET /api/v1/workflows/fresh/versions)
[[ ${out%% *} == 200 ]] || rt_fail "versions: $out"
python3 -c '
import json, sys
v = json.loads(sys.argv[1].split(" ", 1)[1])["versions"]
applies = [c for c in v if c["action"] == "apply"]
assert len(applies) == 2, v
assert applies[0]["actor"].startswith("cli:") and applies[1]["actor"] == "api:local", applies
assert "\"value\": \"f2\"" in applies[1]["diff"] and applies[0]["diff"].startswith("--- /dev/null"), applies
' "$out" || rt_fail "versions content"
rt_assert_eq 2 "$(rt_psql "select count(*) from ratchet.audit_log where action = 'workflow.apply' and subject = 'fresh'")" "apply audit records"
"$RATCHET_BIN" audit verify >/dev/null || rt_fail "audit chain broken"

rt_serve_stop a
rt_serve_stop b
rt_contract_check # every API answer above against schemas/openapi.yaml
echo "ok: workflows apply"
