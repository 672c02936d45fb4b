#!/usr/bin/env bash
# Progress from long exec steps (steps/exec.c, engine/run/progress.c): a command writes
# JSON lines {"done", "total", "message"} to the fd named by RATCHET_PROGRESS_FD; the latest
# valid one is stored on its step row (written at most once a second per step, checked by a
# trigger that records every write), shown by `ratchet show`, `show --json` and
# GET /api/v1/runs/{id}. Bad, non-object and overlong lines are skipped and counted
# (ratchet_progress_lines_invalid_total, invalid_lines). A command that floods the pipe
# (10 MB of lines) is never blocked by it. records_processed in a step's output is counted in
# ratchet_records_processed_total{workflow}.
source "$(dirname "$0")/lib.sh"
rt_test_init progress

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2
cat >"$T/prog.sh" <<'EOF2'
fd=$RATCHET_PROGRESS_FD
[ "$fd" = 3 ] || { echo "RATCHET_PROGRESS_FD=$fd" >&2; exit 3; }
echo 'not json' >&3
echo '[1, 2]' >&3
echo '{"done": -1}' >&3
echo '{"done": "many"}' >&3
head -c 5000 /dev/zero | tr '\0' 'x' >&3; echo >&3
# About three seconds of reports, a hundred a second.
i=0
while [ $i -lt 300 ]; do
  echo "{\"done\": $i, \"total\": 1000, \"message\": \"row $i\"}" >&3
  i=$((i + 1)); sleep 0.01
done
echo '{"done": 40, "total": 100, "message": "syncing account 40"}' >&3
while [ ! -e "$1" ]; do sleep 0.05; done
echo '{"records_processed": 42, "ok": true}'
EOF2
cat >"$W/prog.json" <<EOF2
{"id": "prog", "steps": [{"id": "sync", "uses": "exec", "with": {"command": ["sh", "$T/prog.sh", "\${{ event.data.gate }}"]}}]}
EOF2
cat >"$W/flood.json" <<'EOF2'
{"id": "flood", "retries": {"max_attempts": 1}, "steps": [{"id": "spam", "uses": "exec", "timeout": "120s",
 "with": {"command": ["sh", "-c", "yes '{\"done\": 1, \"total\": 2}' | head -n 400000 >&3; echo '{\"records_processed\": 7}'"]}}]}
EOF2
"$RATCHET_BIN" migrate >/dev/null
q() { rt_psql "$1"; }
# Every write of a progress value, as the database saw it.
q "create table public.progress_writes (at timestamptz not null default clock_timestamp(), run_id uuid, step_id text, progress jsonb);
create function public.note_progress() returns trigger language plpgsql as \$\$
begin insert into public.progress_writes (run_id, step_id, progress) values (new.run_id, new.step_id, new.progress); return new; end \$\$;
create trigger note_progress after update of progress on ratchet.steps for each row execute function public.note_progress();" >/dev/null
rt_serve_start a
rt_serve_wait_ready a
U=$(rt_serve_url a)

g=$T/gate
r=$("$RATCHET_BIN" run prog --data "{\"gate\": \"$g\"}" 2>/dev/null)
rt_wait_for 90 '[ "$(q "select progress->>'"'message'"' from ratchet.steps where run_id = '"'$r'"' and step_id = '"'sync'"'")" = "syncing account 40" ]'
p=$(q "select progress from ratchet.steps where run_id = '$r' and step_id = 'sync'")
python3 - "$p" <<'EOF2' || rt_fail "stored progress: $p"
import json, sys
p = json.loads(sys.argv[1])
assert p["done"] == 40 and p["total"] == 100 and p["message"] == "syncing account 40", p
assert p["attempt"] == 1 and p["invalid_lines"] == 5 and p["at_ms"] > 0, p
EOF2
rt_assert_eq running "$(q "select status from ratchet.steps where run_id = '$r' and step_id = 'sync'")" "the step still runs"
"$RATCHET_BIN" show "$r" | grep -q "progress  40/100 (40%) syncing account 40" || rt_fail "show: $("$RATCHET_BIN" show "$r")"
curl -fsS -m 30 "$U/api/v1/runs/$r" | python3 -c '
import json, sys
run = json.load(sys.stdin)
s = [s for s in run["steps"] if s["id"] == "sync"][0]
assert s["progress"]["done"] == 40 and s["progress"]["total"] == 100, s
assert s["progress_at"], s' || rt_fail "GET /api/v1/runs/$r has no progress"

# At most one write a second: ~300 reports over ~3 s made a handful of writes, spaced >= 1 s.
writes=$(q "select count(*) from public.progress_writes where run_id = '$r'")
span=$(q "select extract(epoch from max(at) - min(at)) from public.progress_writes where run_id = '$r'")
python3 -c "import sys; w, s = int(sys.argv[1]), float(sys.argv[2]); sys.exit(0 if 1 <= w <= s + 2 else 1)" "$writes" "$span" ||
  rt_fail "$writes progress writes in $span s"
gap=$(q "select coalesce(min(d), 1) from (select extract(epoch from at - lag(at) over (order by at)) d from public.progress_writes where run_id = '$r') t")
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) >= 0.9 else 1)" "$gap" || rt_fail "two progress writes $gap s apart"

touch "$g"
rt_wait_for 60 '[ "$(q "select status from ratchet.runs where id = '"'$r'"'")" = completed ]'
rt_assert_eq "syncing account 40" "$(q "select progress->>'message' from ratchet.steps where run_id = '$r'")" "progress kept after the step"

# A flood of progress lines never blocks the command.
f=$("$RATCHET_BIN" run flood --wait 2>/dev/null) || rt_fail "flood run: $("$RATCHET_BIN" show "$f")"
rt_wait_for 30 '[ "$(q "select progress->>'"'done'"' from ratchet.steps where run_id = '"'$f'"'")" = 1 ]'

m=$(curl -fsS -m 30 "$U/metrics")
grep -qE '^ratchet_records_processed_total\{workflow="prog"\} 42$' <<<"$m" || rt_fail "records: $(grep records_processed <<<"$m")"
grep -qE '^ratchet_records_processed_total\{workflow="flood"\} 7$' <<<"$m" || rt_fail "records: $(grep records_processed <<<"$m")"
grep -qE '^ratchet_progress_lines_invalid_total 5$' <<<"$m" || rt_fail "invalid lines: $(grep progress_lines <<<"$m")"
rt_serve_stop a
echo "ok"
