// publish.cjs — a publisher outside ratchet for tests/integration/t_otel.sh: sends one event
// with a W3C traceparent header through RabbitMQ (amqplib, publisher confirms) or NATS
// JetStream (nats.js, publish ack), the way an instrumented service would.
//   node publish.cjs amqp URL EVENT_NAME BODY_JSON TRACEPARENT
//   node publish.cjs nats URL SUBJECT    BODY_JSON TRACEPARENT
"use strict";
const [via, url, name, body, traceparent] = process.argv.slice(2);

async function amqp() {
  const amqplib = require("amqplib");
  const conn = await amqplib.connect(url);
  const ch = await conn.createConfirmChannel();
  ch.publish("ratchet.events", name, Buffer.from(body), {
    contentType: "application/json", persistent: true, headers: { traceparent },
  });
  await ch.waitForConfirms();
  await conn.close();
}

async function nats() {
  const { connect, headers } = require("nats");
  const nc = await connect({ servers: url });
  const h = headers();
  h.set("traceparent", traceparent);
  await nc.jetstream().publish(name, Buffer.from(body), { headers: h });
  await nc.drain();
}

(via === "amqp" ? amqp() : nats()).catch((e) => {
  console.error(`publish.cjs ${via}: ${e.message}`);
  process.exit(1);
});
