#!/usr/bin/env bash
# scripts/dev.sh — ratchet's local stack without docker or systemd, and the full test
# run that CI uses (.ci/run). Debian 12, as root. See `scripts/dev.sh help`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
export RT_LOG_PREFIX="dev.sh:"
# shellcheck source=scripts/lib/deps.sh
source "$ROOT/scripts/lib/deps.sh"
# shellcheck source=scripts/lib/services.sh
source "$ROOT/scripts/lib/services.sh"

DEV=$ROOT/.dev
JOBS=$(nproc 2>/dev/null || echo 2)

log() { echo "dev.sh: $*"; }
die() { echo "dev.sh: error: $*" >&2; exit 1; }
prefix() { sed -u 's/^/dev.sh:   /'; } # indents a tool's output under dev.sh's own lines

need_root() {
  ((EUID == 0)) || die "run as root: PostgreSQL is started through 'runuser -u postgres' and packages come from apt-get"
}

usage() {
  cat <<'EOF'
dev.sh: usage: scripts/dev.sh COMMAND
dev.sh:
dev.sh:   up                 install packages, build (build/), start PostgreSQL, NATS (JetStream) and
dev.sh:                      RabbitMQ on 127.0.0.1 with state in .dev/, migrate, start `ratchet serve`
dev.sh:                      in the background (--watch: edits to workflows/ apply at once) and run the hello demo. Safe to repeat: running servers
dev.sh:                      are reused, serve is restarted on the new build.
dev.sh:   down [--purge]     stop serve (SIGTERM, 30 s grace), then the servers; --purge deletes .dev/
dev.sh:   status             what runs where (pid, port, alive?)
dev.sh:   test [--quick] [-R REGEX]
dev.sh:                      the CI run: build build/ (-Werror), build-asan/ (ASan+UBSan) and build-fuzz/
dev.sh:                      (clang, libFuzzer); start private servers on free ports in a temp dir;
dev.sh:                      run every ctest test under ASan, the unit tests on the plain build, and
dev.sh:                      each fuzz target: first every past crash in tests/fuzz/crashes/TARGET/
dev.sh:                      once, then -seed=1 -runs=$RATCHET_FUZZ_RUNS (default 20000) over
dev.sh:                      tests/fuzz/corpus/TARGET/ and the crashes: the same verdict on any
dev.sh:                      machine, fast or slow. Skipped tests fail.
dev.sh:                      --quick: only build/ and all its tests (no ASan, no fuzz).
dev.sh:                      -R REGEX: only the ctest tests matching REGEX (the fuzzers still run).
dev.sh:   fuzz [--minutes N] [TARGET...]
dev.sh:                      exploration: build build-fuzz/, run each target (default all: fuzz_cron,
dev.sh:                      fuzz_event, ...) for N minutes (default 10) under nice with a random
dev.sh:                      seed, one at a time; then copy new crash inputs to
dev.sh:                      tests/fuzz/crashes/TARGET/, merge the fewest new inputs that reach new
dev.sh:                      code into tests/fuzz/corpus/TARGET/ (libFuzzer merge) and print what to
dev.sh:                      commit. See tests/fuzz/README.md.
dev.sh:   help               this text
dev.sh:
dev.sh: After `up`: source .dev/env, then build/ratchet runs | show RUN | run WF --data JSON
EOF
}

# --- builds ---------------------------------------------------------------------------

configure_and_build() { # DIR [cmake -D args...]  (CC may be set by the caller)
  local dir=$1; shift
  cmake -S "$ROOT" -B "$ROOT/$dir" "$@" 2>&1 | prefix
  cmake --build "$ROOT/$dir" -j "$JOBS" 2>&1 | prefix
}

# --- ratchet serve (dev stack) --------------------------------------------------------

serve_pid() { rt_pidfile_pid "$DEV/ratchet.pid"; }

serve_stop() {
  local pid; pid=$(serve_pid)
  if rt_pid_alive "$pid"; then
    log "stopping ratchet serve (pid $pid, SIGTERM, up to 30 s)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! rt__wait_pid_exit "$pid" 30; then
      log "warning: ratchet serve did not exit within 30 s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      rt__wait_pid_exit "$pid" 5 || true
    fi
  fi
  rm -f "$DEV/ratchet.pid"
}

