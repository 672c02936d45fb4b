#!/usr/bin/env bash
# OpenTelemetry traces (docs/observability.md). A real OTLP/HTTP receiver
# (tests/otlp/receiver.cjs) decodes every export with the official OpenTelemetry protobuf
# definitions (@opentelemetry/otlp-transformer, pinned) and writes the spans it accepted.
# Events carrying a W3C traceparent arrive through RabbitMQ and NATS (real client libraries:
# amqplib, nats.js), the HTTP API's header and the envelope's x-traceparent; each run's
# spans must chain to the publisher's trace: the run's span is a child of the publisher's
# span, one span per step attempt (a retried step shows attempts 1 and 2) under it, an
# ingest span, and the traceparent ratchet hands on (exec's TRACEPARENT, the http step's
# header, a published event) names the step attempt's span. A malformed traceparent is
# ignored and counted. A run killed with -9 mid-step and resumed by a new process keeps its
# trace id. With the collector gone, runs still complete and the dropped counter rises.
# The collector's header (a secret) reaches it and never the log.
source "$(dirname "$0")/lib.sh"
rt_test_init otel

OTLP_DIR=$RATCHET_SOURCE_DIR/tests/otlp
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  rt_fail "node and npm are missing: they run tests/otlp (node >= 20)"
fi
# the receiver's packages as package-lock.json pins them; npm ci when missing or other
if ! node -e '
  const d = process.argv[1], lock = require(d + "/package-lock.json").packages;
  for (const p of ["@opentelemetry/otlp-transformer", "amqplib", "nats"])
    if (lock["node_modules/" + p].version !== require(d + "/node_modules/" + p + "/package.json").version) process.exit(1);' \
  "$OTLP_DIR" 2>/dev/null; then
  npm ci --prefix "$OTLP_DIR" --no-audit --no-fund --loglevel=error >"$T/npm.log" 2>&1 ||
    rt_fail "npm ci in tests/otlp failed (is the npm registry reachable?):"$'\n'"$(tail -n 20 "$T/npm.log")"
fi

SPANS=$T/spans.jsonl
: >"$SPANS"
RECEIVER_PID=
start_receiver() {
  rm -f "$T/otlp.port"
  node "$OTLP_DIR/receiver.cjs" "$SPANS" "$T/otlp.port" >>"$T/receiver.log" 2>&1 &
  RECEIVER_PID=$!
  echo "$RECEIVER_PID" >>"$T/.serve-pids"
  rt_wait_for 60 '[ -s "$T/otlp.port" ]'
  OTLP_PORT=$(cat "$T/otlp.port")
}
stop_receiver() {
  [ -n "$RECEIVER_PID" ] || return 0
  kill -TERM "$RECEIVER_PID" 2>/dev/null || true
  wait "$RECEIVER_PID" 2>/dev/null || true
  RECEIVER_PID=
}
# rt__exit reads the test's exit status from $?: keep it across stop_receiver
trap 'rc=$?; set +e; stop_receiver; (exit $rc); rt__exit' EXIT
start_receiver

rt_use_amqp
rt_use_nats
SUBJ_PREFIX="otel$RANDOM$$"
SECRET="s3cr3t-otlp-${RANDOM}${RANDOM}"
W=$T/workflows
OUT=$T/exec.out
mkdir -p "$W"
: >"$OUT"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=4 RATCHET_LEASE=4s RATCHET_NATS_SUBJECT_PREFIX=$SUBJ_PREFIX \
  RATCHET_NATS_STREAM="OTEL_$RANDOM$$" RATCHET_NATS_CONSUMER="otel-$RANDOM$$" RATCHET_AMQP_QUEUE="otel.$RANDOM$$" \
  OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_PORT" OTEL_SERVICE_NAME=ratchet-otel-test \
  OTEL_RESOURCE_ATTRIBUTES="deployment.environment=ci,team=payments%20core" \
  OTEL_EXPORTER_OTLP_HEADERS="x-test-key=$SECRET" OTEL_BSP_SCHEDULE_DELAY=100

