#!/usr/bin/env bash
# Side doors through events the engine makes or matches (DESIGN §6):
#   3    publish relays an agent's request without its actor: the event a run publishes
#        carries the run's actor and entity, so a gated workflow behind an ungated one
#        still waits for approval (invoke does already: kept as a guard)
#   4    wait_for_event: an agent's event never wakes another entity's run (after the wait,
#        or by lookback) nor a system workflow's run; its own entity's run it may
#   6    event ids in the engine's namespace "ratchet:": POST /api/v1/events refuses them
#        (400 naming the prefix), and the engine's own (on_failure) live there
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/gate_lib.sh"
rt_test_init gate_relay

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2
rt_use_approver ops-lead
cat >"$W/relay-p.json" <<'EOF'
{"id": "relay-p", "triggers": [{"event": "p.go"}],
 "steps": [{"id": "pub", "uses": "publish", "with": {"topic": "g.go", "data": "${{ event.data }}"}}]}
EOF
cat >"$W/gated-g.json" <<'EOF'
{"id": "gated-g", "triggers": [{"event": "g.go"}], "approval": {"required_for": ["agent"], "approvers": ["ops-lead"]},
 "steps": [{"id": "a", "uses": "transform", "with": {"value": "${{ event.data }}"}}]}
EOF
cat >"$W/relay-i.json" <<'EOF'
{"id": "relay-i", "triggers": [{"event": "i.go"}],
 "steps": [{"id": "call", "uses": "invoke", "with": {"workflow": "gated-child", "data": "${{ event.data }}"}}]}
EOF
cat >"$W/gated-child.json" <<'EOF'
{"id": "gated-child", "approval": {"required_for": ["agent"], "approvers": ["ops-lead"]},
 "steps": [{"id": "a", "uses": "transform", "with": {"value": "${{ event.data }}"}}]}
EOF
cat >"$W/waiter.json" <<'EOF'
{"id": "gate-waiter", "triggers": [{"event": "w.start"}], "steps": [
  {"id": "wait", "uses": "wait_for_event", "with": {"event": "x.done", "timeout": "10m"}},
  {"id": "after", "uses": "transform", "with": {"value": "${{ steps.wait.output.entity_id }}"}}]}
EOF
cat >"$W/lookback.json" <<'EOF'
{"id": "gate-lookback", "triggers": [{"event": "lb.start"}], "steps": [
  {"id": "wait", "uses": "wait_for_event", "with": {"event": "${{ event.data.wait_for }}", "lookback": "1h", "timeout": "15s"}},
  {"id": "after", "uses": "transform", "with": {"value": {"got": "${{ steps.wait.output.id }}"}}}]}
EOF
cat >"$W/sys-waiter.json" <<'EOF'
{"id": "gate-sys-waiter", "system": true, "triggers": [{"event": "s.start"}], "steps": [
  {"id": "wait", "uses": "wait_for_event", "with": {"event": "z.done", "timeout": "10m"}},
  {"id": "after", "uses": "transform", "with": {"value": "${{ steps.wait.output.actor.type }}"}}]}
EOF
cat >"$W/failing.json" <<'EOF'
{"id": "gate-failing", "retries": {"max_attempts": 1}, "on_failure": {"event": "gate.job.failed"},
 "steps": [{"id": "x", "uses": "exec", "with": {"command": ["false"]}}]}
EOF
cat >"$W/on-failed.json" <<'EOF'
{"id": "gate-on-failed", "triggers": [{"event": "gate.job.failed"}],
 "steps": [{"id": "a", "uses": "transform", "with": {"value": "${{ event.data.run_id }}"}}]}
EOF
"$RATCHET_BIN" migrate >/dev/null
rt_serve_start a
rt_serve_wait_ready a 60
U=$(rt_serve_url a)

send() { # NAME ACTOR-TYPE ENTITY DATA -> the event id (stored, runs created and waits woken, when it returns)
  "$RATCHET_BIN" send "$1" --actor-type "$2" --actor-id "$2-1" ${3:+--entity "$3"} --data "$4" 2>"$T/send.err" ||
    rt_fail "ratchet send $1 as $2: $(cat "$T/send.err")"
}
run_of_event() { q "select id from ratchet.runs where event_id = '$1'"; }
step_status() { q "select status from ratchet.steps where run_id = '$1' and step_id = '$2'"; }

