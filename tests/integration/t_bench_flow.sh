#!/usr/bin/env bash
# `ratchet bench flow` at a tiny size: it exits 0, prints every variant and the no-key
# check, its --json holds every figure, and it drops its scratch databases. No timing is
# asserted: this machine is shared.
source "$(dirname "$0")/lib.sh"
rt_test_init bench_flow

VARIANTS="baseline priority throttle-open throttle slow concurrency exec retry"

"$RATCHET_BIN" bench flow --runs 100 --rounds 1 >"$T/human.out" 2>"$T/human.err" &
pid=$!
wait "$pid" || { cat "$T/human.out" "$T/human.err" >&2; rt_fail "bench flow exited non-zero"; }
rt_check_log "$T/human.err"
for v in $VARIANTS; do
  grep -Eq "^  $v +[a-z]+ .* [0-9]+\.[0-9]{3}  " "$T/human.out" || { cat "$T/human.out"; rt_fail "no table row for $v"; }
done
grep -Eq '^  no flow-control key: priority-only / baseline = [0-9.]+ -> (PASS|NOTE)' "$T/human.out" ||
  { cat "$T/human.out"; rt_fail "no PASS/NOTE line for the no-key check"; }
left=$(psql -XAtq "$RATCHET_TEST_DATABASE_URL" -c "select count(*) from pg_database where datname like 'ratchet_bench_${pid}_%'")
rt_assert_eq 0 "$left" "scratch databases left behind"

"$RATCHET_BIN" bench flow --runs 50 --rounds 2 --throttle 500 --reference 1000 --json >"$T/json.out" 2>"$T/json.err" ||
  { cat "$T/json.out" "$T/json.err" >&2; rt_fail "bench flow --json exited non-zero"; }
rt_check_log "$T/json.err"
python3 - "$T/json.out" $VARIANTS <<'EOF' || rt_fail "bench flow --json: bad shape (above)"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 1, f"expected one JSON line, got {len(lines)}"
o = json.loads(lines[0])
for k in ("runs", "rounds", "keys", "workers", "claim_batch", "synchronous_commit", "variants", "no_key_check",
          "throttle", "concurrency", "retry", "reference"):
    assert k in o, f"missing {k}"
assert o["runs"] == 50 and o["rounds"] == 2 and o["keys"] == 1000, o
assert set(o["variants"]) == set(sys.argv[2:]), sorted(o["variants"])
for name, v in o["variants"].items():
    for k in ("step", "flow_control", "runs_per_s", "steps_per_s", "admit_per_s", "ratio", "ratio_to",
              "rounds_runs_per_s", "rounds_ratio"):
        assert k in v, f"{name}: missing {k}"
    assert v["runs_per_s"] > 0 and v["admit_per_s"] > 0 and len(v["rounds_ratio"]) == 2, (name, v)
assert o["variants"]["baseline"]["ratio"] == 1, o["variants"]["baseline"]
assert o["variants"]["concurrency"]["ratio_to"] == "slow" and o["variants"]["retry"]["ratio_to"] == "exec"
assert isinstance(o["no_key_check"]["within_10pct"], bool) and o["no_key_check"]["ratio"] > 0
assert o["throttle"]["limit_per_s"] == 500 and o["throttle"]["achieved_per_s"] > 0
assert o["concurrency"]["ratio_to_slow"] > 0
assert "extra_ms_per_retry" in o["retry"] and o["retry"]["exec_equivalents_per_retry"] is not None
assert o["reference"]["steps_per_s"] == 1000 and isinstance(o["reference"]["within_10pct"], bool)
EOF

"$RATCHET_BIN" bench flow --rounds 0 >/dev/null 2>&1 && rt_fail "--rounds 0 was accepted"
echo "ok bench_flow"