# traced: a step that fails its first attempt, an http call, a published event, a transform
cat >"$W/traced.json" <<EOF
{"id": "traced", "triggers": [{"event": "otel.in.*"}], "steps": [
  {"id": "flaky", "uses": "exec", "retries": {"max_attempts": 3, "backoff": "fixed", "delay": "100ms"},
   "with": {"command": ["sh", "-c", "echo \"\$RATCHET_RUN_ID flaky \$RATCHET_ATTEMPT \$TRACEPARENT\" >> $OUT; test \$RATCHET_ATTEMPT -ge 2"]}},
  {"id": "call", "uses": "http", "with": {"method": "POST", "url": "http://127.0.0.1:$OTLP_PORT/echo/\${{ run.id }}", "body": {}}},
  {"id": "relay", "uses": "publish", "with": {"topic": "otel.relayed", "via": "amqp", "data": {"from": "\${{ run.id }}"}}},
  {"id": "done", "uses": "transform", "with": {"value": "ok"}}
]}
EOF
cat >"$W/relayed.json" <<'EOF'
{"id": "relayed", "triggers": [{"event": "otel.relayed"}], "steps": [
  {"id": "note", "uses": "transform", "with": {"value": "${{ event.data.from }}"}}]}
EOF
# plain: no call to the receiver, which the last part of the test stops
cat >"$W/plain.json" <<'EOF'
{"id": "plain", "triggers": [{"event": "otel.down"}], "steps": [
  {"id": "one", "uses": "exec", "with": {"command": ["true"]}},
  {"id": "two", "uses": "transform", "with": {"value": 2}}]}
EOF
# gated: an agent's event waits for a person's signed approval
cat >"$W/gated.json" <<'EOF'
{"id": "gated", "triggers": [{"event": "otel.gated"}], "approval": {"required_for": ["agent"], "approvers": ["ops-lead"]},
 "steps": [{"id": "after", "uses": "transform", "with": {"value": 1}}]}
EOF
mkdir -p "$T/keys"
"$RATCHET_BIN" keygen --approver ops-lead --out "$T/keys" >/dev/null 2>&1
cp "$T/keys/ops-lead.pub" "$T/approvers"
export RATCHET_APPROVERS=$T/approvers
# outer invokes inner: the child run continues the parent's trace
cat >"$W/outer.json" <<'EOF'
{"id": "outer", "steps": [{"id": "call-inner", "uses": "invoke", "with": {"workflow": "inner", "data": {"n": 1}}}]}
EOF
cat >"$W/inner.json" <<'EOF'
{"id": "inner", "steps": [{"id": "work", "uses": "exec", "with": {"command": ["true"]}}]}
EOF
# late: its workflow timeout passes while its step runs
cat >"$W/late.json" <<'EOF'
{"id": "late", "timeout": "1s", "steps": [{"id": "nap", "uses": "exec", "with": {"command": ["sleep", "3"]}}]}
EOF
# slow: the second step runs long enough to be killed in flight
cat >"$W/slow.json" <<EOF
{"id": "slow", "retries": {"max_attempts": 5, "backoff": "fixed", "delay": "100ms"}, "steps": [
  {"id": "first", "uses": "exec", "with": {"command": ["true"]}},
  {"id": "long", "uses": "exec", "with": {"command": ["sh", "-c", "if [ ! -e $T/long.once ]; then touch $T/long.once; sleep 60; fi"]}}
]}
EOF
"$RATCHET_BIN" validate "$W" >/dev/null || rt_fail "workflows invalid"

hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
run_of_event() { rt_psql "select id from ratchet.runs where event_id = '$1' and workflow_id in ('traced', 'plain', 'gated')"; }
run_status() { rt_psql "select status from ratchet.runs where id = '$1'"; }
metric() { # NAME{labels} -> value (0 when absent)
  curl -fsS "$(rt_serve_url a)/metrics" | awk -v k="$1" '$1 == k { print $2; found = 1 } END { if (!found) print 0 }'
}

