#!/usr/bin/env bash
# Failure handling and flow control on PostgreSQL alone, one ctest entry per section
# (integration.flow.SECTION; `t_flow.sh SECTION` runs one, no argument runs all):
# sections: priority retries timeouts sweep_backlog claim_backlog expire_backlog sweep_poison replay cancel on_failure partial invoke for_each concurrency
#   priority     critical runs are claimed before a backlog of low ones
#   retries      count and spacing of retries; non-retriable exit codes
#   timeouts     step timeout kills the command; workflow timeout; start_timeout expires
#   sweep_backlog  a workflow timeout is enforced as promptly with 40,000 items waiting in
#                the queue and planner statistics that say it is empty
#   claim_backlog  due runs are claimed as fast with 200,000 runs queued for later and
#                statistics that say no run is queued
#   expire_backlog  6,000 runs past their start_timeout at once all expire in well under a
#                minute, none of them started
#   sweep_poison  a run whose ending keeps failing (its on_failure run cannot be created) does
#                not stop the deadline sweep for the runs behind it
#   replay       replay with and without --from
#   cancel       cancel kills an exec step's process group
#   on_failure   the failure event and the failure workflow
#   partial      continue_on_error: the run goes on and ends partial
#   invoke       a child's output; a child's failure fails the step
#   for_each     once per element, output is the array
#   concurrency  a per-key limit is reached and never exceeded
source "$(dirname "$0")/lib.sh"
rt_test_init "flow${1:+.$1}"

W=$T/workflows
FX=$T/effects
mkdir -p "$W" "$FX"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=4 RATCHET_LEASE=10s

cat > "$W/retry.json" <<EOF2
{"id": "retry", "retries": {"max_attempts": 4, "backoff": "exponential", "delay": "200ms"}, "steps": [
  {"id": "flaky", "uses": "exec", "with": {"command": ["sh", "-c", "echo x >> $FX/flaky-\$RATCHET_RUN_ID; n=\$(wc -l < $FX/flaky-\$RATCHET_RUN_ID); [ \$n -ge 3 ] && echo '{\"tries\":'\$n'}' || exit 1"]}}]}
EOF2
cat > "$W/fatal.json" <<EOF2
{"id": "fatal", "retries": {"max_attempts": 5, "delay": "100ms"}, "steps": [
  {"id": "boom", "uses": "exec", "with": {"command": ["sh", "-c", "echo x >> $FX/fatal-\$RATCHET_RUN_ID; exit 7"], "non_retriable_exit_codes": [7]}}]}
EOF2
cat > "$W/slowstep.json" <<'EOF2'
{"id": "slowstep", "retries": {"max_attempts": 1}, "steps": [
  {"id": "hang", "uses": "exec", "timeout": "500ms", "with": {"command": ["sleep", "30"]}}]}
