#!/usr/bin/env bash
# The shipped cron examples load, sync and fire:
#  1. the files as shipped (scheduler off, so nothing fires): `schedules --json` lists
#     daily-ledger-checkpoint at the next 00:00 UTC, insight-refresh at the next 02:00 in
#     America/Sao_Paulo (05:00Z), cleanup-expired-tokens at the next quarter hour;
#  2. seconds-field variants (each cron replaced by "* * * * * *" in the same zone, the
#     rest unchanged) fire, run to completion, and their steps see schedule.date/time in
#     the trigger's zone: the ledger checkpoint row is for the run's UTC date and holds
#     the SHA-256 over the entries, the insight row is for the São Paulo date, the expired
#     tokens are deleted. The sync moves the rows to the new expressions.
source "$(dirname "$0")/lib.sh"
rt_test_init cron_examples

EXAMPLES="$RATCHET_SOURCE_DIR/workflows"
NAMES=(daily-ledger-checkpoint cleanup-expired-tokens insight-refresh)
ORIG=$T/orig
W=$T/workflows
mkdir -p "$ORIG" "$W"
for n in "${NAMES[@]}"; do
  cp "$EXAMPLES/$n.json" "$ORIG/"
  python3 - "$EXAMPLES/$n.json" "$W/$n.json" <<'EOF'
import json, sys
wf = json.load(open(sys.argv[1]))
crons = [t for t in wf["triggers"] if "cron" in t]
assert crons, "no cron trigger in " + sys.argv[1]
for t in crons:
    t["cron"] = "* * * * * *"
json.dump(wf, open(sys.argv[2], "w"), indent=1)
EOF
done
"$RATCHET_BIN" validate "$ORIG" >/dev/null || rt_fail "shipped examples invalid"
"$RATCHET_BIN" validate "$W" >/dev/null || rt_fail "seconds variants invalid"
export RATCHET_WORKERS=4
"$RATCHET_BIN" migrate >/dev/null

# 1. As shipped.
RATCHET_WORKFLOWS=$ORIG rt_serve_start orig --scheduler-enabled=false
rt_wait_for 60 'grep -q "schedules synced" "$T/orig.log"'
rt_serve_stop orig
"$RATCHET_BIN" schedules --json > "$T/orig.json"
python3 - "$T/orig.json" <<'EOF' || rt_fail "shipped schedules: see above"
import json, sys
from datetime import datetime, timedelta, timezone
rows = {r["workflow"]: r for r in json.load(open(sys.argv[1]))}
now = datetime.now(timezone.utc)
def nxt(w):
    r = rows[w]
    assert r["state"] == "active", r
    t = datetime.fromisoformat(r["next_fire_at"].replace("Z", "+00:00"))
    assert now - timedelta(seconds=5) < t, (w, t)
    return t
d = nxt("daily-ledger-checkpoint")
assert (rows["daily-ledger-checkpoint"]["cron"], rows["daily-ledger-checkpoint"]["timezone"]) == ("0 0 * * *", "UTC")
assert (d.hour, d.minute, d.second) == (0, 0, 0) and d - now <= timedelta(days=1), d
i = nxt("insight-refresh")
assert rows["insight-refresh"]["timezone"] == "America/Sao_Paulo"
assert (i.hour, i.minute, i.second) == (5, 0, 0) and i - now <= timedelta(days=1), i   # 02:00-03:00
c = nxt("cleanup-expired-tokens")
assert rows["cleanup-expired-tokens"]["catch_up"] == "none"
assert c.minute % 15 == 0 and c.second == 0 and c - now <= timedelta(minutes=15), c
for r in rows.values():
    assert r["last_fire_at"] is None, r
print("ok: shipped schedules: ledger %s, insight %s, cleanup %s" % (d.isoformat(), i.isoformat(), c.isoformat()))
EOF
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.runs")" "runs with the scheduler off"

# 2. Seconds-field variants, on data the steps work on.
rt_psql "create table app_ledger_entries (id bigserial primary key, account text not null, amount numeric not null, created_at timestamptz not null default now());
  create table app_ledger_checkpoints (day date primary key, last_entry_id bigint not null, entries bigint not null, hash text not null, created_at timestamptz not null default now());
  create table app_insights (day date primary key, accounts bigint not null, volume numeric not null, refreshed_at timestamptz not null default now());
  create table app_tokens (token_hash text primary key, expires_at timestamptz not null);
  insert into app_ledger_entries (account, amount) values ('acct_1', 10.50), ('acct_2', -3), ('acct_1', 7);
  insert into app_tokens values ('old1', now() - interval '1 day'), ('old2', now() - interval '1 hour'),
    ('old3', now() - interval '1 second'), ('new1', now() + interval '1 day'), ('new2', now() + interval '1 hour')" >/dev/null