# Checks the spans of run RUN (python: the receiver's JSON lines). Prints nothing; exits 1
# with the reason. Args: RUN TRACE_ID PARENT_SPAN_ID(or -) TRANSPORT(or -)
check_run_spans() {
  python3 - "$SPANS" "$OUT" "$T/spans.jsonl.echo" "$@" <<'PY'
import json, sys
spans_file, out_file, echo_file, run, trace, parent, transport = sys.argv[1:8]
spans = [json.loads(l) for l in open(spans_file) if l.strip()]
def fail(msg):
    print(msg); sys.exit(1)
mine = [s for s in spans if s["attributes"].get("ratchet.run_id") == run]
roots = [s for s in mine if s["name"] == "run traced" or s["name"] == "run slow"]
if len(roots) != 1: fail(f"run {run}: {len(roots)} run spans (want 1) among {len(mine)}")
root = roots[0]
if root["traceId"] != trace: fail(f"run span trace {root['traceId']} != {trace}")
if parent != "-" and root["parentSpanId"] != parent: fail(f"run span parent {root['parentSpanId']} != {parent}")
if parent == "-" and root["parentSpanId"]: fail(f"run span has a parent {root['parentSpanId']}")
if root["kind"] != 2: fail(f"run span kind {root['kind']}")
a = root["attributes"]
if a.get("ratchet.run.status") != "completed": fail(f"run span status attribute {a}")
if root["service"] != "ratchet-otel-test" or root["resource"].get("team") != "payments core" \
   or root["resource"].get("deployment.environment") != "ci": fail(f"resource {root['resource']}")
if root["headers"] != "x-test-key=" + __import__("os").environ["SECRET"]: fail(f"collector headers {root['headers']!r}")
steps = [s for s in mine if s["name"].startswith("step ")]
for s in steps:
    if s["traceId"] != trace or s["parentSpanId"] != root["spanId"]:
        fail(f"{s['name']} attempt {s['attributes'].get('ratchet.step.attempt')} is not a child of the run span: {s}")
    if int(s["start"]) > int(s["end"]) or int(s["start"]) < int(root["start"]) - 1000000:
        fail(f"{s['name']}: times {s['start']}..{s['end']} outside the run's {root['start']}")
by = {}
for s in steps:
    by.setdefault(s["attributes"]["ratchet.step.id"], []).append(s)
if root["name"] == "run traced":
    want = {"flaky": 2, "call": 1, "relay": 1, "done": 1}
    got = {k: len(v) for k, v in by.items()}
    if got != want: fail(f"step spans per step {got}, want {want}")
    flaky = sorted(by["flaky"], key=lambda s: s["attributes"]["ratchet.step.attempt"])
    if [s["attributes"]["ratchet.step.attempt"] for s in flaky] != [1, 2]: fail("flaky attempts")
    if flaky[0]["attributes"]["ratchet.step.outcome"] != "failed" or flaky[0]["status"]["code"] != 2:
        fail(f"flaky attempt 1 should be an error span: {flaky[0]}")
    if flaky[1]["attributes"]["ratchet.step.outcome"] != "completed" or flaky[1]["status"]["code"] == 2:
        fail(f"flaky attempt 2 should be ok: {flaky[1]}")
    if by["call"][0]["attributes"]["ratchet.step.type"] != "http": fail("call type")
    if len({s["spanId"] for s in steps}) != len(steps): fail("step span ids repeat")
    # what exec saw as TRACEPARENT: the attempt's own span
    seen = [l.split() for l in open(out_file) if l.startswith(run + " flaky ")]
    for _, _, attempt, tp in seen:
        span = [s for s in flaky if s["attributes"]["ratchet.step.attempt"] == int(attempt)][0]
        if tp != f"00-{trace}-{span['spanId']}-01": fail(f"TRACEPARENT of attempt {attempt}: {tp}")
    if len(seen) != 2: fail(f"flaky ran {len(seen)} times")
    echo = [l.split() for l in open(echo_file) if l.startswith(f"/echo/{run} ")]
    if len(echo) != 1 or echo[0][1] != f"00-{trace}-{by['call'][0]['spanId']}-01": fail(f"http step traceparent {echo}")
    # the event the relay step published started a run that continues the trace
    relay_span = by["relay"][0]["spanId"]
    rel = [s for s in spans if s["name"] == "run relayed" and s["parentSpanId"] == relay_span]
    if len(rel) != 1 or rel[0]["traceId"] != trace: fail(f"relayed run's span: {rel}")
    if transport != "-":
        ing = [s for s in spans if s["name"] == "ingest otel.in." + transport and s["traceId"] == trace]
        if len(ing) != 1 or ing[0]["parentSpanId"] != parent or ing[0]["kind"] != 5: fail(f"ingest span {ing}")
PY
}
export SECRET

