#!/usr/bin/env bash
# kill -9 of the engine at the worst moments loses nothing and re-runs no completed step.
# A 5-step workflow whose exec steps append "<step> <run>" to a file. The engine is
# killed for real (SIGKILL) (a) while a sleep step waits, (b) while an exec step runs,
# (c) right after a step completes, and (d) with two engines on one database, one is
# killed and the other takes over the expired leases. Afterwards every run completed,
# and each step's line appears exactly once — except a step that was in flight at the
# kill, which may appear twice (at-least-once per step, exactly-once per result).
source "$(dirname "$0")/lib.sh"
rt_test_init kill9

W=$T/workflows
OUT=$T/lines
mkdir -p "$W"
: > "$OUT"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=4 RATCHET_LEASE=10s RATCHET_LOG_LEVEL=debug

append() { # STEP SLEEP -> an exec step appending "STEP RUN" after SLEEP seconds
  printf '{"id": "%s", "uses": "exec", "with": {"command": ["sh", "-c", "sleep %s; echo \\"%s $RATCHET_RUN_ID\\" >> %s"]}}' \
    "$1" "$2" "$1" "$OUT"
}
cat > "$W/five.json" <<EOF
{"id": "five", "triggers": [{"event": "kill9.go"}], "retries": {"max_attempts": 10, "backoff": "fixed", "delay": "100ms"}, "steps": [
  $(append s1 0.2),
  {"id": "nap", "uses": "sleep", "with": {"duration": "10s"}},
  $(append s3 2),
  $(append s4 0.1),
  $(append s5 0.1)
]}
EOF
"$RATCHET_BIN" validate "$W" >/dev/null || rt_fail "workflow invalid"
"$RATCHET_BIN" migrate >/dev/null

declare -A INFLIGHT # "step run" -> 1 when that step was running at a kill

note_inflight() {
  local row
  while read -r row; do
    [ -n "$row" ] && INFLIGHT["$row"]=1
  done < <(rt_psql "select step_id || ' ' || run_id from ratchet.steps where status = 'running'")
}

kill_now() { # NAME: SIGKILL, then record what was in flight at that moment
  rt_serve_kill9 "$1"
  note_inflight
}

start_runs() { # N -> ids in RUNS
  RUNS=()
  for _ in $(seq "$1"); do RUNS+=("$("$RATCHET_BIN" run five)"); done
}

count_status() { rt_psql "select count(*) from ratchet.steps where step_id = '$1' and status = '$2'"; }

all_completed() {
  [ "$(rt_psql "select count(*) from ratchet.runs where status <> 'completed'")" = 0 ]
}

check_lines() {
  local run step n
  for run in $(rt_psql "select id from ratchet.runs"); do
    rt_assert_eq completed "$(rt_psql "select status from ratchet.runs where id = '$run'")" "run $run"
    for step in s1 s3 s4 s5; do
      n=$(grep -c "^$step $run\$" "$OUT" || true)
      if [ -n "${INFLIGHT["$step $run"]:-}" ]; then
        [ "$n" -ge 1 ] && [ "$n" -le 2 ] || rt_fail "in-flight step $step of $run appended $n times"
      else
        rt_assert_eq 1 "$n" "completed step $step of run $run appended once"
      fi
    done
  done
}

# (a) kill -9 while the sleep step waits. The 4 runs come from one POST (one commit), so
# that all 4 sleep at once however long a loaded machine takes to start a process.
rt_serve_start a
rt_serve_wait_ready a
rt_send_events a 0 '[{"name": "kill9.go"}, {"name": "kill9.go"}, {"name": "kill9.go"}, {"name": "kill9.go"}]' >/dev/null
rt_wait_for 60 '[ "$(count_status nap sleeping)" = 4 ]'
kill_now a
rt_serve_start a2
rt_wait_for 60 all_completed
check_lines
rt_serve_stop a2
echo "ok: (a) kill during sleep"

# (b) kill -9 while an exec step runs.
start_runs 4
rt_serve_start b
rt_wait_for 60 '[ "$(rt_psql "select count(*) from ratchet.steps where step_id = '"'s3'"' and status = '"'running'"'")" -ge 1 ]'
kill_now b
[ "${#INFLIGHT[@]}" -ge 1 ] || rt_fail "nothing was in flight at the kill"
rt_serve_start b2
rt_wait_for 60 all_completed
check_lines
rt_serve_stop b2
echo "ok: (b) kill during exec"

# (c) kill -9 right after a step completes (poll for the first completed s4, then kill).
start_runs 4
rt_serve_start c
rt_wait_for 60 '[ "$(count_status s4 completed)" -ge 1 ]'
kill_now c
rt_serve_start c2
rt_wait_for 60 all_completed
check_lines
rt_serve_stop c2
echo "ok: (c) kill right after a completion"

# (d) two engines on one database; kill one mid-run, the other takes over its leases.
start_runs 8
rt_serve_start d1
rt_serve_start d2
rt_wait_for 60 '[ "$(rt_psql "select count(*) from ratchet.steps where status = '"'running'"' and step_id like '"'s%'"'")" -ge 1 ]'
kill_now d1
rt_wait_for 90 all_completed
check_lines
rt_serve_stop d2
echo "ok: (d) takeover by a second engine"

total=$(rt_psql "select count(*) from ratchet.runs")
rt_assert_eq 20 "$total" "runs created"
echo "ok: kill9 (${#INFLIGHT[@]} step(s) were in flight at kills)"
