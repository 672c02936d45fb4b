#!/usr/bin/env bash
# bench/compare.sh — ratchet side by side with graphile-worker and pg-boss on the same
# PostgreSQL.
#
#   bench/compare.sh [--jobs N] [--workers W] [--repeats R]
#                    [--graphile default|batched|both|none] [--pgboss-batch B|0]
#                    [--only ratchet|graphile|pgboss]
#
# Each side drains N preloaded no-op jobs (ratchet: runs of a one-step no-op workflow,
# `ratchet bench --steps 1`; graphile-worker: jobs of a no-op task, peers/graphile_bench.js)
# with W concurrent workers, from a fresh database. graphile-worker runs in two set-ups:
# "default" (its defaults: one fetch and one completion transaction per job) and
# "batched" (its documented performance set-up: localQueue size 500, completeJobBatchDelay
# and failJobBatchDelay 0); --graphile picks one or both (default both). pg-boss drains
# with its batch API: W loops of fetch(queue, {batchSize B}) + complete(queue, ids), B 500
# by default (peers/pgboss_bench.js; --pgboss-batch 0 leaves it out). The sides alternate
# (ratchet, graphile, graphile batched, pg-boss, ratchet, ...) R times each (default 3)
# so that a burst of noise from the machine hits all of them, and the medians and the
# ratios of ratchet's median to each are reported: a readable table, then one JSON line
# (the last line of stdout).
#
# The server: $RATCHET_DATABASE_URL (a postgresql:// URI; the user must be allowed to
# create databases) or, when it is unset, a throwaway PostgreSQL started on a free
# 127.0.0.1 port in a temp dir with scripts/lib/services.sh (needs root and the
# `postgresql` Debian package) and stopped at exit. synchronous_commit is left as the
# server has it (on by default) and reported.
#
# Environment: RATCHET_BIN (default build/ratchet), RATCHET_DATABASE_URL, NODE (default
# node), RUN_TIMEOUT (seconds one drain may take before it is killed; default 900).
# RATCHET_BASELINE_BIN: a second ratchet binary (e.g. a build of main) drained in the same
# rounds right after RATCHET_BIN and reported as "ratchet baseline", with the ratio of the
# two: a before/after comparison under the same noise.
# Progress goes to stderr; the table and the JSON line to stdout.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(cd "$BENCH_DIR/.." && pwd -P)
PEERS=$BENCH_DIR/peers
RATCHET_BIN=${RATCHET_BIN:-$ROOT/build/ratchet}
NODE=${NODE:-node}
RUN_TIMEOUT=${RUN_TIMEOUT:-900}
BASELINE_BIN=${RATCHET_BASELINE_BIN:-}

JOBS=20000
WORKERS=8
REPEATS=3
ONLY=
GRAPHILE_ARG=both
PGBOSS_BATCH=500

usage() {
  sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}
say() { echo "compare: $*" >&2; }
die() { echo "compare: error: $*" >&2; exit 1; }

while (($#)); do
  case $1 in
    --jobs) JOBS=${2:-}; shift 2 || die "--jobs needs a value" ;;
    --jobs=*) JOBS=${1#*=}; shift ;;
    --workers) WORKERS=${2:-}; shift 2 || die "--workers needs a value" ;;
    --workers=*) WORKERS=${1#*=}; shift ;;
    --repeats) REPEATS=${2:-}; shift 2 || die "--repeats needs a value" ;;
    --repeats=*) REPEATS=${1#*=}; shift ;;
    --graphile) GRAPHILE_ARG=${2:-}; shift 2 || die "--graphile needs a value" ;;
    --graphile=*) GRAPHILE_ARG=${1#*=}; shift ;;
    --pgboss-batch) PGBOSS_BATCH=${2:-}; shift 2 || die "--pgboss-batch needs a value" ;;
    --pgboss-batch=*) PGBOSS_BATCH=${1#*=}; shift ;;
    --only) ONLY=${2:-}; shift 2 || die "--only needs a value" ;;
    --only=*) ONLY=${1#*=}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || die "--jobs must be a positive integer (got '$JOBS')"
[[ $WORKERS =~ ^[1-9][0-9]*$ ]] || die "--workers must be a positive integer (got '$WORKERS')"
[[ $REPEATS =~ ^[1-9][0-9]*$ ]] || die "--repeats must be a positive integer (got '$REPEATS')"
[[ $RUN_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "RUN_TIMEOUT must be a positive integer (got '$RUN_TIMEOUT')"
[[ $PGBOSS_BATCH =~ ^[0-9]+$ ]] || die "--pgboss-batch must be a non-negative integer (got '$PGBOSS_BATCH')"
case $ONLY in ''|ratchet|graphile|pgboss) ;; *) die "--only must be ratchet, graphile or pgboss (got '$ONLY')" ;; esac
case $GRAPHILE_ARG in
  default) GRAPHILE_MODES=(default) ;;
  batched) GRAPHILE_MODES=(batched) ;;
  both) GRAPHILE_MODES=(default batched) ;;
  none) GRAPHILE_MODES=() ;;
  *) die "--graphile must be default, batched, both or none (got '$GRAPHILE_ARG')" ;;
