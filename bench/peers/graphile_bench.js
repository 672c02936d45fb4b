#!/usr/bin/env node
// bench/peers/graphile_bench.js — drain benchmark for graphile-worker, the peer that
// bench/compare.sh runs side by side with `ratchet bench`.
//
//   DATABASE_URL=postgresql://postgres@127.0.0.1:5432/gw JOBS=20000 CONCURRENCY=8 \
//     node bench/peers/graphile_bench.js
//
// 1. installs graphile-worker's schema into DATABASE_URL (runMigrations);
// 2. preloads JOBS jobs of a no-op task with graphile_worker.add_jobs(), a few big
//    statements (not timed);
// 3. starts one worker process (run()) with CONCURRENCY concurrent jobs and times the
//    drain, from just before run() until a separate connection sees the jobs table empty.
//    A job counts as done only when its row has been deleted and that delete committed:
//    graphile-worker emits 'job:success' *before* it deletes the row, so events are used
//    only to know when to start watching the table closely, never as the finish line.
//
// Prints one JSON line on stdout:
//   {"peer":"graphile-worker","version":"0.17.3","jobs":N,"seconds":S,"jobs_per_s":R,"concurrency":C}
// Everything else (progress, warnings) goes to stderr.
//
// Environment:
//   DATABASE_URL      required; the database must not hold pending graphile-worker jobs
//   JOBS              jobs to preload and drain (default 20000)
//   CONCURRENCY       concurrent jobs in the worker (default 8)
//   POLL_INTERVAL_MS  graphile-worker pollInterval (default 100; LISTEN/NOTIFY wakes it)
//   WATCH_MS          period of the "is the table empty yet" check (default 25)
//   TIMEOUT_S         give up after this many seconds of draining (default 600)
//   GRAPHILE_LOCAL_QUEUE_SIZE        >0 enables graphile-worker's batched job fetching
//                                    (preset.worker.localQueue.size; default off)
//   GRAPHILE_COMPLETE_BATCH_DELAY_MS >=0 enables batched completion
//                                    (preset.worker.completeJobBatchDelay; default off)
//   GRAPHILE_FAIL_BATCH_DELAY_MS     >=0 enables batched failure
//                                    (preset.worker.failJobBatchDelay; default off)
// graphile-worker's documented performance set-up is localQueue size 500 and both batch
// delays 0 (https://worker.graphile.org/docs/performance); compare.sh runs it as
// "graphile-worker batched" next to the defaults.
"use strict";

const { Client } = require("pg");
const { run, runMigrations, Logger } = require("graphile-worker");
const version = require("graphile-worker/package.json").version;

function intEnv(name, def, min) {
  const raw = process.env[name];
  if (raw == null || raw === "") return def;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min) {
    throw new Error(`${name} must be an integer >= ${min} (got ${JSON.stringify(raw)})`);
  }
  return v;
}

function log(msg) {
  process.stderr.write(`graphile_bench: ${msg}\n`);
}

