#!/usr/bin/python3
"""Schema agreement: schemas/workflow.schema.json and the C loader (engine/lang/workflow.c, run
through the wfcheck helper) must judge every workflow file the same way.

usage: check_agreement.py WFCHECK SOURCE_DIR

Files judged:
  workflows/*.json               the shipped examples: both must accept them (and the C
                                 loader must load the directory as a set: no duplicate ids)
  tests/schema/corpus/good/*.json  both must accept; the C hash must be sha256 of the
                                 canonical JSON (compact, sorted keys)
  tests/schema/corpus/bad/*.json   the C loader must reject, with the substring in the
                                 sidecar NAME.expect when there is one; the schema must
                                 reject too, except for the files in SEMANTIC_ONLY, which
                                 break rules JSON Schema cannot express (there the schema
                                 must accept, so the table stays honest)

Some C checks live in modules that may still be placeholders (cron, tz, expr). A
semantic-only file that needs one is skipped until `wfcheck --capabilities` lists it.
"""
import glob
import hashlib
import json
import os
import subprocess
import sys

from jsonschema import Draft202012Validator

# file name (without .json) -> (why the schema cannot see it, capability the C check needs)
SEMANTIC_ONLY = {
    "dup-step-id": ("step ids unique within the workflow", None),
    "needs-unknown": ("needs names an existing step", None),
    "needs-cycle": ("no dependency cycles", None),
    "needs-self": ("no dependency cycles", None),
    "duration-zero": ("durations are > 0 (the pattern allows 0)", None),
    "duration-too-long": ("durations are <= 3650d", None),
    "retries-cap-below-delay": ("max_delay >= delay", None),
    "debounce-timeout-below-period": ("debounce timeout >= period", None),
    "on-failure-self": ("on_failure.workflow is not the workflow itself", None),
    "duplicate-key": ("duplicate keys are a syntax error for jansson; Python keeps the last", None),
    "nul-in-string": ("jansson refuses \\u0000 in strings; Python accepts it", None),
    "id-trailing-newline": ("Python's re `$` matches before a final newline", None),
    "sleep-zero": ("sleep's own validator parses the duration", None),
    "sleep-bad-month": ("sleep's own validator parses the timestamp", None),
    "email-subject-injection": ("no line break in an email header field (the email step's validator)", None),
    "cron-out-of-range": ("cron expression validity", "cron"),
    "cron-garbage": ("cron expression validity", "cron"),
    "timezone-unknown": ("time zone exists in the tz database", "tz"),
    "expr-syntax": ("expression syntax", "expr"),
    "expr-syntax-in-template": ("expression syntax", "expr"),
    "template-syntax-in-with": ("template syntax", "expr"),
    "template-syntax-in-output": ("template syntax", "expr"),
}


def run_c(wfcheck, *args):
    p = subprocess.run([wfcheck, *args], capture_output=True, text=True, timeout=60)
    if p.returncode not in (0, 1):
        raise SystemExit(f"{wfcheck} {' '.join(args)}: exit {p.returncode}\n{p.stdout}{p.stderr}")
    return p.returncode == 0, p.stdout.strip()


def schema_errors(validator, path):
    """None when the schema accepts the file, else a short reason."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        return None, f"not JSON: {e}"
    errs = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if not errs:
        return doc, None
    e = errs[0]
    where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path)
    return doc, f"{where}: {e.message[:300]}"


def canonical_hash(doc):
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    wfcheck, src = sys.argv[1], sys.argv[2]
    with open(os.path.join(src, "schemas", "workflow.schema.json"), encoding="utf-8") as f:
        schema = json.load(f)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    failures = []

    # The step types the schema knows must be the ones the engine registers.
    _, out = run_c(wfcheck, "--step-types")
    registered = set(out.split())
    in_schema = set(schema["$defs"]["step"]["properties"]["uses"]["enum"])
    if registered != in_schema:
        failures.append(f"step types: engine registers {sorted(registered)}, schema lists {sorted(in_schema)} "
                        "(update $defs.step.properties.uses.enum in schemas/workflow.schema.json)")

    _, out = run_c(wfcheck, "--capabilities")
    caps = set(out.split())

    examples = sorted(glob.glob(os.path.join(src, "workflows", "*.json")))
    good = sorted(glob.glob(os.path.join(src, "tests", "schema", "corpus", "good", "*.json")))
    bad = sorted(glob.glob(os.path.join(src, "tests", "schema", "corpus", "bad", "*.json")))
    if len(good) < 15 or len(bad) < 40:
        failures.append(f"corpus too small: {len(good)} good, {len(bad)} bad")
    names = {os.path.basename(p)[:-5] for p in bad}
    for stale in sorted(set(SEMANTIC_ONLY) - names):
        failures.append(f"SEMANTIC_ONLY lists {stale}, which is not in corpus/bad")

    counts = {"accepted": 0, "rejected": 0, "skipped": 0}
    for path in examples + good:
        rel = os.path.relpath(path, src)
        doc, serr = schema_errors(validator, path)
        c_ok, c_out = run_c(wfcheck, path)
        if serr or not c_ok:
            failures.append(f"{rel}: should be valid; schema: {serr or 'ok'}; C: {c_out}")
            continue
        fields = c_out.split()
        if len(fields) != 3 or fields[0] != "ok" or fields[1] != doc.get("id"):
            failures.append(f"{rel}: unexpected wfcheck output {c_out!r}")
        elif path in good and fields[2] != canonical_hash(doc):
            failures.append(f"{rel}: C hash {fields[2]} is not sha256 of the canonical JSON {canonical_hash(doc)}")
        counts["accepted"] += 1

    if examples:
        c_ok, c_out = run_c(wfcheck, os.path.join(src, "workflows"))
        if not c_ok:
            failures.append(f"workflows/: the set does not load: {c_out}")

    for path in bad:
        rel = os.path.relpath(path, src)
        name = os.path.basename(path)[:-5]
        why, cap = SEMANTIC_ONLY.get(name, (None, None))
        if cap and cap not in caps:
            # Every module exists now: a missing capability is a regression, not a skip.
            failures.append(f"{rel}: the C loader lacks the {cap} check")
            continue
        _, serr = schema_errors(validator, path)
        c_ok, c_out = run_c(wfcheck, path)
        if c_ok:
            failures.append(f"{rel}: the C loader accepts it ({c_out}); schema: {serr or 'accepts it too'}")
        else:
            expect_path = path[:-5] + ".expect"
            if os.path.exists(expect_path):
                with open(expect_path, encoding="utf-8") as f:
                    expect = f.read().strip()
                if expect not in c_out:
                    failures.append(f"{rel}: C error {c_out!r} does not contain {expect!r}")
            if not c_out.startswith(f"error {path}"):
                failures.append(f"{rel}: C error does not start with the file name: {c_out!r}")
        if why:
            if serr:
                failures.append(f"{rel}: listed as semantic-only ({why}) but the schema rejects it: {serr}; "
                                "remove it from SEMANTIC_ONLY")
        elif not serr and not c_ok:
            failures.append(f"{rel}: the schema accepts it but the C loader does not: {c_out}")
        counts["rejected"] += 1

    for f in failures:
        print("FAIL", f)
    print(f"{len(examples)} example(s), {len(good)} good, {len(bad)} bad: {counts['accepted']} accepted by both, "
          f"{counts['rejected']} rejected as expected, {counts['skipped']} skipped; "
          f"capabilities: {', '.join(sorted(caps)) or 'none'}; {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