EOF2
cat > "$W/wftimeout.json" <<'EOF2'
{"id": "wftimeout", "timeout": "1s", "steps": [{"id": "nap", "uses": "sleep", "with": {"duration": "1h"}}]}
EOF2
cat > "$W/starttimeout.json" <<'EOF2'
{"id": "starttimeout", "start_timeout": "1s", "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF2
cat > "$W/steps3.json" <<EOF2
{"id": "steps3", "steps": [
  {"id": "a", "uses": "exec", "with": {"command": ["sh", "-c", "echo a >> $FX/replay; echo 1"]}},
  {"id": "b", "uses": "exec", "with": {"command": ["sh", "-c", "echo b >> $FX/replay; echo 2"]}},
  {"id": "c", "uses": "transform", "with": {"value": "\${{ steps.a.output + steps.b.output }}"}}]}
EOF2
cat > "$W/longexec.json" <<EOF2
{"id": "longexec", "steps": [{"id": "hold", "uses": "exec", "with": {"command": ["sh", "-c", "sleep 300 & echo \$! > $FX/grandchild; wait"]}}]}
EOF2
cat > "$W/failing.json" <<'EOF2'
{"id": "failing", "retries": {"max_attempts": 1}, "on_failure": {"event": "job.failed"},
 "steps": [{"id": "x", "uses": "exec", "with": {"command": ["false"]}}]}
EOF2
cat > "$W/failing2.json" <<'EOF2'
{"id": "failing2", "retries": {"max_attempts": 1}, "on_failure": {"workflow": "cleanup"},
 "steps": [{"id": "x", "uses": "exec", "with": {"command": ["false"]}}]}
EOF2
cat > "$W/cleanup.json" <<'EOF2'
{"id": "cleanup", "steps": [{"id": "got", "uses": "transform", "with": {"value": "${{ event.data.run_id }}"}}]}
EOF2
cat > "$W/onfail-listener.json" <<'EOF2'
{"id": "onfail-listener", "triggers": [{"event": "job.failed"}], "steps": [{"id": "got", "uses": "transform", "with": {"value": "${{ event.data }}"}}]}
EOF2
cat > "$W/partial.json" <<'EOF2'
{"id": "partial", "steps": [
  {"id": "ok", "uses": "transform", "with": {"value": 1}},
  {"id": "bad", "uses": "exec", "continue_on_error": true, "retries": {"max_attempts": 1}, "with": {"command": ["false"]}},
  {"id": "after", "uses": "transform", "with": {"value": "${{ steps.bad.status }}"}}]}
EOF2
cat > "$W/parent.json" <<'EOF2'
{"id": "parent", "retries": {"max_attempts": 1}, "steps": [
  {"id": "call", "uses": "invoke", "with": {"workflow": "child", "data": {"n": "${{ event.data.n }}"}}},
  {"id": "use", "uses": "transform", "with": {"value": "${{ steps.call.output * 10 }}"}}]}
EOF2
cat > "$W/child.json" <<'EOF2'
{"id": "child", "retries": {"max_attempts": 1}, "steps": [
  {"id": "nap", "uses": "sleep", "with": {"duration": "200ms"}},
  {"id": "check", "uses": "exec", "with": {"command": ["sh", "-c", "[ \"$N\" != 0 ]"], "env": {"N": "${{ event.data.n }}"}}},
  {"id": "double", "uses": "transform", "with": {"value": "${{ event.data.n * 2 }}"}}]}
EOF2
cat > "$W/fanout.json" <<'EOF2'
{"id": "fanout", "steps": [
  {"id": "each", "uses": "transform", "for_each": "event.data.items", "with": {"value": "${{ item * 10 + index }}"}}]}
EOF2
cat > "$W/limited.json" <<EOF2
{"id": "limited", "triggers": [{"event": "flow.limited"}], "concurrency": {"limit": 2, "key": "event.data.key"}, "steps": [
  {"id": "work", "uses": "exec", "with": {"command": ["sh", "-c", "echo start \$K \$(date +%s%N) >> $FX/conc; sleep 0.2; echo end \$K \$(date +%s%N) >> $FX/conc"], "env": {"K": "\${{ event.data.key }}"}}}]}
EOF2
cat > "$W/quick1.json" <<'EOF2'
{"id": "quick1", "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF2
cat > "$W/startslow.json" <<EOF2
{"id": "startslow", "start_timeout": "5m", "steps": [
  {"id": "hold", "uses": "exec", "with": {"command": ["sh", "-c", "while [ ! -e $FX/gate-startslow ]; do sleep 0.05; done"]}}]}
EOF2
cat > "$W/poison.json" <<'EOF2'
{"id": "poison", "start_timeout": "1s", "on_failure": {"workflow": "poisoned"},
 "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF2
cat > "$W/poisoned.json" <<'EOF2'
{"id": "poisoned", "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF2
cat > "$W/prio-low.json" <<EOF2
{"id": "prio-low", "priority": "low", "steps": [{"id": "w", "uses": "exec", "with": {"command": ["sh", "-c", "echo low >> $FX/prio"]}}]}
EOF2
cat > "$W/prio-critical.json" <<EOF2
{"id": "prio-critical", "priority": "critical", "steps": [{"id": "w", "uses": "exec", "with": {"command": ["sh", "-c", "echo critical >> $FX/prio"]}}]}
EOF2
"$RATCHET_BIN" validate "$W" >/dev/null || "$RATCHET_BIN" validate "$W"
"$RATCHET_BIN" migrate >/dev/null

section_priority() {
  # With no engine running: a backlog of low runs, then critical ones.
  for _ in $(seq 10); do "$RATCHET_BIN" run prio-low >/dev/null; done
  for _ in $(seq 3); do "$RATCHET_BIN" run prio-critical >/dev/null; done
  RATCHET_WORKERS=1 rt_serve_start prio
  rt_wait_for 60 '[ "$(wc -l < "$FX/prio" 2>/dev/null || echo 0)" -ge 13 ]'
  rt_serve_stop prio
  rt_assert_eq "critical critical critical" "$(head -3 "$FX/prio" | tr '\n' ' ' | sed 's/ $//')" "critical runs claimed before the low backlog"
}

section_retries() {
  rt_serve_start a
  # Retries: 3 attempts (2 failures), spacing 200 ms then 400 ms (exponential).
  id=$("$RATCHET_BIN" run retry --wait)
  rt_assert_eq '{"tries": 3}' "$(run_field "$id" output::text)" "succeeded on the 3rd attempt"
  rt_assert_eq 3 "$(wc -l < "$FX/flaky-$id")" "3 executions"
  rt_assert_eq 2 "$(rt_psql "select count(*) from ratchet.step_attempts where run_id = '$id'")" "2 failed attempts kept"
  gaps=$(rt_psql "select string_agg(round(extract(epoch from (b.started_at - a.finished_at)) * 1000)::text, ',' order by a.attempt) from ratchet.step_attempts a join ratchet.step_attempts b on b.run_id = a.run_id and b.attempt = a.attempt + 1 where a.run_id = '$id'")
  g1=$(rt_psql "select round(extract(epoch from (s.started_at - a.finished_at)) * 1000) from ratchet.step_attempts a join ratchet.steps s on s.run_id = a.run_id where a.run_id = '$id' and a.attempt = 2")
  # Lower bounds only (10 % for timestamp rounding): how much later a retry starts is the
  # machine's speed; the second gap at least 380 ms after a first of at least 180 ms is the
  # doubling.
  python3 -c "import sys; a=[float(x) for x in sys.argv[1].split(',')]; b=float(sys.argv[2]); assert 180 <= a[0] and 380 <= b, (a, b)" "$gaps" "$g1" || rt_fail "retry spacing: $gaps then $g1 ms"
  "$RATCHET_BIN" show "$id" | grep -q "attempt" || rt_fail "show lists failed attempts"

  # Non-retriable: exit code 7 ends at once despite 5 attempts allowed.
  if id=$("$RATCHET_BIN" run fatal --wait); then rt_fail "fatal must fail"; fi
  rt_assert_eq 1 "$(wc -l < "$FX/fatal-$id")" "non-retriable: one execution"
  rt_serve_stop a
}

section_timeouts() {
  rt_serve_start a
  # Step timeout kills the command.
  if id=$("$RATCHET_BIN" run slowstep --wait --wait-timeout 120s); then rt_fail "slowstep must fail"; fi
  grep -q "timed out" <<<"$(run_field "$id" error)" || rt_fail "step timeout error: $(run_field "$id" error)"

  # A run that started has no start deadline left (the sweep would step over it): a quick
  # step's run (the completion batch), and a slow step's run while the step runs (its claim).
  id=$("$RATCHET_BIN" run starttimeout --wait)
  rt_assert_eq t "$(run_field "$id" "start_deadline is null")" "a started run keeps no start deadline"
  id=$("$RATCHET_BIN" run startslow)
  rt_wait_for 60 '[ "$(status '"$id"')" = running ]'
  rt_assert_eq t "$(run_field "$id" "start_deadline is null")" "a run whose slow step runs keeps no start deadline"
  touch "$FX/gate-startslow"
  rt_wait_for 60 '[ "$(status '"$id"')" = completed ]'

  # Workflow timeout: timed_out; start_timeout: expired (scheduled far enough to stay queued).
  id=$("$RATCHET_BIN" run wftimeout)
  rt_wait_for 60 '[ "$(status '"$id"')" = timed_out ]'
  # start_timeout counts from when the run is due; no engine runs meanwhile, so it stays
  # queued past it (this pause is the scenario, not a wait for a condition).
  rt_serve_stop a
  id=$("$RATCHET_BIN" run starttimeout)
  sleep 1.5
  rt_serve_start a
  rt_wait_for 60 '[ "$(status '"$id"')" = expired ]'
  rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.steps where run_id = '$id' and status = 'completed'")" "an expired run never started"
  rt_serve_stop a
}

section_sweep_backlog() {
  # The deadline sweep once deleted the ended runs' queue items with a join whose plan
  # depended on the statistics: when they said the queue was empty (drained, analyzed, then
  # refilled faster than autovacuum analyzes), it scanned the whole queue again for each
  # queue item. 40,000 items took ten minutes of the server's CPU, and the lease keeper
  # thread, which runs the sweep, renewed nothing meanwhile. Here the statistics say
  # "empty" and the engine's sessions may not hash, merge or sort (PGOPTIONS), the planner's
  # other way out: a run past its timeout must still end within the usual window.
  old=$("$RATCHET_BIN" run wftimeout)
  rt_psql "alter table ratchet.queue set (autovacuum_enabled = false)" >/dev/null
  rt_psql "insert into ratchet.queue (run_id, step_id, run_at) select '$old', 'pad' || g, now() + interval '1 day'
           from generate_series(1, 40000) g" >/dev/null
  rt_psql "delete from ratchet.queue" >/dev/null
  rt_psql "update ratchet.runs set status = 'cancelled' where id = '$old'" >/dev/null
  rt_psql "analyze ratchet.queue" >/dev/null # dead pages, no live row: 'empty'
  id=$("$RATCHET_BIN" run wftimeout) # no engine yet: it stays queued
  rt_psql "with r as (insert into ratchet.runs (id, workflow_id, workflow_hash, status, trigger, event)
             select gen_random_uuid(), workflow_id, workflow_hash, 'queued', trigger, event
             from ratchet.runs, generate_series(1, 40000) where id = '$id' returning id)
           insert into ratchet.queue (run_id, step_id, run_at) select id, 'nap', now() + interval '1 day' from r" >/dev/null
  rt_assert_eq 40001 "$(rt_psql "select count(*) from ratchet.queue")" "the backlog is queued"
  PGOPTIONS="-c enable_hashjoin=off -c enable_mergejoin=off -c enable_hashagg=off -c enable_sort=off -c enable_material=off" \
    rt_serve_start a
  rt_wait_for 60 '[ "$(status '"$id"')" = timed_out ]'
  rt_serve_stop a
  rt_assert_eq 40000 "$(rt_psql "select count(*) from ratchet.queue")" "only the ended run's item left the queue"
  # The sections after this one share the database when the file runs whole.
  rt_psql "delete from ratchet.runs where workflow_id = 'wftimeout' and status = 'queued'" >/dev/null
  rt_psql "alter table ratchet.queue reset (autovacuum_enabled)" >/dev/null
  rt_psql "analyze ratchet.queue" >/dev/null
}

section_claim_backlog() {
  # The claims skip the items of paused runs and of runs past their start deadline. That
  # test was an anti-join whose plan depended on the statistics: when they said no run was
  # queued (analyzed before a backlog arrived), each claimed item scanned every unfinished
  # run by runs_by_status, so every claim cost as much as the whole backlog. Here 200,000
  # runs wait for tomorrow and 8,000 are due, with the statistics of before: the due runs
  # must drain in the usual window (they took minutes). The engine's sessions may not hash,
  # merge or sort (PGOPTIONS), the planner's other ways out, so the plan cannot hide it.
  rt_psql "alter table ratchet.queue set (autovacuum_enabled = false)" >/dev/null
  rt_psql "alter table ratchet.runs set (autovacuum_enabled = false)" >/dev/null
  tmpl=$("$RATCHET_BIN" run quick1 --in 1d) # no engine yet: a template row
  rt_psql "insert into ratchet.queue (run_id, step_id, run_at) select '$tmpl', 'pad' || g, now() + interval '1 day'
           from generate_series(1, 40000) g" >/dev/null
  rt_psql "delete from ratchet.queue where step_id like 'pad%'" >/dev/null
  copies() { # N STATUS: runs of quick1 like the template
    rt_psql "insert into ratchet.runs (id, workflow_id, workflow_hash, status, trigger, event)
             select gen_random_uuid(), workflow_id, workflow_hash, '$2', trigger, event
             from ratchet.runs, generate_series(1, $1) where id = '$tmpl' returning id"
  }
  copies 100000 completed >/dev/null # the history of a system in use
  rt_psql "analyze ratchet.queue; analyze ratchet.runs" >/dev/null # queue 'empty', no run queued
  backlog() { # N DUE: runs of quick1, their step due at DUE
    rt_psql "with r as (insert into ratchet.runs (id, workflow_id, workflow_hash, status, trigger, event)
               select gen_random_uuid(), workflow_id, workflow_hash, 'queued', trigger, event
               from ratchet.runs, generate_series(1, $1) where id = '$tmpl' returning id),
             s as (insert into ratchet.steps (run_id, step_id, status) select id, 'a', 'pending' from r)
             insert into ratchet.queue (run_id, step_id, run_at) select id, 'a', $2 from r" >/dev/null
  }
  backlog 200000 "now() + interval '1 day'"
  backlog 8000 "now()"
  rt_assert_eq 8000 "$(rt_psql "select count(*) from ratchet.queue where run_at <= now()")" "the due runs are queued"
  PGOPTIONS="-c enable_hashjoin=off -c enable_mergejoin=off -c enable_hashagg=off -c enable_sort=off -c enable_material=off" \
    rt_serve_start a
  rt_serve_wait_ready a
  rt_wait_for 60 '[ "$(rt_psql "select count(*) from ratchet.queue where run_at <= now()")" = 0 ]'
  rt_serve_stop a
  rt_assert_eq 8000 "$(rt_psql "select count(*) from ratchet.runs r join ratchet.steps s on s.run_id = r.id
    where r.workflow_id = 'quick1' and r.status = 'completed' and s.status = 'completed'")" "every due run completed"
  # The sections after this one share the database when the file runs whole.
  rt_psql "delete from ratchet.runs where workflow_id = 'quick1'" >/dev/null
  rt_psql "alter table ratchet.queue reset (autovacuum_enabled)" >/dev/null
  rt_psql "alter table ratchet.runs reset (autovacuum_enabled)" >/dev/null
  rt_psql "analyze ratchet.queue; analyze ratchet.runs" >/dev/null
}

section_expire_backlog() {
  # The deadline sweep ends at most 100 runs a pass; it ran once a second, so 6,000 runs
  # whose start_timeout passed together (a backlog behind an outage) took a minute to
  # expire, and every claim meanwhile stepped over their due items. A full pass is now
  # followed by the next at once.
  tmpl=$("$RATCHET_BIN" run starttimeout --in 1d) # no engine yet: a template row
  rt_psql "with r as (insert into ratchet.runs (id, workflow_id, workflow_hash, status, trigger, event, start_deadline,
               entity_id)
             select gen_random_uuid(), workflow_id, workflow_hash, 'queued', trigger, event, now() - interval '1 second',
               'expire-backlog'
             from ratchet.runs, generate_series(1, 6000) where id = '$tmpl' returning id),
           s as (insert into ratchet.steps (run_id, step_id, status) select id, 'a', 'pending' from r)
           insert into ratchet.queue (run_id, step_id, run_at) select id, 'a', now() from r" >/dev/null
  rt_psql "delete from ratchet.runs where id = '$tmpl'" >/dev/null
  rt_serve_start a
  rt_serve_wait_ready a
  rt_wait_for 40 '[ "$(rt_psql "select count(*) from ratchet.runs where entity_id = '"'expire-backlog'"' and status = '"'queued'"'")" = 0 ]'
  rt_serve_stop a
  rt_assert_eq 6000 "$(rt_psql "select count(*) from ratchet.runs where entity_id = 'expire-backlog'
    and status = 'expired'")" "every backlog run expired"
  rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.steps s join ratchet.runs r on r.id = s.run_id
    where r.entity_id = 'expire-backlog' and s.status <> 'pending'")" "no expired run started a step"
  rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.queue q join ratchet.runs r on r.id = q.run_id
    where r.entity_id = 'expire-backlog'")" "the expired runs' items left the queue"
  rt_psql "delete from ratchet.runs where entity_id = 'expire-backlog'" >/dev/null
}

