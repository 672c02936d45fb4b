#!/usr/bin/env bash
# Schedules sync and listing:
#  - `schedules --json` shape: one object per cron trigger with workflow, trigger, cron,
#    timezone, catch_up, state (active|paused|disabled), last_fire_at / next_fire_at (RFC
#    3339 UTC or null); the human table; usage errors exit 2;
#  - RATCHET_SCHEDULER_ENABLED=false: that process syncs and runs steps but fires nothing;
#  - three serves starting at once sync 40 workflows without errors or duplicates;
#  - a restart after file edits: a changed expression moves next_fire_at, an added trigger
#    appears, a removed file's rows go, `enabled: false` shows disabled; a file that fails
#    to load keeps its workflow's rows.
source "$(dirname "$0")/lib.sh"
rt_test_init cron_sync

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2

cat > "$W/fast.json" <<'EOF'
{"id": "fast", "triggers": [{"cron": "* * * * * *"}], "steps": [{"id": "t", "uses": "transform", "with": {"value": 1}}]}
EOF
cat > "$W/manual.json" <<'EOF'
{"id": "manual", "steps": [{"id": "t", "uses": "transform", "with": {"value": "${{ event.data.x }}"}}]}
EOF
for i in $(seq -w 1 40); do
  cat > "$W/many-$i.json" <<EOF
{"id": "many-$i", "triggers": [{"cron": "0 $((10#$i % 60)) 3 * * *", "timezone": "Australia/Lord_Howe", "catch_up": "all"},
  {"event": "many.$i"}, {"cron": "@monthly", "timezone": "America/New_York"}],
 "steps": [{"id": "t", "uses": "transform", "with": {"value": 1}}]}
EOF
done
"$RATCHET_BIN" migrate >/dev/null

rc=0; "$RATCHET_BIN" schedules --bogus >/dev/null 2>&1 || rc=$?
rt_assert_eq 2 "$rc" "exit status of an unknown option"
[[ $("$RATCHET_BIN" schedules) == *"no cron schedules"* ]] || rt_fail "empty list message"
rt_assert_eq "[]" "$("$RATCHET_BIN" schedules --json | tr -d ' \n')" "empty JSON list"

# Three processes start together, all with the scheduler off: they only sync.
export RATCHET_SCHEDULER_ENABLED=false
rt_serve_start a
rt_serve_start b
rt_serve_start c
for s in a b c; do rt_wait_for 60 'grep -q "schedules synced" "$T/'$s'.log"'; done
grep -q "scheduler off in this process" "$T/a.log" || rt_fail "no 'scheduler off' line"
rt_assert_eq 81 "$(rt_psql "select count(*) from ratchet.schedules")" "schedule rows (1 + 40 x 2)"
for s in a b c; do
  ! grep -E " error |^error| warn .*(schedul|sync)" "$T/$s.log" || rt_fail "serve $s logged errors or schedule warnings"
done

# No process fires: give the per-second schedule time to (not) fire.
sleep 3
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.runs")" "runs with every scheduler off"
# ... but they run steps.
run=$("$RATCHET_BIN" run manual --data '{"x": 7}' --wait --wait-timeout 120s) || rt_fail "manual run did not complete"
rt_assert_eq 7 "$(rt_psql "select output from ratchet.steps where run_id = '$run' and step_id = 't'")" "manual run's step output"

"$RATCHET_BIN" schedules --json > "$T/list.json"
python3 - "$T/list.json" <<'EOF' || rt_fail "schedules --json shape"
import json, re, sys
rows = json.load(open(sys.argv[1]))
assert isinstance(rows, list) and len(rows) == 81, len(rows)
rfc = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
keys = ["workflow", "trigger", "cron", "timezone", "catch_up", "state", "last_fire_at", "next_fire_at"]
for r in rows:
    assert list(r) == keys, list(r)
    assert isinstance(r["trigger"], int) and r["state"] in ("active", "paused", "disabled")
    assert r["catch_up"] in ("latest", "all", "none")
    assert r["last_fire_at"] is None
    assert r["next_fire_at"] is None or rfc.match(r["next_fire_at"]), r
    assert r["state"] != "active" or r["next_fire_at"], r
order = [(r["workflow"], r["trigger"]) for r in rows]
assert order == sorted(order), "not sorted by workflow, trigger"
m = {(r["workflow"], r["trigger"]): r for r in rows}
assert m[("many-07", 0)]["cron"] == "0 7 3 * * *" and m[("many-07", 0)]["timezone"] == "Australia/Lord_Howe"
assert m[("many-07", 0)]["catch_up"] == "all"
assert ("many-07", 1) not in m, "an event trigger listed"
assert m[("many-07", 2)]["cron"] == "@monthly" and m[("many-07", 2)]["catch_up"] == "latest"
assert m[("fast", 0)]["timezone"] == "UTC"
print("ok: schedules --json: %d rows" % len(rows))
EOF
"$RATCHET_BIN" schedules > "$T/list.txt"
head -1 "$T/list.txt" | grep -q "WORKFLOW .*CRON .*TIMEZONE .*STATE .*LAST FIRE .*NEXT FIRE" || rt_fail "human header"
grep -qE '^many-07 +0 +0 7 3 \* \* \* +Australia/Lord_Howe +active +- +[0-9-]+T03:07:00\+1[01]:[03]0$' "$T/list.txt" ||
  rt_fail "human row of many-07: $(grep '^many-07 ' "$T/list.txt")"
