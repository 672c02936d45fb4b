#!/usr/bin/env node
// bench/peers/pgboss_bench.js — drain benchmark for pg-boss, the second peer that
// bench/compare.sh runs side by side with `ratchet bench`.
//
//   DATABASE_URL=postgresql://postgres@127.0.0.1:5432/pb JOBS=20000 CONCURRENCY=8 \
//     node bench/peers/pgboss_bench.js
//
// 1. installs pg-boss's schema into DATABASE_URL (start() migrates) and creates a queue;
// 2. preloads JOBS jobs with boss.insert() in chunks of 5000 (not timed);
// 3. times the drain: CONCURRENCY loops, each one `fetch(queue, {batchSize})` (one
//    statement: SELECT … FOR UPDATE SKIP LOCKED + UPDATE to active, its own commit),
//    runs the no-op handler for every job fetched, then `complete(queue, ids)` (one
//    UPDATE of the whole batch, its own commit) — pg-boss's batch API, the fastest way
//    it offers to drain a queue. A job counts once its completion is committed; the
//    drain ends when a separate connection sees no job left in created/retry/active.
//
// Prints one JSON line on stdout:
//   {"peer":"pg-boss","version":"10.4.2","jobs":N,"seconds":S,"jobs_per_s":R,"concurrency":C,"batch_size":B}
// Everything else goes to stderr.
//
// Environment:
//   DATABASE_URL        required; a fresh database (the schema "pgboss" is created)
//   JOBS                jobs to preload and drain (default 20000)
//   CONCURRENCY         concurrent fetch/complete loops (default 8), pool size CONCURRENCY+2
//   PGBOSS_BATCH_SIZE   jobs per fetch (default 100)
//   TIMEOUT_S           give up after this many seconds of draining (default 600)
// pg-boss's supervisor (maintenance) and cron scheduler are off during the drain: they
// do no work for a queue of fresh jobs and would only add noise.
"use strict";

const { Client } = require("pg");
const PgBoss = require("pg-boss");
const version = require("pg-boss/package.json").version;

const QUEUE = "noop";

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
  process.stderr.write(`pgboss_bench: ${msg}\n`);
}

async function main() {
  const connectionString = process.env.DATABASE_URL;
  if (!connectionString) throw new Error("DATABASE_URL is required");
  const jobs = intEnv("JOBS", 20000, 1);
  const concurrency = intEnv("CONCURRENCY", 8, 1);
  const batchSize = intEnv("PGBOSS_BATCH_SIZE", 100, 1);
  const timeoutS = intEnv("TIMEOUT_S", 600, 1);

  const boss = new PgBoss({
    connectionString,
    max: concurrency + 2,
    supervise: false,
    schedule: false,
    application_name: "pgboss_bench",
  });
  boss.on("error", (e) => log(`pg-boss error: ${e && e.message}`));
  await boss.start();
  await boss.createQueue(QUEUE);

  const db = new Client({ connectionString, application_name: "pgboss_bench_watch" });
  await db.connect();
  try {
    if ((await countOpen(db)) !== 0) throw new Error("the database already holds pg-boss jobs; use a fresh database");

    // 2. preload (not timed)
    const CHUNK = 5000;
    const tPre = process.hrtime.bigint();
    for (let from = 0; from < jobs; from += CHUNK) {
      const n = Math.min(CHUNK, jobs - from);
      await boss.insert(Array.from({ length: n }, (_, k) => ({ name: QUEUE, data: { i: from + k } })));
    }
    const loaded = await countOpen(db);
    if (loaded !== jobs) throw new Error(`preloaded ${loaded} jobs, expected ${jobs}`);
    await db.query("analyze pgboss.job");
    log(`preloaded ${jobs} jobs in ${secondsSince(tPre).toFixed(2)} s; draining with ` +
        `${concurrency} loops of fetch(batchSize ${batchSize}) + complete(ids)`);

    // 3. timed drain
    let done = 0;
    let stop = false;
    const t0 = process.hrtime.bigint();
    const noop = async () => {};
    const loop = async () => {
      while (!stop) {
        const batch = await boss.fetch(QUEUE, { batchSize });
        if (!batch.length) return; // drained (nothing is added while draining)
        for (const job of batch) await noop(job);
        const r = await boss.complete(QUEUE, batch.map((j) => j.id));
        done += r.affected;
      }
    };
    const timer = setTimeout(() => { stop = true; }, timeoutS * 1000);
    await Promise.all(Array.from({ length: concurrency }, loop));
    clearTimeout(timer);
    const open = await countOpen(db);
    const seconds = secondsSince(t0);
    if (open !== 0 || done !== jobs) {
      throw new Error(`drain ended with ${open} jobs open and ${done} of ${jobs} completed` +
                      (stop ? ` (timed out after ${timeoutS} s)` : ""));
    }
    process.stdout.write(JSON.stringify({
      peer: "pg-boss",
      version,
      jobs,
      seconds: round(seconds, 3),
      jobs_per_s: round(jobs / seconds, 1),
      concurrency,
      batch_size: batchSize,
    }) + "\n");
  } finally {
    await db.end();
    await boss.stop({ graceful: false, wait: true, timeout: 5000 });
  }
}

// Jobs not yet completed: created, retry or active.
async function countOpen(db) {
  const r = await db.query(
    "select count(*)::int as n from pgboss.job where name = $1 and state in ('created', 'retry', 'active')",
    [QUEUE]);
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