# ---- 3. publish keeps the actor and entity of the run that publishes ----
case_publish() {
  local ev P G
  ev=$(send p.go agent e1 '{"x": 1}')
  P=$(run_of_event "$ev")
  [[ -n $P ]] || rt_fail "the agent's p.go started no relay-p run"
  rt_wait_for 60 '[ "$(gate_status '"$P"')" = completed ]'
  rt_wait_for 60 '[ -n "$(q "select id from ratchet.runs where workflow_id = '"'gated-g'"'")" ]'
  G=$(q "select id from ratchet.runs where workflow_id = 'gated-g'")
  rt_assert_eq "awaiting_approval|agent|e1|agent|e1" \
    "$(q "select r.status || '|' || coalesce(r.event->'actor'->>'type', '') || '|' || coalesce(r.entity_id, '') || '|' ||
               coalesce(e.envelope->'actor'->>'type', '') || '|' || coalesce(e.envelope->>'entity_id', '')
          from ratchet.runs r join ratchet.events e on e.id = r.event_id where r.id = '$G'")" \
    "gated-g's run from the g.go relay-p published for the agent must await approval, its event with actor agent and entity e1 (run status|run event actor|run entity|stored event actor|stored event entity)"
}
gate_case 3 "publish: a relayed event keeps the agent actor and entity, so the gate holds" case_publish

case_invoke() {
  local ev I C
  ev=$(send i.go agent e1 '{"x": 2}')
  I=$(run_of_event "$ev")
  [[ -n $I ]] || rt_fail "the agent's i.go started no relay-i run"
  rt_wait_for 60 '[ -n "$(q "select id from ratchet.runs where workflow_id = '"'gated-child'"'")" ]'
  C=$(q "select id from ratchet.runs where workflow_id = 'gated-child'")
  rt_assert_eq "awaiting_approval|agent|e1" \
    "$(q "select status || '|' || coalesce(event->'actor'->>'type', '') || '|' || coalesce(entity_id, '') from ratchet.runs where id = '$C'")" \
    "the invoked gated child of an agent's run must await approval with actor agent, entity e1 (status|actor|entity)"
}
gate_case 3g "invoke (guard): the child run keeps the agent actor and entity" case_invoke

# ---- 4. wait_for_event: an agent wakes only its own entity's non-system runs ----
case_wait_entity() {
  local R ev2 ev1
  R=$(run_of_event "$(send w.start service e1 '{}')")
  rt_assert_eq e1 "$(q "select entity_id from ratchet.runs where id = '$R'")" "the waiting run belongs to e1"
  rt_wait_for 60 '[ "$(step_status '"$R"' wait)" = waiting ]'
  ev2=$(send x.done agent e2 '{}')
  rt_wait_for 60 '[ "$(q "select count(*) from ratchet.events where id = '"'$ev2'"'")" = 1 ]'
  rt_assert_eq "waiting|waiting|1" "$(q "select r.status || '|' || s.status || '|' || (select count(*) from ratchet.waits w where w.run_id = r.id)
    from ratchet.runs r join ratchet.steps s on s.run_id = r.id and s.step_id = 'wait' where r.id = '$R'")" \
    "an agent's x.done of entity e2 must not wake e1's run $R (run status|wait step status|wait rows)"
  ev1=$(send x.done agent e1 '{}')
  rt_wait_for 60 '[ "$(gate_status '"$R"')" = completed ]'
  rt_assert_eq '"e1"' "$(q "select output::text from ratchet.runs where id = '$R'")" "the run was woken by e1's event (output = its entity)"
}
gate_case 4a "wait_for_event: an agent's event of another entity does not wake a run" case_wait_entity

