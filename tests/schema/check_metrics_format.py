#!/usr/bin/python3
"""/metrics format: what engine/core/metrics.c renders must be valid Prometheus text exposition
format 0.0.4, checked line by line against the format's grammar and parsed by Debian's
python3-prometheus-client (prometheus_client.parser.text_string_to_metric_families).

usage: check_metrics_format.py METRICSDUMP

Checks: before any sample every family of the table is listed (HELP and TYPE, right type)
with only the series that exist from the start (unlabeled ones and presets, at 0); after
the samples metricsdump records, every value and label value (escapes, UTF-8, empty) reads
back exactly, and histogram buckets are cumulative with _count equal to the +Inf bucket.
"""
import math
import re
import subprocess
import sys

from prometheus_client.parser import text_string_to_metric_families

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
VALUE = r"(?:[+-]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|Inf)|NaN)"
LINE_RES = [
    re.compile(rf"^# HELP {NAME} (?:[^\\\n]|\\[\\n])*$"),
    re.compile(rf"^# TYPE {NAME} (?:counter|gauge|histogram|summary|untyped)$"),
    re.compile(rf"^{NAME}(?:\{{{LABEL}(?:,{LABEL})*\}})? {VALUE}$"),
]

TRICKY = 'a"b\\c\nd \u00e9 \u2713'

# (sample name, labels) -> value, after metricsdump's samples
EXPECTED = {
    ("ratchet_runs_started_total", (("workflow", "daily-ledger-checkpoint"),)): 3,
    ("ratchet_runs_started_total", (("workflow", TRICKY),)): 1,
    ("ratchet_runs_started_total", (("workflow", ""),)): 1,
    ("ratchet_runs_finished_total", (("status", "completed"), ("workflow", "bank-sync"))): 2,
    ("ratchet_steps_total", (("status", "failed"), ("type", "http"))): 5,
    ("ratchet_step_duration_seconds_bucket", (("le", "0.001"), ("type", "http"))): 0,
    ("ratchet_step_duration_seconds_bucket", (("le", "0.005"), ("type", "http"))): 1,
    ("ratchet_step_duration_seconds_bucket", (("le", "0.25"), ("type", "http"))): 2,
    ("ratchet_step_duration_seconds_bucket", (("le", "5"), ("type", "http"))): 2,
    ("ratchet_step_duration_seconds_bucket", (("le", "10"), ("type", "http"))): 3,
    ("ratchet_step_duration_seconds_bucket", (("le", "3600"), ("type", "http"))): 3,
    ("ratchet_step_duration_seconds_bucket", (("le", "+Inf"), ("type", "http"))): 4,
    ("ratchet_step_duration_seconds_sum", (("type", "http"),)): 5007.203,
    ("ratchet_step_duration_seconds_count", (("type", "http"),)): 4,
    ("ratchet_event_ingest_lag_seconds_count", (("transport", "nats"),)): 1,
    ("ratchet_events_ingested_total", (("transport", "amqp"),)): 10,
    ("ratchet_events_dead_lettered_total", (("reason", "not_json"), ("transport", "amqp"))): 1,
    ("ratchet_bad_input_total", (("kind", "event"),)): 4,
    ("ratchet_bad_input_total", (("kind", "api"),)): 0,
    ("ratchet_queue_depth", (("priority", "high"),)): 12,
    ("ratchet_queue_depth", (("priority", "normal"),)): 2,
    ("ratchet_queue_depth", (("priority", "low"),)): 0,
    ("ratchet_oldest_runnable_age_seconds", ()): 1.5,
    ("ratchet_db_up", ()): 1,
    ("ratchet_broker_up", (("transport", "nats"),)): 0,
    ("ratchet_broker_up", (("transport", "amqp"),)): 1,
}


def run(dump, *args):
    p = subprocess.run([dump, *args], capture_output=True, timeout=60)
    if p.returncode != 0:
        raise SystemExit(f"{dump} {' '.join(args)}: exit {p.returncode}\n{p.stderr.decode(errors='replace')}")
    return p.stdout.decode("utf-8")  # the format is UTF-8: anything else fails here


