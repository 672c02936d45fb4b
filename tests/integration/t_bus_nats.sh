#!/usr/bin/env bash
# NATS transport (engine/bus/bus_nats.c, engine/bus/consumer.c) against the real nats-server
# (JetStream) that scripts/dev.sh test started. Stream, subjects and durable consumer are
# named after this run (the server is shared). JetStream: stream and durable pull
# consumer created idempotently, 1,000 messages published with async publish acks,
# fetched, acked after the "commit" and gone (/jsz monitoring endpoint), redelivery after
# reconnect, Nak, Term, an oversized message dead-lettered while the next is stored (and
# a 10 MiB publish refused: the server's max_payload is 1 MiB), a server restart in the
# middle of a stream with nothing lost. Core NATS (JetStream off): queue subscriptions.
source "$(dirname "$0")/lib.sh"
rt_test_init bus_nats
rt_use_nats
[[ -n ${RATCHET_TEST_NATS_MON_PORT:-} ]] || rt_fail "RATCHET_TEST_NATS_MON_PORT is not set (the NATS monitoring port)"

BUSCHECK=$(dirname "$RATCHET_BIN")/tests/buscheck
[[ -x $BUSCHECK ]] || rt_fail "buscheck is not built next to $RATCHET_BIN (expected $BUSCHECK)"
SVC=$RATCHET_SOURCE_DIR/scripts/lib/services.sh
cat >"$T/jsz.py" <<'PY'
# jsz.py PORT STREAM CONSUMER -> "<num_pending> <num_ack_pending>" from /jsz
import json, sys, urllib.request
port, stream, consumer = sys.argv[1:4]
d = json.load(urllib.request.urlopen("http://127.0.0.1:%s/jsz?consumers=true" % port, timeout=5))
for a in d.get("account_details") or []:
    for s in a.get("stream_detail") or []:
        if s.get("name") == stream:
            for c in s.get("consumer_detail") or []:
                if c.get("name") == consumer:
                    print(c.get("num_pending", 0), c.get("num_ack_pending", 0))
                    sys.exit(0)
sys.exit("consumer %s of stream %s not in /jsz" % (consumer, stream))
PY

export BUSCHECK_URL=$RATCHET_NATS_URL
export BUSCHECK_NS=${RT_TEST_DB#t_}
export BUSCHECK_STATS_CMD="/usr/bin/python3 '$T/jsz.py' $RATCHET_TEST_NATS_MON_PORT {Q}"
export BUSCHECK_RESTART="bash -c \"source '$SVC' && rt_nats_restart '$RATCHET_TEST_STATE_DIR'\" >&2"

rc=0
"$BUSCHECK" ${BUSCHECK_ONLY:-basic throughput redeliver deadletter oversize restart core} >"$T/buscheck.log" 2>&1 || rc=$?
cat "$T/buscheck.log"
rt_check_log "$T/buscheck.log"
((rc == 0)) || rt_fail "buscheck failed (exit $rc); see above"
if [[ " ${BUSCHECK_ONLY:-core} " == *" core "* ]]; then
  grep -q "delivery is at-most-once" "$T/buscheck.log" || rt_fail "core NATS mode did not warn that delivery is at-most-once"
fi
# buscheck deletes its streams; none may be left on the shared server.
left=$(curl -fsS "http://127.0.0.1:$RATCHET_TEST_NATS_MON_PORT/jsz?streams=true" |
  /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(s["name"] for a in d.get("account_details") or [] for s in a.get("stream_detail") or [] if s["name"].startswith("BC_'"$BUSCHECK_NS"'_")))')
[[ -z $left ]] || rt_fail "streams left behind: $left"

# TLS (tls:// and the RATCHET_TLS_* options): a private nats-server with a certificate
# from a throwaway CA, and a user/password that must never show in a log.
TLS_PID=
trap '_rc=$?; [[ -n $TLS_PID ]] && kill "$TLS_PID" 2>/dev/null; (exit $_rc); rt__exit' EXIT
mkcert() { # DIR: ca.pem, server.pem, server.key
  local d=$1; mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=ratchet test CA" \
    -keyout "$d/ca.key" -out "$d/ca.pem" >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$d/server.key" -out "$d/server.csr" >/dev/null 2>&1
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$d/ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
    -extfile "$d/ext" -out "$d/server.pem" >/dev/null 2>&1
}
mkcert "$T/pki" || rt_fail "openssl could not make test certificates"
mkcert "$T/other" || rt_fail "openssl could not make test certificates"
TLS_PORT=$(rt_free_port "$T")
mkdir -p "$T/tlsjs"
nats-server -a 127.0.0.1 -p "$TLS_PORT" -js -sd "$T/tlsjs" --tls --tlscert "$T/pki/server.pem" \
  --tlskey "$T/pki/server.key" --user ratchet --pass s3cret -l "$T/tls-nats.log" </dev/null >/dev/null 2>&1 &
TLS_PID=$!
rt_wait_for 60 rt_tcp_open "$TLS_PORT"
tls() { # EXPECT_FAIL VERIFY CA URL
  BUSCHECK_EXPECT_FAIL=$1 BUSCHECK_TLS_VERIFY=$2 BUSCHECK_TLS_CA=$3 BUSCHECK_URL=$4 "$BUSCHECK" tls >>"$T/tls.log" 2>&1 ||
    { cat "$T/tls.log"; rt_fail "buscheck tls (expect_fail=$1 verify=$2 ca=$3) failed"; }
}
tls 0 1 "$T/pki/ca.pem" "tls://ratchet:s3cret@127.0.0.1:$TLS_PORT"   # trusted CA
tls 1 1 "$T/other/ca.pem" "tls://ratchet:s3cret@127.0.0.1:$TLS_PORT" # another CA: refused
tls 0 0 "$T/other/ca.pem" "tls://ratchet:s3cret@127.0.0.1:$TLS_PORT" # RATCHET_TLS_VERIFY=false
tls 1 1 "" "nats://ratchet:s3cret@127.0.0.1:$TLS_PORT"                # plain to a TLS server
cat "$T/tls.log"
rt_check_log "$T/tls.log"
if grep -n "s3cret" "$T/tls.log"; then rt_fail "the NATS password appears in the log"; fi
kill "$TLS_PID"; wait "$TLS_PID" 2>/dev/null || true; TLS_PID=

grep '^FIGURE' "$T/buscheck.log" | sed 's/^/t_bus_nats: /'
