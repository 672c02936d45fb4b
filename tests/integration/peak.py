"""The most intervals open at once, from lines "start KEY TIME" and "end KEY TIME" (or
"done KEY TIME"), TIME an integer. With --per-key, the highest such count among the keys
(KEY: a concurrency key); without it, over all lines. An end and a start at the same
time do not overlap. Used by tests/integration/t_*.sh.

    python3 peak.py FILE [--per-key]
"""
import collections
import sys


def main():
    per_key = "--per-key" in sys.argv[2:]
    events = []
    for line in open(sys.argv[1]):
        kind, key, t = line.split()
        events.append((int(t), 1 if kind == "start" else -1, key if per_key else ""))
    cur = collections.Counter()
    best = collections.Counter()
    for _, delta, key in sorted(events):
        cur[key] += delta
        best[key] = max(best[key], cur[key])
    print(max(best.values()) if best else 0)


main()
