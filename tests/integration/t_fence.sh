#!/usr/bin/env bash
# A frozen engine never starts a step it no longer owns, and the outside world can tell a
# stale writer by its fence.
# (1) Serve "a" claims an exec step and freezes itself right there (SIGSTOP, through the
#     test-only RATCHET_DEBUG_PAUSE_AFTER_CLAIM) past its lease. Serve "b" takes the step
#     over, runs it and its successor, and the run completes. Then "a" is woken (SIGCONT):
#     it must give the step up untouched. The step's side effect (a line appended by exec,
#     carrying RATCHET_FENCE and run.fence) happened once, with a higher fence than "a"'s
#     claim, and the successor saw that one output.
# (2) Fences seen outside grow with every claim: an http step answered 503 twice sends
#     X-Ratchet-Fence 1, 2, 3 (and the same Idempotency-Key); an exec step failing twice
#     sees RATCHET_FENCE 1, 2, 3.
source "$(dirname "$0")/lib.sh"
rt_test_init fence

W=$T/workflows
mkdir -p "$W"
SIDE=$T/side AFTER=$T/after TRIES=$T/tries HITS=$T/hits
: >"$SIDE"
: >"$AFTER"
: >"$TRIES"
: >"$HITS"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2 RATCHET_LEASE=2s RATCHET_LOG_LEVEL=debug

# A tiny HTTP server: logs "<X-Ratchet-Fence> <Idempotency-Key>" per request, answers 503
# to the first two requests and 200 {"ok": true} afterwards.
PORT=$(rt_free_port "$T")
cat >"$T/server.py" <<'PY'
import http.server, sys
log, port = sys.argv[1], int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    n = 0
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with open(log, "a") as f:
            f.write("%s %s\n" % (self.headers.get("X-Ratchet-Fence"), self.headers.get("Idempotency-Key")))
        H.n += 1
        code, body = (503, b"{}") if H.n <= 2 else (200, b'{"ok": true}')
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
PY
python3 "$T/server.py" "$HITS" "$PORT" &
SRV=$!
A=
# A serve left frozen would only die of SIGKILL: wake it first, so it stops like the others.
trap '_rc=$?; set +e; [ -n "$A" ] && kill -CONT "$A" 2>/dev/null; kill "$SRV" 2>/dev/null; wait "$SRV" 2>/dev/null
(exit $_rc); rt__exit' EXIT

cat >"$W/frozen.json" <<EOF
{"id": "frozen", "steps": [
  {"id": "side", "uses": "exec", "with": {"command": ["sh", "-c",
    "echo \"\$RATCHET_FENCE \$0\" >> $SIDE; printf '{\"fence\": %s}' \"\$RATCHET_FENCE\"", "run.fence=\${{ run.fence }}"]}},
  {"id": "after", "uses": "exec", "with": {"command": ["sh", "-c", "echo \"\$0\" >> $AFTER",
    "side.fence=\${{ steps.side.output.fence }}"]}}
]}
EOF
cat >"$W/retried.json" <<EOF
{"id": "retried", "retries": {"max_attempts": 5, "backoff": "fixed", "delay": "100ms"}, "steps": [
  {"id": "call", "uses": "http", "with": {"method": "POST", "url": "http://127.0.0.1:$PORT/x", "body": {"a": 1}}},
  {"id": "flaky", "uses": "exec", "with": {"command": ["sh", "-c",
    "echo \"\$RATCHET_FENCE \$0\" >> $TRIES; [ \$(wc -l < $TRIES) -ge 3 ] || exit 1", "run.fence=\${{ run.fence }}"]}}
]}
EOF
"$RATCHET_BIN" validate "$W" >/dev/null || rt_fail "workflows invalid: $("$RATCHET_BIN" validate "$W" 2>&1)"
"$RATCHET_BIN" migrate >/dev/null

proc_state() { ps -o state= -p "$1" 2>/dev/null | tr -d ' '; }
run_status() { rt_psql "select status from ratchet.runs where id = '$1'"; }
side_fence() { rt_psql "select fence from ratchet.steps where run_id = '$1' and step_id = 'side'"; }
lines() { wc -l <"$1" | tr -d ' '; }

# ---- (1) freeze between claim and start, past the lease ----
export RATCHET_DEBUG_PAUSE_AFTER_CLAIM=side
rt_serve_start a
unset RATCHET_DEBUG_PAUSE_AFTER_CLAIM
rt_serve_wait_ready a
A=$(rt_serve_pid a)
RUN=$("$RATCHET_BIN" run frozen)
rt_wait_for 30 '[ "$(proc_state "$A")" = T ]'
FENCE_A=$(side_fence "$RUN")
rt_assert_eq 1 "$FENCE_A" "fence of a's claim"
grep -q "pausing the process (SIGSTOP) after claiming the step, fence 1" "$T/a.log" || rt_fail "a did not log its pause"
rt_assert_eq 0 "$(lines "$SIDE")" "side effects while a is frozen before the start"

rt_serve_start b
rt_serve_wait_ready b
rt_wait_for 60 '[ "$(run_status "$RUN")" = completed ]'
rt_assert_eq T "$(proc_state "$A")" "a is still frozen when b has completed the run"
rt_assert_eq "2 run.fence=2" "$(cat "$SIDE")" "b ran the step once, with the next fence (RATCHET_FENCE, run.fence)"
rt_assert_eq "side.fence=2" "$(cat "$AFTER")" "the successor saw one output, b's"

kill -CONT "$A"
# a decides one way or the other: gives the step up before it starts (the fix), or runs it
# and has its completion refused at commit (the bug).
rt_wait_for 30 'grep -qE "lease ran out before the step started|lease lost before commit" "$T/a.log"'
grep -q "lease ran out before the step started (fence 1)" "$T/a.log" || rt_fail "a did not give the step up before starting it"
rt_assert_eq "2 run.fence=2" "$(cat "$SIDE")" "the step's side effect after a woke up (ran once, fence 2)"
rt_assert_eq "side.fence=2" "$(cat "$AFTER")" "the successor's side effect after a woke up"
(($(side_fence "$RUN") > FENCE_A)) || rt_fail "the fence did not grow past a's ($FENCE_A)"
rt_wait_for 10 '[ "$(metric a "ratchet_step_lease_lost_total{at=\"start\"}")" = 1 ]'
rt_assert_eq completed "$(run_status "$RUN")" "the run after a woke up"
rt_assert_eq 2 "$(rt_psql "select count(*) from ratchet.steps where run_id = '$RUN' and status = 'completed'")" \
  "completed steps"
echo "ok: (1) a frozen engine gave the step up; side effect once, fence $FENCE_A -> $(side_fence "$RUN")"

# ---- (2) fences grow with every claim, in http headers and exec's environment ----
RUN2=$("$RATCHET_BIN" run retried)
rt_wait_for 60 '[ "$(run_status "$RUN2")" = completed ]'
rt_assert_eq "1 $RUN2:call
2 $RUN2:call
3 $RUN2:call" "$(cat "$HITS")" "http: X-Ratchet-Fence and Idempotency-Key per attempt"
rt_assert_eq "1 run.fence=1
2 run.fence=2
3 run.fence=3" "$(cat "$TRIES")" "exec: RATCHET_FENCE and run.fence per attempt"
echo "ok: (2) fences grow with every claim"

rt_serve_stop a
rt_serve_stop b
