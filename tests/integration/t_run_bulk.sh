#!/usr/bin/env bash
# Bulk cancel and replay by filter, from the CLI and the API: a dry run counts and acts on
# nothing; the filter (workflow, status, time, entity, error text) picks exactly the runs
# it names; an empty filter is refused unless "all"; each run acted on is audited; an agent
# token's filter is held to its entity and never touches a system workflow's runs (refused
# ones counted, one refusal record); API pause/resume with the agent boundary. Every API
# answer is checked against schemas/openapi.yaml.
source "$(dirname "$0")/lib.sh"
rt_test_init run_bulk

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2 RATCHET_LOG_LEVEL=debug
cat >"$W/nap.json" <<'EOF'
{"id": "nap", "triggers": [{"event": "nap.go"}], "steps": [{"id": "z", "uses": "sleep", "with": {"duration": "1h"}}]}
EOF
cat >"$W/sysnap.json" <<'EOF'
{"id": "sysnap", "system": true, "triggers": [{"event": "sysnap.go"}], "steps": [{"id": "z", "uses": "sleep", "with": {"duration": "1h"}}]}
EOF
cat >"$W/boom.json" <<'EOF'
{"id": "boom", "retries": {"max_attempts": 1}, "steps": [
  {"id": "a", "uses": "transform", "with": {"value": 1}},
  {"id": "b", "uses": "exec", "with": {"command": ["sh", "-c", "echo kaboom-$RATCHET_RUN_ID >&2; exit 3"]}}]}
EOF
"$RATCHET_BIN" validate "$W" >/dev/null || rt_fail "workflows invalid"
"$RATCHET_BIN" migrate >/dev/null

TOKENS=$T/tokens
: >"$TOKENS"
declare -A TOK=()
mint() { local out; out=$("$RATCHET_BIN" token create --role "$2" ${3:+--entity "$3"} 2>/dev/null); TOK[$1]=$(sed -n 1p <<<"$out"); sed -n 2p <<<"$out" >>"$TOKENS"; }
mint operator operator
mint agent_a agent acct_a
RATCHET_TOKENS=$TOKENS rt_serve_start a
rt_serve_wait_ready a
U=$(rt_serve_url a)

req() { # METHOD PATH TOKEN-NAME [BODY]: sets CODE, BODY
  local args=(-sS -m 60 -X "$1" -o "$T/resp" -D "$T/hdrs" -w '%{http_code}' -H "Authorization: Bearer ${TOK[$3]}")
  [[ -n ${4-} ]] && args+=(-H 'Content-Type: application/json' --data-binary "$4")
  CODE=$(curl "${args[@]}" "$U$2") || CODE=curl-failed
  BODY=$(cat "$T/resp")
  rt_contract_record "$1" "$2" "$CODE" "$T/resp" "$T/hdrs"
}
expect() { [[ $CODE == "$1" ]] || rt_fail "$2: expected HTTP $1, got $CODE: $BODY"; }
jget() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); v=$1; print(v if isinstance(v,str) else json.dumps(v))" "$BODY"; }
status() { rt_psql "select status from ratchet.runs where id = '$1'"; }

# 5 naps of acct_a, 3 of acct_b, 2 system naps of acct_a; 3 failed booms.
for i in 1 2 3 4 5; do "$RATCHET_BIN" send nap.go --entity acct_a --id "na-$i" >/dev/null; done
for i in 1 2 3; do "$RATCHET_BIN" send nap.go --entity acct_b --id "nb-$i" >/dev/null; done
for i in 1 2; do "$RATCHET_BIN" send sysnap.go --entity acct_a --id "sa-$i" >/dev/null; done
for i in 1 2 3; do "$RATCHET_BIN" run boom >/dev/null; done
rt_wait_for 60 "[ \"\$(rt_psql \"select count(*) from ratchet.runs where status = 'sleeping'\")\" = 10 ]"
rt_wait_for 60 "[ \"\$(rt_psql \"select count(*) from ratchet.runs where workflow_id = 'boom' and status = 'failed'\")\" = 3 ]"

