#!/usr/bin/env bash
# The gate comes before flow control (DESIGN §6): a request whose actor needs approval is
# admitted to debounce, batch_events, singleton and idempotency only once approved; until
# then it holds no key, joins no pending run and cancels nothing; and an agent never
# cancels (singleton cancel) a system workflow's run or another entity's run.
#   1a/1b  debounce / batch_events: an agent's event does not join a service's pending run
#   2a     singleton cancel: an agent's event does not cancel a system run, nor another
#          entity's run (refusal audited); its own entity's it may
#   2b     an awaiting agent request holds no idempotency / singleton-skip / API
#          idempotency_key: a service's (operator's) request with the same key still runs
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/gate_lib.sh"
rt_test_init gate_admission

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2
rt_use_approver ops-lead
GATE='"approval": {"required_for": ["agent"], "approvers": ["ops-lead"]}'
REC='"steps": [{"id": "rec", "uses": "transform", "with": {"value": {"n": "${{ event.data.n }}", "actor": "${{ event.actor.type }}"}}}]'
BATCHREC='"steps": [{"id": "rec", "uses": "transform", "with": {"value": {"n": "${{ event.data.n }}", "actor": "${{ event.actor.type }}", "count": "${{ len(events) }}"}}}]'
NAP='"steps": [{"id": "nap", "uses": "sleep", "with": {"duration": "${{ default(event.data.nap, '"'1h'"') }}"}}]'
cat >"$W/debounce.json" <<EOF
{"id": "gate-debounce", "triggers": [{"event": "acct.changed"}], "debounce": {"period": "5s", "key": "event.data.acct"},
 $GATE, $REC}
EOF
cat >"$W/batch.json" <<EOF
{"id": "gate-batch", "triggers": [{"event": "line.added"}], "batch_events": {"max_size": 10, "timeout": "5s"},
 $GATE, $BATCHREC}
EOF
cat >"$W/sys-cancel.json" <<EOF
{"id": "gate-sys-cancel", "system": true, "triggers": [{"event": "sys.sync"}],
 "singleton": {"key": "event.data.acct", "mode": "cancel"}, $NAP}
EOF
cat >"$W/ent-cancel.json" <<EOF
{"id": "gate-ent-cancel", "triggers": [{"event": "ent.sync"}],
 "singleton": {"key": "event.data.acct", "mode": "cancel"}, $NAP}
EOF
cat >"$W/idem.json" <<EOF
{"id": "gate-idem", "triggers": [{"event": "day.close"}], "idempotency": "event.data.day", $GATE, $REC}
EOF
cat >"$W/skip.json" <<EOF
{"id": "gate-skip", "triggers": [{"event": "day.skip"}], "singleton": {"key": "event.data.day", "mode": "skip"},
 $GATE, $REC}
EOF
cat >"$W/manual.json" <<EOF
{"id": "gate-manual", $GATE, $REC}
EOF

TOKENS=$T/tokens
: >"$TOKENS"
TOK_AGENT=$(gate_mint agent e1)
TOK_OPERATOR=$(gate_mint operator)
gate_serve_with_tokens

# send NAME ACTOR-TYPE ENTITY DATA -> the event id (stored, runs created, when it returns)
send() {
  "$RATCHET_BIN" send "$1" --actor-type "$2" --actor-id "$2-1" ${3:+--entity "$3"} --data "$4" 2>"$T/send.err" ||
    rt_fail "ratchet send $1 as $2: $(cat "$T/send.err")"
}
# Waits until RUN left queued/running, then asserts it completed (WHAT names it).
completes() { # RUN WHAT
  rt_wait_for 90 '[ -n "$(q "select 1 from ratchet.runs where id = '"'$1'"' and status not in ('"'queued'"', '"'running'"')")" ]'
  rt_assert_eq completed "$(gate_status "$1")" "$2 must run and complete (error: $(q "select coalesce(error, '') from ratchet.runs where id = '$1'"))"
}
runs_of() { q "select coalesce(string_agg(id::text || ':' || status, ',' order by created_at), '') from ratchet.runs where workflow_id = '$1'"; }