def check_text(text, table, what, failures):
    """Grammar, families and histogram shape; returns {(sample name, labels): value}."""
    if not text.endswith("\n"):
        failures.append(f"{what}: does not end with a newline")
    for i, line in enumerate(text.split("\n")[:-1], 1):
        if not any(r.match(line) for r in LINE_RES):
            failures.append(f"{what}: line {i} breaks the grammar: {line!r}")
    fams = {}
    samples = {}
    for fam in text_string_to_metric_families(text):
        # the parser strips _total from counter family names
        name = fam.name + "_total" if fam.type == "counter" else fam.name
        fams[name] = fam
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            if key in samples:
                failures.append(f"{what}: sample {key} listed twice")
            samples[key] = s.value
        if fam.type == "histogram":
            check_histograms(fam, what, failures)
    for name, (typ, labels) in table.items():
        fam = fams.get(name)
        if not fam:
            failures.append(f"{what}: family {name} is missing")
            continue
        if fam.type != typ:
            failures.append(f"{what}: {name} has type {fam.type}, the table says {typ}")
        if not fam.documentation:
            failures.append(f"{what}: {name} has no HELP text")
        for s in fam.samples:
            got = sorted(k for k in s.labels if k != "le")
            if got != sorted(labels):
                failures.append(f"{what}: {s.name} has labels {got}, the table says {sorted(labels)}")
    for name in set(fams) - set(table):
        failures.append(f"{what}: family {name} is not in the table")
    return samples


def check_histograms(fam, what, failures):
    series = {}
    for s in fam.samples:
        key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        series.setdefault(key, []).append(s)
    for key, ss in series.items():
        buckets = [(float(s.labels["le"]), s.value) for s in ss if s.name.endswith("_bucket")]
        counts = [s.value for s in ss if s.name.endswith("_count")]
        sums = [s.value for s in ss if s.name.endswith("_sum")]
        if not buckets or buckets[-1][0] != math.inf or len(counts) != 1 or len(sums) != 1:
            failures.append(f"{what}: {fam.name}{dict(key)}: needs buckets ending in +Inf, one _sum, one _count")
            continue
        les = [b[0] for b in buckets]
        vals = [b[1] for b in buckets]
        if les != sorted(les) or len(set(les)) != len(les) or vals != sorted(vals):
            failures.append(f"{what}: {fam.name}{dict(key)}: buckets not increasing and cumulative: {buckets}")
        if counts[0] != vals[-1]:
            failures.append(f"{what}: {fam.name}{dict(key)}: _count {counts[0]} != +Inf bucket {vals[-1]}")


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    dump = sys.argv[1]
    failures = []
    table = {}
    for line in run(dump, "--families").splitlines():
        parts = line.split(" ")
        table[parts[0]] = (parts[1], [l for l in parts[2].split(",") if l])
    if len(table) < 12:
        failures.append(f"only {len(table)} families in the table")

    empty = check_text(run(dump, "--empty"), table, "before samples", failures)
    for (name, labels), v in empty.items():
        if v != 0:
            failures.append(f"before samples: {name}{dict(labels)} is {v}, not 0")
    for must in [("ratchet_db_up", ()), ("ratchet_oldest_runnable_age_seconds", ()),
                 ("ratchet_queue_depth", (("priority", "critical"),))]:
        if must not in empty:
            failures.append(f"before samples: {must[0]}{dict(must[1])} should be listed at 0")

    full = check_text(run(dump), table, "after samples", failures)
    for key, v in EXPECTED.items():
        got = full.get(key)
        if got is None or not math.isclose(got, v, rel_tol=1e-12):
            failures.append(f"after samples: {key[0]}{dict(key[1])} = {got}, expected {v}")

    for f in failures:
        print("FAIL", f)
    print(f"{len(table)} families; {len(empty)} samples before, {len(full)} after; "
          f"{len(EXPECTED)} values checked; {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
