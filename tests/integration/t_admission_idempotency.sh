#!/usr/bin/env bash
# idempotency: one run per (workflow, value) per 24 h, whether the request is an event or
# a manual `ratchet run`; a skipped manual run says why and exits 0 with no id; once the
# key is older than 24 h a new run is allowed; a null value is not deduplicated.
source "$(dirname "$0")/lib.sh"
rt_test_init admission_idempotency

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2
cat > "$W/close.json" <<'EOF2'
{"id": "close-day", "triggers": [{"event": "day.closed"}], "idempotency": "event.data.day",
 "steps": [{"id": "a", "uses": "transform", "with": {"value": "${{ event.data.day }}"}}]}
EOF2
"$RATCHET_BIN" migrate >/dev/null
rt_serve_start a

runs() { rt_psql "select count(*) from ratchet.runs where workflow_id = 'close-day' ${1:+and $1}"; }

"$RATCHET_BIN" send day.closed --data '{"day": "2026-11-01"}' >/dev/null 2>&1
"$RATCHET_BIN" send day.closed --data '{"day": "2026-11-01"}' >/dev/null 2>&1
rt_assert_eq 1 "$(runs)" "same value twice: one run"
"$RATCHET_BIN" send day.closed --data '{"day": "2026-11-02"}' >/dev/null 2>&1
rt_assert_eq 2 "$(runs)" "a different value: a second run"
# Both events are stored; only the first of the pair started a run.
rt_assert_eq "1,0,1" "$(rt_psql "select string_agg((select count(*) from ratchet.runs r where r.event_id = e.id)::text, ','
  order by e.received_at) from ratchet.events e")" "runs per event"

# A manual run with a taken value: nothing is created, the reason goes to stderr, exit 0.
set +e
out=$("$RATCHET_BIN" run close-day --data '{"day": "2026-11-01"}' 2>"$T/err")
rc=$?
set -e
rt_assert_eq 0 "$rc" "ratchet run exit status when skipped"
rt_assert_eq "" "$out" "no run id printed when skipped"
grep -q '^skipped: idempotency: run .* key "2026-11-01"' "$T/err" || rt_fail "stderr: $(cat "$T/err")"
rt_assert_eq 2 "$(runs)" "manual duplicate created nothing"

# 24 h later the value may start a run again.
rt_psql "update ratchet.idempotency_keys set created_at = created_at - interval '24 hours 1 second' where key = '2026-11-01'"
id=$("$RATCHET_BIN" run close-day --data '{"day": "2026-11-01"}' 2>/dev/null)
[[ $id =~ ^[0-9a-f-]{36}$ ]] || rt_fail "no run after 24 h: '$id'"
rt_assert_eq 3 "$(runs)" "a run after the key expired"
rt_assert_eq "$id" "$(rt_psql "select run_id from ratchet.idempotency_keys where key = '2026-11-01'")" "the key now names the new run"
"$RATCHET_BIN" send day.closed --data '{"day": "2026-11-01"}' >/dev/null 2>&1
rt_assert_eq 3 "$(runs)" "and that new run holds the value for the next 24 h"

# Without the value (null) there is nothing to deduplicate on.
"$RATCHET_BIN" send day.closed --data '{}' >/dev/null 2>&1
"$RATCHET_BIN" send day.closed --data '{}' >/dev/null 2>&1
rt_assert_eq 5 "$(runs)" "null values are not deduplicated"

rt_wait_for 60 '[ "$(runs "status <> '"'completed'"'")" = 0 ]'
rt_assert_eq '"2026-11-02"' "$(rt_psql "select output::text from ratchet.runs r where r.trigger #>> '{admission,idempotency}' = '2026-11-02'")" "the run saw its event"
rt_serve_stop a
rt_check_log "$T/a.log"
echo "ok: admission idempotency"
