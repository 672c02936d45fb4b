#!/usr/bin/env bash
# for_each has an item cap (RATCHET_FOR_EACH_MAX_ITEMS, default 10000): an expression that
# gives a larger array fails the step for good with a precise error before any item runs
# (so an event cannot make one step fan out without bound); up to the cap it runs as before.
source "$(dirname "$0")/lib.sh"
rt_test_init for_each_cap

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2
cat > "$W/fan.json" <<EOF2
{"id": "fan", "steps": [
  {"id": "each", "uses": "exec", "for_each": "event.data.items",
   "with": {"command": ["sh", "-c", "echo \${{ index }} >> $T/ran; echo 1"]}}]}
EOF2
cat > "$W/quick.json" <<'EOF2'
{"id": "quick", "steps": [{"id": "each", "uses": "transform", "for_each": "event.data.items", "with": {"value": "${{ item }}"}}]}
EOF2
"$RATCHET_BIN" migrate >/dev/null
step_error() { rt_psql "select error from ratchet.steps where run_id = '$1' and step_id = 'each'"; }
ended() { rt_wait_for 30 '[[ "$(status '"$1"')" =~ ^(completed|failed)$ ]]'; }
items() { python3 -c 'import json,sys; print(json.dumps({"items": list(range(int(sys.argv[1])))}))' "$1"; }

# 1. The default cap: 10001 items fail at once, none runs.
rt_serve_start a
rt_serve_wait_ready a
R=$("$RATCHET_BIN" run quick --data "$(items 10001)")
ended "$R"
rt_assert_eq failed "$(status "$R")" "10001 items with the default cap"
rt_assert_eq "for_each: the expression gave 10001 items, more than RATCHET_FOR_EACH_MAX_ITEMS (10000)" "$(step_error "$R")" "error"
rt_assert_eq 0 "$(rt_psql "select attempts from ratchet.steps where run_id = '$R' and step_id = 'each'" | awk '{print ($1 > 1)}')" "not retried"
rt_serve_stop a

# 2. A lower cap: over it fails before any item ran; at it, every item runs.
RATCHET_FOR_EACH_MAX_ITEMS=5 rt_serve_start b
rt_serve_wait_ready b
R=$("$RATCHET_BIN" run fan --data "$(items 6)")
ended "$R"
rt_assert_eq failed "$(status "$R")" "6 items, cap 5"
rt_assert_eq "for_each: the expression gave 6 items, more than RATCHET_FOR_EACH_MAX_ITEMS (5)" "$(step_error "$R")" "error"
[ ! -e "$T/ran" ] || rt_fail "items ran although the array was over the cap: $(cat "$T/ran")"
R=$("$RATCHET_BIN" run fan --data "$(items 5)")
ended "$R"
rt_assert_eq completed "$(status "$R")" "5 items, cap 5"
rt_assert_eq 5 "$(wc -l < "$T/ran")" "every item ran once"
"$RATCHET_BIN" validate "$W" >/dev/null || rt_fail "workflows invalid"
RATCHET_FOR_EACH_MAX_ITEMS=0 "$RATCHET_BIN" validate "$W" >/dev/null 2>&1 && rt_fail "a cap of 0 was accepted"
exit 0
