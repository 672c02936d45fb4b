#!/usr/bin/env bash
# Cron ticks fire exactly once across replicas. Three `serve` processes share one database
# with two per-second schedules for 20+ s; one of them is killed with SIGKILL midway.
#   "every" (catch_up all): one run per second — the ticks (dedupe keys) are consecutive
#           seconds from the first to the last, none missing, none doubled;
#   "tick"  (default catch_up latest): no tick doubled, and every second is accounted for
#           exactly once (fired alone, or folded into a catch-up run's schedule.missed).
# Each run sees schedule.time / schedule.date of its own tick and runs to completion.
source "$(dirname "$0")/lib.sh"
rt_test_init cron

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2 RATCHET_LEASE=10s

cat > "$W/every.json" <<'EOF'
{"id": "every", "triggers": [{"cron": "* * * * * *", "catch_up": "all"}],
 "steps": [{"id": "t", "uses": "transform", "with": {"value": {"time": "${{ schedule.time }}", "date": "${{ schedule.date }}"}}}],
 "output": "${{ steps.t.output }}"}
EOF
cat > "$W/tick.json" <<'EOF'
{"id": "tick", "triggers": [{"cron": "* * * * * *"}],
 "steps": [{"id": "t", "uses": "transform", "with": {"value": "${{ schedule.time }}"}}],
 "output": "${{ steps.t.output }}"}
EOF
"$RATCHET_BIN" validate "$W" >/dev/null || rt_fail "workflows invalid"
"$RATCHET_BIN" migrate >/dev/null

# The tick of a run, unix seconds, from its dedupe key "cron:<index>:<ms>".
TICK="(split_part(dedupe_key, ':', 3)::bigint / 1000)"
span() { # WORKFLOW -> seconds from its first to its last tick
  rt_psql "select coalesce(max($TICK) - min($TICK), 0) from ratchet.runs where workflow_id = '$1'"
}

t0=$(date +%s)
rt_serve_start a
rt_serve_start b
rt_serve_start c
rt_wait_for 60 '[ "$(span every)" -ge 10 ]'
rt_serve_kill9 b
echo "ok: killed b (kill -9) at $(( $(date +%s) - t0 )) s"
rt_wait_for 120 '[ "$(span every)" -ge 22 ]'
rt_serve_stop a
rt_serve_stop c
echo "ran $(( $(date +%s) - t0 )) s"

# Runs created before the stop still complete: let one serve drain them.
rt_serve_start d --scheduler-enabled=false
rt_wait_for 60 '[ "$(rt_psql "select count(*) from ratchet.runs where status <> '"'completed'"'")" = 0 ]'
rt_serve_stop d

# every: consecutive seconds, none missing, none doubled.
read -r n distinct lo hi < <(rt_psql "select count(*), count(distinct $TICK), min($TICK), max($TICK)
  from ratchet.runs where workflow_id = 'every'" -F ' ')
rt_assert_eq "$n" "$distinct" "every: runs vs distinct ticks (a doubled tick)"
rt_assert_eq "$((hi - lo + 1))" "$n" "every: runs vs seconds from $lo to $hi (a missing tick)"
[ "$n" -ge 23 ] || rt_fail "every: only $n runs"
gaps=$(rt_psql "select count(*) from (select $TICK - lag($TICK) over (order by $TICK) d
  from ratchet.runs where workflow_id = 'every') x where d <> 1")
rt_assert_eq 0 "$gaps" "every: ticks that do not follow the previous one by 1 s"

# Each run saw its own tick in its zone (UTC here) and the dedupe key matches it.
bad=$(rt_psql "select count(*) from ratchet.runs where workflow_id = 'every' and (
    output->>'time' <> to_char(to_timestamp($TICK) at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+00:00\"')
    or output->>'date' <> to_char(to_timestamp($TICK) at time zone 'UTC', 'YYYY-MM-DD')
    or trigger->'schedule' ->> 'time' <> output->>'time'
    or jsonb_typeof(trigger->'schedule'->'late_ms') is distinct from 'number' or (trigger->'schedule'->>'late_ms')::bigint < 0
    or trigger->>'type' <> 'cron' or trigger->>'cron' <> '* * * * * *' or trigger->>'timezone' <> 'UTC'
    or dedupe_key not like 'cron:0:%000'
    or event->>'name' <> 'ratchet.cron' or event->'actor'->>'type' <> 'system')")
rt_assert_eq 0 "$bad" "every: runs whose schedule.time/date, trigger, event or dedupe key is wrong"

# tick (latest): no doubles; each second from first to last accounted for exactly once.
read -r n distinct lo hi weight < <(rt_psql "select count(*), count(distinct $TICK), min($TICK), max($TICK),
  sum(coalesce((trigger->'schedule'->>'missed')::int, 1)) from ratchet.runs where workflow_id = 'tick'" -F ' ')
rt_assert_eq "$n" "$distinct" "tick: runs vs distinct ticks (a doubled tick)"
rt_assert_eq "$((hi - lo + 1))" "$weight" "tick: seconds from $lo to $hi vs ticks the runs stand for"
# Seconds covered, not runs: on a slow machine more late ticks fold into one run.
[ "$((hi - lo + 1))" -ge 20 ] || rt_fail "tick: runs cover only $((hi - lo + 1)) s ($n runs)"

late=$(rt_psql "select count(*) from ratchet.runs where trigger->'schedule' ? 'missed'")
lateness=$(rt_psql "select round(percentile_cont(0.5) within group (order by ms))::text || ' ms p50, '
  || round(max(ms))::text || ' ms max' from (select extract(epoch from created_at) * 1000 - $TICK * 1000 ms
  from ratchet.runs) x")
echo "ok: cron exactly once across 3 processes and a kill -9: every=$(rt_psql "select count(*) from ratchet.runs where workflow_id = 'every'") runs, tick=$n runs, $late catch-up run(s); fire lateness $lateness"
