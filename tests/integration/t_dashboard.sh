#!/usr/bin/env bash
# The dashboard: GET / serves the embedded page (HTML, strict CSP with the hashes filled
# in, no external URLs), GET /api/v1/stats answers the shape the charts draw with counts
# that match a known workload, and tests/browser/dashboard.test.mjs drives the page in
# headless Chromium against two serves on one database, one without tokens and one with:
# a run started here shows up and completes by live refresh, the run detail draws the
# step timeline, a step's progress bar, filters, replay, schedule pause/resume, the
# workflows health page, the approvals inbox, the token prompt; no console errors and no request off loopback. Screenshots land in $T and in
# $RATCHET_TEST_TMPDIR (dashboard*.png).
source "$(dirname "$0")/lib.sh"
rt_test_init dashboard

PY=/usr/bin/python3
BROWSER_DIR=$RATCHET_SOURCE_DIR/tests/browser

# ---- the browser and its driver: missing is a failure, never a skip ----
[[ -x /usr/bin/chromium ]] ||
  rt_fail "/usr/bin/chromium is missing: this test drives Debian's chromium (apt-get install chromium; scripts/lib/deps.sh lists it)"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  rt_fail "node and npm are missing: they run tests/browser (node >= 20)"
fi
# playwright-core as package-lock.json pins it; npm ci when missing or another version.
if ! node -e '
  const d = process.argv[1];
  const want = require(d + "/package-lock.json").packages["node_modules/playwright-core"].version;
  const got = require(d + "/node_modules/playwright-core/package.json").version;
  process.exit(want === got ? 0 : 1);' "$BROWSER_DIR" 2>/dev/null; then
  npm ci --prefix "$BROWSER_DIR" --no-audit --no-fund --loglevel=error >"$T/npm.log" 2>&1 ||
    rt_fail "npm ci in tests/browser failed (is the npm registry reachable?):"$'\n'"$(tail -n 20 "$T/npm.log")"
fi

# ---- workflows ----
W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=4
cat >"$W/demo.json" <<'EOF'
{"id": "demo", "steps": [
  {"id": "nap", "uses": "exec", "with": {"command": ["sleep", "2"]}},
  {"id": "shape", "uses": "transform", "with": {"value": {"ok": true, "n": "${{ event.data.n }}", "note": "${{ event.data.note }}"}}}]}
EOF
cat >"$W/flaky.json" <<'EOF'
{"id": "flaky", "steps": [{"id": "boom", "uses": "exec",
  "retries": {"max_attempts": 2, "backoff": "fixed", "delay": "200ms"},
  "with": {"command": ["sh", "-c", "echo bad input >&2; exit 3"]}}]}
