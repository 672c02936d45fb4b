#!/usr/bin/env bash
# singleton: at most one unfinished run per key value. `skip`: a request while one is
# unfinished creates nothing (ratchet run says why); once it ended a new one may start.
# `cancel`: the unfinished run is cancelled (error names the newer run, its idle queue
# items go, a running exec step is stopped) and the new one is created.
source "$(dirname "$0")/lib.sh"
rt_test_init admission_singleton

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2 RATCHET_LEASE=15s
cat > "$W/skip.json" <<'EOF2'
{"id": "sync-skip", "triggers": [{"event": "sync.requested"}], "singleton": {"key": "event.data.account", "mode": "skip"},
 "steps": [{"id": "nap", "uses": "sleep", "with": {"duration": "1h"}}]}
EOF2
cat > "$W/cancel.json" <<'EOF2'
{"id": "sync-cancel", "triggers": [{"event": "sync.restart"}], "singleton": {"key": "${{ event.data.account }}", "mode": "cancel"},
 "steps": [{"id": "nap", "uses": "sleep", "with": {"duration": "1h"}}]}
EOF2
cat > "$W/slow.json" <<'EOF2'
{"id": "sync-slow", "triggers": [{"event": "sync.slow"}], "singleton": {"mode": "cancel"},
 "steps": [{"id": "work", "uses": "exec", "with": {"command": ["sleep", "${{ event.data.secs }}"]}}]}
EOF2
"$RATCHET_BIN" migrate >/dev/null
rt_serve_start a
rt_serve_wait_ready a

status_of() { q "select status from ratchet.runs where id = '$1'"; }
count() { q "select count(*) from ratchet.runs where workflow_id = '$1' ${2:+and $2}"; }

# ---- skip
"$RATCHET_BIN" send sync.requested --data '{"account": "a1"}' >/dev/null 2>&1
first=$(q "select id from ratchet.runs where workflow_id = 'sync-skip'")
rt_wait_for 60 '[ "$(status_of "$first")" = sleeping ]'
"$RATCHET_BIN" send sync.requested --data '{"account": "a1"}' >/dev/null 2>&1
"$RATCHET_BIN" send sync.requested --data '{"account": "a1"}' >/dev/null 2>&1
rt_assert_eq 1 "$(count sync-skip)" "skip: no second run for a1 while the first sleeps"
"$RATCHET_BIN" send sync.requested --data '{"account": "a2"}' >/dev/null 2>&1
rt_assert_eq 2 "$(count sync-skip)" "skip: another key value has its own run"
set +e
out=$("$RATCHET_BIN" run sync-skip --data '{"account": "a1"}' 2>"$T/err"); rc=$?
set -e
rt_assert_eq "0:" "$rc:$out" "ratchet run: exit 0, no id"
grep -q "^skipped: singleton: run $first is still sleeping (key \"a1\")" "$T/err" || rt_fail "stderr: $(cat "$T/err")"
# Once the run ended, a1 may run again.
"$RATCHET_BIN" cancel "$first" >/dev/null 2>&1
rt_assert_eq cancelled "$(status_of "$first")" "first run cancelled by hand"
"$RATCHET_BIN" send sync.requested --data '{"account": "a1"}' >/dev/null 2>&1
rt_assert_eq 3 "$(count sync-skip)" "skip: a new run once the old one ended"

# ---- cancel
"$RATCHET_BIN" send sync.restart --data '{"account": "b1"}' >/dev/null 2>&1
old=$(q "select id from ratchet.runs where workflow_id = 'sync-cancel'")
rt_wait_for 60 '[ "$(status_of "$old")" = sleeping ]'
"$RATCHET_BIN" send sync.restart --data '{"account": "b2"}' >/dev/null 2>&1
"$RATCHET_BIN" send sync.restart --data '{"account": "b1"}' >/dev/null 2>&1
new=$(q "select id from ratchet.runs where workflow_id = 'sync-cancel' and event->'data'->>'account' = 'b1' and id <> '$old'")
[[ -n $new ]] || rt_fail "cancel: no new run for b1"
rt_assert_eq "cancelled|cancelled by singleton: newer run $new|true" \
  "$(q "select status || '|' || error || '|' || (finished_at is not null)::text from ratchet.runs where id = '$old'")" "cancel: the old run"
rt_assert_eq 0 "$(q "select count(*) from ratchet.queue where run_id = '$old'")" "cancel: the old run's queue items are gone"
rt_wait_for 60 '[ "$(status_of "$new")" = sleeping ]'
rt_assert_eq 1 "$(count sync-cancel "status = 'sleeping' and event->'data'->>'account' = 'b2'")" "cancel: b2 untouched"
rt_assert_eq 2 "$(count sync-cancel "status not in ('cancelled', 'completed', 'failed')")" "cancel: one unfinished run per key"

# ---- cancel stops a running exec step (the lease keeper sees the run ended)
"$RATCHET_BIN" send sync.slow --data '{"secs": "300.25"}' >/dev/null 2>&1
slow=$(q "select id from ratchet.runs where workflow_id = 'sync-slow'")
rt_wait_for 60 'pgrep -f "^sleep 300.25$" >/dev/null'
rt_wait_for 60 '[ "$(q "select status from ratchet.steps where run_id = '"'$slow'"'")" = running ]'
"$RATCHET_BIN" send sync.slow --data '{"secs": "0.1"}' >/dev/null 2>&1
rt_assert_eq cancelled "$(status_of "$slow")" "the running run is cancelled at once"
rt_wait_for 60 '! pgrep -f "^sleep 300.25$" >/dev/null'
rt_wait_for 60 '[ "$(count sync-slow "status = '"'completed'"'")" = 1 ]'
rt_wait_for 60 '[ "$(q "select count(*) from ratchet.queue where run_id = '"'$slow'"'")" = 0 ]'
rt_assert_eq cancelled "$(status_of "$slow")" "the stopped run stays cancelled"

rt_serve_stop a
rt_check_log "$T/a.log"
echo "ok: admission singleton"
