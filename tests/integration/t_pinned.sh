#!/usr/bin/env bash
# A run keeps the exact definition it started with: a new version of the workflow (the
# edited file, applied to the registry) while the run sleeps changes only runs started
# afterwards.
source "$(dirname "$0")/lib.sh"
rt_test_init pinned

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2

version() {
  cat > "$W/pin.json" <<EOF2
{"id": "pin", "steps": [
  {"id": "nap", "uses": "sleep", "with": {"duration": "10s"}},
  {"id": "v", "uses": "transform", "with": {"value": "$1"}}
]}
EOF2
}
version v1
"$RATCHET_BIN" migrate >/dev/null
rt_serve_start a
first=$("$RATCHET_BIN" run pin)
rt_wait_for 60 '[ "$(rt_psql "select status from ratchet.steps where run_id = '"'$first'"' and step_id = '"'nap'"'")" = sleeping ]'
version v2
"$RATCHET_BIN" workflows apply "$W/pin.json" >/dev/null
second=$("$RATCHET_BIN" run pin --wait)
rt_wait_for 60 '[ "$(rt_psql "select status from ratchet.runs where id = '"'$first'"'")" = completed ]'
rt_assert_eq '"v1"' "$(rt_psql "select output::text from ratchet.runs where id = '$first'")" "run started on v1 keeps v1"
rt_assert_eq '"v2"' "$(rt_psql "select output::text from ratchet.runs where id = '$second'")" "run started on v2 uses v2"
rt_assert_eq 2 "$(rt_psql "select count(*) from ratchet.workflow_versions where workflow_id = 'pin'")" "two pinned versions"
rt_serve_stop a
echo "ok: pinned"
