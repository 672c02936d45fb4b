#!/usr/bin/env node
// bench/peers/amqp_publish.js — the broker's own ceiling for `ratchet bench events`: a
// publisher outside ratchet (amqplib, publisher confirms) sending the same messages as the
// bench's publisher (persistent, JSON body of the same size, message-id, timestamp) through
// a durable topic exchange into a durable queue declared like ratchet's ingest queue, with
// no consumer. If it is no faster than ratchet's "publisher alone" figure, the broker is
// the limit, not ratchet's client.
//
//   AMQP_URL=amqp://guest:guest@127.0.0.1:5672/ EVENTS=20000 node bench/peers/amqp_publish.js
//
// Prints one JSON line on stdout:
//   {"peer":"amqplib","version":"0.10.9","events":N,"seconds":S,"events_per_s":R,...}
//
// Environment:
//   AMQP_URL       required
//   EVENTS         messages to publish (default 20000)
//   CONNECTIONS    connections publishing at once (default 4)
//   CHANNELS       confirm channels per connection (default 1)
//   WINDOW         per channel: messages in flight (sent, not yet confirmed) (default 500)
//   MODE           window: keep WINDOW in flight, sending one more per confirm;
//                  batch: send WINDOW, wait for all their confirms, repeat (what
//                  rt_bus_publish does per call) (default window)
//   QUEUE_VERSION  1 or 2: the queue's x-queue-version (default: the broker's default)
//   TRANSIENT      1: delivery mode 1 instead of persistent (to see what the disk costs)
// The exchange and queue are private (named after the pid) and deleted at the end.
"use strict";

const amqplib = require("amqplib");

const env = (k, d) => (process.env[k] === undefined || process.env[k] === "" ? d : process.env[k]);
const URL = env("AMQP_URL");
const EVENTS = +env("EVENTS", 20000);
const CONNECTIONS = +env("CONNECTIONS", 4);
const CHANNELS = +env("CHANNELS", 1);
const WINDOW = +env("WINDOW", 500);
const MODE = env("MODE", "window");
const QUEUE_VERSION = env("QUEUE_VERSION", "");
const PERSISTENT = env("TRANSIENT", "0") !== "1";
if (!URL) {
  console.error("amqp_publish.js: AMQP_URL is required");
  process.exit(2);
}

const EXCHANGE = `ratchet.bench.ceiling.${process.pid}`;
const QUEUE = `ratchet.bench.ceiling.${process.pid}`;

function body(i) {
  // The shape and size of bench_events.c's bench_body().
  const id = `bench-${process.pid}-${i}`;
  return [id, Buffer.from(`{"name":"bench.amqp","id":"${id}","data":{"sent_us":${Date.now() * 1000}}}`)];
}

// Publishes messages [from, to) on one confirm channel; resolves when all are confirmed,
// rejects on a nack.
async function drive(ch, from, to) {
  let inflight = 0, next = from, failed = null, wake = null;
  const settle = (err) => {
    inflight--;
    if (err && !failed) failed = new Error(`basic.nack: ${err.message || err}`);
    if (wake) { const w = wake; wake = null; w(); }
  };
  const send = () => {
    const [id, b] = body(next++);
    inflight++;
    return ch.publish(EXCHANGE, "bench.amqp", b, {
      persistent: PERSISTENT, contentType: "application/json", messageId: id,
      timestamp: Math.floor(Date.now() / 1000),
    }, settle);
  };
  const until = (cond) => new Promise((res) => { const loop = () => (cond() ? res() : (wake = loop)); loop(); });
  while (next < to && !failed) {
    if (MODE === "batch") {
      const end = Math.min(to, next + WINDOW);
      while (next < end) send();
      await ch.waitForConfirms();
    } else {
      while (next < to && inflight < WINDOW) {
        if (!send()) await new Promise((res) => ch.once("drain", res));
      }
      await until(() => inflight < WINDOW || failed);
    }
  }
  await until(() => inflight === 0 || failed);
  if (failed) throw failed;
}

async function main() {
  const setup = await amqplib.connect(URL);
  const sch = await setup.createChannel();
  await sch.assertExchange(EXCHANGE, "topic", { durable: true });
  const args = { "x-dead-letter-exchange": "ratchet.events.dlx" };
  if (QUEUE_VERSION) args["x-queue-version"] = +QUEUE_VERSION;
  await sch.assertQueue(QUEUE, { durable: true, arguments: args });
  await sch.bindQueue(QUEUE, EXCHANGE, "bench.#");

  const conns = await Promise.all(Array.from({ length: CONNECTIONS }, () => amqplib.connect(URL)));
  const chans = [];
  for (const c of conns)
    for (let k = 0; k < CHANNELS; k++) chans.push(await c.createConfirmChannel());
  const share = Math.floor(EVENTS / chans.length);
  const t0 = process.hrtime.bigint();
  await Promise.all(chans.map((ch, i) => drive(ch, i * share, i + 1 === chans.length ? EVENTS : (i + 1) * share)));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const q = await sch.checkQueue(QUEUE);

  await sch.deleteQueue(QUEUE);
  await sch.deleteExchange(EXCHANGE);
  await Promise.all(conns.map((c) => c.close()));
  await setup.close();
  if (q.messageCount !== EVENTS) throw new Error(`queue holds ${q.messageCount} messages, expected ${EVENTS}`);
  console.log(JSON.stringify({
    peer: "amqplib", version: require("amqplib/package.json").version, events: EVENTS,
    seconds: +seconds.toFixed(3), events_per_s: Math.round(EVENTS / seconds), connections: CONNECTIONS,
    channels: CHANNELS, window: WINDOW, mode: MODE, queue_version: QUEUE_VERSION || "default",
    persistent: PERSISTENT,
  }));
}

main().catch((e) => {
  console.error(`amqp_publish.js: ${e.message}`);
  process.exit(1);
});
