#!/usr/bin/env bash
# Pausing a run (ratchet pause / resume): a paused run starts no new step while the step
# that was running finishes and is memoized; the pause survives kill -9 of the engine;
# a sleep that ends while paused waits for the resume; the workflow timeout keeps
# running; resume carries on and each step runs exactly once; pause and resume are
# audited and refused precisely where they make no sense.
source "$(dirname "$0")/lib.sh"
rt_test_init run_pause

W=$T/workflows
OUT=$T/lines
mkdir -p "$W"
: >"$OUT"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2 RATCHET_LOG_LEVEL=debug

# a: marks that it started, waits for $T/go-<run>, appends; b, d: append; c sleeps 1s.
cat >"$W/gated.json" <<EOF
{"id": "gated", "steps": [
  {"id": "a", "uses": "exec", "with": {"command": ["sh", "-c", "touch $T/started-\$RATCHET_RUN_ID; while [ ! -e $T/go-\$RATCHET_RUN_ID ]; do sleep 0.05; done; echo \"a \$RATCHET_RUN_ID\" >> $OUT"]}},
  {"id": "b", "uses": "exec", "with": {"command": ["sh", "-c", "echo \"b \$RATCHET_RUN_ID\" >> $OUT"]}},
  {"id": "c", "uses": "sleep", "with": {"duration": "1s"}},
  {"id": "d", "uses": "exec", "with": {"command": ["sh", "-c", "echo \"d \$RATCHET_RUN_ID\" >> $OUT"]}}
]}
EOF
cat >"$W/napper.json" <<'EOF'
{"id": "napper", "steps": [
  {"id": "nap", "uses": "sleep", "with": {"duration": "8s"}},
  {"id": "after", "uses": "transform", "with": {"value": "woke"}}
]}
EOF
cat >"$W/waiter.json" <<'EOF'
{"id": "waiter", "steps": [
  {"id": "wait", "uses": "wait_for_event", "with": {"event": "pause.go", "timeout": "1h"}},
  {"id": "after", "uses": "transform", "with": {"value": "${{ steps.wait.output.data }}"}}
]}
EOF
cat >"$W/short.json" <<'EOF'
{"id": "short", "timeout": "15s", "steps": [{"id": "nap", "uses": "sleep", "with": {"duration": "1h"}}]}
EOF
"$RATCHET_BIN" validate "$W" >/dev/null || rt_fail "workflows invalid"
"$RATCHET_BIN" migrate >/dev/null

status() { rt_psql "select status from ratchet.runs where id = '$1'"; }
step_status() { rt_psql "select coalesce((select status from ratchet.steps where run_id = '$1' and step_id = '$2'), 'none')"; }
lines() { grep -c "^$1 $2\$" "$OUT" || true; }

rt_serve_start a
rt_serve_wait_ready a

# ---- 1. pause while a step runs: it finishes and is memoized, nothing new starts ----
r1=$("$RATCHET_BIN" run gated)
rt_wait_for 60 "[ -e '$T/started-$r1' ]"
"$RATCHET_BIN" pause "$r1" >"$T/pause.out" 2>"$T/pause.err" || rt_fail "pause failed: $(cat "$T/pause.err")"
rt_assert_eq "$r1 paused" "$(cat "$T/pause.out")" "pause prints the run and its status"
rt_assert_eq paused "$(status "$r1")" "status after pause"
"$RATCHET_BIN" show "$r1" | grep -q paused || rt_fail "show does not say paused"
"$RATCHET_BIN" runs --status paused | grep -q "$r1" || rt_fail "runs --status paused does not list it"
touch "$T/go-$r1"
rt_wait_for 60 "[ \"\$(step_status $r1 a)\" = completed ]"
rt_assert_eq 1 "$(lines a "$r1")" "the running step finished once"
rt_assert_eq paused "$(status "$r1")" "still paused after its running step completed"
# Nothing may start now: give the (idle) workers the time they would need to start b.
sleep 2
rt_assert_eq 0 "$(lines b "$r1")" "b started while paused"
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.queue where run_id = '$r1' and run_at < now() + interval '1 year'")" \
  "a paused run's queue items are held far in the future"

# ---- 2. kill -9 while paused: still paused after the restart, nothing starts ----
rt_serve_kill9 a
rt_serve_start a
rt_serve_wait_ready a
sleep 2
rt_assert_eq paused "$(status "$r1")" "paused after kill -9 and restart"
rt_assert_eq 0 "$(lines b "$r1")" "b started after the restart while paused"

