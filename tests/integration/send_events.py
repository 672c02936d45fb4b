"""Posts events to a running `ratchet serve` on a timetable, from this one process, so
that the gaps between events are the test's and not the time it takes to start a
`ratchet send` process (seconds under ASan on a loaded machine). Event i is posted at
start + i * GAP (a late post does not delay the ones after it), to POST /api/v1/events,
which answers after the commit and admission. Prints the largest gap there actually was
between two answers, in ms, so a test can say so when it fails. Exits 1 on any answer but
200. Used by tests/integration/t_*.sh through rt_send_events (lib.sh).

    python3 send_events.py BASE_URL GAP_S EVENT_JSON...
"""
import json
import sys
import time
import urllib.request


def post(url, event):
    req = urllib.request.Request(url, data=json.dumps(event).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        if resp.status != 200:
            raise SystemExit(f"send_events: {event}: HTTP {resp.status}")
        resp.read()


def main():
    if len(sys.argv) < 4:
        raise SystemExit("usage: send_events.py BASE_URL GAP_S EVENT_JSON...")
    url = sys.argv[1].rstrip("/") + "/api/v1/events"
    gap = float(sys.argv[2])
    events = [json.loads(a) for a in sys.argv[3:]]
    start = time.monotonic()
    done = []
    for i, event in enumerate(events):
        delay = start + i * gap - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        post(url, event)
        done.append(time.monotonic())
    widest = max((b - a for a, b in zip(done, done[1:])), default=0.0)
    print(round(widest * 1000))


main()
