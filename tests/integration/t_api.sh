#!/usr/bin/env bash
# The HTTP API against a real serve, with curl: every route's success, 400 on malformed
# JSON and wrong types, 413 on oversized bodies, 401/403 per role, 404/405, keyset
# pagination, idempotent enqueue, replay, signed approval decisions, the audit log (API
# actions and refusals are records), agent token boundaries (DESIGN §6), /metrics
# through Prometheus' own parser, /readyz and writes while the database refuses
# connections, and the rules for serving without tokens.
source "$(dirname "$0")/lib.sh"
rt_test_init api

PY=/usr/bin/python3 # Debian's, with python3-prometheus-client
W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=4 RATCHET_LOG_LEVEL=debug RATCHET_MAX_EVENT_BYTES=4096
rt_use_approver ops-lead

cat >"$W/quick.json" <<'EOF'
{"id": "quick", "triggers": [{"event": "order.created"}],
 "steps": [{"id": "echo", "uses": "transform", "with": {"value": "${{ event.data }}"}}]}
EOF
cat >"$W/slow.json" <<'EOF'
{"id": "slow", "steps": [{"id": "nap", "uses": "sleep", "with": {"duration": "1h"}}]}
EOF
cat >"$W/sysjob.json" <<'EOF'
{"id": "sysjob", "system": true, "steps": [{"id": "nap", "uses": "sleep", "with": {"duration": "1h"}}]}
EOF
cat >"$W/off.json" <<'EOF'
{"id": "off", "enabled": false, "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF
cat >"$W/page.json" <<'EOF'
{"id": "page", "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF
cat >"$W/gated.json" <<'EOF'
{"id": "gated", "approval": {"required_for": ["agent"], "approvers": ["ops-lead"]},
 "steps": [{"id": "a", "uses": "transform", "with": {"value": "${{ event.entity_id }}"}}]}
EOF
cat >"$W/ticker.json" <<'EOF'
{"id": "ticker", "triggers": [{"cron": "0 0 1 1 *"}],
 "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF

# ---- tokens: one per role, two agents of different entities ----
TOKENS=$T/tokens
: >"$TOKENS"
declare -A TOK=()
mint() { # NAME ROLE [ENTITY]
  local out
  out=$("$RATCHET_BIN" token create --role "$2" ${3:+--entity "$3"} 2>/dev/null)
  TOK[$1]=$(sed -n 1p <<<"$out")
  sed -n 2p <<<"$out" >>"$TOKENS"
}
mint admin admin
mint operator operator
mint viewer viewer
mint agent_a agent acct_a
mint agent_b agent acct_b
printf '# comment lines and blank lines are fine\n\n' >>"$TOKENS"
rt_assert_eq 5 "$(grep -c '^[0-9a-f]\{64\} ' "$TOKENS")" "token lines"
rt_assert_eq 1 "$(grep -c ' agent acct_a$' "$TOKENS")" "agent line carries its entity"
"$RATCHET_BIN" token create --role agent >/dev/null 2>&1 && rt_fail "agent token without --entity accepted"
"$RATCHET_BIN" token create --role boss >/dev/null 2>&1 && rt_fail "unknown role accepted"

"$RATCHET_BIN" migrate >/dev/null
RATCHET_TOKENS=$TOKENS rt_serve_start a
rt_serve_wait_ready a
U=$(rt_serve_url a)

# req METHOD PATH TOKEN-NAME|- [BODY|@FILE] [curl args...]: sets CODE, BODY, HDRS.
req() {
  local m=$1 p=$2 who=$3 data=${4-}
  shift 4 2>/dev/null || shift $#
  local args=(-sS -m 30 -X "$m" -o "$T/resp" -D "$T/hdrs" -w '%{http_code}')
  [[ $who != - ]] && args+=(-H "Authorization: Bearer ${TOK[$who]}")
  [[ -n $data ]] && args+=(-H 'Content-Type: application/json' --data-binary "$data")
  local rc=0
  CODE=$(curl "${args[@]}" "$@" "$U$p") || rc=$?
  if ((rc != 0)); then
    CODE=curl-failed-$rc
    ss -tan 2>/dev/null | awk -v p=":${U##*:}" '$4 ~ p"$" || $5 ~ p"$"' | sort | uniq -c | head -20 >&2
  fi
  BODY=$(cat "$T/resp")
  HDRS=$(tr -d '\r' <"$T/hdrs")
  rt_contract_record "$m" "$p" "$CODE" "$T/resp" "$T/hdrs"
}
expect() { # STATUS MESSAGE
  [[ $CODE == "$1" ]] || rt_fail "$2: expected HTTP $1, got $CODE: $BODY"
}
jcheck() { # PYTHON-EXPR MESSAGE (d = the parsed BODY)
  "$PY" -c "import json,sys; d=json.loads(sys.argv[1]); assert $1, d" "$BODY" 2>/dev/null || rt_fail "$2: $BODY"
}
jget() { # PYTHON-EXPR: prints it (d = the parsed BODY)
  "$PY" -c "import json,sys; d=json.loads(sys.argv[1]); v=$1; print(v if isinstance(v,str) else json.dumps(v))" "$BODY"
}
is_error() { # STATUS CODE-NAME MESSAGE
  expect "$1" "$3"
  jcheck "set(d)=={'error'} and d['error']['code']=='$2' and isinstance(d['error']['message'],str) and d['error']['message']" "$3: error shape"
}

# ---- 1. health, readiness, routing ----
req GET /healthz -; expect 200 "healthz"; jcheck "d['status']=='ok'" "healthz body"
req GET /readyz -; expect 200 "readyz"; jcheck "d['status']=='ready' and d['workflows']==7" "readyz body"
req GET /api/v1/nope admin; is_error 404 not_found "unknown route"
req DELETE /api/v1/runs admin; is_error 405 method_not_allowed "DELETE on runs"
grep -q '^Allow: GET$' <<<"$HDRS" || rt_fail "405 without Allow: $HDRS"
req GET /api/v1/runs/x/cancel admin; is_error 405 method_not_allowed "GET on cancel"

# ---- 2. authentication: 401 without or with an unknown token ----
req GET /api/v1/runs -; is_error 401 unauthorized "no token"
grep -qi '^WWW-Authenticate: Bearer' <<<"$HDRS" || rt_fail "401 without WWW-Authenticate"
curl -sS -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer rtk_not-a-real-token' "$U/api/v1/runs" | grep -q 401 ||
  rt_fail "unknown token not refused"
curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Basic ${TOK[admin]}" "$U/api/v1/runs" | grep -q 401 ||
  rt_fail "Basic scheme accepted"
curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: bearer ${TOK[admin]}" "$U/api/v1/runs" | grep -q 200 ||
  rt_fail "scheme should be case-insensitive"
req GET /metrics -; is_error 401 unauthorized "metrics without token"

# ---- 3. workflows ----
req GET /api/v1/workflows viewer; expect 200 "workflows"
jcheck "sorted(w['id'] for w in d['workflows'])==['gated','off','page','quick','slow','sysjob','ticker']" "workflow ids"
jcheck "[w for w in d['workflows'] if w['id']=='sysjob'][0]['system'] is True" "system flag"
jcheck "[w for w in d['workflows'] if w['id']=='quick'][0]['triggers']==[{'type':'event','event':'order.created'}]" "triggers"
req GET /api/v1/workflows/quick viewer; expect 200 "one workflow"
jcheck "d['id']=='quick' and d['definition']['steps'][0]['id']=='echo' and len(d['hash'])==64" "workflow detail"
req GET /api/v1/workflows/nope viewer; is_error 404 not_found "unknown workflow"
req GET '/api/v1/workflows?x=1' viewer; is_error 400 bad_request "unknown query key"

# ---- 4. starting runs: 201, idempotency, 404, 409, 400 ----
req POST /api/v1/workflows/page/runs operator '{"data": {"n": 1}}'; expect 201 "start a run"
jcheck "d['workflow']=='page' and d['status'] in ('queued','running','completed') and d['trigger']=={'type':'manual'}" "run object"
run1=$(jget "d['id']")
grep -q "^Location: /api/v1/runs/$run1$" <<<"$HDRS" || rt_fail "no Location header: $HDRS"
req POST /api/v1/workflows/page/runs operator ''; expect 201 "empty body means {}"
req POST /api/v1/workflows/page/runs operator '{"data": [1], "idempotency_key": "k-1"}'; expect 201 "keyed run"
k1=$(jget "d['id']")
req POST /api/v1/workflows/page/runs admin '{"data": [2], "idempotency_key": "k-1"}'; expect 200 "same key again"
rt_assert_eq "$k1" "$(jget "d['id']")" "idempotent enqueue returns the same run"
rt_assert_eq 1 "$(rt_psql "select count(*) from ratchet.runs where dedupe_key = 'api:k-1'")" "one run per key"
req POST /api/v1/workflows/page/runs operator '{"idempotency_key": "k-2", "run_at": "2099-01-01T00:00:00Z"}'
expect 201 "scheduled run"
rt_assert_eq 2099 "$(rt_psql "select extract(year from scheduled_at)::int from ratchet.runs where dedupe_key = 'api:k-2'")" "run_at"
req POST /api/v1/workflows/nope/runs operator '{}'; is_error 404 not_found "run of unknown workflow"
req POST /api/v1/workflows/off/runs operator '{}'; is_error 409 conflict "run of disabled workflow"
req POST /api/v1/workflows/page/runs operator '{"data": '; is_error 400 bad_request "malformed JSON"
jcheck "'not valid JSON' in d['error']['message']" "malformed JSON message"
req POST /api/v1/workflows/page/runs operator '[1]'; is_error 400 bad_request "array body"
req POST /api/v1/workflows/page/runs operator '{"run_at": 5}'; is_error 400 bad_request "run_at number"
jcheck "d['error']['message'].startswith('\$.run_at')" "run_at path"
req POST /api/v1/workflows/page/runs operator '{"run_at": "tomorrow"}'; is_error 400 bad_request "run_at text"
req POST /api/v1/workflows/page/runs operator '{"idempotency_key": 7}'; is_error 400 bad_request "key number"
req POST /api/v1/workflows/page/runs operator '{"dta": {}}'; is_error 400 bad_request "unknown key"
jcheck "'\$.dta' in d['error']['message']" "unknown key named"
req POST /api/v1/workflows/page/runs operator '{"a": 1, "a": 2}'; is_error 400 bad_request "duplicate key"
head -c $((1024 * 1024 + 10)) /dev/zero | tr '\0' ' ' >"$T/big"
req POST /api/v1/workflows/page/runs operator "@$T/big"; is_error 413 payload_too_large "1 MiB body cap"

# ---- 5. events: one, many, duplicates, 400 with index and path, 413 ----
req POST /api/v1/events operator '{"name": "order.created", "id": "ev-1", "data": {"o": 1}}'; expect 200 "one event"
jcheck "len(d)==1 and d[0]['id']=='ev-1' and d[0]['duplicate'] is False and len(d[0]['runs'])==1" "event result"
ev_run=$(jget "d[0]['runs'][0]")
rt_assert_eq quick "$(rt_psql "select workflow_id from ratchet.runs where id = '$ev_run'")" "event started quick"
req POST /api/v1/events operator '[{"name": "order.created", "id": "ev-1"}, {"name": "other.thing", "id": "ev-2"}]'
expect 200 "array of events"
jcheck "[e['id'] for e in d]==['ev-1','ev-2'] and d[0]['duplicate'] is True and d[0]['runs']==[] and d[1]['duplicate'] is False and d[1]['runs']==[]" "duplicate flagged"
req POST /api/v1/events operator '{"name": "no.id"}'; expect 200 "id assigned"
jcheck "len(d[0]['id'])==36" "assigned UUIDv7"
before=$(rt_psql "select count(*) from ratchet.events")
req POST /api/v1/events operator '[{"name": "good.one", "id": "ev-3"}, {"name": "bad.one", "actor": {"type": "robot"}}]'
is_error 400 bad_request "invalid second event"
jcheck "d['error']['message'].startswith('\$[1].actor.type') and 'index' not in d['error'] or d['error'].get('index')==1" "index and path"
req POST /api/v1/events operator '[{"name": "good.one", "id": "ev-3"}, {"name": 5}]'; is_error 400 bad_request "wrong type"
jcheck "d['error']['message'].startswith('\$[1].name')" "wrong type path"
req POST /api/v1/events operator '{"name": "x", "data": }'; is_error 400 bad_request "malformed event JSON"
req POST /api/v1/events operator '"just a string"'; is_error 400 bad_request "string body"
req POST /api/v1/events operator '[]'; is_error 400 bad_request "empty array"
rt_assert_eq "$before" "$(rt_psql "select count(*) from ratchet.events")" "nothing stored from refused requests"
"$PY" -c "import json; print(json.dumps({'name': 'big.one', 'data': 'x' * 5000}))" >"$T/bigev"
req POST /api/v1/events operator "@$T/bigev"; is_error 413 payload_too_large "event over RATCHET_MAX_EVENT_BYTES"
req POST /api/v1/events operator "@$T/bigev" -H 'Transfer-Encoding: chunked'
is_error 413 payload_too_large "chunked event over the limit"
rt_assert_eq "$before" "$(rt_psql "select count(*) from ratchet.events")" "nothing stored from oversized requests"
req GET '/api/v1/events?name=order.created&limit=5' viewer; expect 200 "list events"
jcheck "[e['id'] for e in d['events']]==['ev-1'] and d['events'][0]['transport']=='api' and d['events'][0]['runs'][0]['workflow']=='quick'" "events list"
req GET '/api/v1/events?name=bad..name' viewer; is_error 400 bad_request "bad event name filter"
req GET '/api/v1/events?limit=0' viewer; is_error 400 bad_request "limit 0"

# ---- 6. pagination: 25 runs, pages of 10 ----
for i in $(seq 1 25); do
  req POST /api/v1/workflows/page/runs operator "{\"data\": {\"i\": $i}, \"entity_id\": \"pager\"}"; expect 201 "run $i"
done
declare -a seen=()
cursor=
pages=0
while :; do
  req GET "/api/v1/runs?entity_id=pager&limit=10${cursor:+&cursor=$cursor}" viewer; expect 200 "page $pages"
  pages=$((pages + 1))
  mapfile -t ids < <(jget "'\n'.join(r['id'] for r in d['runs'])")
  seen+=("${ids[@]}")
  cursor=$(jget "d['next_cursor'] or ''")
  case $pages in
    1 | 2) rt_assert_eq 10 "${#ids[@]}" "page $pages size"; [[ -n $cursor ]] || rt_fail "page $pages has no next_cursor" ;;
    3) rt_assert_eq 5 "${#ids[@]}" "last page size"; rt_assert_eq "" "$cursor" "last page next_cursor" ;;
  esac
  [[ -n $cursor ]] || break
  ((pages < 5)) || rt_fail "pagination does not end"
done
want=$(rt_psql "select id from ratchet.runs where entity_id = 'pager' order by created_at desc, id desc")
rt_assert_eq "$want" "$(printf '%s\n' "${seen[@]}")" "25 runs, newest first, each once"
req GET '/api/v1/runs?workflow=page&status=nope' viewer; is_error 400 bad_request "bad status"
req GET '/api/v1/runs?limit=abc' viewer; is_error 400 bad_request "limit not a number"
req GET '/api/v1/runs?limit=501' viewer; is_error 400 bad_request "limit too big"
req GET '/api/v1/runs?cursor=garbage' viewer; is_error 400 bad_request "bad cursor"
req GET '/api/v1/runs?colour=red' viewer; is_error 400 bad_request "unknown query parameter"
req GET '/api/v1/runs?workflow=page&limit=1' viewer; expect 200 "workflow filter"
jcheck "d['runs'][0]['workflow']=='page' and set(d['runs'][0])>={'id','workflow','status','trigger','created_at','started_at','finished_at','output','error'}" "run list element"

# ---- 7. one run: the same object as `ratchet show --json` ----
rt_wait_for 60 "[ \"\$(rt_psql \"select status from ratchet.runs where id = '$ev_run'\")\" = completed ]"
req GET "/api/v1/runs/$ev_run" viewer; expect 200 "one run"
"$PY" - "$BODY" "$("$RATCHET_BIN" show "$ev_run" --json)" <<'EOF' || rt_fail "GET /runs/{id} differs from show --json"
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert a == b, (a, b)
assert list(a) == list(b), (list(a), list(b))
assert a["steps"][0]["output"] == {"o": 1}
EOF
req GET /api/v1/runs/00000000-0000-7000-8000-000000000000 viewer; is_error 404 not_found "unknown run"
req GET /api/v1/runs/not-a-uuid viewer; is_error 400 bad_request "malformed run id"

# ---- 8. cancel ----
req POST /api/v1/workflows/slow/runs operator '{}'; expect 201 "slow run"
slow=$(jget "d['id']")
req POST "/api/v1/runs/$slow/cancel" operator '{"reason": 5}'; is_error 400 bad_request "reason type"
req POST "/api/v1/runs/$slow/cancel" viewer ''; is_error 403 forbidden "viewer cancel"
req POST "/api/v1/runs/$slow/cancel" operator '{"reason": "test"}'; expect 200 "cancel"
jcheck "d['status']=='cancelled' and 'test' in d['error']" "cancelled run"
req POST "/api/v1/runs/$slow/cancel" operator ''; is_error 409 conflict "cancel twice"
req POST /api/v1/runs/00000000-0000-7000-8000-000000000000/cancel operator ''; is_error 404 not_found "cancel unknown"

# ---- 9. schedules ----
rt_wait_for 60 "[ \"\$(rt_psql \"select count(*) from ratchet.schedules where workflow_id = 'ticker'\")\" = 1 ]"
req GET /api/v1/schedules viewer; expect 200 "schedules"
jcheck "d['schedules'][0]['workflow']=='ticker' and d['schedules'][0]['state']=='active' and d['schedules'][0]['cron']=='0 0 1 1 *'" "schedule list"
req POST /api/v1/schedules/ticker/pause viewer ''; is_error 403 forbidden "viewer pause"
req POST /api/v1/schedules/ticker/pause operator ''; expect 200 "pause"
jcheck "d=={'workflow':'ticker','paused':True,'changed':True}" "pause result"
req POST /api/v1/schedules/ticker/pause admin ''; expect 200 "pause again"
jcheck "d['changed'] is False" "second pause changes nothing"
req GET /api/v1/schedules viewer; jcheck "d['schedules'][0]['state']=='paused' and d['schedules'][0]['next_fire_at'] is None" "paused state"
req POST /api/v1/schedules/ticker/resume operator ''; expect 200 "resume"
jcheck "d=={'workflow':'ticker','paused':False,'changed':True}" "resume result"
req POST /api/v1/schedules/nope/pause operator ''; is_error 404 not_found "pause unknown"
req POST /api/v1/schedules/page/pause operator ''; is_error 409 conflict "pause without cron"

# ---- 10. viewer and operator limits ----
req POST /api/v1/events viewer '{"name": "a.b"}'; is_error 403 forbidden "viewer event"
req POST /api/v1/workflows/page/runs viewer '{}'; is_error 403 forbidden "viewer run"

# ---- 11a. replay ----
req POST "/api/v1/runs/$ev_run/replay" viewer ''; is_error 403 forbidden "viewer replay"
req POST "/api/v1/runs/$ev_run/replay" operator ''; expect 201 "replay"
jcheck "d['workflow']=='quick' and d['trigger']['replay_of']=='$ev_run' and d['id']!='$ev_run'" "replay run"
replayed=$(jget "d['id']")
rt_wait_for 60 "[ \"\$(rt_psql \"select status from ratchet.runs where id = '$replayed'\")\" = completed ]"
rt_assert_eq '{"o": 1}' "$(rt_psql "select output from ratchet.steps where run_id = '$replayed' and step_id = 'echo'")" "replay ran on the same event"
req POST "/api/v1/runs/$ev_run/replay" operator '{"from_step": "echo"}'; expect 201 "replay from a step"
jcheck "d['trigger']['replay_from']=='echo'" "replay_from"
req POST "/api/v1/runs/$ev_run/replay" operator '{"from_step": "nope"}'; is_error 400 bad_request "replay from an unknown step"
req POST "/api/v1/runs/$ev_run/replay" operator '{"from_step": 3}'; is_error 400 bad_request "from_step type"
req POST /api/v1/runs/00000000-0000-7000-8000-000000000000/replay operator ''; is_error 404 not_found "replay unknown run"

# ---- 11b. approvals: an agent's run waits; a signed decision through the API ----
req POST /api/v1/workflows/gated/runs agent_a '{"data": {}}'; expect 201 "gated run"
jcheck "d['status']=='awaiting_approval'" "agent's run waits for approval"
gated=$(jget "d['id']")
req GET /api/v1/approvals viewer; expect 200 "approvals"
jcheck "[a['run_id'] for a in d['approvals']]==['$gated'] and d['approvals'][0]['workflow']=='gated'" "approvals list"
req GET "/api/v1/approvals?run_id=$gated" viewer; expect 200 "approvals of a run"
req GET /api/v1/approvals agent_a; is_error 403 forbidden "agent reads approvals"
decision=$("$RATCHET_BIN" approve "$gated" --as ops-lead --key "$T/ops-lead.key" --print 2>/dev/null)
[[ -n $decision ]] || rt_fail "ratchet approve --print gave nothing"
req POST "/api/v1/runs/$gated/approval" agent_a "$decision"; is_error 403 forbidden "agent approves"
req POST "/api/v1/runs/$gated/approval" operator '{"decision": "approve"}'; is_error 400 bad_request "malformed decision"
forged=$("$PY" -c "import json,sys; d=json.loads(sys.argv[1]); d['sig']='A'*86+'=='; print(json.dumps(d))" "$decision")
req POST "/api/v1/runs/$gated/approval" operator "$forged"; is_error 403 forbidden "forged signature"
jcheck "d['error']['reason']=='bad_signature'" "forged: reason"
rt_assert_eq awaiting_approval "$(rt_psql "select status from ratchet.runs where id = '$gated'")" "still waiting"
req POST "/api/v1/runs/$gated/approval" operator "$decision"; expect 200 "signed approval"
jcheck "d['outcome']=='approved' and d['run_id']=='$gated'" "approval outcome"
rt_wait_for 60 "[ \"\$(rt_psql \"select status from ratchet.runs where id = '$gated'\")\" = completed ]"
req POST "/api/v1/runs/$gated/approval" operator "$decision"; is_error 409 conflict "the same decision again"

# ---- 11c. the audit log ----
req GET '/api/v1/audit?limit=1000' viewer; expect 200 "audit"
jcheck "any(x['action']=='run.manual' and x['actor'].startswith('api:token:') and x['details']['via']=='api' for x in d['records'])" "manual run audited"
jcheck "any(x['action']=='run.cancel' and x['subject']=='$slow' for x in d['records'])" "cancel audited"
jcheck "any(x['action']=='schedule.pause' and x['subject']=='ticker' and x['actor'].startswith('api:token:') for x in d['records'])" "pause audited"
jcheck "any(x['action']=='run.replay' and x['details']['replay_of']=='$ev_run' for x in d['records'])" "replay audited"
jcheck "any(x['action']=='approval.approved' and x['subject']=='$gated' for x in d['records'])" "approval audited"
jcheck "any(x['action']=='api.refused' and x['details']['status']==403 for x in d['records'])" "refusal audited"
jcheck "all(d['records'][i]['seq']<d['records'][i+1]['seq'] for i in range(len(d['records'])-1))" "audit in seq order"
req GET '/api/v1/audit?since=yesterday' viewer; is_error 400 bad_request "bad since"

# ---- 11. agent boundaries ----
req POST /api/v1/workflows/slow/runs agent_a '{"data": {"by": "a"}}'; expect 201 "agent run"
a_run=$(jget "d['id']")
rt_assert_eq "acct_a|agent" "$(rt_psql "select entity_id || '|' || (event->'actor'->>'type') from ratchet.runs where id = '$a_run'")" "agent run scoped"
req POST /api/v1/workflows/slow/runs agent_a '{"entity_id": "acct_b"}'; is_error 403 forbidden "agent run for another entity"
req POST /api/v1/workflows/sysjob/runs agent_a '{}'; expect 201 "agent starts a system run"
a_sys=$(jget "d['id']")
req POST /api/v1/workflows/slow/runs agent_b '{}'; expect 201 "agent b run"
b_run=$(jget "d['id']")
req POST /api/v1/events agent_a '{"name": "order.created", "id": "ev-agent"}'; expect 200 "agent event"
rt_assert_eq "agent|acct_a" "$(rt_psql "select (envelope->'actor'->>'type') || '|' || (envelope->>'entity_id') from ratchet.events where id = 'ev-agent'")" "agent event scoped"
agent_ev_run=$(jget "d[0]['runs'][0]")
req POST /api/v1/events agent_a '{"name": "order.created", "actor": {"type": "user", "id": "boss"}}'
is_error 403 forbidden "agent posing as a user"
req POST /api/v1/events agent_a '[{"name": "a.b"}, {"name": "a.b", "entity_id": "acct_b"}]'
is_error 403 forbidden "agent event for another entity"
req GET /api/v1/runs agent_a; expect 200 "agent lists runs"
jcheck "len(d['runs'])==4 and all(r['entity_id']=='acct_a' for r in d['runs'])" "agent sees only its entity"
req GET '/api/v1/runs?entity_id=acct_b' agent_a; is_error 403 forbidden "agent asks for another entity"
req GET "/api/v1/runs/$a_run" agent_a; expect 200 "agent reads own run"
req GET "/api/v1/runs/$agent_ev_run" agent_a; expect 200 "agent reads the run its event started"
req GET "/api/v1/runs/$b_run" agent_a; is_error 404 not_found "agent reads another entity's run"
req GET "/api/v1/runs/$ev_run" agent_a; is_error 404 not_found "agent reads a run without entity"
req POST "/api/v1/runs/$b_run/cancel" agent_a ''; is_error 404 not_found "agent cancels another entity's run"
req POST "/api/v1/runs/$a_sys/cancel" agent_a ''; is_error 403 forbidden "agent cancels a system run"
req POST "/api/v1/runs/$a_run/cancel" agent_a ''; expect 200 "agent cancels its own run"
req POST "/api/v1/runs/$a_sys/cancel" operator ''; expect 200 "operator cancels the system run"
req POST /api/v1/schedules/ticker/pause agent_a ''; is_error 403 forbidden "agent pause"
req POST /api/v1/schedules/ticker/resume agent_a ''; is_error 403 forbidden "agent resume"
req GET /api/v1/workflows agent_a; is_error 403 forbidden "agent lists workflows"
req GET /api/v1/events agent_a; is_error 403 forbidden "agent lists events"
req GET /metrics agent_a; is_error 403 forbidden "agent reads metrics"
# A key another entity used is not a way to read that entity's run.
# An agent's keys are its entity's own (DESIGN §6): the same key is another run, and
# nothing of b's is revealed.
req POST /api/v1/workflows/page/runs agent_b '{"idempotency_key": "shared"}'; expect 201 "agent b keyed run"
b_keyed=$(jget "d['id']")
req POST /api/v1/workflows/page/runs agent_a '{"idempotency_key": "shared"}'; expect 201 "agent a same key: its own run"
[[ $(jget "d['id']") != "$b_keyed" ]] || rt_fail "agent a got agent b's run for the same key"
req POST /api/v1/workflows/page/runs agent_a '{"idempotency_key": "shared"}'; expect 200 "agent a same key again"
# Every refusal is logged, and audited when the caller is known.
refusals=$(grep -c 'api: refused' "$T/a.log" || true)
((refusals >= 20)) || rt_fail "refusals not logged ($refusals)"
agent_refusals=$(rt_psql "select count(*) from ratchet.audit_log where action = 'agent.refused' and actor like 'agent:token:%'")
# An actor's refusals are written at most 10 per minute (the rest counted in
# ratchet_audit_refusals_suppressed_total), so no caller can flood the audit log. agent_a
# made 12 or more; how many minutes they took depends on the machine, so the bound is 10
# per minute-long window its written records span (each window starts at a record).
((agent_refusals >= 10)) || rt_fail "agent refusals not audited ($agent_refusals)"
read -r a_refusals a_windows < <(rt_psql "select count(*), floor(extract(epoch from max(at) - min(at)) / 60)::int + 1
  from ratchet.audit_log where action = 'agent.refused' and actor like 'agent:token:%' and details->>'entity_id' = 'acct_a'" | tr '|' ' ')
((a_refusals <= 10 * a_windows)) ||
  rt_fail "agent_a's refusals are not rate-limited in the audit log ($a_refusals written over $a_windows minute(s))"
a_made=$(grep -c 'api: refused .*(role agent, entity acct_a)' "$T/a.log" || true)
if ((a_made > 10 * a_windows)); then
  req GET /metrics viewer; expect 200 "metrics for suppressed refusals"
  grep -qE '^ratchet_audit_refusals_suppressed_total\{[^}]*\} [1-9]' <<<"$BODY" ||
    rt_fail "agent_a made $a_made refusals over $a_windows minute(s) but none was suppressed"
fi
rt_assert_eq 1 "$(rt_psql "select count(*) from ratchet.audit_log where action = 'agent.refused' and details->>'path' = '/api/v1/runs/$b_run' and details->>'status' = '404'")" "agent read of another entity's run audited"
"$RATCHET_BIN" audit verify >/dev/null || rt_fail "audit chain does not verify"
grep -q 'refused GET /api/v1/runs/'"$b_run"' for token:.* (role agent, entity acct_a): 404' "$T/a.log" ||
  rt_fail "agent read of another entity's run not logged"
grep -qF "${TOK[agent_a]}" "$T/a.log" && rt_fail "a token appears in the log"

# ---- 12. metrics, through Prometheus' parser ----
req GET /metrics viewer; expect 200 "metrics"
grep -q '^Content-Type: text/plain; version=0.0.4' <<<"$HDRS" || rt_fail "metrics content type: $HDRS"
api_events=$(rt_psql "select count(*) from ratchet.events where transport = 'api'")
page_runs=$(rt_psql "select count(*) from ratchet.runs where workflow_id = 'page'")
"$PY" - "$BODY" "$api_events" "$page_runs" <<'EOF' || rt_fail "metrics check failed"
import sys
from prometheus_client.parser import text_string_to_metric_families
text, api_events, page_runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = {}
for fam in text_string_to_metric_families(text):
    for smp in fam.samples:
        s[(smp.name, tuple(sorted(smp.labels.items())))] = smp.value
assert s[("ratchet_db_up", ())] == 1, "db_up"
for p in ("critical", "high", "normal", "low"):
    assert ("ratchet_queue_depth", (("priority", p),)) in s, p
assert ("ratchet_oldest_runnable_age_seconds", ()) in s
assert s[("ratchet_events_ingested_total", (("transport", "api"),))] == api_events, (s.get(("ratchet_events_ingested_total", (("transport", "api"),))), api_events)
assert s[("ratchet_runs_started_total", (("workflow", "page"),))] == page_runs, "runs started"
assert s[("ratchet_bad_input_total", (("kind", "api"),))] >= 20, "bad input counted"
EOF

# ---- 13. /readyz while the database refuses connections ----
db=${RATCHET_DATABASE_URL##*/}
db=${db%%\?*}
psql -XAtq "$RATCHET_TEST_DATABASE_URL" -c "alter database $db allow_connections false" \
  -c "select count(pg_terminate_backend(pid)) from pg_stat_activity where datname = '$db'" >/dev/null
rt_wait_for 60 '[ "$(curl -s -o /dev/null -w "%{http_code}" "$U/readyz")" = 503 ]'
req GET /readyz -; is_error 503 unavailable "readyz without database"
jcheck "'database' in d['error']['message']" "readyz reason"
req GET /healthz -; expect 200 "healthz without database"
req GET /api/v1/runs viewer; is_error 503 unavailable "runs without database"
req POST /api/v1/events operator '{"name": "while.down", "id": "ev-down"}'; is_error 503 unavailable "event without database"
req POST /api/v1/workflows/page/runs operator '{}'; is_error 503 unavailable "run without database"
psql -XAtq "$RATCHET_TEST_DATABASE_URL" -c "alter database $db allow_connections true" >/dev/null
rt_wait_for 60 '[ "$(curl -s -o /dev/null -w "%{http_code}" "$U/readyz")" = 200 ]'
req GET /api/v1/runs viewer; expect 200 "runs after the database came back"
req POST /api/v1/events operator '{"name": "while.down", "id": "ev-down"}'; expect 200 "event after the database came back"
jcheck "d[0]['duplicate'] is False" "the refused event was not stored"

# ---- 13a. tokens rotate on SIGHUP: a new one works, a removed one stops working ----
mint newop operator
grep -v ' viewer$' "$TOKENS" >"$TOKENS.new" && mv "$TOKENS.new" "$TOKENS"
kill -HUP "$(rt_serve_pid a)"
rt_wait_for 60 "grep -q 'API tokens reloaded: 5 token' '$T/a.log'"
req GET /api/v1/runs newop; expect 200 "new token after SIGHUP"
req GET /api/v1/runs viewer; is_error 401 unauthorized "removed token after SIGHUP"
cp "$TOKENS" "$TOKENS.good"
echo "not a token line" >>"$TOKENS"
rt_expect_log_error 'SIGHUP: tokens not reloaded, the old ones stay' # what this step tests
kill -HUP "$(rt_serve_pid a)"
rt_wait_for 60 "grep -q 'SIGHUP: tokens not reloaded, the old ones stay' '$T/a.log'"
req GET /api/v1/runs newop; expect 200 "a bad tokens file keeps the tokens in use"
cp "$TOKENS.good" "$TOKENS"
rt_serve_stop a

# ---- 14. without tokens: loopback only, and said so ----
rt_serve_start open
rt_serve_wait_ready open
grep -q 'API without authentication on 127.0.0.1 only' "$T/open.log" || rt_fail "no warning about the open API"
U=$(rt_serve_url open)
req GET /api/v1/runs -; expect 200 "no token needed without RATCHET_TOKENS"
rt_serve_stop open
set +e
out=$(RATCHET_HTTP_ADDR=0.0.0.0:0 "$RATCHET_BIN" serve 2>&1)
rc=$?
set -e
rt_assert_eq 2 "$rc" "exit status on a public address without tokens"
rt_assert_eq 1 "$(wc -l <<<"$out")" "one line: $out"
grep -q 'not a loopback address and RATCHET_TOKENS is not set' <<<"$out" || rt_fail "unclear refusal: $out"
echo "0123 admin" >"$T/badtokens"
set +e
out=$(RATCHET_TOKENS=$T/badtokens "$RATCHET_BIN" serve 2>&1)
rc=$?
set -e
rt_assert_eq 2 "$rc" "exit status on a bad tokens file"
grep -q "badtokens:1: the first field must be the 64 hex digits" <<<"$out" || rt_fail "unclear tokens error: $out"
set +e
out=$(RATCHET_TOKENS=$T/missing "$RATCHET_BIN" serve 2>&1)
rc=$?
set -e
rt_assert_eq 2 "$rc" "exit status on a missing tokens file"
rt_check_log "$T/a.log"
rt_contract_check