EOF
cat >"$W/long.json" <<'EOF'
{"id": "long", "steps": [{"id": "z", "uses": "sleep", "with": {"duration": "1h"}}]}
EOF
cat >"$W/tick.json" <<'EOF'
{"id": "tick", "triggers": [{"cron": "0 0 1 1 *"}], "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF
# Reports progress (RATCHET_PROGRESS_FD), then waits for the file named by event.data.gate.
cat >"$W/progressive.json" <<'EOF'
{"id": "progressive", "steps": [{"id": "work", "uses": "exec", "with": {"command": ["sh", "-c",
  "echo '{\"done\": 40, \"total\": 100, \"message\": \"syncing account 40\"}' >&3; while [ ! -e \"$1\" ]; do sleep 0.05; done",
  "sh", "${{ event.data.gate }}"]}}]}
EOF
cat >"$W/gated.json" <<'EOF'
{"id": "gated", "triggers": [{"event": "refund.requested"}],
 "approval": {"required_for": ["agent"], "approvers": ["ops-lead", "cfo"]},
 "steps": [{"id": "pay", "uses": "transform", "with": {"value": "${{ event.data.amount }}"}}]}
EOF

TOKENS=$T/tokens
out=$("$RATCHET_BIN" token create --role viewer 2>/dev/null)
VIEWER=$(sed -n 1p <<<"$out")
sed -n 2p <<<"$out" >"$TOKENS"

"$RATCHET_BIN" migrate >/dev/null
rt_serve_start a
rt_serve_wait_ready a
U=$(rt_serve_url a)

# ---- the page ----
curl -sS -m 60 -D "$T/hdrs" -o "$T/page.html" "$U/" || rt_fail "GET / failed"
grep -qi '^content-type: text/html; charset=utf-8' "$T/hdrs" || rt_fail "GET / content type: $(cat "$T/hdrs")"
grep -qi "^content-security-policy: frame-ancestors 'none'" "$T/hdrs" || rt_fail "GET / may be framed: $(cat "$T/hdrs")"
grep -qi '^x-frame-options: DENY' "$T/hdrs" || rt_fail "GET / has no X-Frame-Options: $(cat "$T/hdrs")"
grep -qi '^x-content-type-options: nosniff' "$T/hdrs" || rt_fail "GET / has no X-Content-Type-Options"
grep -q "script-src 'sha256-[A-Za-z0-9+/]*='" "$T/page.html" || rt_fail "the page's CSP has no script hash"
grep -q '@SCRIPT_HASH@\|@STYLE_HASH@' "$T/page.html" && rt_fail "CSP placeholders left in the page"
sed 's|http://www.w3.org/2000/svg||g' "$T/page.html" | grep -qE 'https?://' && rt_fail "the page holds an external URL"

# ---- what a browser on another site may not do (no tokens: every caller is admin) ----
code() { curl -sS -m 60 -o "$T/resp" -w '%{http_code}' "$@"; }
rt_assert_eq 403 "$(code -X POST -H 'Origin: http://evil.example' -H 'Content-Type: text/plain' -d x \
  "$U/api/v1/workflows/demo/runs")" "a cross-site POST is refused"
grep -q 'cross-origin' "$T/resp" || rt_fail "cross-site refusal message: $(cat "$T/resp")"
rt_assert_eq 403 "$(code -H 'Host: rebound.example' "$U/api/v1/runs")" "a non-loopback Host is refused without tokens"
rt_assert_eq 403 "$(code -H 'Host: 127.0.0.1.rebound.example:80' "$U/api/v1/runs")" "a name that starts like 127. is not loopback"
for h in 'localhost:8288' 'LOCALHOST.' '[::1]:8288' '127.3.2.1'; do
  rt_assert_eq 200 "$(code -H "Host: $h" "$U/api/v1/runs")" "loopback Host $h"
done
rt_assert_eq 0 "$(rt_psql "select count(*) from ratchet.runs")" "nothing started by the refused requests"
rt_assert_eq 404 "$(code -X POST -H "Origin: $U" "$U/api/v1/runs/00000000-0000-0000-0000-000000000000/cancel")" \
  "a same-origin POST (the dashboard's own) goes through"

# ---- a known workload, then /api/v1/stats ----
start() { # WORKFLOW DATA -> run id
  curl -fsS -m 60 -X POST -H 'Content-Type: application/json' --data-binary "{\"data\": $2}" \
    "$U/api/v1/workflows/$1/runs" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["id"])'
}
for i in 1 2 3; do start demo "{\"n\": $i}" >/dev/null; done
FLAKY=$(start flaky '{}')
curl -fsS -m 60 -X POST -H 'Content-Type: application/json' "$U/api/v1/events" --data-binary \
  '{"name": "refund.requested", "data": {"amount": 120, "currency": "EUR"}, "actor": {"type": "agent", "id": "support-bot"}, "entity_id": "acct_42"}' \
  >/dev/null
rt_wait_for 60 '[ "$(rt_psql "select count(*) from ratchet.runs where finished_at is not null")" = 4 ]'
GATED=$(rt_psql "select id from ratchet.runs where workflow_id = 'gated'")
rt_assert_eq awaiting_approval "$(rt_psql "select status from ratchet.runs where id = '$GATED'")" "gated run"

curl -fsS -m 60 "$U/api/v1/stats" >"$T/stats.json" || rt_fail "GET /api/v1/stats failed"
"$PY" - "$T/stats.json" <<'EOF' || rt_fail "/api/v1/stats: $(cat "$T/stats.json")"
import json, sys
s = json.load(open(sys.argv[1]))
assert list(s) == ["now", "queue", "oldest_runnable_age_s", "active", "finished", "minutes", "throughput"], list(s)
assert [q["priority"] for q in s["queue"]] == ["critical", "high", "normal", "low"], s["queue"]
for q in s["queue"]:
    assert set(q) == {"priority", "runnable", "scheduled", "leased"} and all(q[k] == 0 for k in ("runnable", "scheduled", "leased")), q