serve_start() {
  local addr; addr=$(rt_env_get "$DEV" RATCHET_HTTP_ADDR)
  log "starting build/ratchet serve (log .dev/ratchet.log)"
  echo "----- $(date -Is) ratchet serve" >>"$DEV/ratchet.log"
  # --watch: editing workflows/ applies at once (docs/workflows.md "Registry"); RATCHET_WATCH=false turns it off.
  (cd "$ROOT" && exec setsid "$ROOT/build/ratchet" serve --watch "${RATCHET_WATCH:-true}" </dev/null >>"$DEV/ratchet.log" 2>&1) &
  echo $! >"$DEV/ratchet.pid"
  local pid=$! i port=${addr##*:}
  for ((i = 0; i < 600; i++)); do # 30 s
    if curl -fsS -m 2 -o /dev/null "http://$addr/readyz" 2>/dev/null; then
      log "ratchet serve ready on http://$addr (pid $pid)"
      return 0
    fi
    if ! rt_pid_alive "$pid"; then
      log "error: ratchet serve exited during start-up; last lines of .dev/ratchet.log:"
      tail -n 30 "$DEV/ratchet.log" | prefix
      return 1
    fi
    if ((i == 100)) && ! rt_tcp_open "$port"; then # 5 s and nothing listens: no HTTP API
      log "warning: ratchet serve (pid $pid) runs but nothing listens on $addr; going on without /readyz"
      return 0
    fi
    sleep 0.05
  done
  log "warning: ratchet serve (pid $pid) runs but http://$addr/readyz does not answer 200 after 30 s; going on"
}

# The hello demo: run it, wait for it, show it. The run id is the first line of stdout.
demo() {
  local secs=${RATCHET_DEMO_TIMEOUT:-60} out=$DEV/demo-run.out err=$DEV/demo-run.err rc=0 run_id
  log "demo: build/ratchet run hello --data '{\"name\":\"world\"}' --wait   (up to $secs s)"
  timeout "$secs" build/ratchet run hello --data '{"name":"world"}' --wait >"$out" 2>"$err" || rc=$?
  prefix <"$out"
  prefix <"$err"
  run_id=$(head -n1 "$out" | tr -d '[:space:]')
  if ((rc != 0)); then
    if ((rc == 124)); then log "error: the demo run did not finish within $secs s"; else log "error: ratchet run exited $rc"; fi
  fi
  if [[ -n $run_id ]]; then
    log "demo: build/ratchet show $run_id"
    build/ratchet show "$run_id" 2>&1 | prefix || rc=1
  else
    log "error: ratchet run printed no run id"
    rc=1
  fi
  if ((rc != 0)); then
    log "last lines of .dev/ratchet.log:"
    tail -n 15 "$DEV/ratchet.log" | prefix
  fi
  return "$rc"
}

cmd_up() {
  [[ $# -eq 0 ]] || die "up takes no arguments"
  need_root
  rt_deps_install
  log "building build/ (RelWithDebInfo)"
  configure_and_build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
  [[ -x build/ratchet ]] || die "build/ratchet was not built"

  mkdir -p "$DEV"
  rt_services_start "$DEV" 55432 4222 8222 5672

  psql -XAtq -v ON_ERROR_STOP=1 "$RT_PG_URL" -c "select 1 from pg_database where datname = 'ratchet'" | grep -q 1 ||
    psql -XAtq -v ON_ERROR_STOP=1 "$RT_PG_URL" -c "create database ratchet" >/dev/null
  serve_stop # a running serve is restarted on the fresh build
  local http_port saved
  saved=$(rt_env_get "$DEV" RATCHET_HTTP_ADDR)
  saved=${saved##*:}
  http_port=$(rt_free_port "$DEV" "${saved:-8288}")
  rt_env_set "$DEV" \
    RATCHET_DATABASE_URL "postgresql://postgres@127.0.0.1:$RT_PG_PORT/ratchet" \
    RATCHET_AMQP_URL "$RT_AMQP_URL" \
    RATCHET_NATS_URL "$RT_NATS_URL" \
    RATCHET_WORKFLOWS "$ROOT/workflows" \
    RATCHET_HTTP_ADDR "127.0.0.1:$http_port"

  log "build/ratchet migrate"
  build/ratchet migrate 2>&1 | prefix
  serve_start

  local demo_rc=0
  demo || demo_rc=$?

  local mon; mon=$(rt_env_get "$DEV" RT_NATS_MON_PORT)
  log ""
  log "the stack is up (state and logs in .dev/):"
  log "$(printf '  %-11s %-16s %s' postgresql "127.0.0.1:$RT_PG_PORT" "$RATCHET_DATABASE_URL")"
  log "$(printf '  %-11s %-16s %s' nats "127.0.0.1:$RT_NATS_PORT" "$RT_NATS_URL (JetStream; monitor http://127.0.0.1:$mon)")"
  log "$(printf '  %-11s %-16s %s' rabbitmq "127.0.0.1:$RT_AMQP_PORT" "$RT_AMQP_URL")"
  log "$(printf '  %-11s %-16s %s' ratchet "$RATCHET_HTTP_ADDR" "http://$RATCHET_HTTP_ADDR  pid $(serve_pid), log .dev/ratchet.log")"
  log "dashboard: http://$RATCHET_HTTP_ADDR/"
  log "use it:   source .dev/env && build/ratchet runs"
  log "stop it:  scripts/dev.sh down        (what runs: scripts/dev.sh status)"
  ((demo_rc == 0)) || die "the stack is up, but the demo run failed (see above and .dev/ratchet.log)"
}

cmd_down() {
  local purge=0
  case ${1:-} in
    "") ;;
    --purge) purge=1 ;;
    *) die "down: unknown option $1" ;;
  esac
  if [[ -d $DEV ]]; then
    serve_stop
    rt_services_stop "$DEV"
    log "stopped (data kept in .dev/)"
  else
    log "nothing to stop (no .dev/)"
  fi
  if ((purge)) && [[ -d $DEV ]]; then
    rm -rf "$DEV"
    log "deleted .dev/"
  fi
}

cmd_status() {
  [[ -f $DEV/env ]] || { log "no stack here (run scripts/dev.sh up)"; return 0; }
  rt_services_status "$DEV" | prefix
  local pid addr state health=""
  pid=$(serve_pid); addr=$(rt_env_get "$DEV" RATCHET_HTTP_ADDR)
  if rt_pid_alive "$pid"; then
    state=running
    if health=$(curl -fsS -m 2 -o /dev/null -w '%{http_code}' "http://$addr/healthz" 2>/dev/null); then
      health="(healthz: $health)"
    else
      health="(healthz: no answer)"
    fi
  else
    state=stopped
  fi
  printf '%-11s %-8s pid %-8s %-16s %s\n' ratchet "$state" "${pid:--}" "${addr:--}" "http://$addr $health" | prefix
}

# --- test -----------------------------------------------------------------------------

TEST_TMP=
SUITES=()
declare -A RESULT=() SECS=()
LAST_RC=0

test_teardown() { # stops the test servers, removes the scratch dir; idempotent
  [[ -n $TEST_TMP && -d $TEST_TMP ]] || return 0
  # serve processes of integration tests that ctest killed (timeout) before their trap ran
  local f pid
  for f in "$TEST_TMP"/tests/*/.serve-pids; do
    [[ -f $f ]] || continue
    while read -r pid; do
      if rt_pid_alive "$pid" && [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == */ratchet ]]; then
        log "killing leftover ratchet serve pid $pid ($f)"
        kill -KILL "$pid" 2>/dev/null || true
      fi
    done <"$f"
  done
  rt_services_stop "$TEST_TMP/services" || true
  rm -rf "$TEST_TMP"
  TEST_TMP=
}