# ---- 1a. debounce: the agent's event (same key, inside the 5 s window) must not join ----
case_debounce() {
  local sev aev R own
  sev=$(send acct.changed service "" '{"acct": "a1", "n": 1}')
  aev=$(send acct.changed agent e1 '{"acct": "a1", "n": 2}')
  R=$(q "select id from ratchet.runs where workflow_id = 'gate-debounce' and event_id = '$sev'")
  [[ -n $R ]] || rt_fail "no run for the service's event $sev (runs: $(runs_of gate-debounce))"
  # The agent's event arrived inside the window: R had not started yet.
  rt_assert_eq queued "$(q "select status from ratchet.runs where id = '$R' and started_at is null")" \
    "the service's run is still pending when the agent's event was stored (else this case proves nothing)"
  completes "$R" "the service's run $R"
  rt_assert_eq '1|service|service' "$(q "select (output->>'n') || '|' || (output->>'actor') || '|' || (event->'actor'->>'type') from ratchet.runs where id = '$R'")" \
    "the service's run must run with its own event (n=1, actor service), not the agent's joined one (output n|actor|run event actor)"
  own=$(q "select id || ':' || status from ratchet.runs where workflow_id = 'gate-debounce' and id <> '$R' and (event_id = '$aev' or event->>'id' = '$aev')")
  [[ $own == *:awaiting_approval ]] || rt_fail "the agent's event must be its own run awaiting_approval; got [${own}] (runs: $(runs_of gate-debounce))"
  rt_assert_eq 0 "$(q "select count(*) from ratchet.runs where workflow_id = 'gate-debounce' and output->>'n' = '2'")" \
    "no run may execute the agent's n=2 without approval"
}
gate_case 1a "debounce: an agent's event does not join a service's pending run" case_debounce

# ---- 1b. batch_events: the agent's event must not be collected into the service's batch ----
case_batch() {
  local sev aev B own
  sev=$(send line.added service "" '{"n": 1}')
  aev=$(send line.added agent e1 '{"n": 2}')
  B=$(q "select id from ratchet.runs where workflow_id = 'gate-batch' and event_id = '$sev'")
  [[ -n $B ]] || rt_fail "no batch run for the service's event $sev (runs: $(runs_of gate-batch))"
  rt_assert_eq queued "$(q "select status from ratchet.runs where id = '$B' and started_at is null")" \
    "the service's batch is still collecting when the agent's event was stored"
  completes "$B" "the service's batch run $B"
  rt_assert_eq "$sev" "$(q "select string_agg(e->>'id', ',') from ratchet.runs r, jsonb_array_elements(r.trigger->'events') e where r.id = '$B'")" \
    "the service's batch must hold only its own event, not the agent's $aev (trigger.events ids)"
  rt_assert_eq '1|1' "$(q "select (output->>'count') || '|' || (output->>'n') from ratchet.runs where id = '$B'")" "the batch run saw one event (count|n)"
  own=$(q "select id || ':' || status from ratchet.runs where workflow_id = 'gate-batch' and id <> '$B' and (event_id = '$aev' or event->>'id' = '$aev')")
  [[ $own == *:awaiting_approval ]] || rt_fail "the agent's event must be its own run awaiting_approval; got [${own}] (runs: $(runs_of gate-batch))"
}
gate_case 1b "batch_events: an agent's event is not collected into a service's batch" case_batch

