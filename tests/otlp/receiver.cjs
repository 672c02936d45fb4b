// receiver.cjs — an OTLP/HTTP trace receiver for tests/integration/t_otel.sh. Every request
// is checked against the official OpenTelemetry protobuf definitions (the generated root of
// @opentelemetry/otlp-transformer, pinned by package-lock.json): the OTLP JSON body, with
// its hex ids turned into protobuf bytes, must verify() as an ExportTraceServiceRequest and
// survive an encode/decode round trip. Accepted spans are appended to SPANS as JSON lines;
// a refused request is answered 400 and appended to SPANS.errors. POST /echo* records the
// traceparent header it got in SPANS.echo (the workflows' http steps call it).
//   node receiver.cjs SPANS PORTFILE
"use strict";
const http = require("http");
const fs = require("fs");
const root = require("@opentelemetry/otlp-transformer/build/src/generated/root");

const Long = require("long");
const Req = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
const [spansFile, portFile] = process.argv.slice(2);

const ID_LEN = { traceId: 32, spanId: 16, parentSpanId: 16 };

// OTLP JSON writes ids as hex (not base64, unlike the generic protobuf JSON mapping).
function idsToBytes(span, where) {
  for (const [k, n] of Object.entries(ID_LEN)) {
    if (span[k] === undefined || span[k] === "") continue;
    if (typeof span[k] !== "string" || span[k].length !== n || !/^[0-9a-f]+$/.test(span[k]))
      throw new Error(`${where}.${k}: expected ${n} lowercase hex digits, got ${JSON.stringify(span[k])}`);
    span[k] = Buffer.from(span[k], "hex").toString("base64");
  }
}

// The protobuf JSON mapping writes 64-bit integers as decimal strings; protobufjs' verify()
// wants them as Long. Anything else where a number belongs is left for verify() to refuse.
const LONGS = { startTimeUnixNano: true, endTimeUnixNano: true, timeUnixNano: true, intValue: false };
function longsToLong(o) {
  if (Array.isArray(o)) return o.forEach(longsToLong);
  if (!o || typeof o !== "object") return;
  for (const [k, v] of Object.entries(o)) {
    if (k in LONGS && typeof v === "string") {
      if (!/^-?[0-9]+$/.test(v)) throw new Error(`${k}: ${JSON.stringify(v)} is not a decimal integer`);
      o[k] = Long.fromString(v, LONGS[k]);
    } else longsToLong(v);
  }
}

function attrValue(v) {
  if (!v) return null;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.doubleValue !== undefined) return v.doubleValue;
  return v;
}

function attrs(list) {
  const o = {};
  for (const a of list || []) o[a.key] = attrValue(a.value);
  return o;
}

function check(body) {
  const doc = JSON.parse(body);
  (doc.resourceSpans || []).forEach((rs, i) =>
    (rs.scopeSpans || []).forEach((ss, j) =>
      (ss.spans || []).forEach((sp, k) => idsToBytes(sp, `resourceSpans[${i}].scopeSpans[${j}].spans[${k}]`))));
  longsToLong(doc);
  const problem = Req.verify(doc);
  if (problem) throw new Error("not an ExportTraceServiceRequest: " + problem);
  const msg = Req.decode(Req.encode(Req.fromObject(doc)).finish());
  const out = Req.toObject(msg, { longs: String, enums: Number, bytes: String, defaults: false });
  const lines = [];
  for (const rs of out.resourceSpans || []) {
    const resource = attrs(rs.resource && rs.resource.attributes);
    for (const ss of rs.scopeSpans || []) {
      for (const sp of ss.spans || []) {
        if (!sp.traceId || !sp.spanId) throw new Error(`span ${sp.name}: no trace or span id`);
        if (!sp.startTimeUnixNano || !sp.endTimeUnixNano) throw new Error(`span ${sp.name}: no times`);
        const hex = (b) => (b ? Buffer.from(b, "base64").toString("hex") : "");
        lines.push(JSON.stringify({
          service: resource["service.name"], resource,
          scope: ss.scope && ss.scope.name,
          traceId: hex(sp.traceId), spanId: hex(sp.spanId), parentSpanId: hex(sp.parentSpanId),
          traceState: sp.traceState || "",
          name: sp.name, kind: sp.kind || 0,
          start: sp.startTimeUnixNano, end: sp.endTimeUnixNano,
          attributes: attrs(sp.attributes),
          status: sp.status ? { code: sp.status.code || 0, message: sp.status.message || "" } : { code: 0 },
        }));
      }
    }
  }
  return lines;
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8");
    if (req.method === "POST" && req.url.startsWith("/echo")) {
      // the target of the workflows' http steps: what traceparent they sent
      fs.appendFileSync(spansFile + ".echo", `${req.url} ${req.headers.traceparent || "-"}\n`);
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end("{}");
      return;
    }
    try {
      if (req.method !== "POST" || req.url !== "/v1/traces") throw new Error(`${req.method} ${req.url}: unexpected`);
      if (!/^application\/json\b/.test(req.headers["content-type"] || ""))
        throw new Error(`content-type ${req.headers["content-type"]}: expected application/json`);
      const lines = check(body);
      // what the collector saw of OTEL_EXPORTER_OTLP_HEADERS: x-test-* headers
      const hdrs = Object.keys(req.headers).filter((h) => h.startsWith("x-test-"))
        .map((h) => `${h}=${req.headers[h]}`).join(",");
      fs.appendFileSync(spansFile, lines.map((l) => l.replace(/^\{/, `{"headers":${JSON.stringify(hdrs)},`) + "\n").join(""));
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end("{}");
    } catch (e) {
      fs.appendFileSync(spansFile + ".errors", `${e.message}\n${body.slice(0, 2000)}\n`);
      res.writeHead(400, { "Content-Type": "text/plain" });
      res.end(e.message);
    }
  });
});
server.listen(0, "127.0.0.1", () => {
  fs.writeFileSync(portFile + ".tmp", String(server.address().port));
  fs.renameSync(portFile + ".tmp", portFile);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
