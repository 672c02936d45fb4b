#!/usr/bin/env bash
# Alert events (engine/run/alerts.c): with short settings, successful runs raise nothing;
# failing runs raise ratchet.alert.failure_rate_high once (RATCHET_ALERT_REPEAT), it starts
# a workflow triggered by ratchet.alert.*, and it reaches RabbitMQ through the outbox (a
# second serve on its own database and queue receives it); a step waiting for the only
# worker raises queue_backlog; a step still leased after its timeout, because the serve
# that runs it is stopped (SIGSTOP), raises execution_timeout in another serve. /metrics
# shows ratchet_alerts_total, ratchet_steps_past_timeout and ratchet_broker_up.
source "$(dirname "$0")/lib.sh"
rt_test_init alerts
rt_use_amqp

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2 RATCHET_LOG_LEVEL=debug
export RATCHET_ALERT_INTERVAL=1s RATCHET_ALERT_WINDOW=10m RATCHET_ALERT_FAILURE_RATE=50 \
  RATCHET_ALERT_FAILURE_MIN_RUNS=3 RATCHET_ALERT_QUEUE_BACKLOG=1h RATCHET_ALERT_TIMEOUT_GRACE=1h \
  RATCHET_ALERT_REPEAT=1h
# The failure-rate window (10 min) holds every run of section 1, however slow the machine.
cat >"$W/ok.json" <<'EOF'
{"id": "ok", "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF
cat >"$W/bad.json" <<'EOF'
{"id": "bad", "retries": {"max_attempts": 1}, "steps": [{"id": "x", "uses": "exec", "with": {"command": ["false"]}}]}
EOF
cat >"$W/on-alert.json" <<'EOF'
{"id": "on-alert", "triggers": [{"event": "ratchet.alert.*"}],
 "steps": [{"id": "note", "uses": "transform", "with": {"value": "${{ event.name }}"}}]}
EOF
# Blocks its worker until the file named by event.data.gate exists.
cat >"$W/gate.json" <<'EOF'
{"id": "gate", "steps": [{"id": "wait", "uses": "exec",
 "with": {"command": ["sh", "-c", "while [ ! -e \"$1\" ]; do sleep 0.05; done", "sh", "${{ event.data.gate }}"]}}]}
EOF
# Stops the serve process that runs it (a stuck engine, for real): the step stays leased
# and running past its 1 s timeout until that process gets SIGCONT.
cat >"$W/stuck.json" <<'EOF'
{"id": "stuck", "retries": {"max_attempts": 1}, "steps": [{"id": "hang", "uses": "exec", "timeout": "1s",
 "with": {"command": ["sh", "-c", "kill -STOP $PPID; sleep 600"]}}]}
EOF
"$RATCHET_BIN" migrate >/dev/null

alerts() { rt_psql "select count(*) from ratchet.events where name = 'ratchet.alert.$1'"; }
alert_id() { rt_psql "select id from ratchet.events where name = 'ratchet.alert.$1' order by received_at limit 1"; }
alert_data() { rt_psql "select envelope->'data' from ratchet.events where name = 'ratchet.alert.$1' order by received_at limit 1"; }
checks() { grep -c "alerts: checked" "$T/$1.log" || true; }
# Waits until serve NAME finished two more alert checks, so at least one whole check ran
# after whatever happened before the call.
two_checks() {
  local n
  n=$(checks "$1")
  rt_wait_for 60 '[ "$(checks '"$1"')" -ge $((n + 2)) ]'
}
check_json() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); assert $2, d" "$1" || rt_fail "$3: $1"; }
on_alert_status() { rt_psql "select status from ratchet.runs where workflow_id = 'on-alert' and event_id = '$1'"; }

