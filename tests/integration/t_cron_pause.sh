#!/usr/bin/env bash
# `ratchet schedules pause|resume WORKFLOW` with two serves running: once pause returns no
# process fires the workflow (another keeps firing, as a clock), a serve restarted while
# paused keeps it paused, resume fires again from the next tick without catching up the
# pause. Unknown workflows and workflows without a cron trigger are clear errors (exit 1).
source "$(dirname "$0")/lib.sh"
rt_test_init cron_pause

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2

cat > "$W/p.json" <<'EOF'
{"id": "p", "triggers": [{"cron": "* * * * * *", "catch_up": "all"}, {"cron": "*/2 * * * * *", "timezone": "Europe/Berlin"}],
 "steps": [{"id": "t", "uses": "transform", "with": {"value": 1}}]}
EOF
cat > "$W/clock.json" <<'EOF'
{"id": "clock", "triggers": [{"cron": "* * * * * *"}], "steps": [{"id": "t", "uses": "transform", "with": {"value": 1}}]}
EOF
cat > "$W/manual.json" <<'EOF'
{"id": "manual", "steps": [{"id": "t", "uses": "transform", "with": {"value": 1}}]}
EOF
"$RATCHET_BIN" migrate >/dev/null

count() { rt_psql "select count(*) from ratchet.runs where workflow_id = '$1'"; }
state_of() { # WORKFLOW TRIGGER -> state in `schedules --json`
  "$RATCHET_BIN" schedules --json | python3 -c "import json,sys
print(next(s['state'] for s in json.load(sys.stdin) if s['workflow'] == '$1' and s['trigger'] == $2))"
}

# Errors before anything is synced: the workflow file is looked up for a helpful message.
out=$("$RATCHET_BIN" schedules pause nope 2>&1) && rt_fail "pause of an unknown workflow succeeded"
[[ $out == *'unknown workflow "nope"'* ]] || rt_fail "unexpected message: $out"
rc=0; "$RATCHET_BIN" schedules pause nope >/dev/null 2>&1 || rc=$?
rt_assert_eq 1 "$rc" "exit status of pausing an unknown workflow"
rc=0; out=$("$RATCHET_BIN" schedules pause manual 2>&1) || rc=$?
rt_assert_eq 1 "$rc" "exit status of pausing a workflow without a cron trigger"
[[ $out == *'has no cron trigger'* ]] || rt_fail "unexpected message: $out"
rc=0; "$RATCHET_BIN" schedules resume nope >/dev/null 2>&1 || rc=$?
rt_assert_eq 1 "$rc" "exit status of resuming an unknown workflow"
rc=0; "$RATCHET_BIN" schedules frobnicate p >/dev/null 2>&1 || rc=$?
rt_assert_eq 2 "$rc" "exit status of an unknown subcommand"
rc=0; "$RATCHET_BIN" schedules pause >/dev/null 2>&1 || rc=$?
rt_assert_eq 2 "$rc" "exit status of pause without a workflow"

rt_serve_start a
rt_serve_start b
rt_wait_for 60 '[ "$(count p)" -ge 3 ]'

[[ $("$RATCHET_BIN" schedules pause p) == *"paused p"* ]] || rt_fail "pause did not say so"
paused_at=$(rt_psql "select extract(epoch from now())")
frozen=$(count p)
rt_assert_eq paused "$(state_of p 0)" "state of p#0 after pause"
rt_assert_eq paused "$(state_of p 1)" "state of p#1 after pause"
rt_assert_eq active "$(state_of clock 0)" "state of clock#0"
[[ $("$RATCHET_BIN" schedules pause p) == *"already paused"* ]] || rt_fail "second pause did not say already paused"
# Time passes (the clock workflow proves both processes keep firing): p stays silent.
c0=$(count clock)
rt_wait_for 60 '[ "$(count clock)" -ge '"$((c0 + 4))"' ]'
rt_assert_eq "$frozen" "$(count p)" "runs of p while paused"

# Restart one serve while paused: still paused.
rt_serve_stop b
rt_serve_start b2
rt_wait_for 60 'grep -q "schedules synced" "$T/b2.log"'
c0=$(count clock)
rt_wait_for 60 '[ "$(count clock)" -ge '"$((c0 + 3))"' ]'
rt_assert_eq "$frozen" "$(count p)" "runs of p after a restart while paused"
rt_assert_eq paused "$(state_of p 0)" "state of p#0 after a restart"
"$RATCHET_BIN" schedules | grep -E '^p +0 .* paused ' >/dev/null || rt_fail "human list does not show p paused"

# Read before the resume, not after: on a loaded machine the clock read after it lands
# seconds later, and p's first ticks after the resume would count as "inside the pause".
resumed_at=$(rt_psql "select extract(epoch from now())")
[[ $("$RATCHET_BIN" schedules resume p) == *"resumed p"* ]] || rt_fail "resume did not say so"
rt_assert_eq active "$(state_of p 0)" "state of p#0 after resume"
rt_wait_for 60 '[ "$(count p)" -ge '"$((frozen + 3))"' ]'
[[ $("$RATCHET_BIN" schedules resume p) == *"was not paused"* ]] || rt_fail "second resume did not say not paused"

# The pause's ticks were not caught up (p#0 is catch_up all: it would have).
inside=$(rt_psql "select count(*) from ratchet.runs where workflow_id = 'p'
  and to_timestamp(split_part(dedupe_key, ':', 3)::bigint / 1000.0) > to_timestamp($paused_at) + interval '1 second'
  and to_timestamp(split_part(dedupe_key, ':', 3)::bigint / 1000.0) < to_timestamp($resumed_at) - interval '1 second'")
rt_assert_eq 0 "$inside" "runs of p for ticks inside the pause"
rt_serve_stop a
rt_serve_stop b2
echo "ok: cron pause/resume across processes ($frozen runs before the pause, $(count p) after resume)"
