#!/usr/bin/env bash
# PostgreSQL going away: serve keeps running, backs off, reconnects; broker messages that
# could not be stored are redelivered and nothing is lost; runs in flight finish. Uses a
# private PostgreSQL (restarting the shared one would disturb the other tests).
source "$(dirname "$0")/lib.sh"
rt_test_init dbrestart
rt_use_nats
tag=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
export RATCHET_NATS_STREAM="D_$tag" RATCHET_NATS_SUBJECT_PREFIX="d$tag" RATCHET_NATS_CONSUMER="d$tag"

chmod o+x "$T" # postgres must reach its data dir below it
rt_pg_start "$T/pg" >"$T/pg-start.log" 2>&1 || rt_fail "cannot start a private PostgreSQL: $(tail -5 "$T/pg-start.log")"
trap 'rt_pg_stop "$T/pg" >/dev/null 2>&1; rt__exit' EXIT
psql -XAtq "$(rt_env_get "$T/pg" RT_PG_URL)" -c "create database r" >/dev/null
export RATCHET_DATABASE_URL="$(rt_env_get "$T/pg" RT_PG_URL | sed 's#/postgres$#/r#')"

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=4
cat > "$W/w.json" <<'EOF2'
{"id": "w", "triggers": [{"event": "db.test"}], "steps": [
  {"id": "nap", "uses": "sleep", "with": {"duration": "500ms"}},
  {"id": "done", "uses": "transform", "with": {"value": "${{ event.id }}"}}]}
EOF2
"$RATCHET_BIN" migrate >/dev/null
rt_serve_start a
rt_wait_for 60 'grep -q "nats consumer: connected" "$T/a.log"'

"$RATCHET_BIN" send db.test --via nats --id first --count 300 >/dev/null 2>&1
rt_wait_for 60 '[ "$(rt_psql "select count(*) from ratchet.events")" -ge 100 ]'
rt_pg_stop "$T/pg" >/dev/null 2>&1
"$RATCHET_BIN" send db.test --via nats --id during --count 300 >/dev/null 2>&1 # PostgreSQL is down
sleep 2 # the scenario: the database stays away for a while
rt_pg_restart "$T/pg" >/dev/null 2>&1 || rt_pg_start "$T/pg" >/dev/null 2>&1
rt_wait_for 120 '[ "$(rt_psql "select count(*) from ratchet.events")" = 600 ]'
rt_wait_for 120 '[ "$(rt_psql "select count(*) from ratchet.runs where status = '"'completed'"'")" = 600 ]'
kill -0 "$(rt_serve_pid a)" 2>/dev/null || rt_fail "serve died while the database was away"
grep -qi "retrying\|redelivered\|database" "$T/a.log" || rt_fail "no sign of the outage in the log"
rt_serve_stop a
echo "ok: dbrestart: 600 events, 600 runs across a PostgreSQL restart"