section_sweep_poison() {
  # Overdue runs whose ending fails every time — here their on_failure run, which a trigger
  # of this test refuses — and 300 overdue runs behind them (later deadlines). A failed pass
  # is rolled back whole, and every pass took the poisoned run first: none of the 300 ever
  # expired. The sweep now leaves a run whose ending failed aside for a while.
  rt_expect_log_error 'deadline sweep: run [0-9a-f-]+ \(poison\): .*poisoned by the test'
  rt_psql "create or replace function public.rt_test_poison() returns trigger language plpgsql as
           \$\$ begin raise exception 'poisoned by the test'; end \$\$" >/dev/null
  rt_psql "create trigger rt_test_poison before insert on ratchet.runs for each row
           when (new.workflow_id = 'poisoned') execute function public.rt_test_poison()" >/dev/null
  # 100 of them, each earlier than the 300: a pass finds one, so they cost 100 passes (they
  # were a second each, and one set aside for 60 s came back before the last was found).
  bad=$("$RATCHET_BIN" run poison --in 1d)
  rt_psql "update ratchet.runs set start_deadline = now() - interval '1 hour' where id = '$bad'" >/dev/null
  rt_psql "insert into ratchet.runs (id, workflow_id, workflow_hash, status, trigger, event, start_deadline, entity_id)
           select gen_random_uuid(), workflow_id, workflow_hash, 'queued', trigger, event,
             now() - interval '1 hour' + g * interval '1 second', 'sweep-poisoned'
           from ratchet.runs, generate_series(1, 99) g where id = '$bad'" >/dev/null
  tmpl=$("$RATCHET_BIN" run starttimeout --in 1d)
  rt_psql "with r as (insert into ratchet.runs (id, workflow_id, workflow_hash, status, trigger, event, start_deadline,
               entity_id)
             select gen_random_uuid(), workflow_id, workflow_hash, 'queued', trigger, event, now() - interval '1 second',
               'sweep-poison'
             from ratchet.runs, generate_series(1, 300) where id = '$tmpl' returning id)
           insert into ratchet.queue (run_id, step_id, run_at) select id, 'a', now() from r" >/dev/null
  rt_psql "delete from ratchet.runs where id = '$tmpl'" >/dev/null
  rt_serve_start a
  rt_serve_wait_ready a
  rt_wait_for 60 '[ "$(rt_psql "select count(*) from ratchet.runs where entity_id = '"'sweep-poison'"' and status = '"'queued'"'")" = 0 ]'
  rt_serve_stop a
  rt_assert_eq 300 "$(rt_psql "select count(*) from ratchet.runs where entity_id = 'sweep-poison' and status = 'expired'")" \
    "the runs behind the poisoned one expired"
  rt_assert_eq queued "$(run_field "$bad" status)" "the poisoned run is left as it was (its ending rolled back)"
  rt_assert_eq 99 "$(rt_psql "select count(*) from ratchet.runs where entity_id = 'sweep-poisoned' and status = 'queued'")" \
    "the other poisoned runs are left as they were"
  grep -qE "deadline sweep: run $bad \(poison\): its on_failure failed: .*poisoned by the test.*; it stays as it is for 60 s" "$T/a.log" ||
    rt_fail "the sweep did not say which run it left aside, and why: $(grep -m3 'deadline sweep' "$T/a.log")"
  rt_psql "drop trigger rt_test_poison on ratchet.runs; drop function public.rt_test_poison()" >/dev/null
  rt_psql "delete from ratchet.runs where entity_id in ('sweep-poison', 'sweep-poisoned') or id = '$bad'" >/dev/null
}