test_cleanup() {
  local rc=$?
  set +e
  trap - INT TERM
  test_teardown
  exit "$rc"
}

# step NAME CMD...: runs CMD in a subshell with set -e in force, records PASS/FAIL and
# seconds, never fails itself (result in LAST_RC).
step() {
  local name=$1; shift
  local t0; t0=$(rt__now_ms)
  log "==> $name"
  set +e
  (set -e; "$@")
  LAST_RC=$?
  set -e
  SUITES+=("$name")
  SECS[$name]=$(rt__secs_since "$t0")
  if ((LAST_RC == 0)); then RESULT[$name]=PASS; else RESULT[$name]=FAIL; fi
  log "<== $name: ${RESULT[$name]} (${SECS[$name]} s)"
}

not_run() { # NAME WHY: a suite that could not run counts as a failure
  SUITES+=("$1"); RESULT[$1]="NOT RUN"; SECS[$1]=0
  log "<== $1: NOT RUN ($2)"
  echo "0 1" >>"$TEST_TMP/counts"
}

# run_ctest NAME BUILD_DIR [ctest args...]: fails on a failed, skipped or not-run test,
# or when no test ran.
run_ctest() {
  local name=$1 dir=$2; shift 2
  local out=$TEST_TMP/$name.log rc=0
  ctest --test-dir "$dir" --no-tests=error "$@" 2>&1 | tee "$out" || rc=$?
  local line pass=0 fail=0
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$out" | tail -n1 || true)
  if [[ $line =~ ([0-9]+)\ tests?\ failed\ out\ of\ ([0-9]+) ]]; then
    fail=${BASH_REMATCH[1]}; pass=$((BASH_REMATCH[2] - fail))
  elif ((rc != 0)); then
    fail=1
  fi
  local skipped
  skipped=$(grep -cE '^[[:space:]]+[0-9]+ - .*\((Skipped|Disabled)\)$' "$out" || true)
  pass=$((pass > skipped ? pass - skipped : 0)); fail=$((fail + skipped)) # ctest counts skips as passes
  if grep -nE '\*\*\*Skipped|\*\*\*Not Run|\(Skipped\)|\(Not Run\)|tests did not run' "$out" >"$TEST_TMP/$name.skips"; then
    log "error: ctest reports skipped or not-run tests; a skipped test is not a pass:"
    prefix <"$TEST_TMP/$name.skips"
    rc=1
  fi
  # A cmocka skip() inside a passing test binary shows only in the full log.
  if [[ -f $dir/Testing/Temporary/LastTest.log ]] &&
    grep -nF '[  SKIPPED ]' "$dir/Testing/Temporary/LastTest.log" >"$TEST_TMP/$name.cmocka-skips"; then
    log "error: cmocka tests were skipped (see ${dir#"$ROOT"/}/Testing/Temporary/LastTest.log):"
    prefix <"$TEST_TMP/$name.cmocka-skips"
    rc=1
  fi
  echo "$pass $fail" >>"$TEST_TMP/counts"
  return "$rc"
}

