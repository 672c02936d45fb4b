#!/usr/bin/env bash
# The HTTP server's limits against slow and greedy clients (docs/api.md "HTTP API and
# metrics"): a client that sends its headers a byte at a time (slowloris) is cut off
# after RATCHET_HTTP_REQUEST_TIMEOUT although it is never idle, while normal requests are
# answered meanwhile; connections past RATCHET_HTTP_MAX_CONNECTIONS_PER_IP are closed at
# once, and a client below the limit is served again when they go.
source "$(dirname "$0")/lib.sh"
rt_test_init api_limits

export RATCHET_WORKFLOWS=$T/workflows RATCHET_HTTP_REQUEST_TIMEOUT=3s RATCHET_HTTP_MAX_CONNECTIONS_PER_IP=6
mkdir -p "$RATCHET_WORKFLOWS"
"$RATCHET_BIN" migrate >/dev/null
rt_serve_start a
rt_serve_wait_ready a
U=$(rt_serve_url a)
HP=${U#http://}

cat > "$T/slow.py" <<'EOF2'
# slow.py HOST PORT INTERVAL MAX_S: sends a request's headers one byte every INTERVAL
# seconds; prints how long the server took to close the connection ("never" after MAX_S).
import socket, sys, time
host, port, interval, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
s = socket.create_connection((host, port))
t0 = time.monotonic()
data = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10000
for b in data:
    if time.monotonic() - t0 > limit:
        print("never"); sys.exit(0)
    try:
        s.send(bytes([b]))
        s.settimeout(interval)
        if s.recv(1) == b"":
            break
    except socket.timeout:
        continue
    except OSError:
        break
print("%.1f" % (time.monotonic() - t0))
EOF2

# 1. Slowloris: one byte per second is never idle, but the request never completes.
python3 "$T/slow.py" "${HP%:*}" "${HP##*:}" 1 20 > "$T/slow.out" &
slow=$!
# a normal request meanwhile is answered at once
sleep 1
for i in 1 2 3; do curl -fsS -m 5 -o /dev/null "$U/healthz" || rt_fail "a normal request failed while a slow client was connected"; done
wait $slow
took=$(cat "$T/slow.out")
[[ $took != never ]] || rt_fail "the slow client was never cut off"
awk -v t="$took" 'BEGIN { exit !(t >= 2.5 && t < 10) }' || rt_fail "slow client cut after $took s (want about 3 s)"
rt_wait_for 5 "grep -q 'closed 1 connection(s) that sent no complete request within 3s' '$T/a.log'"

# 2. Per-IP limit: 6 open connections hold the limit; a 7th is closed before it is served.
#    (A second serve with a long request timeout, so that the janitor stays out of it.)
RATCHET_HTTP_REQUEST_TIMEOUT=60s rt_serve_start b
rt_serve_wait_ready b
U=$(rt_serve_url b)
HP=${U#http://}
python3 - "${HP%:*}" "${HP##*:}" > "$T/hold.out" <<'EOF2' &
import socket, sys, time
conns = [socket.create_connection((sys.argv[1], int(sys.argv[2]))) for _ in range(6)]
for c in conns:
    c.send(b"G")  # a request begun, not finished
print("holding", flush=True)
time.sleep(3)
EOF2
hold=$!
rt_wait_for 5 "grep -q holding '$T/hold.out'"
code=$(curl -sS -m 5 -o /dev/null -w '%{http_code}' "$U/healthz" 2>/dev/null || true)
[[ $code != 200 ]] || rt_fail "a 7th connection from one address was served"
wait $hold
rt_wait_for 10 "curl -fsS -m 2 -o /dev/null '$U/healthz'"