section_replay() {
  rt_serve_start a
  # Replay: the whole run again, then --from b (a is not executed again).
  : > "$FX/replay"
  id=$("$RATCHET_BIN" run steps3 --wait)
  r1=$("$RATCHET_BIN" replay "$id")
  rt_wait_for 60 '[ "$(status '"$r1"')" = completed ]'
  rt_assert_eq "a b a b" "$(tr '\n' ' ' < "$FX/replay" | sed 's/ $//')" "replay runs every step again"
  r2=$("$RATCHET_BIN" replay "$id" --from b)
  rt_wait_for 60 '[ "$(status '"$r2"')" = completed ]'
  rt_assert_eq "a b a b b" "$(tr '\n' ' ' < "$FX/replay" | sed 's/ $//')" "replay --from b reuses a's memoized output"
  rt_assert_eq 3 "$(run_field "$r2" output::text)" "the reused output feeds later steps"
  rt_serve_stop a
}

section_cancel() {
  rt_serve_start a
  # Cancel kills the exec step's whole process group.
  id=$("$RATCHET_BIN" run longexec)
  rt_wait_for 60 '[ -s "$FX/grandchild" ]'
  gc=$(cat "$FX/grandchild")
  "$RATCHET_BIN" cancel "$id" >/dev/null 2>&1
  rt_assert_eq cancelled "$(status "$id")" "cancel marks the run"
  rt_wait_for 60 '! kill -0 '"$gc"' 2>/dev/null || grep -q "^Z" <<<"$(ps -o stat= -p '"$gc"')"'
  rt_serve_stop a
}

