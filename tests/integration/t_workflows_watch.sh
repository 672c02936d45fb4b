#!/usr/bin/env bash
# serve --watch: the workflows directory is the declarative source. A file added,
# changed or removed is applied within 1 s, and seen by another process (b, no --watch)
# within that second; a bad file is reported with its error and the previous version stays
# active; SIGHUP syncs the directory in a process without --watch.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/wf_lib.sh"
rt_test_init workflows_watch

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2
wf_write "$W/seed.json" seed s1
"$RATCHET_BIN" migrate >/dev/null
rt_serve_start a --watch
rt_serve_start b
rt_serve_wait_ready a
rt_serve_wait_ready b
rt_wait_for 30 'grep -q "workflows: watching" "$T/a.log"'
prop() { python3 "$RT_INTEGRATION_DIR/wf_propagation.py" "$@"; }
within_1s() { # WHAT OUT
  local ms=${2%% *}
  [[ $ms =~ ^[0-9]+$ ]] || rt_fail "$1: $2"
  ((ms <= 1000)) || rt_fail "$1 took $ms ms"
  echo "ok: $1 in $ms ms"
}

# 1. A new file: runnable through b within 1 s.
wf_write "$T/w1.json" wat w1
out=$(prop "[\"cp\", \"$T/w1.json\", \"$W/wat.json\"]" POST "$(rt_serve_url b)/api/v1/workflows/wat/runs" 201)
within_1s "file added, run through b" "$out"

# 2. Changed: the new version in b within 1 s.
wf_write "$T/w2.json" wat w2
out=$(prop "[\"cp\", \"$T/w2.json\", \"$W/wat.json\"]" GET "$(rt_serve_url b)/api/v1/workflows/wat" 200 '"value":"w2"')
within_1s "file changed, new version in b" "$out"
v2=$(rt_psql "select hash from ratchet.workflow_registry where workflow_id = 'wat'")

# 3. A bad file: reported with its error; the previous version stays active.
# A bad file is reported at error level with its error, and the old version stays.
rt_expect_log_error 'unknown step type "transfrom".*keeps its previous version'
echo '{"id": "wat", "steps": [{"id": "v", "uses": "transfrom"}]}' > "$W/wat.json"
rt_wait_for 60 'grep -q "wat.json: \$.steps\[0\].uses: unknown step type" "$T/a.log"'
grep "wat.json" "$T/a.log" | grep -q "keeps its previous version" || rt_fail "the error does not say the old version stays"
rt_assert_eq "$v2" "$(rt_psql "select hash from ratchet.workflow_registry where workflow_id = 'wat' and not removed")" "version after a bad file"
run=$(wf_api_run b wat)
rt_wait_for 60 '[ "$(rt_psql "select output::text from ratchet.runs where id = '"'$run'"' and status = '"'completed'"'")" = "\"w2\"" ]'
echo "ok: a bad file keeps the previous version"

# 4. Removed: gone from b within 1 s.
out=$(prop "[\"rm\", \"$W/wat.json\"]" POST "$(rt_serve_url b)/api/v1/workflows/wat/runs" 404)
within_1s "file removed, gone from b" "$out"
rt_assert_eq t "$(rt_psql "select removed from ratchet.workflow_registry where workflow_id = 'wat'")" "removed in the registry"

# 5. The same content added back comes back.
out=$(prop "[\"cp\", \"$T/w2.json\", \"$W/wat.json\"]" POST "$(rt_serve_url b)/api/v1/workflows/wat/runs" 201)
within_1s "file added back" "$out"

# 6. SIGHUP in a process without --watch.
rt_serve_stop a
wf_write "$W/hup.json" hup h1
sleep 0.5 # nothing watches: it must not appear by itself
[ "$(wf_http b POST /api/v1/workflows/hup/runs '{}' | cut -d' ' -f1)" = 404 ] || rt_fail "hup appeared without a SIGHUP"
kill -HUP "$(rt_serve_pid b)"
rt_wait_for 10 '[ "$(wf_http b POST /api/v1/workflows/hup/runs "{}" | cut -d" " -f1)" = 201 ]'
echo "ok: SIGHUP synced the directory"

rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.workflow_changes where workflow_id = 'wat' and actor not like 'system:%'")" "changes made by the watcher are system's"
rt_serve_stop b
rt_contract_check # every API answer above against schemas/openapi.yaml
echo "ok: workflows watch"