completed() { rt_psql "select count(*) from ratchet.runs where workflow_id = '$1' and status = 'completed'"; }
all_fired() {
  local n
  for n in "${NAMES[@]}"; do [ "$(completed "$n")" -ge 2 ] || return 1; done
}
RATCHET_WORKFLOWS=$W rt_serve_start a
rt_wait_for 60 all_fired
rt_serve_stop a
grep -q "0 added, 3 changed, 0 removed" "$T/a.log" || rt_fail "the sync did not update the 3 expressions: $(grep synced "$T/a.log")"
"$RATCHET_BIN" schedules --json | python3 -c '
import json, sys
for r in json.load(sys.stdin):
    assert r["cron"] == "* * * * * *" and r["last_fire_at"] is not None, r' || rt_fail "schedules after the variants"

bad=$(rt_psql "select id || ' ' || workflow_id || ' ' || status || ' ' || coalesce(error, '') from ratchet.runs where status not in ('completed', 'queued', 'running')")
[ -z "$bad" ] || rt_fail "runs that did not complete: $bad"

# Every run's schedule is its tick in the trigger's zone.
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.runs r, lateral (select to_timestamp(split_part(r.dedupe_key, ':', 3)::bigint / 1000) as t, r.trigger->>'timezone' as z) x
  where r.trigger->'schedule'->>'date' <> to_char(x.t at time zone x.z, 'YYYY-MM-DD')
     or left(r.trigger->'schedule'->>'time', 19) <> to_char(x.t at time zone x.z, 'YYYY-MM-DD\"T\"HH24:MI:SS')")" \
  "runs whose schedule.date/time is not their tick in their zone"
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.runs where workflow_id = 'insight-refresh' and trigger->'schedule'->>'time' not like '%-03:00'")" \
  "insight-refresh runs whose schedule.time is not at -03:00"

# Ledger: the first run checkpointed its UTC day with the SHA-256 over all three entries.
first=$(rt_psql "select id from ratchet.runs where workflow_id = 'daily-ledger-checkpoint' and status = 'completed' order by dedupe_key limit 1")
day=$(rt_psql "select trigger->'schedule'->>'date' from ratchet.runs where id = '$first'")
expect=$(rt_psql "select encode(sha256(convert_to(string_agg(id || ':' || account || ':' || amount, '|' order by id), 'UTF8')), 'hex') from app_ledger_entries")
rt_assert_eq "$expect" "$(rt_psql "select hash from app_ledger_checkpoints where day = '$day'")" "checkpoint hash for $day"
rt_assert_eq "3 3" "$(rt_psql "select entries || ' ' || last_entry_id from app_ledger_checkpoints where day = '$day'")" "checkpoint entries for $day"
rt_assert_eq "$expect" "$(rt_psql "select output->>'hash' from ratchet.runs where id = '$first'")" "first ledger run's output hash"
# No broker in this test: the publish step's event is stored (outbox) for workflows and later brokers.
rt_assert_eq "ledger.checkpoint|$day|$expect" \
  "$(rt_psql "select name || '|' || (envelope->'data'->>'day') || '|' || (envelope->'data'->>'hash') from ratchet.events where id = '$first:publish'")" \
  "the checkpoint, published (stored in the outbox)"
echo "ok: daily-ledger-checkpoint: $(completed daily-ledger-checkpoint) runs, checkpoint $day = ${expect:0:16}…"

# Insights: rows for the São Paulo dates the runs saw.
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.runs r where workflow_id = 'insight-refresh' and status = 'completed'
  and (r.output->>'day' <> r.trigger->'schedule'->>'date' or not exists (select 1 from app_insights i where i.day::text = r.output->>'day'))")" \
  "insight runs whose output day is not their schedule.date"
rt_assert_eq "2 20.50" "$(rt_psql "select accounts || ' ' || volume from app_insights order by refreshed_at desc limit 1")" "insight figures"
echo "ok: insight-refresh: $(completed insight-refresh) runs, day $(rt_psql "select max(day) from app_insights") (São Paulo)"

# Tokens: the three expired ones deleted, once.
rt_assert_eq "new1 new2" "$(rt_psql "select string_agg(token_hash, ' ' order by token_hash) from app_tokens")" "tokens left"
rt_assert_eq 3 "$(rt_psql "select sum((output->>'deleted')::int) from ratchet.runs where workflow_id = 'cleanup-expired-tokens' and status = 'completed'")" \
  "tokens deleted over all cleanup runs"
echo "ok: cleanup-expired-tokens: $(completed cleanup-expired-tokens) runs"
echo "ok: cron examples"
