#!/usr/bin/env bash
# GET /api/v1/stats/workflows (engine/store/store_wfstats.c): per workflow, over the runs
# that finished in the last hour and the last 24 hours, runs by outcome, success rate
# (completed of those not cancelled) and p50/p95 run duration (start to finish); the
# unfinished runs; the last failure with its error; the next cron fire. Checked against
# runs written straight into the database with known times, so every figure is exact:
# runs older than 24 h count nowhere, loaded workflows without runs are listed with
# nulls, a workflow no longer loaded but with runs is listed too. Readers only (an agent
# token gets 403); no query parameters.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/gate_lib.sh"
rt_test_init stats_workflows

W=$T/workflows TOKENS=$T/tokens
mkdir -p "$W"
: >"$TOKENS"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=1
cat >"$W/alpha.json" <<'EOF2'
{"id": "alpha", "triggers": [{"cron": "0 3 * * *"}], "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF2
cat >"$W/beta.json" <<'EOF2'
{"id": "beta", "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF2
VIEWER=$(gate_mint viewer)
AGENT=$(gate_mint agent acct_1)
ADMIN=$(gate_mint admin)
gate_serve_with_tokens
q() { rt_psql "$1"; }

q "insert into ratchet.workflow_versions (hash, workflow_id, definition) values ('t-hash', 'alpha', '{}');
-- run(workflow, status, finished minutes ago, duration s (null: never started), error)
create function pg_temp.run(w text, s text, ago float, d float, e text) returns void language sql as \$\$
  insert into ratchet.runs (id, workflow_id, workflow_hash, status, trigger, event, created_at, started_at, finished_at, error)
  values (gen_random_uuid(), w, 't-hash', s, '{}', '{}', now() - (coalesce(ago, 0) * 60 + coalesce(d, 0) + 1) * interval '1 second',
          case when d is not null then now() - (coalesce(ago, 0) * 60 + d) * interval '1 second' end,
          case when ago is not null then now() - ago * 60 * interval '1 second' end, e) \$\$;
select pg_temp.run('alpha', 'completed', 10, g, null) from generate_series(1, 10) g;
select pg_temp.run('alpha', 'failed', 5, 20, 'err-a: the newest failure');
select pg_temp.run('alpha', 'timed_out', 20, 30, 'err-b');
select pg_temp.run('alpha', 'cancelled', 15, null, 'cancelled before it started');
select pg_temp.run('alpha', 'completed', 180, 100, null) from generate_series(1, 5);
select pg_temp.run('alpha', 'failed', 30 * 60, 5, 'old: more than a day ago');
select pg_temp.run('alpha', 'running', null, 1, null);
select pg_temp.run('gone', 'completed', 100, 2, null);" >/dev/null

code=$(rt_http GET "$U/api/v1/stats/workflows" -H "Authorization: Bearer $VIEWER")
cp "$T/http.body" "$T/stats.json"
rt_assert_eq 200 "$code" "viewer: $(cat "$T/stats.json")"
python3 - "$T/stats.json" <<'EOF2' || rt_fail "stats: $(cat "$T/stats.json")"
import json, sys
doc = json.load(open(sys.argv[1]))
assert list(doc) == ["now", "workflows"], list(doc)
by = {w["workflow"]: w for w in doc["workflows"]}
assert [w["workflow"] for w in doc["workflows"]] == ["alpha", "beta", "gone"], list(by)
a = by["alpha"]
h1, d1 = a["windows"]["1h"], a["windows"]["24h"]
assert h1 == {"runs": 13, "completed": 10, "failed": 2, "cancelled": 1, "other": 0, "success_rate": 0.8333,
              "p50_s": 6.5, "p95_s": 24.5}, h1
assert d1 == {"runs": 18, "completed": 15, "failed": 2, "cancelled": 1, "other": 0, "success_rate": 0.8824,
              "p50_s": 9, "p95_s": 100}, d1
assert a["active"] == 1, a
lf = a["last_failure"]
assert lf["status"] == "failed" and lf["error"] == "err-a: the newest failure" and lf["finished_at"].endswith("Z"), lf
assert len(lf["run_id"]) == 36, lf
assert a["next_fire_at"] and a["next_fire_at"].endswith("T03:00:00.000Z") and a["schedule_paused"] is False, a
b = by["beta"]
for k in ("1h", "24h"):
    assert b["windows"][k] == {"runs": 0, "completed": 0, "failed": 0, "cancelled": 0, "other": 0,
                               "success_rate": None, "p50_s": None, "p95_s": None}, b
assert b["active"] == 0 and b["last_failure"] is None and b["next_fire_at"] is None, b
g = by["gone"]
assert g["windows"]["1h"]["runs"] == 0 and g["windows"]["24h"]["runs"] == 1 and g["windows"]["24h"]["p50_s"] == 2, g
EOF2
# A paused schedule says so.
code=$(rt_http POST "$U/api/v1/schedules/alpha/pause" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' -d '{}')
rt_assert_eq 200 "$code" "pause alpha ($(cat "$T/http.body"))"
code=$(rt_http GET "$U/api/v1/stats/workflows" -H "Authorization: Bearer $VIEWER")
rt_assert_eq 200 "$code" "stats after the pause ($(cat "$T/http.body"))"
python3 -c '
import json, sys
d = {w["workflow"]: w for w in json.load(sys.stdin)["workflows"]}
assert d["alpha"]["schedule_paused"] is True, d["alpha"]' <"$T/http.body" || rt_fail "a paused schedule"

code=$(rt_http GET "$U/api/v1/stats/workflows" -H "Authorization: Bearer $AGENT")
rt_assert_eq 403 "$code" "an agent reads no health view ($(cat "$T/http.body"))"
code=$(rt_http GET "$U/api/v1/stats/workflows?window=5" -H "Authorization: Bearer $VIEWER")
rt_assert_eq 400 "$code" "an unknown query parameter ($(cat "$T/http.body"))"
rt_serve_stop a
rt_contract_check # every API answer above against schemas/openapi.yaml
echo "ok"