rt_serve_start a
rt_serve_wait_ready a
rt_wait_for 60 'grep -q "amqp" "$T/a.log" && [ "$(rt_psql "select 1")" = 1 ]'

# ---- through RabbitMQ, NATS (JetStream), the HTTP header and the envelope extension ----
declare -A TRACE SPAN RUN
for via in amqp nats http envelope; do
  TRACE[$via]=$(hex 16)
  SPAN[$via]=$(hex 8)
  tp="00-${TRACE[$via]}-${SPAN[$via]}-01"
  body="{\"name\": \"otel.in.$via\", \"id\": \"ev-$via\", \"data\": {}}"
  case $via in
    amqp) rt_wait_for 60 node "$OTLP_DIR/publish.cjs" amqp "$RATCHET_AMQP_URL" otel.in.amqp "'$body'" "$tp" ;;
    nats) rt_wait_for 60 node "$OTLP_DIR/publish.cjs" nats "$RATCHET_NATS_URL" "$SUBJ_PREFIX.otel.in.nats" "'$body'" "$tp" ;;
    http) curl -fsS -o /dev/null -H 'Content-Type: application/json' -H "traceparent: $tp" -H 'tracestate: vendor=abc' \
            --data "$body" "$(rt_serve_url a)/api/v1/events" ;;
    envelope) curl -fsS -o /dev/null -H 'Content-Type: application/json' \
            --data "{\"name\": \"otel.in.$via\", \"id\": \"ev-$via\", \"x-traceparent\": \"$tp\"}" "$(rt_serve_url a)/api/v1/events" ;;
  esac
done
for via in amqp nats http envelope; do
  rt_wait_for 120 '[ -n "$(run_of_event ev-'$via')" ]'
  RUN[$via]=$(run_of_event "ev-$via")
  rt_wait_for 120 '[ "$(run_status '"${RUN[$via]}"')" = completed ]'
done
for via in amqp nats http envelope; do
  transport=$via
  [[ $via == http || $via == envelope ]] && transport=-
  rt_wait_for 60 check_run_spans "${RUN[$via]}" "${TRACE[$via]}" "${SPAN[$via]}" "$transport"
done
[ -s "$SPANS.errors" ] && rt_fail "the receiver refused exports:"$'\n'"$(head -c 3000 "$SPANS.errors")"
# the HTTP ingest span is a CONSUMER child of the caller's span and keeps its tracestate
python3 - "$SPANS" "${TRACE[http]}" "${SPAN[http]}" <<'PY' || rt_fail "ingest span of the HTTP event"
import json, sys
spans = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ing = [s for s in spans if s["name"] == "ingest otel.in.http"]
assert len(ing) == 1 and ing[0]["traceId"] == sys.argv[2] and ing[0]["parentSpanId"] == sys.argv[3], ing
assert ing[0]["attributes"]["messaging.system"] == "api", ing
run = [s for s in spans if s["name"] == "run traced" and s["traceId"] == sys.argv[2]]
assert run and run[0]["traceState"] == "vendor=abc", run
PY

