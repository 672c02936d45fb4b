#!/usr/bin/env bash
# for_each on a slow step (exec): items run in parallel up to for_each_concurrency, each
# item is memoized on its own, a kill -9 of the engine resumes only the unfinished items,
# a retry re-runs only the failed ones, and continue_on_error gives `partial` with null
# for the failed items. Every item's command appends "start I NS" and "done I NS" lines to
# a file, so side effects are counted, not inferred.
source "$(dirname "$0")/lib.sh"
rt_test_init for_each

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2 RATCHET_LEASE=10s

item_cmd() { # OUTFILE SLEEP [EXTRA SHELL] -> the exec "with" of an item
  printf '{"command": ["sh", "-c", "echo start ${{ index }} $(date +%%s%%N) >> %s; %s sleep %s; echo done ${{ index }} $(date +%%s%%N) >> %s; echo ${{ item * 10 }}"]' \
    "$1" "${3:-}" "$2" "$1"
}

cat > "$W/fan.json" <<EOF
{"id": "fan", "steps": [
  {"id": "each", "uses": "exec", "for_each": "event.data.items", "for_each_concurrency": 3,
   "with": $(item_cmd "$T/fan.lines" 0.5)}},
  {"id": "sum", "uses": "transform", "with": {"value": "\${{ steps.each.output }}"}}]}
EOF
cat > "$W/resume.json" <<EOF
{"id": "resume", "retries": {"max_attempts": 5, "backoff": "fixed", "delay": "100ms"}, "steps": [
  {"id": "each", "uses": "exec", "for_each": "event.data.items", "for_each_concurrency": 2,
   "with": $(item_cmd "$T/resume.lines" 1)}}]}
EOF
# Item 1 fails its first attempt (a marker file remembers), the others succeed at once.
cat > "$W/flaky.json" <<EOF
{"id": "flaky", "retries": {"max_attempts": 3, "backoff": "fixed", "delay": "100ms"}, "steps": [
  {"id": "each", "uses": "exec", "for_each": "event.data.items", "for_each_concurrency": 3,
   "with": $(item_cmd "$T/flaky.lines" 0.1 "if [ \${{ index }} = 1 ] && [ ! -e $T/flaky.mark ]; then touch $T/flaky.mark; exit 1; fi;")}}]}
EOF
# Item 1 always fails for good: with continue_on_error the run ends partial.
cat > "$W/part.json" <<EOF
{"id": "part", "steps": [
  {"id": "each", "uses": "exec", "for_each": "event.data.items", "continue_on_error": true,
   "with": {"command": ["sh", "-c", "[ \${{ index }} = 1 ] && exit 3; echo \${{ item }}"],
            "non_retriable_exit_codes": [3]}},
  {"id": "after", "uses": "transform", "with": {"value": "\${{ steps.each.output }}"}}]}
EOF
cat > "$W/hold.json" <<'EOF'
{"id": "hold", "steps": [{"id": "s", "uses": "exec", "with": {"command": ["sleep", "30"]}}]}
EOF
cat > "$W/quick.json" <<'EOF'
{"id": "quick", "steps": [{"id": "each", "uses": "transform", "for_each": "event.data.items", "with": {"value": "${{ item }}"}}]}
EOF
"$RATCHET_BIN" validate "$W" >/dev/null || rt_fail "workflows invalid"
"$RATCHET_BIN" migrate >/dev/null

starts() { grep -c "^start $2 " "$1" || true; } # FILE INDEX -> how many times item INDEX started

rt_serve_start a
rt_serve_wait_ready a

# --- parallel up to the limit, output in item order -----------------------------------
: > "$T/fan.lines"
id=$("$RATCHET_BIN" run fan --data '{"items": [0, 1, 2, 3, 4, 5, 6, 7, 8]}')
rt_wait_for 60 '[ "$(run_field "$id" status)" = completed ]'
rt_assert_eq "[0, 10, 20, 30, 40, 50, 60, 70, 80]" "$(run_field "$id" output::text)" "for_each output in item order"
peak=$(python3 "$RT_INTEGRATION_DIR/peak.py" "$T/fan.lines")
[ "$peak" -le 3 ] || rt_fail "for_each_concurrency 3 exceeded: $peak items ran at once"
[ "$peak" -ge 2 ] || rt_fail "for_each items did not run in parallel (peak $peak)"
for i in 0 1 2 3 4 5 6 7 8; do
  rt_assert_eq 1 "$(starts "$T/fan.lines" $i)" "item $i ran once"