# ---- 1c. the same, both events in one request (one ingest call: the join happens in the plan) ----
case_debounce_one_call() {
  local code R own
  # No actor.id: the API stamps the token's own (a token speaks only for itself).
  code=$(curl -sS -m 30 -o "$T/r0" -w '%{http_code}' -H "Authorization: Bearer $TOK_OPERATOR" -H 'Content-Type: application/json' \
    --data '[{"name": "acct.changed", "id": "one-call-svc", "actor": {"type": "service"}, "data": {"acct": "a9", "n": 1}},
             {"name": "acct.changed", "id": "one-call-agent", "actor": {"type": "agent"}, "entity_id": "e1", "data": {"acct": "a9", "n": 2}}]' \
    "$U/api/v1/events")
  rt_assert_eq 200 "$code" "POST of the two events: $(cat "$T/r0")"
  R=$(q "select id from ratchet.runs where workflow_id = 'gate-debounce' and event_id = 'one-call-svc'")
  [[ -n $R ]] || rt_fail "no run for the service's event (runs: $(runs_of gate-debounce))"
  completes "$R" "the service's run $R"
  rt_assert_eq '1|service|service' "$(q "select (output->>'n') || '|' || (output->>'actor') || '|' || (event->'actor'->>'type') from ratchet.runs where id = '$R'")" \
    "the service's run must run with its own event (n=1, actor service), not the agent's joined one (output n|actor|run event actor)"
  own=$(q "select id || ':' || status from ratchet.runs where workflow_id = 'gate-debounce' and id <> '$R' and (event_id = 'one-call-agent' or event->>'id' = 'one-call-agent')")
  [[ $own == *:awaiting_approval ]] || rt_fail "the agent's event must be its own run awaiting_approval; got [${own}]"
}
gate_case 1c "debounce, both events in one request: the agent's does not join the service's" case_debounce_one_call

# ---- 2a. singleton cancel: an agent never cancels a system run or another entity's run ----
refusal_of() { # RUN -> count of agent.refused records naming the singleton cancel of RUN
  q "select count(*) from ratchet.audit_log where action = 'agent.refused' and actor like 'agent:%'
     and (subject = '$1' or details::text like '%$1%') and details::text ilike '%singleton%'"
}
case_singleton_system() {
  local R aev
  send sys.sync service "" '{"acct": "s1", "nap": "20s"}' >/dev/null
  R=$(q "select id from ratchet.runs where workflow_id = 'gate-sys-cancel'")
  rt_wait_for 60 '[ "$(gate_status '"$R"')" = sleeping ]'
  aev=$(send sys.sync agent e1 '{"acct": "s1", "nap": "1s"}')
  rt_assert_eq 1 "$(q "select count(*) from ratchet.events where id = '$aev'")" "the agent's event is stored"
  rt_assert_eq sleeping "$(gate_status "$R")" "an agent's event must not cancel the system run $R through singleton cancel (its error: $(q "select coalesce(error, '') from ratchet.runs where id = '$R'"))"
  [ "$(refusal_of "$R")" -ge 1 ] || rt_fail "no agent.refused audit record naming the singleton cancel of $R (agent records: $(q "select coalesce(string_agg(action || ' ' || subject || ' ' || details::text, ' | '), '') from ratchet.audit_log where actor like 'agent:%'"))"
  rt_wait_for 90 '[ "$(gate_status '"$R"')" = completed ]'
}
gate_case 2a.1 "singleton cancel: an agent's event does not cancel a system workflow's run" case_singleton_system

case_singleton_entity() {
  local R aev
  send ent.sync service e1 '{"acct": "c1"}' >/dev/null
  R=$(q "select id from ratchet.runs where workflow_id = 'gate-ent-cancel'")
  rt_assert_eq e1 "$(q "select entity_id from ratchet.runs where id = '$R'")" "the service's run belongs to e1"
  rt_wait_for 60 '[ "$(gate_status '"$R"')" = sleeping ]'
  aev=$(send ent.sync agent e2 '{"acct": "c1", "nap": "1s"}')
  rt_assert_eq 1 "$(q "select count(*) from ratchet.events where id = '$aev'")" "the agent's event is stored"
  rt_assert_eq sleeping "$(gate_status "$R")" "an agent of entity e2 must not cancel e1's run $R through singleton cancel (its error: $(q "select coalesce(error, '') from ratchet.runs where id = '$R'"))"
  [ "$(refusal_of "$R")" -ge 1 ] || rt_fail "no agent.refused audit record naming the singleton cancel of $R"
  # Guard (allowed today and after): an agent of e1 may cancel its own entity's run.
  send ent.sync agent e1 '{"acct": "c1", "nap": "1s"}' >/dev/null
  rt_wait_for 60 '[ "$(gate_status '"$R"')" = cancelled ]'
}
gate_case 2a.2 "singleton cancel: an agent's event does not cancel another entity's run" case_singleton_entity