case_wait_lookback() {
  local ev2 R ev1 R1
  ev2=$(send y.done agent e2 '{}')
  R=$(run_of_event "$(send lb.start service e1 '{"wait_for": "y.done"}')")
  rt_wait_for 60 '[ "$(gate_status '"$R"')" = completed ]'
  rt_assert_eq '{"got": null}' "$(q "select output::text from ratchet.runs where id = '$R'")" \
    "e1's lookback wait must time out (got null), not match the agent's y.done $ev2 of entity e2 stored before the run"
  # Guard: the agent's event of the run's own entity is found by lookback.
  ev1=$(send y2.done agent e1 '{}')
  R1=$(run_of_event "$(send lb.start service e1 '{"wait_for": "y2.done"}')")
  rt_wait_for 60 '[ "$(gate_status '"$R1"')" = completed ]'
  rt_assert_eq "{\"got\": \"$ev1\"}" "$(q "select output::text from ratchet.runs where id = '$R1'")" "lookback finds the agent's event of the run's own entity"
}
gate_case 4b "wait_for_event lookback: an earlier agent event of another entity does not match" case_wait_lookback

case_wait_system() {
  local R ev
  R=$(run_of_event "$(send s.start service e1 '{}')")
  rt_wait_for 60 '[ "$(step_status '"$R"' wait)" = waiting ]'
  ev=$(send z.done agent e1 '{}')
  rt_wait_for 60 '[ "$(q "select count(*) from ratchet.events where id = '"'$ev'"'")" = 1 ]'
  rt_assert_eq "waiting|waiting" "$(q "select r.status || '|' || s.status from ratchet.runs r join ratchet.steps s on s.run_id = r.id and s.step_id = 'wait' where r.id = '$R'")" \
    "an agent's z.done (even of the run's own entity e1) must not wake the system workflow's run $R (run status|wait step status)"
  send z.done service e1 '{}' >/dev/null
  rt_wait_for 60 '[ "$(gate_status '"$R"')" = completed ]'
  rt_assert_eq '"service"' "$(q "select output::text from ratchet.runs where id = '$R'")" "the system run was woken by the service's event"
}
gate_case 4c "wait_for_event: an agent's event never wakes a system workflow's run" case_wait_system

# ---- 6. the "ratchet:" id namespace belongs to the engine ----
case_reserved_id_api() {
  local code msg
  code=$(curl -sS -m 30 -o "$T/r6" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data '{"name": "gate.job.failed", "id": "ratchet:anything", "data": {"run_id": "squatted"}}' "$U/api/v1/events")
  msg=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"]["message"])' "$T/r6" 2>/dev/null || cat "$T/r6")
  [[ $code == 400 && $msg == *ratchet:* ]] ||
    rt_fail "POST /api/v1/events with id \"ratchet:anything\" must be refused with 400 naming the reserved prefix \"ratchet:\"; got HTTP $code: $(cat "$T/r6")"
  rt_assert_eq 0 "$(q "select count(*) from ratchet.events where id = 'ratchet:anything'")" "the refused event was not stored"
  rt_assert_eq 0 "$(q "select count(*) from ratchet.runs where workflow_id = 'gate-on-failed'")" "the squatting event started nothing"
}
gate_case 6a "event ids: POST /api/v1/events refuses ids in the reserved \"ratchet:\" namespace" case_reserved_id_api

case_on_failure_id() {
  local fid eid H
  if fid=$("$RATCHET_BIN" run gate-failing --wait 2>/dev/null); then rt_fail "gate-failing must fail"; fi
  [[ -n $fid ]] || fid=$(q "select id from ratchet.runs where workflow_id = 'gate-failing'")
  rt_assert_eq failed "$(gate_status "$fid")" "the failing run failed"
  eid=$(q "select id from ratchet.events where name = 'gate.job.failed' and envelope->'data'->>'run_id' = '$fid'")
  [[ -n $eid ]] || rt_fail "no on_failure event for run $fid"
  [[ $eid == ratchet:* ]] || rt_fail "the on_failure event's id must start with \"ratchet:\" (the engine's namespace); got \"$eid\""
  H=$(q "select id from ratchet.runs where workflow_id = 'gate-on-failed' and event_id = '$eid'")
  [[ -n $H ]] || rt_fail "the on_failure event $eid started no gate-on-failed run"
  rt_wait_for 60 '[ "$(gate_status '"$H"')" = completed ]'
}
gate_case 6b "event ids: a failing run's on_failure event lives in \"ratchet:\" and triggers its workflow" case_on_failure_id

gate_done
rt_serve_stop a
rt_check_log "$T/a.log"
echo "ok: gate relay"