section_on_failure() {
  rt_serve_start a
  # on_failure: an event that triggers a listener; a workflow started with the failure.
  if id=$("$RATCHET_BIN" run failing --wait); then rt_fail "failing must fail"; fi
  rt_wait_for 60 '[ "$(rt_psql "select count(*) from ratchet.runs where workflow_id = '"'onfail-listener'"' and status = '"'completed'"'")" = 1 ]'
  rt_assert_eq "$id" "$(rt_psql "select output->>'run_id' from ratchet.runs where workflow_id = 'onfail-listener'")" "on_failure event carries the run id"
  if id=$("$RATCHET_BIN" run failing2 --wait); then rt_fail "failing2 must fail"; fi
  rt_wait_for 60 '[ "$(rt_psql "select output #>> '"'{}'"' from ratchet.runs where workflow_id = '"'cleanup'"' and status = '"'completed'"'")" = "'"$id"'" ]'
  rt_serve_stop a
}

section_partial() {
  rt_serve_start a
  # continue_on_error: the run goes on and ends partial.
  id=$("$RATCHET_BIN" run partial --wait) && rt_fail "a partial run is not completed" || true
  rt_wait_for 60 '[ "$(status '"$(rt_psql "select id from ratchet.runs where workflow_id = 'partial'")"')" = partial ]'
  rt_assert_eq '"failed"' "$(rt_psql "select output::text from ratchet.runs where workflow_id = 'partial'")" "later steps see the failed status"
  rt_serve_stop a
}

