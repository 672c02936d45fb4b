# shellcheck shell=bash disable=SC1091,SC2034
# tests/integration/lib.sh — sourced by tests/integration/t_*.sh.
#
# ctest runs each t_*.sh with RATCHET_BIN (the ratchet binary) and RATCHET_SOURCE_DIR;
# scripts/dev.sh test adds the servers it started:
#   RATCHET_TEST_DATABASE_URL   PostgreSQL (superuser, trust auth)
#   RATCHET_TEST_AMQP_URL       RabbitMQ, guest/guest, vhost "/"
#   RATCHET_TEST_NATS_URL, RATCHET_TEST_NATS_MON_PORT   NATS with JetStream
#   RATCHET_TEST_TMPDIR         where tests make their $T (removed by dev.sh at the end)
#   RATCHET_TEST_STATE_DIR      their state dir: rt_rabbit_restart "$RATCHET_TEST_STATE_DIR",
#                               rt_nats_restart ..., rt_pg_restart ... (scripts/lib/services.sh)
# The brokers are shared by all tests, and ctest runs two tests at a time. A test that
# restarts a server should have the RESOURCE_LOCK property for it in tests/CMakeLists.txt.
#
#   source "$(dirname "$0")/lib.sh"
#   rt_test_init my_test          # $T, fresh database in RATCHET_DATABASE_URL, cleanup
#   export RATCHET_WORKFLOWS=$T/wf; mkdir -p "$RATCHET_WORKFLOWS"; ...
#   rt_serve_start a              # "$RATCHET_BIN" serve, log $T/a.log, free HTTP port
#   rt_serve_wait_ready a         # /readyz answers (within 60 s)
#   rt_wait_for 60 '[ "$(rt_psql "select count(*) from runs")" = 1 ]'
#   rt_serve_stop a               # SIGTERM, must exit 0
#
# Every serve log is checked at exit for sanitizer reports and for error-level log lines
# (engine/core/log.c, text or JSON): a test that makes serve log an error on purpose says so
# with rt_expect_log_error 'REGEX' (grep -E, matched against the line). Logs are printed on
# failure.

set -euo pipefail
# Debian's python3 (with the python3-* packages scripts/lib/deps.sh installs), not a
# python3 some version manager put first on PATH.
export PATH=/usr/bin:$PATH

RT_INTEGRATION_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${RATCHET_SOURCE_DIR:=$(cd "$RT_INTEGRATION_DIR/../.." && pwd)}"
# shellcheck source=../../scripts/lib/services.sh
source "$RATCHET_SOURCE_DIR/scripts/lib/services.sh"

T=
RT_TEST_NAME=
RT_TEST_DB=
RT_TEST_VHOST=
declare -A RT_SERVE_PIDS=() RT_SERVE_LOGS=() RT_SERVE_ADDRS=()
RT_EXPECTED_LOG_ERRORS=()

# Stops the test. Exits only the current (sub)shell: do not call it inside $(...).
rt_fail() {
  echo "FAIL${RT_TEST_NAME:+ [$RT_TEST_NAME]}: $*" >&2
  exit 1
}

# Says which command stopped the test under set -e (silent where a test did set +e).
rt__on_err() { # STATUS LINE COMMAND
  [[ $- == *e* ]] || return 0
  echo "FAIL${RT_TEST_NAME:+ [$RT_TEST_NAME]}: command failed (exit $1) at line $2: $3" >&2
}
trap 'rt__on_err $? $LINENO "$BASH_COMMAND"' ERR

