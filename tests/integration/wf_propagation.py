#!/usr/bin/env python3
"""wf_propagation.py — how long until another serve process sees a registry change.

    wf_propagation.py CHANGE_CMD_JSON POLL_METHOD POLL_URL EXPECT_STATUS [EXPECT_TEXT]

Runs the change (a JSON argv list, e.g. the CLI apply, or ["PUT", url, body]) and, from the
moment it returned, polls POLL_URL until it answers EXPECT_STATUS (and its body holds
EXPECT_TEXT). Prints when the request that succeeded was sent (ms after the change: the
other process served a trigger sent then) and its body. Timing is inside this one process,
so process start-up on a loaded machine does not count as propagation."""
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request


def call(method, url, body=None):
    req = urllib.request.Request(url, data=body.encode() if body is not None else None, method=method,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def main():
    change = json.loads(sys.argv[1])
    method, url, status = sys.argv[2], sys.argv[3], int(sys.argv[4])
    text = sys.argv[5] if len(sys.argv) > 5 else None
    if change[0] in ("PUT", "DELETE", "POST"):
        st, body = call(change[0], change[1], change[2] if len(change) > 2 else None)
        if st >= 300:
            print("change failed: %d %s" % (st, body))
            return 1
    else:
        subprocess.run(change, check=True, stdout=subprocess.DEVNULL)
    t0 = time.monotonic()
    while True:
        sent = time.monotonic()
        st, body = call(method, url, "{}" if method == "POST" else None)
        if st == status and (text is None or text in body):
            print("%d %s" % ((sent - t0) * 1000, body.replace("\n", " ")))
            return 0
        if time.monotonic() - t0 > 30:
            print("timeout: last answer %d %s" % (st, body))
            return 1
        time.sleep(0.005)


sys.exit(main())