# A second serve on a database of its own consumes ratchet.alert.* from RabbitMQ through a
# queue of its own: what it stores came over the broker.
L_DB=${RT_TEST_DB}_l
psql -XAtq -v ON_ERROR_STOP=1 "$RATCHET_TEST_DATABASE_URL" -c "create database $L_DB" >/dev/null
trap '_rc=$?; set +e; psql -XAtq "$RATCHET_TEST_DATABASE_URL" -c "drop database if exists $L_DB with (force)" >/dev/null 2>&1; (exit $_rc); rt__exit' EXIT
L_URL="${RATCHET_DATABASE_URL%%\?*}"
L_URL="${L_URL%/*}/$L_DB"
[[ $RATCHET_DATABASE_URL == *\?* ]] && L_URL="$L_URL?${RATCHET_DATABASE_URL#*\?}"
mkdir -p "$T/listener"
cat >"$T/listener/listen.json" <<'EOF'
{"id": "listen", "triggers": [{"event": "ratchet.alert.*"}], "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF
l_psql() { psql -XAtq -v ON_ERROR_STOP=1 "$L_URL" -c "$1"; }

# ---- 1. failure rate -------------------------------------------------------------------
RATCHET_DATABASE_URL=$L_URL RATCHET_WORKFLOWS=$T/listener RATCHET_AMQP_QUEUE=alerts.listener RATCHET_ALERTS=false \
  rt_serve_start l
rt_serve_start a
rt_wait_for 60 'grep -q "amqp consumer: connected" "$T/l.log" && grep -q "amqp consumer: connected" "$T/a.log"'
rt_serve_wait_ready a
rt_assert_eq 1 "$(metric a 'ratchet_broker_up{transport="amqp"}')" "ratchet_broker_up with RabbitMQ up"
rt_assert_eq 0 "$(metric a 'ratchet_alerts_total{alert="failure_rate_high"}')" "ratchet_alerts_total is preset"

for _ in 1 2 3 4; do "$RATCHET_BIN" run ok --wait >/dev/null; done
two_checks a
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.events where name like 'ratchet.alert.%'")" \
  "successful runs only: no alert"
grep -q "alerts: checked: 0 of 4 runs finished" "$T/a.log" || rt_fail "the check did not see the 4 finished runs"

# 3 failed of 7 is under 50 %; the 4th failure (4 of 8) raises the alert.
for _ in 1 2 3 4; do
  if "$RATCHET_BIN" run bad --wait >/dev/null 2>&1; then rt_fail "bad must fail"; fi
done
rt_wait_for 60 '[ "$(alerts failure_rate_high)" = 1 ]'
aid=$(alert_id failure_rate_high)
[[ $aid == ratchet:*:alert:failure_rate_high:* ]] || rt_fail "alert id: $aid"
check_json "$(alert_data failure_rate_high)" \
  'd["finished"]==8 and d["failed"]==4 and d["rate"]==0.5 and d["threshold"]==0.5 and d["window_s"]==600 and d["min_runs"]==3' \
  "failure_rate_high data"
check_json "$(alert_data failure_rate_high)" \
  'd["workflows"]==[{"workflow":"bad","finished":4,"failed":4,"rate":1.0}]' "failure_rate_high names the workflow"
check_json "$(rt_psql "select envelope from ratchet.events where id = '$aid'")" \
  'd["actor"]=={"type":"system","id":"ratchet"} and d["name"]=="ratchet.alert.failure_rate_high"' "alert envelope"
rt_assert_eq engine "$(rt_psql "select transport from ratchet.events where id = '$aid'")" "stored as an engine event"
grep -q "alert ratchet.alert.failure_rate_high: 4 of 8 runs (50.0%)" "$T/a.log" || rt_fail "the alert is not logged"
# It triggers workflows like any event ...
rt_wait_for 60 '[ "$(on_alert_status "$aid")" = completed ]'
"$RATCHET_BIN" events --name ratchet.alert.failure_rate_high --json >"$T/events.json"
check_json "$(cat "$T/events.json")" 'len(d)==1 and d[0]["id"]=="'"$aid"'" and d[0]["runs"][0]["workflow"]=="on-alert"' \
  "ratchet events lists the alert and its run"
# ... and is published to RabbitMQ from the outbox.
rt_wait_for 60 '[ "$(rt_psql "select outbox from ratchet.events where id = '"'$aid'"'")" = f ]'
rt_wait_for 60 '[ "$(l_psql "select transport from ratchet.events where id = '"'$aid'"'")" = amqp ]'
rt_wait_for 60 '[ "$(l_psql "select count(*) from ratchet.runs where workflow_id = '"'listen'"' and status = '"'completed'"'")" = 1 ]'
rt_assert_eq 1 "$(metric a 'ratchet_alerts_total{alert="failure_rate_high"}')" "ratchet_alerts_total counts it"
# Still raised, but repeated only after RATCHET_ALERT_REPEAT.
two_checks a
rt_assert_eq 1 "$(alerts failure_rate_high)" "a raised alert is not repeated within RATCHET_ALERT_REPEAT"
rt_serve_stop a
rt_serve_stop l
echo "ok: failure_rate_high: stored once, triggers a workflow, published to RabbitMQ"

# ---- 2. queue backlog: the only worker is busy ------------------------------------------
RATCHET_WORKERS=1 RATCHET_ALERT_QUEUE_BACKLOG=2s RATCHET_ALERT_FAILURE_MIN_RUNS=1000000 rt_serve_start b
rt_serve_wait_ready b
g1=$("$RATCHET_BIN" run gate --data "{\"gate\": \"$T/gate1\"}")
rt_wait_for 60 '[ "$(rt_psql "select status from ratchet.steps where run_id = '"'$g1'"'")" = running ]'
g2=$("$RATCHET_BIN" run gate --data "{\"gate\": \"$T/gate2\"}")
rt_wait_for 60 '[ "$(alerts queue_backlog)" = 1 ]'
bid=$(alert_id queue_backlog)
[[ $bid == ratchet:*:alert:queue_backlog:* ]] || rt_fail "backlog alert id: $bid"
check_json "$(alert_data queue_backlog)" \
  'd["depth"]==1 and d["oldest_age_s"]>2 and d["threshold_s"]==2 and d["oldest"]=={"run_id":"'"$g2"'","step_id":"wait","workflow":"gate"}' \
  "queue_backlog data"
grep -q "alert ratchet.alert.queue_backlog: the oldest runnable step has waited" "$T/b.log" || rt_fail "backlog not logged"
touch "$T/gate1" "$T/gate2"
rt_wait_for 60 '[ "$(rt_psql "select count(*) from ratchet.runs where workflow_id = '"'gate'"' and status = '"'completed'"'")" = 2 ]'
rt_wait_for 60 '[ "$(on_alert_status "$bid")" = completed ]'
rt_assert_eq 1 "$(metric b 'ratchet_alerts_total{alert="queue_backlog"}')" "backlog alert counted"
# A check that fails (its connection killed) is logged and retried at the next interval.
# (The patterns are text only the two alert checks have: store_alerts.c.)
rt_wait_for 60 '[ "$(rt_psql "select count(pg_terminate_backend(pid)) from pg_stat_activity where datname = current_database() and (query like '"'%count(*) n from ratchet.queue where run_at%'"' or query like '"'%locked_until > now()%'"') and pid <> pg_backend_pid()")" = 1 ]'
rt_wait_for 60 'grep -q "alerts: check failed (1 time(s) in a row): .*retrying every 1s" "$T/b.log"'
rt_wait_for 60 'grep -q "alerts: checks work again after 1 failure(s)" "$T/b.log"'
rt_serve_stop b
echo "ok: queue_backlog"

# ---- 3. execution timeout: the serve running the step is stopped -------------------------
RATCHET_ALERTS=false RATCHET_WORKERS=1 RATCHET_LEASE=300s rt_serve_start c1
rt_serve_wait_ready c1
sid=$("$RATCHET_BIN" run stuck)
c1=$(rt_serve_pid c1)
rt_wait_for 60 '[[ $(ps -o stat= -p '"$c1"') == T* ]]'
rt_assert_eq running "$(rt_psql "select status from ratchet.steps where run_id = '$sid'")" "the stuck step is running"
RATCHET_ALERT_TIMEOUT_GRACE=1s RATCHET_ALERT_FAILURE_MIN_RUNS=1000000 rt_serve_start c2
rt_serve_wait_ready c2
rt_wait_for 60 '[ "$(alerts execution_timeout)" = 1 ]'
xid=$(alert_id execution_timeout)
[[ $xid == "ratchet:"*":alert:execution_timeout:$sid:hang:1:"* ]] || rt_fail "execution_timeout id: $xid"
check_json "$(alert_data execution_timeout)" \
  'd["run_id"]=="'"$sid"'" and d["step_id"]=="hang" and d["workflow"]=="stuck" and d["attempt"]==1 and d["timeout_s"]==1 and d["grace_s"]==1 and d["running_s"]>2 and d["worker"]' \
  "execution_timeout data"
grep -q "alert ratchet.alert.execution_timeout: attempt 1 has run" "$T/c2.log" || rt_fail "timeout alert not logged"
rt_assert_eq 1 "$(metric c2 ratchet_steps_past_timeout)" "ratchet_steps_past_timeout while stuck"
rt_assert_eq 1 "$(metric c2 'ratchet_alerts_total{alert="execution_timeout"}')" "timeout alert counted"
two_checks c2
rt_assert_eq 1 "$(alerts execution_timeout)" "the stuck step is not alerted again within RATCHET_ALERT_REPEAT"
# Resumed, the engine stops the step at its timeout; the run fails and the gauge clears.
kill -CONT "$c1"
rt_wait_for 60 '[ "$(rt_psql "select status from ratchet.runs where id = '"'$sid'"'")" = failed ]'
rt_wait_for 60 '[ "$(metric c2 ratchet_steps_past_timeout)" = 0 ]'
rt_wait_for 60 '[ "$(on_alert_status "$xid")" = completed ]'
rt_serve_stop c1
rt_serve_stop c2
echo "ok: execution_timeout"
echo "ok: alerts"
