#!/usr/bin/env bash
# A new run's quick first steps run in the transaction that stores its event (one commit,
# no hand-off to a worker), for events from a broker and from the API; the slow steps after
# them go to the workers as before. Runs held for approval, runs under a concurrency key,
# steps that wait for events and for_each steps do not start at ingest. With RATCHET_RUN_AT_INGEST=false nothing runs at ingest.
# When running first steps fails, the batch is stored again without them (nothing lost,
# stored once) and the workers run them.
#
# "In the same transaction" is read from PostgreSQL itself: a row's xmin is the
# transaction that wrote its current version, so a first step committed with its event has
# the event row's xmin.
source "$(dirname "$0")/lib.sh"
rt_test_init run_at_ingest
rt_use_nats

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2
subj="rai$$"
cat > "$W/chain.json" <<EOF2
{"id": "chain", "triggers": [{"event": "$subj.chain"}],
 "steps": [{"id": "first", "uses": "transform", "with": {"value": "\${{ event.data.n }}"}},
           {"id": "second", "uses": "log", "with": {"message": "after first"}},
           {"id": "slow", "uses": "exec", "with": {"command": ["true"]}}]}
EOF2
cat > "$W/quick.json" <<EOF2
{"id": "quick", "triggers": [{"event": "$subj.quick"}], "steps": [{"id": "first", "uses": "transform", "with": {"value": 1}}]}
EOF2
cat > "$W/keyed.json" <<EOF2
{"id": "keyed", "triggers": [{"event": "$subj.keyed"}], "concurrency": {"key": "event.data.k", "limit": 1},
 "steps": [{"id": "first", "uses": "transform", "with": {"value": 1}}]}
EOF2
cat > "$W/gated.json" <<EOF2
{"id": "gated", "triggers": [{"event": "$subj.gated"}], "approval": {"required_for": ["agent"], "approvers": ["ops-lead"]},
 "steps": [{"id": "first", "uses": "transform", "with": {"value": 1}}]}
EOF2
cat > "$W/waits.json" <<EOF2
{"id": "waits", "triggers": [{"event": "$subj.wait"}],
 "steps": [{"id": "first", "uses": "wait_for_event", "with": {"event": "$subj.go", "timeout": "10m"}},
           {"id": "after", "uses": "transform", "with": {"value": 1}}]}
EOF2
cat > "$W/fanout.json" <<EOF2
{"id": "fanout", "triggers": [{"event": "$subj.fan"}],
 "steps": [{"id": "first", "uses": "transform", "for_each": "event.data.items", "with": {"value": "\${{ item }}"}}]}
EOF2
cat > "$W/fragile.json" <<EOF2
{"id": "fragile", "triggers": [{"event": "$subj.fragile"}],
 "steps": [{"id": "first", "uses": "transform", "with": {"value": 2}}]}
EOF2
rt_use_approver ops-lead
"$RATCHET_BIN" migrate >/dev/null
rt_serve_start a
rt_serve_wait_ready a

# Whether step STEP of the run EVENT started was committed with the event: "same" or "later".
committed_with_event() { # EVENT_ID STEP
  rt_psql "select case when e.xmin = s.xmin then 'same' else 'later' end from ratchet.events e
           join ratchet.runs r on r.event_id = e.id join ratchet.steps s on s.run_id = r.id
           where e.id = '$1' and s.step_id = '$2' and s.status = 'completed'"
}
done_runs() { rt_psql "select count(*) from ratchet.runs where workflow_id = '$1' and status = 'completed'"; }

# --- from a broker: the quick chain at ingest, the exec step by a worker ------------------
"$RATCHET_BIN" send "$subj.chain" --via nats --id "$subj-n1" --data '{"n": 7}' >/dev/null
rt_wait_for 60 '[ "$(done_runs chain)" = 1 ]'
rt_assert_eq same "$(committed_with_event "$subj-n1" first)" "first step committed with its event (nats)"
rt_assert_eq same "$(committed_with_event "$subj-n1" second)" "its quick successor too"
rt_assert_eq later "$(committed_with_event "$subj-n1" slow)" "the exec step ran later, on a worker"
rt_assert_eq 7 "$(rt_psql "select s.output::text from ratchet.steps s join ratchet.runs r on r.id = s.run_id
                          where r.event_id = '$subj-n1' and s.step_id = 'first'")" "the step saw its event"
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.queue")" "no queue item left behind"

# --- a run that ends at ingest: counted once, after the commit ---------------------------
"$RATCHET_BIN" send "$subj.quick" --via nats --id "$subj-q1" >/dev/null
rt_wait_for 60 '[ "$(done_runs quick)" = 1 ]'
rt_assert_eq same "$(committed_with_event "$subj-q1" first)" "a one-step run ends at ingest"
finished() { metric a 'ratchet_runs_finished_total{workflow="quick",status="completed"}'; }
rt_wait_for 30 '[ "$(finished)" = 1 ]' # counted right after the commit the run was read from

