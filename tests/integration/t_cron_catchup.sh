#!/usr/bin/env bash
# Catch-up after downtime, for each policy. Three per-second schedules (latest, all,
# none) run, every serve is stopped for ~6 s, then one starts again. The grace of a
# per-second schedule is 2 s: a tick reached later than that is late.
#   all:    every second has its run, the downtime's ones created late (schedule.missed 1);
#   latest: one run stands for the late ticks (schedule.missed = how many), the seconds
#           are all accounted for exactly once, and the downtime leaves a gap;
#   none:   the downtime's ticks get no run; every run was created within the grace.
source "$(dirname "$0")/lib.sh"
rt_test_init cron_catchup

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2

for policy in latest all none; do
  cat > "$W/cu-$policy.json" <<EOF
{"id": "cu-$policy", "triggers": [{"cron": "* * * * * *", "catch_up": "$policy"}],
 "steps": [{"id": "t", "uses": "transform", "with": {"value": "\${{ schedule }}"}}]}
EOF
done
"$RATCHET_BIN" validate "$W" >/dev/null || rt_fail "workflows invalid"
"$RATCHET_BIN" migrate >/dev/null

TICK="(split_part(dedupe_key, ':', 3)::bigint / 1000)"
q() { rt_psql "$1" -F ' '; }
runs_after() { # WORKFLOW UNIX_S -> runs with a tick after it
  rt_psql "select count(*) from ratchet.runs where workflow_id = '$1' and $TICK > $2"
}
all_have_runs_after() { # UNIX_S N
  local p
  for p in latest all none; do [ "$(runs_after "cu-$p" "$1")" -ge "$2" ] || return 1; done
}

rt_serve_start a
rt_wait_for 60 all_have_runs_after 0 3
rt_serve_stop a
stopped=$(date +%s)
# The downtime itself: nothing is running, so there is nothing to wait for but the clock.
sleep 6
restarted=$(date +%s)
rt_serve_start b
rt_wait_for 60 all_have_runs_after "$((restarted + 1))" 3
rt_serve_stop b

# all: no second missing or doubled, and the downtime's ticks were caught up late.
read -r n distinct lo hi < <(q "select count(*), count(distinct $TICK), min($TICK), max($TICK) from ratchet.runs where workflow_id = 'cu-all'")
rt_assert_eq "$n" "$distinct" "all: doubled tick"
rt_assert_eq "$((hi - lo + 1))" "$n" "all: runs for the seconds $lo..$hi"
caught=$(rt_psql "select count(*) from ratchet.runs where workflow_id = 'cu-all' and (trigger->'schedule'->>'missed')::int = 1")
[ "$caught" -ge 3 ] || rt_fail "all: expected >= 3 late runs (schedule.missed 1) after ~6 s down, got $caught"
echo "ok: all — $n runs for $n seconds, $caught of them caught up after the downtime"

# latest: every second accounted for once; the late ones folded into one run.
read -r n distinct lo hi weight < <(q "select count(*), count(distinct $TICK), min($TICK), max($TICK),
  sum(coalesce((trigger->'schedule'->>'missed')::int, 1)) from ratchet.runs where workflow_id = 'cu-latest'")
rt_assert_eq "$n" "$distinct" "latest: doubled tick"
rt_assert_eq "$((hi - lo + 1))" "$weight" "latest: seconds $lo..$hi vs the ticks the runs stand for"
read -r folded missed < <(q "select count(*), coalesce(max((trigger->'schedule'->>'missed')::int), 0)
  from ratchet.runs where workflow_id = 'cu-latest' and trigger->'schedule' ? 'missed'")
rt_assert_eq 1 "$folded" "latest: catch-up runs"
[ "$missed" -ge 3 ] || rt_fail "latest: the catch-up run stands for $missed tick(s), expected >= 3"
[ "$n" -lt "$((hi - lo + 1))" ] || rt_fail "latest: no gap for the downtime ($n runs for $((hi - lo + 1)) s)"
gap=$(rt_psql "select count(*) from ratchet.runs where workflow_id = 'cu-latest' and $TICK > $stopped and $TICK < $restarted - 3")
rt_assert_eq 0 "$gap" "latest: runs for ticks well inside the downtime"
echo "ok: latest — one run stands for $missed late ticks, $n runs for $((hi - lo + 1)) s"

# none: a gap, no catch-up run, every run created within the 2 s grace of its tick.
read -r n distinct lo hi < <(q "select count(*), count(distinct $TICK), min($TICK), max($TICK) from ratchet.runs where workflow_id = 'cu-none'")
rt_assert_eq "$n" "$distinct" "none: doubled tick"
[ "$n" -le "$((hi - lo + 1 - 3))" ] || rt_fail "none: expected a gap of >= 3 s, got $n runs for $((hi - lo + 1)) s"
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.runs where workflow_id = 'cu-none' and trigger->'schedule' ? 'missed'")" \
  "none: catch-up runs"
# Every run was created within the 2 s grace of its tick: created_at is the scheduler's
# transaction's now(), the very instant it decided with (to the millisecond it rounds that
# to, hence 2001 ms), and schedule.late_ms records that decision.
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.runs where workflow_id = 'cu-none'
  and created_at >= to_timestamp($TICK) + interval '2001 milliseconds'")" "none: runs created later than the grace"
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.runs where workflow_id = 'cu-none'
  and abs((trigger->'schedule'->>'late_ms')::bigint - extract(epoch from created_at - to_timestamp($TICK)) * 1000) > 1")" \
  "none: schedule.late_ms is not when the run was created"
echo "ok: none — $n runs for $((hi - lo + 1)) s, the downtime skipped"

# A quick restart: whatever it takes, no second is missed or doubled under "all".
rt_serve_start c
rt_wait_for 60 all_have_runs_after "$(date +%s)" 2
rt_serve_stop c
rt_serve_start d
rt_wait_for 60 all_have_runs_after "$(date +%s)" 2
rt_serve_stop d
read -r n distinct lo hi < <(q "select count(*), count(distinct $TICK), min($TICK), max($TICK) from ratchet.runs where workflow_id = 'cu-all'")
rt_assert_eq "$n" "$distinct" "all: doubled tick after the quick restart"
rt_assert_eq "$((hi - lo + 1))" "$n" "all: seconds $lo..$hi after the quick restart"
echo "ok: cron catch-up"
