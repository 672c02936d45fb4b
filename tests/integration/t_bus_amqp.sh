#!/usr/bin/env bash
# RabbitMQ transport (engine/bus/bus_amqp.c, engine/bus/consumer.c) against the real broker that
# scripts/dev.sh test started, in a vhost of its own: topology declared idempotently
# (durable topic exchange, ingest queue dead-lettering to ratchet.events.dlx and its
# queue, one binding per pattern with * and > translated), 1,000 messages published with
# pipelined confirms, fetched, acked after the "commit" and gone from the broker
# (rabbitmqctl), redelivery after reconnect, nack, dead-lettering, a 10 MiB message
# dead-lettered by the consumer while the next one is stored, and a broker restart in the
# middle of a stream with nothing lost. Prints the publish throughput figures.
source "$(dirname "$0")/lib.sh"
rt_test_init bus_amqp
rt_use_amqp

SVC=$RATCHET_SOURCE_DIR/scripts/lib/services.sh
ctl() { rt_rabbitmqctl "$RATCHET_TEST_STATE_DIR" "$@"; }
rt_use_buscheck_amqp
export BUSCHECK_RESTART="bash -c \"source '$SVC' && rt_rabbit_restart '$RATCHET_TEST_STATE_DIR'\" >&2"

rc=0
"$BUSCHECK" ${BUSCHECK_ONLY:-basic throughput redeliver deadletter oversize restart} >"$T/buscheck.log" 2>&1 || rc=$?
cat "$T/buscheck.log"
rt_check_log "$T/buscheck.log"
((rc == 0)) || rt_fail "buscheck failed (exit $rc); see above"

# amqps:// and the RATCHET_TLS_* options, through a TLS-terminating proxy (Python's ssl)
# in front of the test broker, with a certificate from a throwaway CA.
PROXY_PID=
trap '_rc=$?; [[ -n $PROXY_PID ]] && kill "$PROXY_PID" 2>/dev/null; (exit $_rc); rt__exit' EXIT
mkcert() { # DIR: ca.pem, server.pem, server.key
  local d=$1; mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=ratchet test CA" \
    -keyout "$d/ca.key" -out "$d/ca.pem" >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$d/server.key" -out "$d/server.csr" >/dev/null 2>&1
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$d/ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
    -extfile "$d/ext" -out "$d/server.pem" >/dev/null 2>&1
}
mkcert "$T/pki" || rt_fail "openssl could not make test certificates"
mkcert "$T/other" || rt_fail "openssl could not make test certificates"
TLS_PORT=$(rt_free_port "$T")
AMQP_PORT=${RATCHET_TEST_AMQP_URL##*:}; AMQP_PORT=${AMQP_PORT%%/*}
cat >"$T/tlsproxy.py" <<'PY'
import asyncio, ssl, sys
port, target, cert, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except Exception:
        pass
    finally:
        w.close()
async def handle(cr, cw):
    try:
        br, bw = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        cw.close()
        return
    await asyncio.gather(pipe(cr, bw), pipe(br, cw))
async def main():
    srv = await asyncio.start_server(handle, "127.0.0.1", port, ssl=ctx)
    async with srv:
        await srv.serve_forever()
asyncio.run(main())
PY
/usr/bin/python3 "$T/tlsproxy.py" "$TLS_PORT" "$AMQP_PORT" "$T/pki/server.pem" "$T/pki/server.key" 2>"$T/tlsproxy.log" &
PROXY_PID=$!
rt_wait_for 60 rt_tcp_open "$TLS_PORT"
TLS_URL="amqps://guest:guest@localhost:$TLS_PORT/$RT_TEST_VHOST"
tls() { # EXPECT_FAIL VERIFY CA URL
  BUSCHECK_EXPECT_FAIL=$1 BUSCHECK_TLS_VERIFY=$2 BUSCHECK_TLS_CA=$3 BUSCHECK_URL=$4 "$BUSCHECK" tls >>"$T/tls.log" 2>&1 ||
    { cat "$T/tls.log"; rt_fail "buscheck tls (expect_fail=$1 verify=$2 ca=$3) failed"; }
}
tls 0 1 "$T/pki/ca.pem" "$TLS_URL"   # trusted CA, host name checked
tls 1 1 "$T/other/ca.pem" "$TLS_URL" # another CA: refused
tls 1 1 "" "$TLS_URL"                # the system's CAs do not know it: refused
tls 0 0 "$T/other/ca.pem" "$TLS_URL" # RATCHET_TLS_VERIFY=false
cat "$T/tls.log"
rt_check_log "$T/tls.log"
kill "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true; PROXY_PID=

# Credentials never appear in what ratchet logs.
if grep -n "guest:guest" "$T/buscheck.log" "$T/tls.log"; then rt_fail "the AMQP password appears in the log"; fi

[[ -z ${BUSCHECK_ONLY:-} ]] || { grep '^FIGURE' "$T/buscheck.log" || true; exit 0; }
# The topology as the broker sees it.
ex=$(ctl list_exchanges --silent -p "$RT_TEST_VHOST" name type durable)
grep -qP '^ratchet\.events\ttopic\ttrue$' <<<"$ex" || rt_fail "exchange ratchet.events is not a durable topic exchange: $ex"
grep -qP '^ratchet\.events\.dlx\tfanout\ttrue$' <<<"$ex" || rt_fail "exchange ratchet.events.dlx missing: $ex"
qs=$(ctl list_queues --silent -p "$RT_TEST_VHOST" name durable arguments)
grep -P '^ratchet\.ingest\ttrue\t' <<<"$qs" | grep -q 'x-dead-letter-exchange.*ratchet\.events\.dlx' ||
  rt_fail "queue ratchet.ingest is not durable with x-dead-letter-exchange=ratchet.events.dlx: $qs"
grep -qP '^ratchet\.events\.dead\ttrue' <<<"$qs" || rt_fail "queue ratchet.events.dead missing: $qs"
bi=$(ctl list_bindings --silent -p "$RT_TEST_VHOST" source_name destination_name routing_key)
for key in 'basic.*.created' 'basic.x.#' 'tput.#' 'restart.*.done'; do
  grep -qF "$(printf 'ratchet.events\tratchet.ingest\t%s' "$key")" <<<"$bi" || rt_fail "binding $key missing: $bi"
done
grep -qP '^ratchet\.events\.dlx\tratchet\.events\.dead\t' <<<"$bi" || rt_fail "dead-letter binding missing: $bi"
# Nothing left behind: ingest empty; dead holds exactly what the scenarios dead-lettered
# (1 in deadletter, 2 in oversize, 3 poison in restart).
lq=$(ctl list_queues --silent -p "$RT_TEST_VHOST" name messages_ready messages_unacknowledged)
grep -qP '^ratchet\.ingest\t0\t0$' <<<"$lq" || rt_fail "ratchet.ingest is not empty: $lq"
grep -qP '^ratchet\.events\.dead\t6\t0$' <<<"$lq" || rt_fail "ratchet.events.dead should hold 6: $lq"
grep '^FIGURE' "$T/buscheck.log" | sed 's/^/t_bus_amqp: /'
