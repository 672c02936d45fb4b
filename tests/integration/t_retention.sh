#!/usr/bin/env bash
# Retention: finished runs older than RATCHET_RUN_RETENTION are deleted with their steps
# and attempts; unfinished runs stay whatever their age; stored events older than
# RATCHET_EVENT_RETENTION are deleted too.
source "$(dirname "$0")/lib.sh"
rt_test_init retention

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2
cat > "$W/quick.json" <<'EOF2'
{"id": "quick", "triggers": [{"event": "ret.ping"}], "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF2
cat > "$W/hold.json" <<'EOF2'
{"id": "hold", "steps": [{"id": "nap", "uses": "sleep", "with": {"duration": "1h"}}]}
EOF2
"$RATCHET_BIN" migrate >/dev/null

RATCHET_RUN_RETENTION=off rt_serve_start a
for _ in 1 2 3; do "$RATCHET_BIN" run quick --wait >/dev/null; done
"$RATCHET_BIN" send ret.ping --data '{}' >/dev/null
held=$("$RATCHET_BIN" run hold)
rt_wait_for 60 '[ "$(rt_psql "select count(*) from ratchet.runs where status = '"'completed'"'")" = 4 ]'
rt_wait_for 60 '[ "$(rt_psql "select status from ratchet.runs where id = '"'$held'"'")" = sleeping ]'
rt_serve_stop a
grep -q "run retention" "$T/a.log" && rt_fail "RATCHET_RUN_RETENTION=off deleted runs"
rt_assert_eq 4 "$(rt_psql "select count(*) from ratchet.runs where status = 'completed'")" "off keeps finished runs"

old() { rt_psql "select count(*) from ratchet.runs where finished_at < now() - interval '1 second'"; }
rt_wait_for 60 '[ "$(old)" = 4 ]'
RATCHET_RUN_RETENTION=1s RATCHET_EVENT_RETENTION=1s rt_serve_start b
rt_wait_for 60 '[ "$(rt_psql "select count(*) from ratchet.runs where status = '"'completed'"'")" = 0 ]'
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.steps s where not exists (select 1 from ratchet.runs r where r.id = s.run_id)")" "no orphan steps"
rt_assert_eq 1 "$(rt_psql "select count(*) from ratchet.steps")" "only the sleeping run's step is left"
rt_assert_eq sleeping "$(rt_psql "select status from ratchet.runs where id = '$held'")" "an unfinished run stays"
rt_wait_for 60 '[ "$(rt_psql "select count(*) from ratchet.events where name = '"'ret.ping'"'")" = 0 ]'
rt_wait_for 60 'grep -q "run retention: deleted 4 run(s)" "$T/b.log"'
rt_serve_stop b
echo "PASS retention"