# ---- a malformed traceparent: ignored (the run gets its own trace) and counted ----
bad_before=$(metric 'ratchet_bad_input_total{kind="traceparent"}')
curl -fsS -o /dev/null -H 'Content-Type: application/json' -H "traceparent: 00-${TRACE[http]}-0000000000000000-01" \
  --data '{"name": "otel.in.bad", "id": "ev-bad", "data": {}}' "$(rt_serve_url a)/api/v1/events"
rt_wait_for 120 '[ "$(run_status "$(run_of_event ev-bad)")" = completed ]'
bad_after=$(metric 'ratchet_bad_input_total{kind="traceparent"}')
[ "$bad_after" -gt "$bad_before" ] || rt_fail "bad traceparent not counted ($bad_before -> $bad_after)"
BAD_RUN=$(run_of_event ev-bad)
rt_wait_for 60 "grep -q '\"ratchet.run_id\":\"$BAD_RUN\"' '$SPANS' && grep '\"name\":\"run traced\"' '$SPANS' | grep -q '$BAD_RUN'"
python3 - "$SPANS" "$BAD_RUN" "${TRACE[http]}" <<'PY' || rt_fail "the bad traceparent's run trace"
import json, sys
spans = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
root = [s for s in spans if s["name"] == "run traced" and s["attributes"]["ratchet.run_id"] == sys.argv[2]][0]
assert root["traceId"] != sys.argv[3] and root["parentSpanId"] == "", root
PY

# ---- an approval gate: the wait is a span of the run's trace ----
TRACE_G=$(hex 16)
curl -fsS -o /dev/null -H 'Content-Type: application/json' -H "traceparent: 00-$TRACE_G-$(hex 8)-01" \
  --data '{"name": "otel.gated", "id": "ev-gated", "actor": {"type": "agent", "id": "agent-7"}, "entity_id": "acct_1"}' \
  "$(rt_serve_url a)/api/v1/events"
rt_wait_for 60 '[ "$(run_status "$(run_of_event ev-gated)")" = awaiting_approval ]'
GATED=$(run_of_event ev-gated)
decision=$("$RATCHET_BIN" approve "$GATED" --as ops-lead --key "$T/keys/ops-lead.key" --print 2>"$T/approve.err") ||
  rt_fail "ratchet approve --print: $(cat "$T/approve.err")"
curl -fsS -o /dev/null -H 'Content-Type: application/json' --data "$decision" "$(rt_serve_url a)/api/v1/runs/$GATED/approval"
rt_wait_for 60 '[ "$(run_status "$GATED")" = completed ]'
rt_wait_for 60 "grep '\"name\":\"run gated\"' '$SPANS' | grep -q '$GATED'"
python3 - "$SPANS" "$GATED" "$TRACE_G" <<'PY' || rt_fail "the approval wait span"
import json, sys
spans = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
mine = [s for s in spans if s["attributes"].get("ratchet.run_id") == sys.argv[2]]
root = [s for s in mine if s["name"] == "run gated"]
wait = [s for s in mine if s["name"] == "approval wait"]
assert len(root) == 1 and len(wait) == 1, mine
assert wait[0]["traceId"] == sys.argv[3] == root[0]["traceId"], mine
assert wait[0]["parentSpanId"] == root[0]["spanId"], mine
assert wait[0]["attributes"]["ratchet.approval.decision"] == "approve", wait
assert int(wait[0]["start"]) < int(wait[0]["end"]) and int(wait[0]["start"]) >= int(root[0]["start"]) - 10**9, wait
PY

# ---- invoke: the child run is a child of the invoke step's span ----
OUTER=$("$RATCHET_BIN" run outer)
rt_wait_for 120 '[ "$(run_status "$OUTER")" = completed ]'
rt_wait_for 60 "grep '\"name\":\"run outer\"' '$SPANS' | grep -q '$OUTER'"
rt_wait_for 60 "grep -q '\"name\":\"run inner\"' '$SPANS'"
python3 - "$SPANS" "$OUTER" <<'PY' || rt_fail "the invoked run's trace"
import json, sys
spans = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
outer = [s for s in spans if s["name"] == "run outer" and s["attributes"]["ratchet.run_id"] == sys.argv[2]][0]
call = [s for s in spans if s["name"] == "step call-inner" and s["attributes"]["ratchet.run_id"] == sys.argv[2]]
inner = [s for s in spans if s["name"] == "run inner"]
assert len(call) == 1 and len(inner) == 1, (call, inner)
assert inner[0]["traceId"] == outer["traceId"] == call[0]["traceId"], (outer, inner)
assert inner[0]["parentSpanId"] == call[0]["spanId"], (call, inner)
assert inner[0]["attributes"]["ratchet.trigger"] == "invoke", inner
PY