# ---- 1. CLI: an empty filter is refused; a dry run counts and changes nothing ----
"$RATCHET_BIN" cancel --dry-run >/dev/null 2>"$T/err" && rt_fail "cancel with an empty filter accepted"
grep -q "name at least one of" "$T/err" || rt_fail "message: $(cat "$T/err")"
out=$("$RATCHET_BIN" cancel --workflow nap --status sleeping --dry-run --json 2>/dev/null)
rt_assert_eq "8 8 8 True" "$(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(d['matched'], d['acted'], len(d['run_ids']), d['dry_run'])" "$out")" "dry run counts"
rt_assert_eq 10 "$(rt_psql "select count(*) from ratchet.runs where status = 'sleeping'")" "a dry run cancels nothing"

# ---- 2. CLI: cancel by workflow + entity; each run audited ----
out=$("$RATCHET_BIN" cancel --workflow nap --entity acct_b --reason "tidy" --json 2>/dev/null)
rt_assert_eq "3 3" "$(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(d['matched'], d['acted'])" "$out")" "cancel acct_b's naps"
rt_assert_eq 3 "$(rt_psql "select count(*) from ratchet.runs where entity_id = 'acct_b' and status = 'cancelled' and error like '%(bulk): tidy'")" "acct_b's naps cancelled"
rt_assert_eq 3 "$(rt_psql "select count(*) from ratchet.audit_log where action = 'run.cancel' and details->>'bulk' = 'cancel'")" "one audit record per cancelled run"
rt_assert_eq 7 "$(rt_psql "select count(*) from ratchet.runs where status = 'sleeping'")" "the others still sleep"

# ---- 3. CLI: replay failed runs whose error contains a text, since 1h, from a step ----
out=$("$RATCHET_BIN" replay --workflow boom --status failed --since 1h --error KABOOM --from b --json 2>/dev/null)
rt_assert_eq "3 3 3" "$(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(d['matched'], d['acted'], len(d['replay_ids']))" "$out")" "replay failed booms"
rt_assert_eq 3 "$(rt_psql "select count(*) from ratchet.runs where trigger->>'replay_from' = 'b'")" "three replays from b"
rt_assert_eq 3 "$(rt_psql "select count(*) from ratchet.audit_log where action = 'run.replay' and details->>'bulk' = 'replay'")" "replays audited"
out=$("$RATCHET_BIN" replay --workflow boom --status failed --until 2000-01-01T00:00:00Z --json 2>/dev/null)
rt_assert_eq 0 "$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['matched'])" "$out")" "until in the past matches nothing"

# ---- 4. API: bulk cancel as an agent: its entity only, system runs refused ----
req POST /api/v1/runs/cancel agent_a '{"filter": {}}'; expect 400 "empty filter"
req POST /api/v1/runs/cancel agent_a '{"filter": {"entity_id": "acct_b", "status": "sleeping"}}'; expect 403 "another entity"
req POST /api/v1/runs/cancel agent_a '{"filter": {"status": "sleeping"}, "dry_run": true}'
expect 200 "agent dry run"
rt_assert_eq "7 5 2" "$(jget "'%d %d %d' % (d['matched'], d['acted'], d['refused'])")" "agent dry run: its entity's 7, 2 of them system"
req POST /api/v1/runs/cancel agent_a '{"filter": {"status": "sleeping"}, "reason": "agent tidy"}'
expect 200 "agent cancel"
rt_assert_eq "7 5 2" "$(jget "'%d %d %d' % (d['matched'], d['acted'], d['refused'])")" "agent cancel counts"
rt_assert_eq "sleeping sleeping" "$(rt_psql "select string_agg(status, ' ') from ratchet.runs where workflow_id = 'sysnap'")" "system runs untouched"
rt_assert_eq 1 "$(rt_psql "select count(*) from ratchet.audit_log where action = 'agent.refused' and subject = 'runs' and (details->>'refused')::int = 2")" "one refusal record for the bulk action"
req POST /api/v1/runs/replay agent_a '{"filter": {"workflow": "boom"}}'; expect 403 "agents may not replay"
req POST /api/v1/runs/cancel operator '{"filter": {"status": "bogus"}}'; expect 400 "bad status"
req POST /api/v1/runs/cancel operator '{"filter": {"workflow": "nap"}, "what": 1}'; expect 400 "unknown key"
req POST /api/v1/runs/replay operator '{"filter": {"workflow": "boom", "status": "failed"}, "dry_run": true}'; expect 200 "replay dry run"
rt_assert_eq 6 "$(jget "d['matched']")" "replay dry run matched (the 3 replays failed too)"