rt_serve_stop a
rt_serve_stop b
rt_serve_stop c
unset RATCHET_SCHEDULER_ENABLED

# Edits, then a restart (scheduler on).
next_of() { rt_psql "select coalesce(extract(epoch from next_fire_at)::bigint::text, 'null') from ratchet.schedules where workflow_id = '$1' and trigger_index = $2"; }
before=$(next_of many-02 0)
sed -i 's/"0 2 3 \* \* \*"/"30 59 23 * * *"/' "$W/many-02.json"                         # changed expression
sed -i 's/"@monthly", "timezone": "America\/New_York"/"@monthly", "timezone": "Europe\/Berlin"/' "$W/many-03.json" # changed zone
sed -i 's/"id": "many-04",/"id": "many-04", "enabled": false,/' "$W/many-04.json"        # disabled
rm "$W/many-05.json"                                                                     # gone
echo '{"id": "many-06", "triggers": [' > "$W/many-06.json"                               # broken file
python3 - "$W/many-08.json" <<'EOF'                                                      # a trigger added
import json, sys
wf = json.load(open(sys.argv[1])); wf["triggers"].append({"cron": "15 4 * * MON-FRI", "catch_up": "none"})
json.dump(wf, open(sys.argv[1], "w"))
EOF
rt_serve_start d
rt_wait_for 60 'grep -q "schedules synced" "$T/d.log"'
rt_wait_for 60 '[ "$(rt_psql "select count(*) from ratchet.runs where workflow_id = '"'fast'"'")" -ge 2 ]'
rt_serve_stop d
# A file failed to load: the registry knows it is many-06's (which keeps its previous
# version and its rows), so many-05, whose file is gone, goes with its 2 rows at once.
grep -q "1 added, 4 changed, 2 removed" "$T/d.log" ||
  rt_fail "sync summary: $(grep synced "$T/d.log")"
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.schedules where workflow_id = 'many-05'")" "many-05 rows once its file is gone"
after=$(next_of many-02 0)
[ "$after" != "$before" ] || rt_fail "many-02: next fire did not move ($before)"
rt_assert_eq "23:59:30" "$(rt_psql "select to_char(next_fire_at at time zone 'Australia/Lord_Howe', 'HH24:MI:SS') from ratchet.schedules where workflow_id = 'many-02' and trigger_index = 0")" \
  "many-02 next fire, local time"
rt_assert_eq "Europe/Berlin 00:00" "$(rt_psql "select timezone || ' ' || to_char(next_fire_at at time zone 'Europe/Berlin', 'HH24:MI') from ratchet.schedules where workflow_id = 'many-03' and trigger_index = 2")" \
  "many-03 zone change"
rt_assert_eq "false null" "$(rt_psql "select enabled || ' ' || coalesce(next_fire_at::text, 'null') from ratchet.schedules where workflow_id = 'many-04' and trigger_index = 0")" \
  "many-04 disabled"
"$RATCHET_BIN" schedules --json | python3 -c '
import json, sys
m = {(r["workflow"], r["trigger"]): r for r in json.load(sys.stdin)}
assert m[("many-04", 0)]["state"] == "disabled" and m[("many-04", 0)]["next_fire_at"] is None
assert ("many-06", 0) in m, "rows of the broken file were dropped"
assert m[("many-08", 3)]["cron"] == "15 4 * * MON-FRI" and m[("many-08", 3)]["catch_up"] == "none"
assert m[("fast", 0)]["last_fire_at"] is not None' || rt_fail "list after edits"
rm "$W/many-06.json"
rt_serve_start e
rt_wait_for 60 'grep -q "schedules synced" "$T/e.log"'
rt_serve_stop e
grep -q "0 added, 0 changed, 2 removed$" "$T/e.log" || rt_fail "sync summary once clean: $(grep synced "$T/e.log")"
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.schedules where workflow_id in ('many-05', 'many-06')")" "rows of removed workflows"

# One schedule whose runs cannot be created (a trigger in the database refuses them) does
# not hold the others back: it is isolated and moved a minute on.
# The scheduler logs this schedule's failed tick as an error: that is the behaviour tested.
rt_expect_log_error 'schedule poison#0: its tick cannot be fired'
rt_psql "create function refuse_poison() returns trigger language plpgsql as \$\$ begin
    raise exception 'poisoned run'; end \$\$;
  create trigger refuse_poison before insert on ratchet.runs for each row
    when (new.workflow_id = 'poison') execute function refuse_poison()" >/dev/null
cat > "$W/poison.json" <<'EOF2'
{"id": "poison", "triggers": [{"cron": "* * * * * *"}], "steps": [{"id": "t", "uses": "transform", "with": {"value": 1}}]}
EOF2
f0=$(rt_psql "select count(*) from ratchet.runs where workflow_id = 'fast'")
rt_serve_start f
rt_wait_for 60 'grep -q "poison#0: its tick cannot be fired" "$T/f.log"'
rt_wait_for 60 '[ "$(rt_psql "select count(*) from ratchet.runs where workflow_id = '"'fast'"'")" -ge '"$((f0 + 4))"' ]'
rt_serve_stop f
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.runs where workflow_id = 'poison'")" "poison runs"
rt_assert_eq t "$(rt_psql "select next_fire_at > now() + interval '30 seconds' from ratchet.schedules where workflow_id = 'poison'")" \
  "poison schedule moved on"
echo "ok: a schedule that cannot fire is isolated"
echo "ok: cron sync, list and RATCHET_SCHEDULER_ENABLED=false"
