#!/usr/bin/env bash
# NATS transport (engine/bus_nats.c, engine/consumer.c) against the real nats-server
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
"$BUSCHECK" basic throughput redeliver deadletter oversize restart core >"$T/buscheck.log" 2>&1 || rc=$?
cat "$T/buscheck.log"
rt_check_log "$T/buscheck.log"
((rc == 0)) || rt_fail "buscheck failed (exit $rc); see above"
grep -q "delivery is at-most-once" "$T/buscheck.log" || rt_fail "core NATS mode did not warn that delivery is at-most-once"
# buscheck deletes its streams; none may be left on the shared server.
left=$(curl -fsS "http://127.0.0.1:$RATCHET_TEST_NATS_MON_PORT/jsz?streams=true" |
  /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(s["name"] for a in d.get("account_details") or [] for s in a.get("stream_detail") or [] if s["name"].startswith("BC_'"$BUSCHECK_NS"'_")))')
[[ -z $left ]] || rt_fail "streams left behind: $left"
grep '^FIGURE' "$T/buscheck.log" | sed 's/^/t_bus_nats: /'
