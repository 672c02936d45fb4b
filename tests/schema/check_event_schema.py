#!/usr/bin/python3
"""Event envelope agreement: schemas/event.schema.json (through Debian's python3-jsonschema,
Draft 2020-12) and the C parser (engine/lang/event.c, through the evcheck helper) must judge
every input the same way.

usage: check_event_schema.py EVCHECK SOURCE_DIR

Inputs judged:
  tests/schema/event-corpus/good/*.json  both must accept. The C parser's normalized
        envelope must itself satisfy the schema, keep every value the input gave, fill
        the defaults (id a UUIDv7, ts = the fixed clock, data {}, actor service, v "1"),
        and parse again to the same envelope.
  tests/schema/event-corpus/bad/*.json   the C parser must reject, with the substring in
        the sidecar NAME.expect when there is one. Who else rejects decides the kind of
        error: when the strict JSON reader below refuses the bytes, C must call it a
        syntax error (fault not_json); otherwise the schema must reject it and C must call
        it an envelope error (fault invalid).
  a generated matrix: one value per envelope key at a time, over the values that sit on
        the rules' edges; only agreement is checked.

The strict JSON reader is Python's json module told to refuse what jansson refuses (and
JSON Schema cannot see): duplicate keys, NaN/Infinity, \\u0000 in strings or keys, lone
surrogates, integers outside 64 bits and numbers that overflow a double.
"""
import glob
import json
import math
import os
import re
import subprocess
import sys
import tempfile

from jsonschema import Draft202012Validator

NOW_MS = 1700000000000
UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
DEFAULTS = {"data": {}, "actor": {"type": "service"}, "v": "1"}


class NotJSON(Exception):
    pass


def _no_duplicates(pairs):
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise NotJSON(f"duplicate key {k!r}")
        seen[k] = v
    return seen


def _refuse_constant(name):
    raise NotJSON(f"{name} is not JSON")


def _check_values(v):
    if isinstance(v, str):
        if "\x00" in v:
            raise NotJSON("\\u0000 in a string")
        if any(0xD800 <= ord(c) <= 0xDFFF for c in v):
            raise NotJSON("lone surrogate")
    elif isinstance(v, bool) or v is None:
        pass
    elif isinstance(v, int):
        if not -(2**63) <= v < 2**63:
            raise NotJSON("integer outside 64 bits")
    elif isinstance(v, float):
        if math.isinf(v) or math.isnan(v):
            raise NotJSON("number overflows a double")
    elif isinstance(v, list):
        for x in v:
            _check_values(x)
    elif isinstance(v, dict):
        for k, x in v.items():
            _check_values(k)
            _check_values(x)


def strict_load(raw):
    """(document, None), or (None, why the bytes are not JSON to jansson)."""
    try:
        text = raw.decode("utf-8")
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
        _check_values(doc)
        return doc, None
    except (UnicodeDecodeError, ValueError, NotJSON, RecursionError) as e:
        return None, str(e)


def schema_error(validator, doc):
    errs = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if not errs:
        return None
    e = errs[0]
    where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path)
    return f"{where}: {e.message[:200]}"


def run_c(evcheck, paths):
    """One evcheck run over many files: a list of (ok, normalized envelope | (fault, message))."""
    p = subprocess.run([evcheck, "--now", str(NOW_MS), *paths], capture_output=True, text=True, timeout=120)
    if p.returncode not in (0, 1):
        raise SystemExit(f"{evcheck}: exit {p.returncode}\n{p.stdout}{p.stderr}")
    lines = p.stdout.splitlines()
    if len(lines) != len(paths):
        raise SystemExit(f"{evcheck}: {len(lines)} lines of output for {len(paths)} files\n{p.stdout}{p.stderr}")
    out = []
    for line in lines:
        if line.startswith("ok "):
            out.append((True, json.loads(line[3:])))
        else:
            _, fault, msg = line.split(" ", 2)
            raw = re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m.group(1), 16)]), msg.encode("ascii"))
            out.append((False, (fault, raw.decode("utf-8", errors="replace"))))
    return out


def check_normalized(doc, env, validator):
    """What is wrong with the C parser's envelope for an accepted input (list of strings)."""
    problems = []
    err = schema_error(validator, env)
    if err:
        problems.append(f"normalized envelope fails the schema: {err}")
    for k, v in doc.items():
        if v is None and k != "data":
            continue  # null means absent
        if k == "actor" and isinstance(v, dict):
            v = {ak: av for ak, av in v.items() if av is not None}
        if env.get(k) != v:
            problems.append(f"{k}: input {v!r}, normalized {env.get(k)!r}")
    for k, v in DEFAULTS.items():
        if k not in doc or (doc[k] is None and k != "data"):
            if env.get(k) != v:
                problems.append(f"{k}: default should be {v!r}, is {env.get(k)!r}")
    if doc.get("ts") is None and env.get("ts") != NOW_MS:
        problems.append(f"ts: default should be the clock ({NOW_MS}), is {env.get('ts')!r}")
    if doc.get("id") is None and not UUID7.match(str(env.get("id"))):
        problems.append(f"id: default should be a UUIDv7, is {env.get('id')!r}")
    for k in ("entity_id",):
        if doc.get(k) is None and k in env:
            problems.append(f"{k}: absent in the input but {env[k]!r} in the envelope")
    extra = set(env) - set(doc) - {"name", "id", "ts", "data", "actor", "v"}
    if extra:
        problems.append(f"keys the input did not have: {sorted(extra)}")
    return problems