# --- from the API -------------------------------------------------------------------------
rt_send_events a 0 "{\"name\": \"$subj.chain\", \"id\": \"api1\", \"data\": {\"n\": 1}}" >/dev/null
rt_wait_for 60 '[ "$(done_runs chain)" = 2 ]'
rt_assert_eq same "$(committed_with_event api1 first)" "first step committed with its event (api)"

# --- a concurrency key: admitted by the workers, not at ingest ---------------------------
"$RATCHET_BIN" send "$subj.keyed" --via nats --id "$subj-k1" --data '{"k": "x"}' >/dev/null
rt_wait_for 60 '[ "$(done_runs keyed)" = 1 ]'
rt_assert_eq later "$(committed_with_event "$subj-k1" first)" "a keyed run's first step waits for a worker"

# --- an agent's event for a gated workflow: held, nothing runs -----------------------------
"$RATCHET_BIN" send "$subj.gated" --via nats --id "$subj-g1" --actor-type agent --actor-id bot-1 >/dev/null
rt_wait_for 60 '[ "$(rt_psql "select status from ratchet.runs where event_id = '"'$subj-g1'"'")" = awaiting_approval ]'
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.steps s join ratchet.runs r on r.id = s.run_id
                          where r.event_id = '$subj-g1' and s.status = 'completed'")" "a held run ran nothing"

# --- a step that waits for events, and a for_each: left to the workers ------------------
"$RATCHET_BIN" send "$subj.wait" --via nats --id "$subj-w1" >/dev/null
rt_wait_for 60 '[ "$(rt_psql "select count(*) from ratchet.waits w join ratchet.runs r on r.id = w.run_id where r.event_id = '"'$subj-w1'"'")" = 1 ]'
rt_assert_eq 1 "$(rt_psql "select count(*) from ratchet.waits w join ratchet.runs r on r.id = w.run_id
                          join ratchet.events e on e.id = r.event_id
                          where e.id = '$subj-w1' and w.xmin <> e.xmin")" "the wait was registered by a worker, later"
"$RATCHET_BIN" send "$subj.go" --via nats --id "$subj-go1" >/dev/null
rt_wait_for 60 '[ "$(done_runs waits)" = 1 ]'
"$RATCHET_BIN" send "$subj.fan" --via nats --id "$subj-fan1" --data '{"items": [1, 2, 3]}' >/dev/null
rt_wait_for 60 '[ "$(done_runs fanout)" = 1 ]'
rt_assert_eq later "$(committed_with_event "$subj-fan1" first)" "a for_each step ran on a worker"

# --- running first steps fails: stored again without them, once ------------------------
# A trigger refuses a completed step row written in the transaction that created its run.
rt_psql "create function ratchet.t_refuse_at_ingest() returns trigger language plpgsql as \$\$
begin
  if new.step_id = 'first' and new.status = 'completed'
     and (select workflow_id from ratchet.runs where id = new.run_id) = 'fragile'
     and (select created_at from ratchet.runs where id = new.run_id) = now() then
    raise exception 'refused by the test';
  end if;
  return new;
end \$\$;
create trigger t_refuse_at_ingest before insert or update on ratchet.steps
  for each row execute function ratchet.t_refuse_at_ingest();"
rt_expect_log_error 'refused by the test'
"$RATCHET_BIN" send "$subj.fragile" --via nats --id "$subj-f1" >/dev/null
rt_wait_for 60 '[ "$(done_runs fragile)" = 1 ]'
rt_assert_eq later "$(committed_with_event "$subj-f1" first)" "the workers ran the step"
rt_assert_eq 1 "$(rt_psql "select count(*) from ratchet.events where id = '$subj-f1'")" "the event stored once"
rt_assert_eq 1 "$(rt_psql "select count(*) from ratchet.runs where event_id = '$subj-f1'")" "one run"
failed=$(metric a ratchet_ingest_first_steps_failed_total)
[[ ${failed:-0} -ge 1 ]] || rt_fail "ratchet_ingest_first_steps_failed_total is '${failed}', expected >= 1"
# the rolled-back first try made no run: started is counted at the commit, once
rt_assert_eq 1 "$(metric a 'ratchet_runs_started_total{workflow="fragile"}')" "the run counted as started once"
grep -q 'running first steps at ingest failed' "$T/a.log" || rt_fail "the fallback was not logged"
rt_serve_stop a

# --- switched off -------------------------------------------------------------------------
RATCHET_RUN_AT_INGEST=false rt_serve_start b
rt_serve_wait_ready b
"$RATCHET_BIN" send "$subj.chain" --via nats --id "$subj-off1" --data '{"n": 3}' >/dev/null
rt_wait_for 60 '[ "$(done_runs chain)" = 3 ]'
rt_assert_eq later "$(committed_with_event "$subj-off1" first)" "RATCHET_RUN_AT_INGEST=false: a worker ran it"
rt_serve_stop b
echo "ok: run_at_ingest"