# ---- 2b. an agent's request awaiting approval holds no key: others are not skipped ----
case_idempotency() {
  local aev sev A S
  aev=$(send day.close agent e1 '{"day": "d1", "n": 1}')
  A=$(q "select id from ratchet.runs where workflow_id = 'gate-idem' and event_id = '$aev'")
  rt_assert_eq awaiting_approval "$(gate_status "$A")" "the agent's run waits for approval"
  sev=$(send day.close service "" '{"day": "d1", "n": 2}')
  S=$(q "select id from ratchet.runs where workflow_id = 'gate-idem' and event_id = '$sev'")
  [[ -n $S ]] || rt_fail "the service's event for day d1 started no run: it was skipped behind the agent's run $A, which awaits approval and must hold no idempotency key"
  completes "$S" "the service's run $S"
}
gate_case 2b.1 "idempotency: an awaiting agent run does not skip a service's run" case_idempotency

case_singleton_skip() {
  local aev sev A S
  aev=$(send day.skip agent e1 '{"day": "d1", "n": 1}')
  A=$(q "select id from ratchet.runs where workflow_id = 'gate-skip' and event_id = '$aev'")
  rt_assert_eq awaiting_approval "$(gate_status "$A")" "the agent's run waits for approval"
  sev=$(send day.skip service "" '{"day": "d1", "n": 2}')
  S=$(q "select id from ratchet.runs where workflow_id = 'gate-skip' and event_id = '$sev'")
  [[ -n $S ]] || rt_fail "the service's event for day d1 started no run: singleton skip behind the agent's run $A, which awaits approval and must hold no singleton key"
  completes "$S" "the service's run $S"
}
gate_case 2b.2 "singleton skip: an awaiting agent run does not skip a service's run" case_singleton_skip

case_api_key() {
  local code A S
  code=$(curl -sS -m 30 -o "$T/r1" -w '%{http_code}' -H "Authorization: Bearer $TOK_AGENT" -H 'Content-Type: application/json' \
    --data '{"data": {"n": 1}, "idempotency_key": "k-day-1"}' "$U/api/v1/workflows/gate-manual/runs")
  rt_assert_eq 201 "$code" "agent token starts a keyed run: $(cat "$T/r1")"
  A=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$T/r1")
  rt_assert_eq awaiting_approval "$(gate_status "$A")" "the agent's keyed run waits for approval"
  code=$(curl -sS -m 30 -o "$T/r2" -w '%{http_code}' -H "Authorization: Bearer $TOK_OPERATOR" -H 'Content-Type: application/json' \
    --data '{"data": {"n": 2}, "idempotency_key": "k-day-1"}' "$U/api/v1/workflows/gate-manual/runs")
  S=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("id", ""))' "$T/r2" 2>/dev/null || true)
  [[ $code == 201 && -n $S && $S != "$A" ]] ||
    rt_fail "operator's run with idempotency_key k-day-1 must be a new run (201), not the agent's awaiting run $A: got HTTP $code $(cat "$T/r2")"
  completes "$S" "the service's run $S"
}
gate_case 2b.3 "API idempotency_key: an awaiting agent run does not hold the key for an operator" case_api_key

gate_done
"$RATCHET_BIN" audit verify >/dev/null || rt_fail "audit verify: $("$RATCHET_BIN" audit verify 2>&1)"
rt_serve_stop a
rt_check_log "$T/a.log"
echo "ok: gate admission"