def matrix():
    """(label, bytes) inputs: one key varied at a time around a valid base."""
    values = {
        "name": ["a", "a.b", "a..b", ".a", "a.", "a.*", ">", "a b", "a.b\n", "A:b-c_d", "é", "a" * 200, "a" * 201, "a" * 255,
                 "a" * 256, "", 1, None, [], "a/b", "a\tb"],
        "id": ["x", "", " ", "a b", "~" * 200, "~" * 201, "é", "a\n", "\x7f", 1, None, True, {}],
        "ts": [0, -1, 1.0, 1.5, 253402300799999, 253402300800000, "1", None, 1e20, -0.0, False, 2**62],
        "data": [None, 0, "", [], {}, {"a": [1, {"b": None}]}, 1.25, True],
        "actor": [None, {}, {"type": "user"}, {"type": "agent", "id": "a-1"}, {"type": "x"}, {"id": "x"},
                  {"type": "user", "id": ""}, {"type": "user", "id": None}, {"type": "user", "x-k": [1]},
                  {"type": "user", "k": 1}, {"type": "service", "id": "é" * 200}, {"type": "service", "id": "é" * 201},
                  {"type": "system", "id": "a\nb"}, "user", [], 1],
        "entity_id": ["e", "", None, "é" * 200, "é" * 201, "a\x1fb", "a\x7fb", "a\x80b", 5, {}],
        "v": ["1", "2", "", None, 1, "1.0"],
        "x-ext": [None, 1, "s", {"deep": [True]}],
        "X-ext": [1],
        "x-": [1],
        "type": ["a"],
        "extra": [1],
    }
    out = []
    for key, vals in values.items():
        for i, v in enumerate(vals):
            doc = {"name": "m.n"}
            doc[key] = v
            out.append((f"{key}#{i}={json.dumps(v)[:40]}", json.dumps(doc, ensure_ascii=False).encode("utf-8")))
    return out


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    evcheck, src = sys.argv[1], sys.argv[2]
    with open(os.path.join(src, "schemas", "event.schema.json"), encoding="utf-8") as f:
        schema = json.load(f)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    failures = []

    corpus = os.path.join(src, "tests", "schema", "event-corpus")
    good = sorted(glob.glob(os.path.join(corpus, "good", "*.json")))
    bad = sorted(glob.glob(os.path.join(corpus, "bad", "*.json")))
    if len(good) < 15 or len(bad) < 40:
        failures.append(f"corpus too small: {len(good)} good, {len(bad)} bad")

    # good: both accept; the envelope is right and stable
    results = run_c(evcheck, good) if good else []
    with tempfile.TemporaryDirectory() as tmp:
        again = []
        for path, (ok, res) in zip(good, results):
            rel = os.path.relpath(path, src)
            with open(path, "rb") as f:
                doc, jerr = strict_load(f.read())
            serr = jerr or schema_error(validator, doc)
            if serr or not ok:
                failures.append(f"{rel}: should be valid; schema: {serr or 'ok'}; C: {res if not ok else 'ok'}")
                continue
            for p in check_normalized(doc, res, validator):
                failures.append(f"{rel}: {p}")
            out = os.path.join(tmp, f"{len(again)}.json")
            with open(out, "w", encoding="utf-8") as f:
                json.dump(res, f, ensure_ascii=False)
            again.append((rel, res, out))
        for (rel, env, _), (ok, res) in zip(again, run_c(evcheck, [a[2] for a in again]) if again else []):
            if not ok or res != env:
                failures.append(f"{rel}: the normalized envelope does not parse to itself: {res}")

    # bad: C rejects, for the reason the Python side gives
    for path, (ok, res) in zip(bad, run_c(evcheck, bad) if bad else []):
        rel = os.path.relpath(path, src)
        with open(path, "rb") as f:
            doc, jerr = strict_load(f.read())
        serr = None if jerr else schema_error(validator, doc)
        if ok:
            failures.append(f"{rel}: the C parser accepts it; Python: {jerr or serr or 'accepts it too'}")
            continue
        fault, msg = res
        expect_path = path[:-5] + ".expect"
        if os.path.exists(expect_path):
            with open(expect_path, encoding="utf-8") as f:
                expect = f.read().strip()
            if expect not in msg:
                failures.append(f"{rel}: C error {msg!r} does not contain {expect!r}")
        if jerr and fault != "not_json":
            failures.append(f"{rel}: not JSON to the strict reader ({jerr}) but C says {fault}: {msg}")
        elif not jerr and fault != "invalid":
            failures.append(f"{rel}: JSON to the strict reader, but C says {fault}: {msg}")
        elif not jerr and not serr:
            failures.append(f"{rel}: the schema accepts it but the C parser does not: {msg}")

    # the matrix: agreement only
    cases = matrix()
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, (_, raw) in enumerate(cases):
            paths.append(os.path.join(tmp, f"{i}.json"))
            with open(paths[-1], "wb") as f:
                f.write(raw)
        for (label, raw), (ok, res) in zip(cases, run_c(evcheck, paths)):
            doc, jerr = strict_load(raw)
            serr = jerr or schema_error(validator, doc)
            if ok != (serr is None):
                failures.append(f"matrix {label}: schema {'accepts' if serr is None else 'rejects: ' + serr}; "
                                f"C {'accepts' if ok else 'rejects: ' + res[1]}")
            elif ok:
                for p in check_normalized(doc, res, validator):
                    failures.append(f"matrix {label}: {p}")

    for f in failures:
        print("FAIL", f)
    print(f"{len(good)} good, {len(bad)} bad, {len(cases)} generated inputs; {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