esac
RUN_RATCHET=1 RUN_GRAPHILE=1 RUN_PGBOSS=1
((${#GRAPHILE_MODES[@]})) || RUN_GRAPHILE=0
((PGBOSS_BATCH > 0)) || RUN_PGBOSS=0
[[ -n $ONLY && $ONLY != ratchet ]] && RUN_RATCHET=0
[[ -n $ONLY && $ONLY != graphile ]] && RUN_GRAPHILE=0
[[ -n $ONLY && $ONLY != pgboss ]] && RUN_PGBOSS=0
((RUN_RATCHET + RUN_GRAPHILE + RUN_PGBOSS)) || die "nothing to run (--only, --graphile none, --pgboss-batch 0)"

# --- preflight: everything that can be missing is reported before any server starts ---

command -v "$NODE" >/dev/null || die "node not found (the peers need Node.js 20: apt-get install nodejs npm)"
command -v psql >/dev/null || die "psql not found (apt-get install postgresql-client)"

if ((RUN_RATCHET)) && [[ -n $BASELINE_BIN ]]; then
  [[ -x $BASELINE_BIN ]] || die "RATCHET_BASELINE_BIN is not an executable: $BASELINE_BIN"
fi
if ((RUN_RATCHET)); then
  [[ -x $RATCHET_BIN ]] || die "ratchet binary not found at $RATCHET_BIN; build it first
         (cmake -S . -B build && cmake --build build) or set RATCHET_BIN"
  # `ratchet help` lists the commands; `bench` must be one of them.
  # (captured first: grep -q stops reading early, and under pipefail the writer's SIGPIPE
  # would fail the check)
  HELP_TEXT=$("$RATCHET_BIN" help 2>/dev/null || true)
  if ! grep -Eq '^[[:space:]]+bench([[:space:]]|$)' <<<"$HELP_TEXT"; then
    die "'$RATCHET_BIN' has no 'bench' command ('ratchet bench' is missing from
         '$RATCHET_BIN help'): rebuild ratchet from a tree that has it, point RATCHET_BIN
         at such a binary, or run only the peer with --only graphile"
  fi
fi

if ((RUN_GRAPHILE + RUN_PGBOSS)) && { [[ ! -f $PEERS/node_modules/graphile-worker/package.json ]] ||
  [[ ! -f $PEERS/node_modules/pg-boss/package.json ]]; }; then
  command -v npm >/dev/null || die "npm not found (apt-get install npm)"
  say "installing the peers' node modules (npm ci in bench/peers)"
  (cd "$PEERS" && npm ci --no-audit --no-fund --loglevel=error >&2) ||
    (cd "$PEERS" && npm install --no-audit --no-fund --loglevel=error >&2) ||
    die "npm could not install bench/peers' dependencies"
fi

# --- the server -----------------------------------------------------------------------

TMP=$(mktemp -d /tmp/ratchet-compare.XXXXXX)
chmod 755 "$TMP"
PG_DIR=
SERVER_URL=
DBS=()

cleanup() {
  local rc=$?
  set +e
  if [[ -n $SERVER_URL ]]; then
    local db
    for db in "${DBS[@]}"; do
      psql "$SERVER_URL" -q -X -v ON_ERROR_STOP=1 -c "drop database if exists \"$db\" with (force)" \
        >/dev/null 2>&1 || say "could not drop database $db"
    done
  fi
  if [[ -n $PG_DIR ]]; then
    RT_LOG_PREFIX="compare:" rt_pg_stop "$PG_DIR"
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -n ${RATCHET_DATABASE_URL:-} ]]; then
  SERVER_URL=$RATCHET_DATABASE_URL
  say "using the server of RATCHET_DATABASE_URL"
else
  # shellcheck disable=SC1091 # scripts/lib/services.sh
  source "$ROOT/scripts/lib/services.sh"
  ((EUID == 0)) || die "starting a throwaway PostgreSQL needs root (runuser -u postgres);
         or set RATCHET_DATABASE_URL to a server where you may create databases"
  PG_DIR=$TMP/state
  RT_LOG_PREFIX="compare:" rt_pg_start "$PG_DIR" || die "could not start PostgreSQL"
  SERVER_URL=$RT_PG_URL
fi

# The server URL with its database replaced by NAME (postgresql:// URIs only).
db_url() { # NAME
  "$NODE" -e '
    const u = new URL(process.argv[1]);
    if (!/^postgres(ql)?:$/.test(u.protocol)) { console.error("not a postgresql:// URI"); process.exit(1); }
    u.pathname = "/" + encodeURIComponent(process.argv[2]);
    console.log(u.toString());' "$SERVER_URL" "$1" ||
    die "RATCHET_DATABASE_URL must be a postgresql://user@host:port/db URI"
}
q() { PGOPTIONS="-c client_min_messages=warning" psql "$SERVER_URL" -q -X -A -t -v ON_ERROR_STOP=1 -c "$1"; }

PG_VERSION=$(q "show server_version") || die "cannot connect to PostgreSQL at the server URL"
SYNC_COMMIT=$(q "show synchronous_commit")
[[ $SYNC_COMMIT == on ]] || say "warning: synchronous_commit is '$SYNC_COMMIT' on this server (the default is on)"

RATCHET_DB=ratchet_cmp_$$
GRAPHILE_DB=graphile_cmp_$$
PGBOSS_DB=pgboss_cmp_$$
RATCHET_URL=$(db_url "$RATCHET_DB")
GRAPHILE_URL=$(db_url "$GRAPHILE_DB")
PGBOSS_URL=$(db_url "$PGBOSS_DB")
fresh_db() { # NAME: (re)creates an empty database
  DBS+=("$1")
  if ! q "drop database if exists \"$1\" with (force)" >/dev/null ||
    ! q "create database \"$1\"" >/dev/null; then
    die "cannot create database $1"
  fi
}
((RUN_RATCHET)) && fresh_db "$RATCHET_DB"

RATCHET_VERSION=
if ((RUN_RATCHET)); then
  RATCHET_VERSION=$("$RATCHET_BIN" version 2>/dev/null | awk '{print $NF; exit}') || true
fi
GRAPHILE_VERSION=
if ((RUN_GRAPHILE)); then
  GRAPHILE_VERSION=$(cd "$PEERS" && "$NODE" -p 'require("graphile-worker/package.json").version')
fi
PGBOSS_VERSION=
if ((RUN_PGBOSS)); then
  PGBOSS_VERSION=$(cd "$PEERS" && "$NODE" -p 'require("pg-boss/package.json").version')
fi

say "PostgreSQL $PG_VERSION, synchronous_commit=$SYNC_COMMIT; $JOBS jobs, $WORKERS workers, $REPEATS rounds"

# Shows the end of a failed side's output: FILE...
show_tail() {
  local f
  for f in "$@"; do
    [[ -s $f ]] || continue
    echo "  --- last lines of $(basename "$f") ($(wc -l <"$f") lines):" >&2
    tail -n 30 "$f" | cut -c1-300 | sed 's/^/    /' >&2
  done
}
# Runs a drain under RUN_TIMEOUT; exit 124 when it took too long.
timed() { timeout --kill-after=10 "$RUN_TIMEOUT" "$@"; }

# The last line of FILE that is a JSON object holding KEY; empty if none.
json_line() { # FILE KEY
  grep -E '^\{.*"'"$2"'"' "$1" | tail -n1 || true
}

RESULTS=$TMP/results.jsonl
: >"$RESULTS"

run_ratchet() { # ROUND [SIDE BIN]
  local side=${2:-ratchet} bin=${3:-$RATCHET_BIN}
  local out=$TMP/$side.$1.out err=$TMP/$side.$1.err line
  q "checkpoint" >/dev/null 2>&1 || true
  say "round $1: $side: $bin bench --runs $JOBS --steps 1 --workers $WORKERS"
  local rc=0
  RATCHET_DATABASE_URL=$RATCHET_URL RATCHET_WORKERS=$WORKERS \
    timed "$bin" bench --runs "$JOBS" --steps 1 --workers "$WORKERS" --json >"$out" 2>"$err" || rc=$?
  if ((rc)); then
    show_tail "$err" "$out"
    ((rc == 124)) && die "'ratchet bench' did not finish within RUN_TIMEOUT=$RUN_TIMEOUT s (round $1)"
    die "'ratchet bench' failed with exit code $rc (round $1); the end of its output is above"
  fi
  line=$(json_line "$out" runs_per_s)
  [[ -n $line ]] || { show_tail "$out" "$err"; die "'ratchet bench --json' printed no JSON result line"; }
  say "  $line"
  printf '{"side":"%s","round":%d,"r":%s}\n' "$side" "$1" "$line" >>"$RESULTS"
}

run_graphile() { # MODE ROUND
  local mode=$1 round=$2 out=$TMP/graphile.$1.$2.out err=$TMP/graphile.$1.$2.err line
  local -a knobs=(GRAPHILE_LOCAL_QUEUE_SIZE=-1 GRAPHILE_COMPLETE_BATCH_DELAY_MS=-1
    GRAPHILE_FAIL_BATCH_DELAY_MS=-1)
  [[ $mode == batched ]] && knobs=(GRAPHILE_LOCAL_QUEUE_SIZE=500 GRAPHILE_COMPLETE_BATCH_DELAY_MS=0
    GRAPHILE_FAIL_BATCH_DELAY_MS=0)
  fresh_db "$GRAPHILE_DB"
  q "checkpoint" >/dev/null 2>&1 || true
  say "round $round: graphile-worker $GRAPHILE_VERSION ($mode), $JOBS jobs, concurrency $WORKERS"
  local rc=0
  timed env "${knobs[@]}" DATABASE_URL="$GRAPHILE_URL" JOBS="$JOBS" CONCURRENCY="$WORKERS" \
    TIMEOUT_S="$RUN_TIMEOUT" "$NODE" "$PEERS/graphile_bench.js" >"$out" 2>"$err" || rc=$?
  if ((rc)); then
    show_tail "$err" "$out"
    ((rc == 124)) && die "graphile_bench.js ($mode) did not finish within RUN_TIMEOUT=$RUN_TIMEOUT s (round $round)"
    die "graphile_bench.js ($mode) failed with exit code $rc (round $round); the end of its output is above"
  fi
  line=$(json_line "$out" jobs_per_s)
  [[ -n $line ]] || { show_tail "$out" "$err"; die "graphile_bench.js printed no JSON result line"; }
  say "  $line"
  printf '{"side":"graphile-%s","round":%d,"r":%s}\n' "$mode" "$round" "$line" >>"$RESULTS"
  q "drop database if exists \"$GRAPHILE_DB\" with (force)" >/dev/null || true
}

run_pgboss() { # ROUND
  local round=$1 out=$TMP/pgboss.$1.out err=$TMP/pgboss.$1.err line
  fresh_db "$PGBOSS_DB"
  q "checkpoint" >/dev/null 2>&1 || true
  say "round $round: pg-boss $PGBOSS_VERSION (batch $PGBOSS_BATCH), $JOBS jobs, concurrency $WORKERS"
  local rc=0
  timed env DATABASE_URL="$PGBOSS_URL" JOBS="$JOBS" CONCURRENCY="$WORKERS" PGBOSS_BATCH_SIZE="$PGBOSS_BATCH" \
    TIMEOUT_S="$RUN_TIMEOUT" "$NODE" "$PEERS/pgboss_bench.js" >"$out" 2>"$err" || rc=$?
  if ((rc)); then
    show_tail "$err" "$out"
    ((rc == 124)) && die "pgboss_bench.js did not finish within RUN_TIMEOUT=$RUN_TIMEOUT s (round $round)"
    die "pgboss_bench.js failed with exit code $rc (round $round); the end of its output is above"
  fi
  line=$(json_line "$out" jobs_per_s)
  [[ -n $line ]] || { show_tail "$out" "$err"; die "pgboss_bench.js printed no JSON result line"; }
  say "  $line"
  printf '{"side":"pgboss","round":%d,"r":%s}\n' "$round" "$line" >>"$RESULTS"
  q "drop database if exists \"$PGBOSS_DB\" with (force)" >/dev/null || true
}

for ((round = 1; round <= REPEATS; round++)); do
  ((RUN_RATCHET)) && run_ratchet "$round"
  ((RUN_RATCHET)) && [[ -n $BASELINE_BIN ]] && run_ratchet "$round" ratchet-baseline "$BASELINE_BIN"
  if ((RUN_GRAPHILE)); then
    for mode in "${GRAPHILE_MODES[@]}"; do run_graphile "$mode" "$round"; done
  fi
  ((RUN_PGBOSS)) && run_pgboss "$round"
done

# --- report ---------------------------------------------------------------------------

JOBS=$JOBS WORKERS=$WORKERS REPEATS=$REPEATS PG_VERSION=$PG_VERSION SYNC_COMMIT=$SYNC_COMMIT \
  RATCHET_VERSION=$RATCHET_VERSION GRAPHILE_VERSION=$GRAPHILE_VERSION PGBOSS_VERSION=$PGBOSS_VERSION \
  "$NODE" - "$RESULTS" <<'JS'
const fs = require("fs");
const rows = fs.readFileSync(process.argv[2], "utf8").split("\n").filter(Boolean).map(JSON.parse);
const env = process.env;
const n = Number(env.REPEATS);
const median = (xs) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const r1 = (x) => (x == null ? null : Math.round(x * 10) / 10);
const r2 = (x) => (x == null ? null : Math.round(x * 100) / 100);
const r3 = (x) => (x == null ? null : Math.round(x * 1000) / 1000);
const of = (side) => rows.filter((x) => x.side === side).map((x) => x.r);
const col = (xs, k) => xs.map((x) => Number(x[k]));

const ratchetSide = (side) => {
  const r = of(side);
  return r.length ? {
    version: env.RATCHET_VERSION || null,
    runs_per_s_median: r1(median(col(r, "runs_per_s"))),
    seconds_median: r3(median(col(r, "seconds"))),
    claim_p50_ms_median: r2(median(col(r, "claim_p50_ms"))),
    claim_p99_ms_median: r2(median(col(r, "claim_p99_ms"))),
    claim_first_ms_median: r2(median(col(r, "claim_first_ms").filter((x) => !Number.isNaN(x)))),
    runs_per_s: col(r, "runs_per_s"),
  } : null;
};
const ratchet = ratchetSide("ratchet");
const baseline = ratchetSide("ratchet-baseline");
const graphile = (mode) => {
  const g = of(`graphile-${mode}`);
  if (!g.length) return null;
  const out = {
    version: env.GRAPHILE_VERSION || null,
    mode,
    jobs_per_s_median: r1(median(col(g, "jobs_per_s"))),
    seconds_median: r3(median(col(g, "seconds"))),
    jobs_per_s: col(g, "jobs_per_s"),
  };
  if (mode === "batched") {
    out.local_queue_size = g[0].local_queue_size;
    out.complete_job_batch_delay_ms = g[0].complete_job_batch_delay_ms;
    out.fail_job_batch_delay_ms = g[0].fail_job_batch_delay_ms;
  }
  return out;
};
const gd = graphile("default"), gb = graphile("batched");
const pbRows = of("pgboss");
const pb = pbRows.length ? {
  version: env.PGBOSS_VERSION || null,
  mode: "fetch+complete batches",
  batch_size: pbRows[0].batch_size,
  jobs_per_s_median: r1(median(col(pbRows, "jobs_per_s"))),
  seconds_median: r3(median(col(pbRows, "seconds"))),
  jobs_per_s: col(pbRows, "jobs_per_s"),
} : null;
const ratio = (g) => (ratchet && g && g.jobs_per_s_median > 0
  ? r2(ratchet.runs_per_s_median / g.jobs_per_s_median) : null);

const fmt = (v, d = 0) => (v == null || Number.isNaN(v) ? "-" : Number(v).toFixed(d));
const widths = [36, ...Array(n).fill(9), 9, 11];
const line = (cells) => cells.map((c, i) => (i ? String(c).padStart(widths[i]) : String(c).padEnd(widths[0]))).join(" ");
const row = (label, xs, med, secs) =>
  line([label, ...Array.from({ length: n }, (_, i) => fmt(xs[i])), fmt(med), fmt(secs, 2)]);
const out = ["",
  `ratchet vs peers: ${env.JOBS} no-op jobs, ${env.WORKERS} workers, ` +
  `PostgreSQL ${env.PG_VERSION}, synchronous_commit=${env.SYNC_COMMIT}`,
  line(["jobs (runs) per second", ...Array.from({ length: n }, (_, i) => `round ${i + 1}`), "median", "s (median)"])];
if (ratchet) out.push(row(`ratchet ${ratchet.version || ""}`, ratchet.runs_per_s, ratchet.runs_per_s_median, ratchet.seconds_median));
if (baseline) out.push(row("ratchet baseline", baseline.runs_per_s, baseline.runs_per_s_median, baseline.seconds_median));
if (gd) out.push(row(`graphile-worker ${gd.version} default`, gd.jobs_per_s, gd.jobs_per_s_median, gd.seconds_median));
if (gb) out.push(row(`graphile-worker ${gb.version} batched`, gb.jobs_per_s, gb.jobs_per_s_median, gb.seconds_median));
if (pb) out.push(row(`pg-boss ${pb.version} batch ${pb.batch_size}`, pb.jobs_per_s, pb.jobs_per_s_median, pb.seconds_median));
out.push("");
const firstClaim = (side) => (side.claim_first_ms_median == null ? "" :
  ` (a connection's first claim, cold, apart: up to ${fmt(side.claim_first_ms_median, 0)} ms)`);
if (ratchet) out.push(`ratchet claim latency (median over rounds): p50 ${fmt(ratchet.claim_p50_ms_median, 2)} ms, ` +
                      `p99 ${fmt(ratchet.claim_p99_ms_median, 2)} ms` + firstClaim(ratchet));
if (baseline) out.push(`ratchet baseline claim latency: p50 ${fmt(baseline.claim_p50_ms_median, 2)} ms, ` +
                       `p99 ${fmt(baseline.claim_p99_ms_median, 2)} ms` + firstClaim(baseline));
const perRound = (side) => { // median over rounds of ratchet / SIDE in the same round
  const a = of("ratchet"), b = of(side);
  const xs = a.map((x, i) => (b[i] ? x.runs_per_s / (b[i].runs_per_s || b[i].jobs_per_s) : null)).filter((x) => x);
  return xs.length ? r2(median(xs)) : null;
};
if (baseline) out.push(`ratio ratchet / ratchet baseline: ${fmt(ratio({ jobs_per_s_median: baseline.runs_per_s_median }), 2)}x ` +
                       `(median of per-round ratios ${fmt(perRound("ratchet-baseline"), 2)}x)`);
if (gd && ratio(gd) != null) out.push(`ratio ratchet / graphile-worker default: ${ratio(gd).toFixed(2)}x`);
if (gb && ratio(gb) != null) out.push(`ratio ratchet / graphile-worker batched: ${ratio(gb).toFixed(2)}x ` +
                                      `(median of per-round ratios ${fmt(perRound("graphile-batched"), 2)}x)`);
if (pb && ratio(pb) != null) out.push(`ratio ratchet / pg-boss batched: ${ratio(pb).toFixed(2)}x ` +
                                      `(median of per-round ratios ${fmt(perRound("pgboss"), 2)}x)`);
if (ratio(gd) != null || ratio(gb) != null || ratio(pb) != null) out.push("(ratio = median runs/s of ratchet over median jobs/s of the peer; >1 means ratchet drained faster)");
out.push("");
console.log(out.join("\n"));
console.log(JSON.stringify({
  benchmark: "ratchet-vs-peers",
  jobs: Number(env.JOBS),
  workers: Number(env.WORKERS),
  repeats: n,
  postgres: env.PG_VERSION,
  synchronous_commit: env.SYNC_COMMIT,
  ratchet,
  ratchet_baseline: baseline,
  graphile_worker: gd,
  graphile_worker_batched: gb,
  pg_boss: pb,
  ratio_ratchet_over_graphile: ratio(gd),
  ratio_ratchet_over_graphile_batched: ratio(gb),
  ratio_ratchet_over_pg_boss: ratio(pb),
  ratio_ratchet_over_baseline: baseline ? ratio({ jobs_per_s_median: baseline.runs_per_s_median }) : null,
  ratio_ratchet_over_baseline_per_round: baseline ? perRound("ratchet-baseline") : null,
  ratio_ratchet_over_graphile_batched_per_round: gb ? perRound("graphile-batched") : null,
  ratio_ratchet_over_pg_boss_per_round: pb ? perRound("pgboss") : null,
}));
JS
