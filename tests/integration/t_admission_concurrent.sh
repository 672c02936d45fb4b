#!/usr/bin/env bash
# Admission with concurrent writers: two `ratchet send` loops at the same time (each send
# is its own process and transaction) against two serve processes executing the runs.
# Nothing is created twice: one run per idempotency value; per singleton key (skip and
# cancel) never two unfinished runs at once; every batched event is in exactly one full
# batch. The singleton runs sleep 10 s: long against the gap between two sends of one key
# however slow the machine is, so requests are skipped and runs cancelled (on a fast
# machine a key may be taken only once).
source "$(dirname "$0")/lib.sh"
rt_test_init admission_concurrent

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2
cat > "$W/idem.json" <<'EOF2'
{"id": "c-idem", "triggers": [{"event": "c.day"}], "idempotency": "event.data.day",
 "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF2
cat > "$W/skip.json" <<'EOF2'
{"id": "c-skip", "triggers": [{"event": "c.sync"}], "singleton": {"key": "event.data.k", "mode": "skip"},
 "steps": [{"id": "nap", "uses": "sleep", "with": {"duration": "10s"}}]}
EOF2
cat > "$W/cancel.json" <<'EOF2'
{"id": "c-cancel", "triggers": [{"event": "c.sync"}], "singleton": {"key": "event.data.k", "mode": "cancel"},
 "steps": [{"id": "nap", "uses": "sleep", "with": {"duration": "10s"}}]}
EOF2
cat > "$W/batch.json" <<'EOF2'
{"id": "c-batch", "triggers": [{"event": "c.line"}], "batch_events": {"max_size": 3, "timeout": "1h"},
 "steps": [{"id": "a", "uses": "transform", "with": {"value": "${{ len(events) }}"}}]}
EOF2
"$RATCHET_BIN" migrate >/dev/null
rt_serve_start a
rt_serve_start b
rt_serve_wait_ready a
rt_serve_wait_ready b

# 15 rounds per loop: each send is an ASan process start, seconds each on a loaded CI
# machine (30 rounds took 560 s of ctest's 600 s limit there). 2N must divide by 3.
N=15
loop() { # NAME ORDER: N rounds of one event per workflow
  local name=$1 i day k
  for i in $(seq 1 $N); do
    if [[ $2 == up ]]; then day=$(((i - 1) % 10)); else day=$(((N - i) % 10)); fi
    k=$((i % 2))
    "$RATCHET_BIN" send c.day --data "{\"day\": \"d$day\"}" >/dev/null 2>>"$T/$name.err" || return 1
    "$RATCHET_BIN" send c.sync --data "{\"k\": \"k$k\"}" >/dev/null 2>>"$T/$name.err" || return 1
    "$RATCHET_BIN" send c.line --data "{\"from\": \"$name\", \"i\": $i}" >/dev/null 2>>"$T/$name.err" || return 1
  done
}
# A watcher samples, every few ms until every event is in, how many runs of one singleton
# key are unfinished at once (each query sees a fresh snapshot).
psql -XAtq -v ON_ERROR_STOP=1 "$RATCHET_DATABASE_URL" >"$T/watch" 2>&1 <<EOF2 &
create function pg_temp.watch(total int) returns int language plpgsql as \$\$
declare m int := 0; c int; rounds int := 0;
begin
  loop
    select coalesce(max(n), 0) into c from (select count(*) n from ratchet.runs
      where workflow_id in ('c-skip', 'c-cancel') and status in ('queued', 'running', 'sleeping', 'waiting')
      group by workflow_id, event->'data'->>'k') t;
    m := greatest(m, c);
    rounds := rounds + 1;
    exit when (select count(*) from ratchet.events) >= total or rounds > 100000;
    perform pg_sleep(0.003);
  end loop;
  return m;
end \$\$;
select pg_temp.watch($((6 * N)));
EOF2
watcher=$!
loop one up & p1=$!
loop two down & p2=$!
wait $p1 || rt_fail "loop one: a send failed: $(cat "$T/one.err")"
wait $p2 || rt_fail "loop two: a send failed: $(cat "$T/two.err")"
wait $watcher || rt_fail "watcher: $(cat "$T/watch")"
rt_assert_eq $((6 * N)) "$(q "select count(*) from ratchet.events")" "every event stored"

# idempotency: 10 values, one run each.
rt_assert_eq "10|10" "$(q "select count(*) || '|' || count(distinct trigger #>> '{admission,idempotency}') from ratchet.runs where workflow_id = 'c-idem'")" "one run per idempotency value"
rt_wait_for 60 '[ "$(q "select count(*) from ratchet.runs where status <> '"'completed'"' and status <> '"'cancelled'"'")" = 0 ]'
# singleton: never two unfinished runs of one key at the same time.
rt_assert_eq 1 "$(cat "$T/watch")" "most unfinished runs of one singleton key at once"
skip_runs=$(q "select count(*) from ratchet.runs where workflow_id = 'c-skip'")
((skip_runs >= 2 && skip_runs < 2 * N)) || rt_fail "skip: expected a run per key and some (not all) requests to start a run, got $skip_runs"
rt_assert_eq $((2 * N)) "$(q "select count(*) from ratchet.runs where workflow_id = 'c-cancel'")" "cancel: a run per request"
rt_assert_eq 0 "$(q "select count(*) from ratchet.runs where workflow_id = 'c-cancel' and status = 'cancelled' and error not like 'cancelled by singleton: newer run %'")" "cancel: every cancelled run names its successor"
# batch: 2N events, 2N/3 full batches of 3, each event in exactly one.
rt_assert_eq "$((2 * N / 3))|3|3" "$(q "select count(*) || '|' || min(jsonb_array_length(trigger->'events')) || '|' || max(jsonb_array_length(trigger->'events')) from ratchet.runs where workflow_id = 'c-batch'")" "batch: $((2 * N / 3)) runs of 3 events"
rt_assert_eq "$((2 * N))|$((2 * N))" "$(q "select count(*) || '|' || count(distinct e->>'id') from ratchet.runs r, jsonb_array_elements(r.trigger->'events') e where r.workflow_id = 'c-batch'")" "batch: every event in exactly one run"
rt_assert_eq 0 "$(q "select count(*) from ratchet.runs where workflow_id = 'c-batch' and output::text <> '3'")" "batch runs saw 3 events"

rt_serve_stop a
rt_serve_stop b
for f in "$T/a.log" "$T/b.log"; do
  rt_check_log "$f"
  ! grep -E ' (error|warn) ' "$f" | grep -v 'API without authentication' || rt_fail "unexpected error lines in $f"
done
echo "ok: admission under concurrent senders"
