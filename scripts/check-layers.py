#!/usr/bin/env python3
"""check-layers.py — ratchet's layering rule (STYLE §1), checked on every #include.

    core <- lang <- store <- run <- {steps, bus, trust} <- api <- daemon <- cli

A file may include headers of its own folder and of the folders below it; the folders
of one rank (steps, bus, trust) do not include each other; a header named *_internal.h
(store_internal.h) is included only by files of its own folder. api/ sits above trust/: it
serves approvals and the audit log. An interface
that several layers need lives in the lowest of them. Exits 1 and names every
offending include; `--count` prints only the number of upward edges (for notes)."""
import os
import re
import sys

RANK = {"core": 0, "lang": 1, "store": 2, "run": 3,
        "steps": 4, "bus": 4, "trust": 4, "api": 5, "daemon": 6, "cli": 7}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def layer_of(path):
    parts = path.split(os.sep)
    if parts[0] == "steps":
        return "steps"
    if parts[0] == "engine" and len(parts) > 2:
        return parts[1]
    if parts[0] == "engine":
        return "cli"  # engine/main.c wires everything in: the top
    return None


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.chdir(root)
    headers = {}
    sources = {}  # STYLE §2: a file name is unique in the build (no two approval.c)
    files = []
    for top in ("engine", "steps"):
        for d, _, names in os.walk(top):
            for n in names:
                if n.endswith((".c", ".h")):
                    p = os.path.join(d, n)
                    files.append(p)
                    if n.endswith(".h"):
                        if n in headers:
                            print(f"check-layers: two headers named {n}: {headers[n]} and {p}")
                            return 1
                        headers[n] = p
                    elif n in sources:
                        print(f"check-layers: two files named {n}: {sources[n]} and {p}")
                        return 1
                    else:
                        sources[n] = p
    bad = []
    for p in sorted(files):
        mine = layer_of(p)
        with open(p, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                m = INCLUDE.match(line)
                if not m or m.group(1) not in headers:
                    continue
                theirs = layer_of(headers[m.group(1)])
                if m.group(1).endswith("_internal.h") and os.path.dirname(headers[m.group(1)]) != os.path.dirname(p):
                    bad.append(f"{p}:{lineno}: includes {headers[m.group(1)]} (a module's internal header is for "
                               "its own folder only)")
                    continue
                if theirs == mine:
                    continue
                if RANK[theirs] > RANK[mine] or (RANK[theirs] == RANK[mine]):
                    bad.append(f"{p}:{lineno}: {mine}/ includes {headers[m.group(1)]} ({theirs}/ is not below {mine}/)")
    if "--count" in sys.argv:
        print(len(bad))
        return 0
    for b in bad:
        print("check-layers: " + b)
    if bad:
        print(f"check-layers: {len(bad)} include(s) point up or sideways; see STYLE §1 "
              "(a lower layer lets a higher one act through a hook it registers)")
        return 1
    print(f"check-layers: ok ({len(files)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