done

# --- a retry runs only the failed item ---------------------------------------------------
: > "$T/flaky.lines"
id=$("$RATCHET_BIN" run flaky --data '{"items": [0, 1, 2, 3]}')
rt_wait_for 60 '[ "$(run_field "$id" status)" = completed ]'
rt_assert_eq "[0, 10, 20, 30]" "$(run_field "$id" output::text)" "flaky output"
rt_assert_eq 2 "$(rt_psql "select attempts from ratchet.steps where run_id = '$id' and step_id = 'each'")" "two attempts"
rt_assert_eq 2 "$(starts "$T/flaky.lines" 1)" "the failed item ran again"
for i in 0 2 3; do
  rt_assert_eq 1 "$(starts "$T/flaky.lines" $i)" "item $i, memoized by the first attempt, ran once"
done
"$RATCHET_BIN" show "$id" | grep -q "item 1" || rt_fail "show does not name the failed item of attempt 1"

# --- continue_on_error: partial, null for the failed item --------------------------------
id=$("$RATCHET_BIN" run part --data '{"items": ["a", "b", "c"]}')
rt_wait_for 60 '[ "$(run_field "$id" status)" = partial ]'
rt_assert_eq '["a", null, "c"]' "$(rt_psql "select output::text from ratchet.steps where run_id = '$id' and step_id = 'each'")" "partial items"
rt_assert_eq failed "$(rt_psql "select status from ratchet.steps where run_id = '$id' and step_id = 'each'")" "the step is failed"
rt_psql "select error from ratchet.steps where run_id = '$id' and step_id = 'each'" | grep -q "^item 1: " ||
  rt_fail "the step's error does not name item 1"
rt_assert_eq completed "$(rt_psql "select status from ratchet.steps where run_id = '$id' and step_id = 'after'")" "the next step ran"

# --- kill -9 mid-way: only the unfinished items run again --------------------------------
: > "$T/resume.lines"
items=$(python3 -c 'import json; print(json.dumps({"items": list(range(12))}))')
id=$("$RATCHET_BIN" run resume --data "$items")
rt_wait_for 60 '[ "$(rt_psql "select count(*) from ratchet.step_items where run_id = '"'$id'"'")" -ge 4 ]'
rt_serve_kill9 a
memo=$(rt_psql "select string_agg(idx::text, ' ' order by idx) from ratchet.step_items where run_id = '$id'")
n_memo=$(wc -w <<<"$memo")
[ "$n_memo" -lt 12 ] || rt_fail "every item finished before the kill; the test proves nothing"
rt_serve_start b
rt_wait_for 90 '[ "$(run_field "$id" status)" = completed ]'
rt_assert_eq "$(python3 -c 'print([i * 10 for i in range(12)])')" "$(run_field "$id" output::text)" "resumed output"
for i in $memo; do
  rt_assert_eq 1 "$(starts "$T/resume.lines" "$i")" "item $i, memoized before the kill, ran once"
done
for i in $(seq 0 11); do
  [ "$(grep -c "^done $i " "$T/resume.lines")" -ge 1 ] || rt_fail "item $i never finished"
done
rerun=0
for i in $(seq 0 11); do
  [ "$(starts "$T/resume.lines" "$i")" -gt 1 ] && rerun=$((rerun + 1))
done
# At the kill at most for_each_concurrency (2) items were in flight: only they may run twice.
[ "$rerun" -le 2 ] || rt_fail "$rerun items ran twice; at most the 2 in flight at the kill may"
echo "memoized before the kill: $n_memo of 12; items run twice: $rerun"
rt_serve_stop b

# --- a cancel concerns its own run only -------------------------------------------------
# One worker: it runs hold's exec when that run is cancelled, then the queued quick
# for_each of another run, which must not see the cancel.
RATCHET_WORKERS=1 rt_serve_start c
held=$("$RATCHET_BIN" run hold)
rt_wait_for 60 '[ "$(rt_psql "select status from ratchet.steps where run_id = '"'$held'"'")" = running ]'
other=$("$RATCHET_BIN" run quick --data '{"items": [1, 2, 3]}')
"$RATCHET_BIN" cancel "$held" >/dev/null
rt_wait_for 60 '[ "$(run_field "$other" status)" = completed ]'
rt_assert_eq "[1, 2, 3]" "$(run_field "$other" output::text)" "the other run's for_each"
rt_assert_eq cancelled "$(run_field "$held" status)" "the cancelled run"
rt_serve_stop c
echo "PASS for_each"