section_invoke() {
  rt_serve_start a
  # invoke: the child's output; the child's failure fails the step.
  id=$("$RATCHET_BIN" run parent --data '{"n": 4}' --wait)
  rt_assert_eq 80 "$(run_field "$id" output::text)" "parent uses child output (4*2*10)"
  rt_assert_eq invoke "$(rt_psql "select trigger->>'type' from ratchet.runs where workflow_id = 'child' and parent_run_id = '$id'")" "child trigger"
  if id=$("$RATCHET_BIN" run parent --data '{"n": 0}' --wait); then rt_fail "a failed child fails the parent"; fi
  grep -q "child run" <<<"$(run_field "$id" error)" || rt_fail "parent error names the child: $(run_field "$id" error)"
  rt_serve_stop a
}

section_for_each() {
  rt_serve_start a
  # for_each: once per element, output is the array.
  id=$("$RATCHET_BIN" run fanout --data '{"items": [1, 2, 3]}' --wait)
  rt_assert_eq "[10, 21, 32]" "$(run_field "$id" output::text)" "for_each output"
  rt_serve_stop a
}

section_concurrency() {
  # Concurrency: 200 runs over 5 keys, limit 2 per key: never more than 2 at once per key.
  : > "$FX/conc"
  # A backlog first, so that the workers contend for the keys: the 200 runs are created by
  # one POST of 200 events (one commit, from one process: 200 `ratchet run` processes took
  # minutes under ASan on a loaded machine).
  RATCHET_WORKERS=8 rt_serve_start a
  rt_serve_wait_ready a
  rt_send_events a 0 "$(python3 -c 'import json; print(json.dumps([{"name": "flow.limited", "data": {"key": "k%d" % (i % 5)}} for i in range(1, 201)]))')" >/dev/null
  rt_wait_for 300 '[ "$(rt_psql "select count(*) from ratchet.runs where workflow_id = '"'limited'"' and status = '"'completed'"'")" = 200 ]'
  max=$(python3 "$RT_INTEGRATION_DIR/peak.py" "$FX/conc" --per-key)
  [ "$max" -le 2 ] || rt_fail "concurrency limit 2 exceeded: $max at once"
  [ "$max" -ge 2 ] || rt_fail "concurrency never reached its limit ($max): the test proves nothing"
  rt_serve_stop a
  echo "max simultaneous per key: $max"
}

rt_run_sections "$@"