# ---- 3. resume: carries on, every step exactly once ----
"$RATCHET_BIN" resume "$r1" >"$T/resume.out" 2>"$T/resume.err" || rt_fail "resume failed: $(cat "$T/resume.err")"
grep -Eq "^$r1 (running|queued)\$" "$T/resume.out" || rt_fail "resume output: $(cat "$T/resume.out")"
rt_wait_for 60 "[ \"\$(status $r1)\" = completed ]"
for s in a b d; do rt_assert_eq 1 "$(lines "$s" "$r1")" "step $s ran exactly once"; done

# ---- 4. a sleep that ends while paused waits for the resume ----
r2=$("$RATCHET_BIN" run napper)
rt_wait_for 60 "[ \"\$(status $r2)\" = sleeping ]"
"$RATCHET_BIN" pause "$r2" >/dev/null
rt_wait_for 60 "[ \"\$(rt_psql \"select (now() > started_at + interval '9 seconds')::text from ratchet.steps where run_id = '$r2' and step_id = 'nap'\")\" = true ]"
sleep 1
rt_assert_eq paused "$(status "$r2")" "paused past the sleep's end"
rt_assert_eq none "$(step_status "$r2" after)" "the step after the sleep started while paused"
"$RATCHET_BIN" resume "$r2" >"$T/resume.out"
rt_assert_eq "$r2 sleeping" "$(cat "$T/resume.out")" "a resumed sleeper says sleeping until its step runs"
rt_wait_for 60 "[ \"\$(status $r2)\" = completed ]"

# ---- 4b. an event that arrives while paused is kept for the resume ----
r5=$("$RATCHET_BIN" run waiter)
rt_wait_for 60 "[ \"\$(status $r5)\" = waiting ]"
"$RATCHET_BIN" pause "$r5" >/dev/null
"$RATCHET_BIN" send pause.go --data '{"k": 1}' >/dev/null
rt_wait_for 60 "[ \"\$(rt_psql \"select count(*) from ratchet.waits where run_id = '$r5'\")\" = 0 ]"
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.queue where run_id = '$r5' and run_at < now() + interval '500 years'")" \
  "the woken wait of a paused run is held too (no worker spins on it)"
sleep 1
rt_assert_eq paused "$(status "$r5")" "still paused after its event arrived"
"$RATCHET_BIN" resume "$r5" >/dev/null
rt_wait_for 60 "[ \"\$(status $r5)\" = completed ]"
rt_assert_eq '{"k": 1}' "$(rt_psql "select output from ratchet.steps where run_id = '$r5' and step_id = 'after'")" "the event reached the run"

# ---- 5. the workflow timeout keeps running while paused ----
r3=$("$RATCHET_BIN" run short)
rt_wait_for 60 "[ \"\$(status $r3)\" = sleeping ]"
"$RATCHET_BIN" pause "$r3" >/dev/null
rt_wait_for 60 "[ \"\$(status $r3)\" = timed_out ]"

# ---- 6. refusals: ended, already paused, not paused, unknown ----
"$RATCHET_BIN" pause "$r1" >/dev/null 2>"$T/err" && rt_fail "pausing a completed run succeeded"
grep -q "is completed: only a queued, running, sleeping or waiting run can be paused" "$T/err" || rt_fail "message: $(cat "$T/err")"
"$RATCHET_BIN" resume "$r1" >/dev/null 2>"$T/err" && rt_fail "resuming a completed run succeeded"
grep -q "is completed, not paused" "$T/err" || rt_fail "message: $(cat "$T/err")"
r4=$("$RATCHET_BIN" run napper)
"$RATCHET_BIN" pause "$r4" >/dev/null
"$RATCHET_BIN" pause "$r4" >/dev/null 2>"$T/err" && rt_fail "pausing twice succeeded"
grep -q "is already paused" "$T/err" || rt_fail "message: $(cat "$T/err")"
"$RATCHET_BIN" pause 00000000-0000-7000-8000-000000000000 >/dev/null 2>"$T/err" && rt_fail "pausing an unknown run succeeded"
grep -q "not found" "$T/err" || rt_fail "message: $(cat "$T/err")"
"$RATCHET_BIN" cancel "$r4" >/dev/null 2>&1
rt_assert_eq cancelled "$(status "$r4")" "a paused run can be cancelled"
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.queue where run_id = '$r4'")" "a cancelled paused run leaves no queue item"

# ---- 7. audited ----
rt_assert_eq "run.pause $r1|run.resume $r1|run.pause $r2|run.resume $r2|run.pause $r5|run.resume $r5|run.pause $r3|run.pause $r4|run.cancel $r4" \
  "$(rt_psql "select string_agg(action || ' ' || subject, '|' order by seq) from ratchet.audit_log where action in ('run.pause', 'run.resume', 'run.cancel')")" \
  "pause and resume records"
"$RATCHET_BIN" audit verify >/dev/null 2>&1 || rt_fail "audit chain broken"

rt_serve_stop a
rt_check_log "$T/a.log"
