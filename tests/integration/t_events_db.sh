#!/usr/bin/env bash
# Events sent with `ratchet send` (stored straight in PostgreSQL) start every workflow
# whose trigger matches (exact name, `*`, `>`, then `if`) and no other; an event id seen
# before starts nothing; bad events get a clear error and store nothing.
source "$(dirname "$0")/lib.sh"
rt_test_init events_db

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2
cat > "$W/paid.json" <<'EOF2'
{"id": "on-paid", "triggers": [{"event": "invoice.paid", "if": "event.data.amount > 0"}],
 "steps": [{"id": "a", "uses": "transform", "with": {"value": "${{ event.data.amount }}"}}]}
EOF2
cat > "$W/any.json" <<'EOF2'
{"id": "on-invoice", "triggers": [{"event": "invoice.>"}],
 "steps": [{"id": "a", "uses": "transform", "with": {"value": "${{ event.name }}"}}]}
EOF2
cat > "$W/star.json" <<'EOF2'
{"id": "on-one-level", "triggers": [{"event": "invoice.*"}],
 "steps": [{"id": "a", "uses": "transform", "with": {"value": "${{ event.id }}"}}]}
EOF2
cat > "$W/user.json" <<'EOF2'
{"id": "on-user", "triggers": [{"event": "user.created"}], "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF2
cat > "$W/off.json" <<'EOF2'
{"id": "disabled", "enabled": false, "triggers": [{"event": "invoice.paid"}], "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF2
"$RATCHET_BIN" migrate >/dev/null
rt_serve_start a

started() { # EVENT_ID -> sorted workflow ids of the runs it started
  rt_psql "select coalesce(string_agg(workflow_id, ',' order by workflow_id), '') from ratchet.runs where trigger->>'event_id' = '$1'"
}

"$RATCHET_BIN" send invoice.paid --id e1 --data '{"amount": 5}' >/dev/null
rt_assert_eq "on-invoice,on-one-level,on-paid" "$(started e1)" "exact + > + * match, if true"
"$RATCHET_BIN" send invoice.paid --id e2 --data '{"amount": 0}' >/dev/null
rt_assert_eq "on-invoice,on-one-level" "$(started e2)" "if false filters on-paid out"
"$RATCHET_BIN" send invoice.line.added --id e3 >/dev/null
rt_assert_eq "on-invoice" "$(started e3)" "> matches two levels, * does not"
"$RATCHET_BIN" send user.deleted --id e4 >/dev/null
rt_assert_eq "" "$(started e4)" "no trigger matches"
"$RATCHET_BIN" send user.created --id e5 --actor-type agent --actor-id agent-7 --entity acct_42 >/dev/null
rt_assert_eq "on-user" "$(started e5)" "user.created"
rt_assert_eq "agent|agent-7|acct_42" "$(rt_psql "select envelope->'actor'->>'type' || '|' || (envelope->'actor'->>'id') || '|' || (envelope->>'entity_id') from ratchet.events where id = 'e5'")" "actor and entity stored"

# Redelivery of the same id starts nothing new.
out=$("$RATCHET_BIN" send invoice.paid --id e1 --data '{"amount": 5}' --json)
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["duplicate"] is True and d["runs"]==[], d' "$out" || rt_fail "duplicate send: $out"
rt_assert_eq 3 "$(rt_psql "select count(*) from ratchet.runs where trigger->>'event_id' = 'e1'")" "still 3 runs for e1"

# Every triggered run completes and sees its event.
rt_wait_for 60 '[ "$(rt_psql "select count(*) from ratchet.runs where status <> '"'completed'"'")" = 0 ]'
rt_assert_eq '5' "$(rt_psql "select output::text from ratchet.runs where workflow_id = 'on-paid'")" "run sees event.data"

# `ratchet events` lists events newest first with their runs.
ev=$("$RATCHET_BIN" events --json --limit 10)
python3 - "$ev" <<'PY' || rt_fail "events --json: $ev"
import json, sys
d = json.loads(sys.argv[1])
assert [e["id"] for e in d] == ["e5", "e4", "e3", "e2", "e1"], [e["id"] for e in d]
e1 = d[-1]
assert sorted(r["workflow"] for r in e1["runs"]) == ["on-invoice", "on-one-level", "on-paid"], e1
assert e1["transport"] == "cli" and e1["data"] == {"amount": 5}
PY
"$RATCHET_BIN" events --name user.created | grep -q on-user || rt_fail "events --name"

# Bad events: clear message, exit 2, nothing stored.
expect_fail() { # CODE PATTERN CMD...
  local code=$1 pat=$2; shift 2
  set +e; out=$("$@" 2>&1); rc=$?; set -e
  [ "$rc" = "$code" ] || rt_fail "'$*' exited $rc, expected $code: $out"
  grep -q -- "$pat" <<<"$out" || rt_fail "'$*' said '$out', expected '$pat'"
}
before=$(rt_psql "select count(*) from ratchet.events")
expect_fail 2 'event name' "$RATCHET_BIN" send 'bad name'
expect_fail 2 'event name' "$RATCHET_BIN" send 'a.>'
expect_fail 2 'not valid JSON' "$RATCHET_BIN" send ok.name --data '{'
expect_fail 2 'actor' "$RATCHET_BIN" send ok.name --actor-type robot
expect_fail 2 'expected an event name' "$RATCHET_BIN" send
rt_assert_eq "$before" "$(rt_psql "select count(*) from ratchet.events")" "bad events store nothing"
rt_serve_stop a
echo "ok: events_db"