sanitizer_env() {
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
}

build_fuzz() {
  export CC=clang
  configure_and_build build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRATCHET_FUZZ=ON \
    -DRATCHET_SANITIZE=ON -DRATCHET_TESTS=OFF
}

ctest_asan() { sanitizer_env; run_ctest ctest-asan "$ROOT/build-asan" "$@"; }

# --- fuzzing ----------------------------------------------------------------------------
# CI (`test`) fuzzes deterministically: a fixed seed and a fixed number of executions over
# the checked-in corpus plus every past crash, so the verdict is the same on any machine,
# however fast. Exploration with random seeds is `fuzz`, which a developer runs and whose
# finds (new corpus entries, new crashes) are committed. See tests/fuzz/README.md.

FUZZ_SEED=1
FUZZ_RUNS_DEFAULT=20000 # each target under ~15 s under ASan on one slow core
FUZZ_LIMITS=(-timeout=25 -rss_limit_mb=2048)

# libFuzzer's compare tables are indexed by code address, so with address-space
# randomization the same seed mutates differently from run to run: CI runs without it.
fuzz_fixed_layout() { # -> the command prefix, one word a line (none when not possible)
  if setarch "$(uname -m)" -R true 2>/dev/null; then
    printf '%s\n' setarch "$(uname -m)" -R
  else
    log "warning: setarch -R does not work here; fuzz runs may differ from run to run" >&2
  fi
}

fuzz_targets() { # -> the built fuzz binaries, one a line
  local bin
  for bin in "$ROOT"/build-fuzz/tests/fuzz/fuzz_*; do
    [[ -f $bin && -x $bin ]] && echo "$bin"
  done
  return 0
}