rt_test_init() { # NAME
  RT_TEST_NAME=${1:?rt_test_init NAME}
  RT_LOG_PREFIX="$RT_TEST_NAME:" # used by scripts/lib/services.sh
  [[ -n ${RATCHET_TEST_DATABASE_URL:-} ]] ||
    rt_fail "RATCHET_TEST_DATABASE_URL is not set. Run integration tests with scripts/dev.sh test (it starts PostgreSQL, RabbitMQ and NATS), or export RATCHET_TEST_* yourself."
  [[ -n ${RATCHET_BIN:-} && -x ${RATCHET_BIN:-} ]] || rt_fail "RATCHET_BIN is not set to the ratchet binary (got '${RATCHET_BIN:-}')"
  # Nothing from a developer's .dev/env may leak into a test.
  local v
  for v in $(compgen -e | grep '^RATCHET_' || true); do
    case $v in RATCHET_TEST_* | RATCHET_BIN | RATCHET_SOURCE_DIR | RATCHET_LOG_*) ;; *) unset "$v" ;; esac
  done
  # Under dev.sh's scratch dir when there is one, so that it goes away even when ctest
  # kills a test on timeout (no EXIT trap then).
  local tmpbase=${RATCHET_TEST_TMPDIR:-${TMPDIR:-/tmp}}
  mkdir -p "$tmpbase"
  T=$(mktemp -d "$tmpbase/rt-$RT_TEST_NAME.XXXXXX")
  trap rt__exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  local safe
  safe=$(printf '%s' "${RT_TEST_NAME,,}" | tr -c 'a-z0-9_' _)
  RT_TEST_DB="t_${safe:0:40}_$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')"
  psql -XAtq -v ON_ERROR_STOP=1 "$RATCHET_TEST_DATABASE_URL" -c "create database $RT_TEST_DB" >/dev/null ||
    { RT_TEST_DB=; rt_fail "cannot create a database on $RATCHET_TEST_DATABASE_URL"; }
  local url=${RATCHET_TEST_DATABASE_URL%%\?*} query=
  [[ $RATCHET_TEST_DATABASE_URL == *\?* ]] && query="?${RATCHET_TEST_DATABASE_URL#*\?}"
  export RATCHET_DATABASE_URL="${url%/*}/$RT_TEST_DB$query"
}

# RabbitMQ for this test: a vhost of its own (deleted at exit), exported as RATCHET_AMQP_URL.
rt_use_amqp() {
  [[ -n ${RATCHET_TEST_AMQP_URL:-} && -n ${RATCHET_TEST_STATE_DIR:-} ]] || rt_fail "RATCHET_TEST_AMQP_URL / RATCHET_TEST_STATE_DIR not set"
  RT_TEST_VHOST=$RT_TEST_DB
  rt_rabbitmqctl "$RATCHET_TEST_STATE_DIR" add_vhost "$RT_TEST_VHOST" >/dev/null || rt_fail "add_vhost $RT_TEST_VHOST failed"
  rt_rabbitmqctl "$RATCHET_TEST_STATE_DIR" set_permissions -p "$RT_TEST_VHOST" guest '.*' '.*' '.*' >/dev/null ||
    rt_fail "set_permissions on $RT_TEST_VHOST failed"
  export RATCHET_AMQP_URL="${RATCHET_TEST_AMQP_URL%/}/$RT_TEST_VHOST"
}

# An approver for this test: ID's key pair made in $T ($T/ID.key signs decisions), its
# public key the only line of the approvers file, exported as RATCHET_APPROVERS.
rt_use_approver() { # ID
  export RATCHET_APPROVERS=$T/approvers
  "$RATCHET_BIN" keygen --approver "${1:?}" --out "$T" >/dev/null 2>&1
  cp "$T/$1.pub" "$RATCHET_APPROVERS"
}