# ---- 5. API: pause / resume with the agent boundary ----
sys=$(rt_psql "select id from ratchet.runs where workflow_id = 'sysnap' limit 1")
req POST "/api/v1/runs/$sys/pause" agent_a ''; expect 403 "agent pauses a system run"
req POST "/api/v1/runs/$sys/pause" operator '{"reason": "look"}'; expect 200 "operator pauses"
rt_assert_eq paused "$(jget "d['status']")" "answer says paused"
req POST "/api/v1/runs/$sys/pause" operator ''; expect 409 "pause twice"
req GET "/api/v1/runs?status=paused" operator; expect 200 "list paused"
rt_assert_eq "$sys" "$(jget "d['runs'][0]['id']")" "listed as paused"
req POST "/api/v1/runs/$sys/resume" operator ''; expect 200 "operator resumes"
rt_assert_eq sleeping "$(jget "d['status']")" "resumed to sleeping"
req POST "/api/v1/runs/$sys/resume" operator ''; expect 409 "resume a running run"
req POST "/api/v1/runs/not-a-uuid/pause" operator ''; expect 400 "bad id"
req GET /api/v1/openapi.json operator; expect 200 "openapi.json"
rt_assert_eq 3.1.0 "$(jget "d['openapi']")" "served document"

# ---- 6. many pages: 450 runs made in one transaction (one created_at) are all cancelled ----
# (Keyset pages of 200 over runs that share created_at: only the id breaks the tie.)
req POST /api/v1/events operator "$(python3 -c 'import json; print(json.dumps([{"name": "nap.go", "id": "many-%d" % i, "entity_id": "acct_c"} for i in range(450)]))')"
expect 200 "450 events in one request"
rt_wait_for 120 "[ \"\$(rt_psql \"select count(*) from ratchet.runs where entity_id = 'acct_c' and status = 'sleeping'\")\" = 450 ]"
rt_assert_eq 1 "$(rt_psql "select count(distinct created_at) from ratchet.runs where entity_id = 'acct_c'")" "one created_at for all 450"
out=$("$RATCHET_BIN" cancel --entity acct_c --json 2>/dev/null)
rt_assert_eq "450 450 100 0" "$(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(d['matched'], d['acted'], len(d['run_ids']), d['skipped'])" "$out")" \
  "three pages of one created_at: every run once, the answer's ids bounded"
rt_assert_eq 450 "$(rt_psql "select count(*) from ratchet.runs where entity_id = 'acct_c' and status = 'cancelled'")" "all 450 cancelled"
rt_assert_eq 450 "$(rt_psql "select count(distinct subject) from ratchet.audit_log where action = 'run.cancel' and subject in (select id::text from ratchet.runs where entity_id = 'acct_c')")" \
  "one audit record per run"
"$RATCHET_BIN" audit verify >/dev/null 2>&1 || rt_fail "audit chain broken"

rt_contract_check
rt_serve_stop a
rt_check_log "$T/a.log"