fuzz_dict() { # NAME -> -dict=... when tests/fuzz/NAME.dict exists
  [[ -f $ROOT/tests/fuzz/$1.dict ]] && echo "-dict=$ROOT/tests/fuzz/$1.dict"
  return 0
}

fuzz_all() {
  local runs=${RATCHET_FUZZ_RUNS:-$FUZZ_RUNS_DEFAULT} bin name
  [[ $runs =~ ^[1-9][0-9]*$ ]] || die "RATCHET_FUZZ_RUNS must be a positive number (got '$runs')"
  local -a bins=()
  mapfile -t bins < <(fuzz_targets)
  for bin in "${bins[@]}"; do
    name=$(basename "$bin")
    step "fuzz:$name" fuzz_one "$bin" "$runs"
    if [[ $LAST_RC == 0 ]]; then echo "1 0" >>"$TEST_TMP/counts"; else echo "0 1" >>"$TEST_TMP/counts"; fi
  done
  ((${#bins[@]})) || log "no fuzz targets in build-fuzz/tests/fuzz/"
}

# fuzz_report NAME LOG ARTIFACTS_DIR RC: the failure report (CI keeps no files, so small
# crash inputs go into the log as base64 too).
fuzz_report() {
  local name=$1 logf=$2 arts=$3 rc=$4 keep=$ROOT/build-fuzz/fuzz-artifacts/$1 a
  mkdir -p "$keep"
  cp -a "$arts/." "$keep/" 2>/dev/null || true
  cp "$logf" "$keep/fuzz.log"
  log "error: $name failed (exit $rc); crash inputs and log kept in ${keep#"$ROOT"/}; the report:"
  grep -vE '^#[0-9]+[[:space:]]' "$logf" | tail -n 60 | prefix # without the progress lines
  for a in "$arts"/*; do
    [[ -f $a && $(stat -c %s "$a") -le 4096 ]] && log "$(basename "$a") (base64): $(base64 -w0 "$a")"
  done
  log "add the input to tests/fuzz/crashes/$name/ and a unit test case, then fix the cause"
}

# fuzz_one BINARY RUNS: replays every past crash (each file once), then fuzzes with
# -seed=1 for RUNS executions from the checked-in corpus plus the crashes.
fuzz_one() {
  local bin=$1 runs=$2 name work rc=0
  name=$(basename "$bin")
  work=$TEST_TMP/fuzz/$name
  mkdir -p "$work/corpus" "$work/artifacts"
  [[ -d $ROOT/tests/fuzz/corpus/$name ]] && cp -a "$ROOT/tests/fuzz/corpus/$name/." "$work/corpus/"
  sanitizer_env
  local -a extra=() crashes=() fixed=()
  mapfile -t extra < <(fuzz_dict "$name")
  mapfile -t fixed < <(fuzz_fixed_layout)
  local cdir=$ROOT/tests/fuzz/crashes/$name
  [[ -d $cdir ]] && mapfile -t crashes < <(find "$cdir" -type f ! -name '.*' | sort)
  if ((${#crashes[@]})); then
    log "$name: replaying ${#crashes[@]} past crash inputs from tests/fuzz/crashes/$name"
    { "${fixed[@]}" "$bin" "${FUZZ_LIMITS[@]}" -artifact_prefix="$work/artifacts/" "${crashes[@]}" \
      >"$work/replay.log" 2>&1; } 2>/dev/null || rc=$?
    if ((rc != 0)); then
      fuzz_report "$name" "$work/replay.log" "$work/artifacts" "$rc"
      return 1
    fi
  fi
  local -a dirs=("$work/corpus")
  ((${#crashes[@]})) && dirs+=("$cdir") # read-only: libFuzzer writes only to the first dir
  log "$name: -seed=$FUZZ_SEED -runs=$runs on a copy of tests/fuzz/corpus/$name ($(find "$work/corpus" -type f | wc -l) inputs) + ${#crashes[@]} crashes"
  # -reload=0: nothing else writes the corpus, and a timed re-read must not change the run;
  # no address randomization (fuzz_fixed_layout): the same input sequence on every run.
  # (the group's 2>/dev/null only silences bash's own "Aborted" notice)
  { "${fixed[@]}" "$bin" -seed="$FUZZ_SEED" -runs="$runs" -reload=0 "${FUZZ_LIMITS[@]}" -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" "${extra[@]}" "${dirs[@]}" >"$work/log" 2>&1; } 2>/dev/null || rc=$?
  if ((rc != 0)) || [[ -n $(ls -A "$work/artifacts") ]]; then
    fuzz_report "$name" "$work/log" "$work/artifacts" "$rc"
    return 1
  fi
  # The same on every machine and every run: executions and the coverage reached (the
  # speed and memory that libFuzzer prints on the same line are left out).
  local done_line
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$work/log" | tail -n1 | sed -E 's/[[:space:]]+(exec\/s|rss):.*//' || true)
  log "$name: ${done_line:-no DONE line}; $(grep -E '^stat::number_of_executed_units' "$work/log" | head -n1 || true)"
}

# --- fuzz (exploration) -------------------------------------------------------------------

cmd_fuzz() {
  local minutes=10
  local -a names=()
  while (($#)); do
    case $1 in
      --minutes) (($# >= 2)) || die "fuzz: --minutes needs a number"; minutes=$2; shift ;;
      --minutes=*) minutes=${1#--minutes=} ;;
      -*) die "fuzz: unknown option $1 (see scripts/dev.sh help)" ;;
      *) names+=("$1") ;;
    esac
    shift
  done
  [[ $minutes =~ ^[1-9][0-9]*$ ]] || die "fuzz: --minutes must be a positive whole number (got '$minutes')"
  need_root
  rt_deps_install
  log "building build-fuzz/ (clang, libFuzzer, ASan+UBSan)"
  build_fuzz
  local -a bins=()
  local name
  if ((${#names[@]})); then
    for name in "${names[@]}"; do
      [[ -x $ROOT/build-fuzz/tests/fuzz/$name ]] ||
        die "no fuzz target $name in build-fuzz/tests/fuzz/ (the targets are tests/fuzz/fuzz_*.c)"
      bins+=("$ROOT/build-fuzz/tests/fuzz/$name")
    done
  else
    mapfile -t bins < <(fuzz_targets)
  fi
  ((${#bins[@]})) || die "no fuzz targets in build-fuzz/tests/fuzz/"
  TEST_TMP=$(mktemp -d /tmp/ratchet-fuzz.XXXXXX)
  trap 'rm -rf "$TEST_TMP"' EXIT
  local bin summary=() rc=0
  for bin in "${bins[@]}"; do
    explore_one "$bin" "$minutes" || rc=1
    summary+=("$EXPLORE_SUMMARY")
  done
  log ""
  log "$(printf '%-16s %8s %12s %12s %8s' target seconds executions new-corpus crashes)"
  local line; for line in "${summary[@]}"; do log "$line"; done
  if git -C "$ROOT" status --porcelain -- tests/fuzz | grep -q .; then
    log ""
    log "new files to commit (git add tests/fuzz):"
    git -C "$ROOT" status --porcelain -- tests/fuzz | prefix
    log "a crash also needs its cause fixed and a unit test case before the commit"
  else
    log "nothing new: the corpus and the crash list are unchanged"
  fi
  return "$rc"
}

EXPLORE_SUMMARY=
# explore_one BINARY MINUTES: a random seed for MINUTES (or until the first crash), then
# new crashes go to tests/fuzz/crashes/NAME/ and the new inputs are merged (libFuzzer
# merge: only those that reach new code) into tests/fuzz/corpus/NAME/.
explore_one() {
  local bin=$1 minutes=$2 name work rc=0 seed
  name=$(basename "$bin")
  work=$TEST_TMP/$name
  local corpus=$ROOT/tests/fuzz/corpus/$name cdir=$ROOT/tests/fuzz/crashes/$name
  mkdir -p "$work/corpus" "$work/artifacts" "$corpus"
  cp -a "$corpus/." "$work/corpus/"
  local -a dirs=("$work/corpus") # new inputs land in the first dir only
  [[ -d $cdir ]] && dirs+=("$cdir")
  seed=$(( (RANDOM << 15 | RANDOM) + 2 )) # never 1, CI's seed
  sanitizer_env
  local -a extra=()
  mapfile -t extra < <(fuzz_dict "$name")
  log "$name: $minutes min, -seed=$seed (nice), from $(find "${dirs[@]}" -type f | wc -l) inputs (corpus + crashes)"
  local t0=$SECONDS
  { nice -n 10 "$bin" -seed="$seed" -max_total_time=$((minutes * 60)) "${FUZZ_LIMITS[@]}" -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" "${extra[@]}" "${dirs[@]}" >"$work/log" 2>&1; } 2>/dev/null || rc=$?
  local secs=$((SECONDS - t0)) execs
  execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$work/log" | head -n1)
  [[ -n $execs ]] || execs=$(grep -oE '^#[0-9]+' "$work/log" | tail -n1 | tr -d '#')
  cp "$work/log" "$ROOT/build-fuzz/$name.explore.log"

  local a ncrash=0
  for a in "$work"/artifacts/*; do
    [[ -f $a ]] || continue
    mkdir -p "$cdir"
    if [[ ! -e $cdir/$(basename "$a") ]]; then
      cp "$a" "$cdir/"
      ncrash=$((ncrash + 1))
      log "$name: NEW CRASH tests/fuzz/crashes/$name/$(basename "$a") (base64 $(base64 -w0 "$a" | head -c 200))"
    fi
  done
  if ((rc != 0)); then
    log "$name: the fuzzer stopped with exit $rc after $secs s; the report (full log: build-fuzz/$name.explore.log):"
    grep -vE '^#[0-9]+[[:space:]]' "$work/log" | tail -n 40 | prefix
  fi

  # Keep the corpus small: only inputs that reach new code (edges, not hit counts:
  # -use_counters=0), and the fewest of them (set cover; plain -merge=1 where the
  # libFuzzer is too old to have it).
  local before after added merge=-merge=1
  "$bin" -help=1 2>&1 | grep -q '^ *set_cover_merge' && merge=-set_cover_merge=1
  before=$(find "$corpus" -type f | wc -l)
  { nice -n 10 "$bin" "$merge" -use_counters=0 "${FUZZ_LIMITS[@]}" -artifact_prefix="$work/merge-" "$corpus" \
    "$work/corpus" >"$work/merge.log" 2>&1; } 2>/dev/null ||
    log "$name: warning: the merge exited non-zero (see $work/merge.log)"
  after=$(find "$corpus" -type f | wc -l)
  added=$((after - before))
  log "$name: merged $added new inputs into tests/fuzz/corpus/$name ($before -> $after)"
  EXPLORE_SUMMARY=$(printf '%-16s %8s %12s %12s %8s' "$name" "$secs" "${execs:-?}" "$added" "$ncrash")
  ((rc == 0 && ncrash == 0))
}

# Prints the table and, as the very last line, "N passed, N failed" (tests, fuzz targets
# and failed steps). Status 1 when anything failed. Reads the counts given as arguments.
print_summary() { # PASS FAIL
  local n pass=$1 fail=$2 failed=0
  log ""
  log "$(printf '%-34s %-8s %8s' suite result seconds)"
  for n in "${SUITES[@]}"; do
    log "$(printf '%-34s %-8s %8s' "$n" "${RESULT[$n]}" "${SECS[$n]}")"
    [[ ${RESULT[$n]} == PASS ]] || failed=1
  done
  log ""
  echo "dev.sh: $pass passed, $fail failed"
  return $((failed || fail))
}

count_results() { # -> "PASS FAIL" from the counts file and the failed steps
  local n p f pass=0 fail=0
  if [[ -f $TEST_TMP/counts ]]; then
    while read -r p f; do pass=$((pass + p)); fail=$((fail + f)); done <"$TEST_TMP/counts"
  fi
  for n in "${SUITES[@]}"; do # a failed build or service start counts as one failure
    case $n in ctest:* | fuzz:*) ;; *) [[ ${RESULT[$n]} == PASS ]] || fail=$((fail + 1)) ;; esac
  done
  echo "$pass $fail"
}

start_test_services() {
  rt_services_start "$TEST_TMP/services"
}

cmd_test() {
  local quick=0 regex=""
  while (($#)); do
    case $1 in
      --quick) quick=1 ;;
      -R) (($# >= 2)) || die "test: -R needs a REGEX"; regex=$2; shift ;;
      -R*) regex=${1#-R} ;;
      *) die "test: unknown argument $1 (see scripts/dev.sh help)" ;;
    esac
    shift
  done
  need_root
  TEST_TMP=$(mktemp -d /tmp/ratchet-test.XXXXXX)
  chmod 755 "$TEST_TMP"
  : >"$TEST_TMP/counts"
  trap test_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  local t_all; t_all=$(rt__now_ms)

  step deps rt_deps_install
  [[ $LAST_RC == 0 ]] || { print_summary 0 1 || true; die "cannot install the packages"; }

  step layers python3 "$ROOT/scripts/check-layers.py" # no include points up (STYLE §1)
  step build configure_and_build build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRATCHET_WERROR=ON
  local build_ok=$LAST_RC asan_ok=1 fuzz_ok=1
  if ((!quick)); then
    step build-asan configure_and_build build-asan -DCMAKE_BUILD_TYPE=Debug -DRATCHET_WERROR=ON -DRATCHET_SANITIZE=ON
    asan_ok=$LAST_RC
    step build-fuzz build_fuzz
    fuzz_ok=$LAST_RC
  fi

  mkdir -p "$TEST_TMP/services"
  # The servers are for the full ctest run (build-asan, or build with --quick).
  local t0 svc_rc=0 want_svc
  if ((quick)); then want_svc=$((build_ok == 0)); else want_svc=$((asan_ok == 0)); fi
  if ((want_svc)); then
    # Not a subshell step: the exports must reach ctest.
    t0=$(rt__now_ms)
    log "==> services"
    start_test_services || svc_rc=$?
    SUITES+=(services); SECS[services]=$(rt__secs_since "$t0")
    if ((svc_rc == 0)); then RESULT[services]=PASS; else RESULT[services]=FAIL; fi
    log "<== services: ${RESULT[services]} (${SECS[services]} s)"
  fi

  export RATCHET_TEST_DATABASE_URL=${RT_PG_URL:-} RATCHET_TEST_AMQP_URL=${RT_AMQP_URL:-}
  export RATCHET_TEST_NATS_URL=${RT_NATS_URL:-} RATCHET_TEST_NATS_MON_PORT=${RT_NATS_MON_PORT:-}
  export RATCHET_TEST_STATE_DIR=$TEST_TMP/services RATCHET_TEST_TMPDIR=$TEST_TMP/tests
  mkdir -p "$RATCHET_TEST_TMPDIR"
  local -a filt=()
  [[ -n $regex ]] && filt=(-R "$regex")

  if ((quick)); then
    if ((build_ok != 0)); then not_run ctest:build "build failed"
    elif ((svc_rc != 0)); then not_run ctest:build "services failed"
    else step ctest:build run_ctest ctest-build "$ROOT/build" --output-on-failure -j2 "${filt[@]}"; fi
  else
    if ((asan_ok != 0)); then not_run ctest:build-asan "build-asan failed"
    elif ((svc_rc != 0)); then not_run ctest:build-asan "services failed"
    else
      step ctest:build-asan ctest_asan --output-on-failure -j2 "${filt[@]}"
    fi
    if ((build_ok != 0)); then not_run ctest:build-unit "build failed"
    else
      local -a nt=()
      [[ -n $regex ]] && nt=(--no-tests=ignore) # a filter may leave no unit test
      step ctest:build-unit run_ctest ctest-unit "$ROOT/build" -L unit --output-on-failure "${filt[@]}" "${nt[@]}"
    fi
    if ((fuzz_ok != 0)); then not_run "fuzz:(all targets)" "build-fuzz failed"
    else fuzz_all; fi
  fi

  local counts rc=0
  counts=$(count_results)
  test_teardown
  log "total $(rt__secs_since "$t_all") s"
  # shellcheck disable=SC2086
  print_summary $counts || rc=1
  return $rc
}

main() {
  local cmd=${1:-help}
  (($#)) && shift
  case $cmd in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    status) cmd_status "$@" ;;
    test) cmd_test "$@" ;;
    fuzz) cmd_fuzz "$@" ;;
    help | -h | --help) usage ;;
    *) usage >&2; die "unknown command '$cmd'" ;;
  esac
}

main "$@"