assert s["oldest_runnable_age_s"] == 0, s
assert list(s["active"]) == ["queued", "awaiting_approval", "running", "sleeping", "waiting", "paused"], s["active"]
assert s["active"]["awaiting_approval"] == 1 and s["active"]["running"] == 0, s["active"]
assert s["finished"] == {"completed": 3, "partial": 0, "failed": 1, "cancelled": 0, "expired": 0,
                         "timed_out": 0, "rejected": 0}, s["finished"]
assert s["minutes"] == 60 and len(s["throughput"]) == 60, len(s["throughput"])
ts = [p["t"] for p in s["throughput"]]
assert ts == sorted(ts) and all(t.endswith(":00.000Z") for t in ts), ts
assert sum(p["completed"] for p in s["throughput"]) == 3 and sum(p["failed"] for p in s["throughput"]) == 1
assert all(set(p) == {"t", "completed", "failed", "cancelled", "other"} for p in s["throughput"])
EOF
"$PY" -c 'import json, sys; d = json.load(sys.stdin); assert d["minutes"] == 5 and len(d["throughput"]) == 5, d' \
  < <(curl -fsS -m 60 "$U/api/v1/stats?minutes=5") || rt_fail "stats?minutes=5"
for q in minutes=0 minutes=1441 minutes=x window=5; do
  code=$(curl -sS -m 60 -o "$T/resp" -w '%{http_code}' "$U/api/v1/stats?$q")
  rt_assert_eq 400 "$code" "GET /api/v1/stats?$q ($(cat "$T/resp"))"
done
# A queued item due now counts as runnable, with its age.
LATER=$(curl -fsS -m 60 -X POST -H 'Content-Type: application/json' --data-binary '{"run_at": "2099-01-01T00:00:00Z"}' \
  "$U/api/v1/workflows/demo/runs" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["id"])')
"$PY" -c '
import json, sys
d = json.load(sys.stdin)
n = {q["priority"]: q for q in d["queue"]}["normal"]
assert n["scheduled"] == 1 and n["runnable"] == 0 and d["active"]["queued"] == 1, d' \
  < <(curl -fsS -m 60 "$U/api/v1/stats") || rt_fail "a run scheduled for later is not counted as scheduled"
curl -fsS -m 60 -X POST -H 'Content-Type: application/json' -d '{}' "$U/api/v1/runs/$LATER/cancel" >/dev/null

# ---- the same database behind a serve that wants tokens ----
RATCHET_TOKENS=$TOKENS rt_serve_start b
rt_serve_wait_ready b
code=$(curl -sS -m 60 -o /dev/null -w '%{http_code}' "$(rt_serve_url b)/api/v1/stats")
rt_assert_eq 401 "$code" "stats without a token"
code=$(curl -sS -m 60 -o /dev/null -w '%{http_code}' "$(rt_serve_url b)/")
rt_assert_eq 200 "$code" "the page without a token"

# ---- the browser ----
RUN=$(start demo '{"n": 1}')
PROGRESS=$(start progressive "{\"gate\": \"$T/progress-gate\"}")
SHOTS=$T/shots${RATCHET_TEST_TMPDIR:+:$RATCHET_TEST_TMPDIR}
rc=0
RT_URL=$U RT_URL_AUTH=$(rt_serve_url b) RT_TOKEN_VIEWER=$VIEWER RT_RUN_ID=$RUN RT_FLAKY_ID=$FLAKY RT_GATED_ID=$GATED \
  RT_PROGRESS_ID=$PROGRESS \
  RT_SHOTS=$SHOTS timeout 420 node "$BROWSER_DIR/dashboard.test.mjs" >"$T/browser.log" 2>&1 || rc=$?
cat "$T/browser.log"
touch "$T/progress-gate"
rt_assert_eq 0 "$rc" "exit status of tests/browser/dashboard.test.mjs (124: timed out)"
rt_wait_for 60 '[ "$(rt_psql "select status from ratchet.runs where id = '"'$PROGRESS'"'")" = completed ]'
[[ -s $T/shots/dashboard.png ]] || rt_fail "no screenshot"

rt_serve_stop b
rt_serve_stop a
rt_check_log "$T/a.log"
rt_check_log "$T/b.log"