# ---- a run that times out (ended by the deadline sweep, not a worker) has its run span ----
LATE=$("$RATCHET_BIN" run late)
rt_wait_for 120 '[ "$(run_status "$LATE")" = timed_out ]'
rt_wait_for 60 "grep '\"name\":\"run late\"' '$SPANS' | grep -q '$LATE'"
python3 - "$SPANS" "$LATE" <<'PY' || rt_fail "the timed-out run's span"
import json, sys
spans = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
root = [s for s in spans if s["name"] == "run late" and s["attributes"]["ratchet.run_id"] == sys.argv[2]]
assert len(root) == 1 and root[0]["attributes"]["ratchet.run.status"] == "timed_out", root
assert root[0]["status"]["code"] == 2 and "timed out" in root[0]["status"]["message"], root
PY

# ---- kill -9 mid-step: the resumed run continues the same trace ----
SLOW=$("$RATCHET_BIN" run slow)
rt_wait_for 60 '[ -e "$T/long.once" ]'
rt_wait_for 60 "grep -q '\"ratchet.run_id\":\"$SLOW\"' '$SPANS'" # the first step's span went out
rt_serve_kill9 a
rt_serve_start a
rt_serve_wait_ready a
rt_wait_for 120 '[ "$(run_status "$SLOW")" = completed ]'
rt_wait_for 60 "grep '\"name\":\"run slow\"' '$SPANS' | grep -q '$SLOW'"
python3 - "$SPANS" "$SLOW" <<'PY' || rt_fail "the trace across kill -9"
import json, sys
spans = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
mine = [s for s in spans if s["attributes"].get("ratchet.run_id") == sys.argv[2]]
root = [s for s in mine if s["name"] == "run slow"]
assert len(root) == 1, root
first = [s for s in mine if s["name"] == "step first"]
long_ = [s for s in mine if s["name"] == "step long"]
assert len(first) == 1 and long_, mine
# one trace, exported by two processes: the first step's span before the kill, the rest after
assert {s["traceId"] for s in mine} == {root[0]["traceId"]}, {s["traceId"] for s in mine}
assert all(s["parentSpanId"] == root[0]["spanId"] for s in first + long_), mine
PY
# the collector's header is a secret: never in the log
grep -q "$SECRET" "$T/a.log" && rt_fail "the OTLP header value appears in the serve log"

# ---- the collector goes away: runs still complete, lost spans are counted ----
stop_receiver
dropped_before=$(metric 'ratchet_otel_spans_dropped_total{reason="export_failed"}')
for i in 1 2 3; do
  curl -fsS -o /dev/null -H 'Content-Type: application/json' \
    --data "{\"name\": \"otel.down\", \"id\": \"ev-down-$i\"}" "$(rt_serve_url a)/api/v1/events"
done
for i in 1 2 3; do
  rt_wait_for 120 '[ "$(run_status "$(run_of_event ev-down-'$i')")" = completed ]'
done
rt_wait_for 60 '[ "$(metric '"'"'ratchet_otel_spans_dropped_total{reason="export_failed"}'"'"')" -gt "$dropped_before" ]'
# this process (started after the kill) exported at least the slow run's last spans
exported=$(metric ratchet_otel_spans_exported_total)
[ "$exported" -ge 2 ] || rt_fail "ratchet_otel_spans_exported_total is $exported"
grep -q "$SECRET" "$T/a.log" && rt_fail "the OTLP header value appears in the serve log"
rt_serve_stop a