// graphile-worker logs one info line per completed job by default; keep warnings and
// errors only, on stderr.
const quietLogger = new Logger((scope) => (level, message) => {
  if (level === "error" || level === "warning") {
    process.stderr.write(`graphile-worker ${level}: ${message}\n`);
  }
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const connectionString = process.env.DATABASE_URL;
  if (!connectionString) throw new Error("DATABASE_URL is required");
  const jobs = intEnv("JOBS", 20000, 1);
  const concurrency = intEnv("CONCURRENCY", 8, 1);
  const pollInterval = intEnv("POLL_INTERVAL_MS", 100, 1);
  const watchMs = intEnv("WATCH_MS", 25, 1);
  const timeoutS = intEnv("TIMEOUT_S", 600, 1);
  const localQueueSize = intEnv("GRAPHILE_LOCAL_QUEUE_SIZE", -1, -1);
  const completeBatchDelay = intEnv("GRAPHILE_COMPLETE_BATCH_DELAY_MS", -1, -1);
  const failBatchDelay = intEnv("GRAPHILE_FAIL_BATCH_DELAY_MS", -1, -1);

  // 1. schema
  await runMigrations({ connectionString, logger: quietLogger });

  const db = new Client({ connectionString, application_name: "graphile_bench" });
  await db.connect();
  try {
    const pending = await countJobs(db);
    if (pending !== 0) {
      throw new Error(
        `the database already holds ${pending} graphile-worker jobs; use a fresh database`,
      );
    }

    // 2. preload (not timed): add_jobs with arrays of job_spec, CHUNK jobs per statement.
    const CHUNK = 5000;
    const tPre = process.hrtime.bigint();
    for (let from = 1; from <= jobs; from += CHUNK) {
      const to = Math.min(jobs, from + CHUNK - 1);
      await db.query(
        `select count(*) from graphile_worker.add_jobs(array(
           select row('noop', json_build_object('i', i), null, null, null, null, null, null)
                    ::graphile_worker.job_spec
             from generate_series($1::int, $2::int) as i))`,
        [from, to],
      );
    }
    const loaded = await countJobs(db);
    if (loaded !== jobs) throw new Error(`preloaded ${loaded} jobs, expected ${jobs}`);
    // Fresh statistics so the worker's get_job plan is the one a settled queue would use.
    await db.query("analyze graphile_worker._private_jobs");
    log(`preloaded ${jobs} jobs in ${secondsSince(tPre).toFixed(2)} s; draining with ` +
        `concurrency ${concurrency}`);

    // 3. timed drain
    const preset = { worker: {} };
    if (localQueueSize > 0) preset.worker.localQueue = { size: localQueueSize };
    if (completeBatchDelay >= 0) preset.worker.completeJobBatchDelay = completeBatchDelay;
    if (failBatchDelay >= 0) preset.worker.failJobBatchDelay = failBatchDelay;

    let successes = 0;
    let failures = 0;
    const t0 = process.hrtime.bigint();
    const runner = await run({
      connectionString,
      concurrency,
      maxPoolSize: concurrency + 2,
      pollInterval,
      noHandleSignals: true,
      logger: quietLogger,
      preset,
      taskList: {
        noop: async () => {},
      },
    });
    runner.events.on("job:success", () => {
      successes++;
    });
    runner.events.on("job:failed", ({ error }) => {
      failures++;
      if (failures <= 3) log(`job failed: ${error && error.message}`);
    });

    let seconds = null;
    let lastSlowCheck = 0;
    try {
      for (;;) {
        const elapsed = secondsSince(t0);
        if (elapsed > timeoutS) {
          throw new Error(`timed out after ${timeoutS} s with jobs still pending`);
        }
        if (failures > 0) throw new Error(`${failures} jobs failed`);
        // Close watch once every job has reported success (its delete may still be in
        // flight); a slower safety check otherwise.
        if (successes >= jobs || elapsed - lastSlowCheck >= 0.5) {
          lastSlowCheck = elapsed;
          if ((await countJobs(db)) === 0) {
            seconds = secondsSince(t0);
            break;
          }
        }
        await sleep(watchMs);
      }
    } finally {
      await runner.stop();
    }
    if (successes < jobs) {
      throw new Error(`table empty but only ${successes} of ${jobs} jobs reported success`);
    }

    const out = {
      peer: "graphile-worker",
      version,
      jobs,
      seconds: round(seconds, 3),
      jobs_per_s: round(jobs / seconds, 1),
      concurrency,
    };
    if (localQueueSize > 0) out.local_queue_size = localQueueSize;
    if (completeBatchDelay >= 0) out.complete_job_batch_delay_ms = completeBatchDelay;
    if (failBatchDelay >= 0) out.fail_job_batch_delay_ms = failBatchDelay;
    process.stdout.write(JSON.stringify(out) + "\n");
  } finally {
    await db.end();
  }
}

async function countJobs(db) {
  const r = await db.query("select count(*)::int as n from graphile_worker._private_jobs");
  return r.rows[0].n;
}

function secondsSince(t) {
  return Number(process.hrtime.bigint() - t) / 1e9;
}

function round(x, digits) {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

main().then(
  () => process.exit(0),
  (err) => {
    log(`error: ${err && err.stack ? err.stack : err}`);
    process.exit(1);
  },
);