# buscheck (tests/buscheck.c) against this test's RabbitMQ vhost (rt_use_amqp first): sets
# BUSCHECK and exports what it reads, the broker's own view of a queue through rabbitmqctl.
rt_use_buscheck_amqp() {
  BUSCHECK=$(dirname "$RATCHET_BIN")/tests/buscheck
  [[ -x $BUSCHECK ]] || rt_fail "buscheck is not built next to $RATCHET_BIN (expected $BUSCHECK)"
  local svc=$RATCHET_SOURCE_DIR/scripts/lib/services.sh
  local ctl="source '$svc' && rt_rabbitmqctl '$RATCHET_TEST_STATE_DIR'"
  local lq="list_queues --silent -p '$RT_TEST_VHOST' name messages_ready messages_unacknowledged"
  export BUSCHECK_URL=$RATCHET_AMQP_URL
  export BUSCHECK_NS=${RT_TEST_VHOST#t_}
  export BUSCHECK_STATS_CMD="bash -c \"$ctl $lq\" | awk '\$1 == \"{Q}\" { print \$2, \$3 }'"
  export BUSCHECK_DEAD_CMD="bash -c \"$ctl $lq\" | awk '\$1 == \"ratchet.events.dead\" { print \$2 }'"
}

# NATS for this test (shared server: use subjects/streams named after the test).
rt_use_nats() {
  [[ -n ${RATCHET_TEST_NATS_URL:-} ]] || rt_fail "RATCHET_TEST_NATS_URL not set"
  export RATCHET_NATS_URL=$RATCHET_TEST_NATS_URL
}

# Starts "$RATCHET_BIN serve ARGS..." in the background, log $T/NAME.log. Unless
# RATCHET_HTTP_ADDR is exported, it listens on a free port: see rt_serve_url NAME.
rt_serve_start() { # NAME [ARGS...]
  local name=${1:?rt_serve_start NAME}; shift
  [[ -n $T ]] || rt_fail "call rt_test_init first"
  if [[ -n ${RT_SERVE_PIDS[$name]:-} ]] && rt_pid_alive "${RT_SERVE_PIDS[$name]}"; then
    rt_fail "serve '$name' is already running"
  fi
  local addr=${RATCHET_HTTP_ADDR:-}
  [[ -n $addr ]] || addr="127.0.0.1:$(rt_free_port "$T")"
  local log=$T/$name.log
  [[ -e $log ]] && echo "----- restart $(date +%T.%N)" >>"$log"
  RATCHET_HTTP_ADDR=$addr "$RATCHET_BIN" serve "$@" </dev/null >>"$log" 2>&1 &
  RT_SERVE_PIDS[$name]=$!
  echo "$!" >>"$T/.serve-pids" # for dev.sh, should this shell be killed
  RT_SERVE_LOGS[$name]=$log
  RT_SERVE_ADDRS[$name]=$addr
}

rt_serve_pid() { echo "${RT_SERVE_PIDS[${1:?}]:-}"; }
rt_serve_url() { echo "http://${RT_SERVE_ADDRS[${1:?}]:-}"; }

# Limits here and in rt_wait_for are for a loaded 2-core CI machine running ASan builds:
# waiting longer costs nothing when the condition comes early.
rt_serve_wait_ready() { # NAME [TIMEOUT_S=60]: /readyz answers 200
  local name=${1:?} pid=${RT_SERVE_PIDS[${1:?}]:-}
  local url; url="$(rt_serve_url "$name")/readyz"
  local deadline=$(($(rt__now_ms) + ${2:-60} * 1000))
  until curl -fsS -m 2 -o /dev/null "$url" 2>/dev/null; do
    rt_pid_alive "$pid" || rt_fail "serve '$name' exited before it was ready (log $T/$name.log)"
    (($(rt__now_ms) < deadline)) || rt_fail "serve '$name' not ready at $url after ${2:-60} s"
    sleep 0.05
  done
}

rt_serve_kill9() { # NAME: crash it (SIGKILL)
  local name=${1:?} pid=${RT_SERVE_PIDS[${1:?}]:-}
  [[ -n $pid ]] || rt_fail "no serve '$name'"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "RT_SERVE_PIDS[$name]"
}

# Until serve has blocked SIGTERM (it takes signals with sigwait from its first steps on),
# or has exited, at most 60 s: a SIGTERM sent before that kills a serve that is still
# starting, with status 143 instead of a clean stop, when a test stops it right away. Any
# of its threads counts: the main thread's mask lacks SIGTERM while it waits in sigwait,
# and the threads it starts afterwards inherit the mask.
rt__wait_signals_blocked() { # PID
  local pid=$1 deadline blk
  deadline=$(($(rt__now_ms) + 60000))
  while rt_pid_alive "$pid" && (($(rt__now_ms) < deadline)); do
    for blk in $(cat /proc/"$pid"/task/*/status 2>/dev/null | sed -n 's/^SigBlk:[[:space:]]*//p'); do
      if (((16#$blk >> 14) & 1)); then return 0; fi
    done
    sleep 0.05
  done
}

rt_serve_stop() { # NAME [TIMEOUT_S=60]: SIGTERM, wait, assert exit status 0
  local name=${1:?} pid=${RT_SERVE_PIDS[${1:?}]:-} rc=0
  [[ -n $pid ]] || rt_fail "no serve '$name'"
  rt__wait_signals_blocked "$pid"
  kill -TERM "$pid" 2>/dev/null || true
  if ! rt__wait_pid_exit "$pid" "${2:-60}"; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "RT_SERVE_PIDS[$name]"
    rt_fail "serve '$name' did not exit within ${2:-60} s of SIGTERM"
  fi
  wait "$pid" || rc=$?
  unset "RT_SERVE_PIDS[$name]"
  rt_assert_eq 0 "$rc" "exit status of serve '$name' after SIGTERM"
}

# Polls every 50 ms until the condition holds. The condition is evaluated like
# `eval ARGS...` (so '[ "$(rt_psql "...")" = 3 ]' and `some_function arg` both work).
rt_wait_for() { # TIMEOUT_S CONDITION...
  local timeout=${1:?rt_wait_for TIMEOUT CONDITION}; shift
  local cond="$*" ms deadline out
  ms=$(awk -v t="$timeout" 'BEGIN { printf "%d", t * 1000 }')
  deadline=$(($(rt__now_ms) + ms))
  while :; do
    eval "$cond" >/dev/null 2>&1 && return 0
    (($(rt__now_ms) < deadline)) || break
    sleep 0.05
  done
  out=$(eval "$cond" 2>&1) || true
  rt_fail "timed out after ${timeout} s waiting for: $cond${out:+ (last output: $out)}"
}

# Posts events through serve NAME's HTTP API from one process, event i at i * GAP_S
# seconds after the first (tests/integration/send_events.py), so that a timed sequence
# does not stretch with process start-up on a slow machine. Each answers after admission.
# Prints the widest gap there was between two answers, in ms.
rt_send_events() { # NAME GAP_S EVENT_JSON...
  local name=${1:?rt_send_events NAME GAP_S EVENT_JSON...}; shift
  python3 "$RT_INTEGRATION_DIR/send_events.py" "$(rt_serve_url "$name")" "$@"
}

rt_assert_eq() { # EXPECTED ACTUAL MSG
  [[ "$1" == "$2" ]] || rt_fail "${3:-values differ}: expected [$1], got [$2]"
}

rt_psql() { # SQL [psql args...]: against this test's database, unaligned tuples only
  local sql=${1:?rt_psql SQL}; shift
  psql -XAtq -v ON_ERROR_STOP=1 "$RATCHET_DATABASE_URL" "$@" -c "$sql"
}

# --- getters the tests share (they used to define them per file) ---------------------
q() { rt_psql "$1"; }                                                    # SQL: its rows
status() { rt_psql "select status from ratchet.runs where id = '$1'"; } # RUN: its status
run_field() { rt_psql "select $2 from ratchet.runs where id = '$1'"; }  # RUN EXPR: e.g. output::text
metric() { # SERVE NAME: the value of one sample in serve's /metrics (NAME with its labels)
  curl -fsS "$(rt_serve_url "$1")/metrics" | awk -v k="$2" '$1 == k {print $2}'
}
json_get() { # PYTHON-SUBSCRIPT: of the JSON on stdin, e.g. json_get '["runs"][0]["id"]'
  python3 -c 'import json,sys; v=json.load(sys.stdin); print(eval("v" + sys.argv[1]))' "$1"
}

# --- one ctest entry per behaviour --------------------------------------------------
# A test file that covers several behaviours lists them in a line `# sections: a b c` and
# defines a function section_a, section_b, ... each. tests/CMakeLists.txt makes one ctest
# entry per section (integration.<file without t_>.<section>, running `t_file.sh SECTION`);
# without an argument every section runs, in the listed order.
rt_sections() { # FILE: the sections the file lists
  sed -n 's/^# sections: *//p' "${1:?rt_sections FILE}" | head -n 1
}

rt_run_sections() { # [SECTION]: runs the one named, or all of them (call it last)
  local file=$0 all s
  all=$(rt_sections "$file")
  [[ -n $all ]] || rt_fail "$file has no '# sections:' line"
  if [[ -n ${1:-} ]]; then
    [[ " $all " == *" $1 "* ]] || rt_fail "unknown section '$1' (this file has: $all)"
    all=$1
  fi
  for s in $all; do
    "section_$s"
    echo "ok: ${RT_TEST_NAME%%.*}.$s"
  done
}

rt__sanitizer_lines() { # FILE: prints sanitizer reports; status 0 when there are some
  [[ -f $1 ]] && grep -nE 'ERROR: AddressSanitizer|runtime error:|LeakSanitizer' "$1"
}

# An error-level line of rt_log: "2026-01-02T03:04:05.678Z error ..." or {"level":"error",...}.
RT_LOG_ERROR_RE='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z error |"level": ?"error"'

# Declares that this test makes serve log errors matching REGEX (grep -E): they do not fail
# it. Declare each one: an undeclared error line fails the test at exit.
rt_expect_log_error() { # REGEX
  RT_EXPECTED_LOG_ERRORS+=("${1:?rt_expect_log_error REGEX}")
}

rt__unexpected_error_lines() { # FILE: prints error lines no rt_expect_log_error allows; status 0 when some
  [[ -f $1 ]] || return 1
  local lines re
  lines=$(grep -nE "$RT_LOG_ERROR_RE" "$1") || return 1
  for re in "${RT_EXPECTED_LOG_ERRORS[@]}"; do
    lines=$(grep -vE -- "$re" <<<"$lines") || return 1
  done
  printf '%s\n' "$lines"
}

rt_check_log() { # FILE: fails when it holds a sanitizer report
  local hits
  if hits=$(rt__sanitizer_lines "$1"); then
    rt_fail "sanitizer report in $1:"$'\n'"$hits"$'\n'"$(cat "$1")"
  fi
}

rt__exit() {
  local rc=$? name pid log
  set +e
  trap - ERR
  for name in "${!RT_SERVE_PIDS[@]}"; do
    pid=${RT_SERVE_PIDS[$name]}
    if rt_pid_alive "$pid"; then
      kill -TERM "$pid" 2>/dev/null
      rt__wait_pid_exit "$pid" 10 || kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
  done
  for name in "${!RT_SERVE_LOGS[@]}"; do
    log=${RT_SERVE_LOGS[$name]}
    if rt__sanitizer_lines "$log" >/dev/null; then
      echo "FAIL [$RT_TEST_NAME]: sanitizer report in serve '$name' log" >&2
      rc=1
    fi
    local unexpected
    if unexpected=$(rt__unexpected_error_lines "$log"); then
      echo "FAIL [$RT_TEST_NAME]: serve '$name' logged errors the test did not declare (rt_expect_log_error):" >&2
      head -n 20 <<<"$unexpected" >&2
      rc=1
    fi
  done
  if ((rc != 0)); then
    for name in "${!RT_SERVE_LOGS[@]}"; do
      log=${RT_SERVE_LOGS[$name]}
      echo "----- serve '$name' log $log (last 200 lines)" >&2
      tail -n 200 "$log" >&2
    done
  fi
  if [[ -n $RT_TEST_VHOST ]]; then
    rt_rabbitmqctl "$RATCHET_TEST_STATE_DIR" delete_vhost "$RT_TEST_VHOST" >/dev/null 2>&1
  fi
  if [[ -n $RT_TEST_DB ]]; then
    psql -XAtq "$RATCHET_TEST_DATABASE_URL" -c "drop database if exists $RT_TEST_DB with (force)" >/dev/null 2>&1 ||
      echo "$RT_TEST_NAME: warning: could not drop database $RT_TEST_DB" >&2
  fi
  [[ -n $T ]] && rm -rf "$T"
  if ((rc == 0)); then echo "PASS [$RT_TEST_NAME]"; fi
  exit "$rc"
}

# ---- The API contract (schemas/openapi.yaml) ----
# An API test records every answer it receives (rt_contract_record, called by its request
# helper) and checks them all at its end (rt_contract_check): each must match a documented
# route, method and status, and its body the status's schema (tests/contract/check_contract.py).
# The log is the test's own ($T/contract.log, or RATCHET_TEST_CONTRACT_LOG), so tests that
# run side by side under ctest never mix their recordings.
# A recording's key is the recording shell's pid and its count, so that requests made in
# subshells ($(...), rt_wait_for conditions) never overwrite each other's bodies.
RT_CONTRACT_N=0
rt_contract_record() { # METHOD URL_PATH CODE BODY_FILE [HDRS_FILE]: one fork (cp), tests time their requests
  local log=${RATCHET_TEST_CONTRACT_LOG:-$T/contract.log} line ctype=
  local dir=${log%.log}.d key
  ((RT_CONTRACT_N > 0)) || mkdir -p "$dir"
  RT_CONTRACT_N=$((RT_CONTRACT_N + 1))
  key=$BASHPID-$RT_CONTRACT_N
  cp "$4" "$dir/$key.body" 2>/dev/null || : >"$dir/$key.body"
  if [[ -n ${5:-} && -f $5 ]]; then
    while IFS= read -r line; do
      line=${line%$'\r'}
      if [[ ${line,,} == content-type:* ]]; then ctype=${line#*:}; ctype=${ctype# }; fi
    done <"$5"
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "${2%%\?*}" "$3" "$ctype" "$key" >>"$log"
}

# One API request, recorded for the contract check: rt_http METHOD URL [curl args...]
# prints the HTTP status (curl-failed-N when no answer came) and leaves the body in
# $T/http.body, the headers in $T/http.hdrs. Works inside $(...) and rt_wait_for.
rt_http() {
  local m=${1:?rt_http METHOD URL [curl args...]} url=${2:?rt_http METHOD URL} code rc=0 path
  shift 2
  : >"$T/http.body"
  : >"$T/http.hdrs"
  code=$(curl -sS -m 30 -X "$m" -o "$T/http.body" -D "$T/http.hdrs" -w '%{http_code}' "$@" "$url") || rc=$?
  ((rc == 0)) || code=curl-failed-$rc
  path=${url#*://}
  path=/${path#*/}
  rt_contract_record "$m" "$path" "$code" "$T/http.body" "$T/http.hdrs"
  printf '%s\n' "$code"
}

rt_contract_check() { # checks this test's recordings against schemas/openapi.yaml
  local log=${RATCHET_TEST_CONTRACT_LOG:-$T/contract.log}
  [[ -s $log ]] || rt_fail "contract: no API answers were recorded in $log"
  /usr/bin/python3 "$RATCHET_SOURCE_DIR/tests/contract/check_contract.py" "$RATCHET_SOURCE_DIR/schemas/openapi.yaml" "$log" ||
    rt_fail "contract: answers that schemas/openapi.yaml does not describe (above)"
}
