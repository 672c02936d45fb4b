#!/usr/bin/env bash
# Audit flooding (DESIGN §6: "every refusal is an audited event with bounded details;
# refusals are rate-limited in the log"):
#   7    an agent token makes 300 refusals quickly — approval decisions, which an agent
#        never makes, each with a ~100 KiB comment — from one process. The audit log gets
#        at most 60 records from that actor, none with details over 4096 bytes, the rest is
#        counted on /metrics (ratchet_audit_refusals_suppressed_total), the chain verifies
#        and serve stays up.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/gate_lib.sh"
rt_test_init gate_audit_flood

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2
rt_use_approver ops-lead
cat >"$W/gated.json" <<'EOF'
{"id": "flood-gated", "triggers": [{"event": "flood.task"}], "approval": {"required_for": ["agent"], "approvers": ["ops-lead"]},
 "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF
TOKENS=$T/tokens
: >"$TOKENS"
TOK_AGENT=$(gate_mint agent e1)
TOK_VIEWER=$(gate_mint viewer)
gate_serve_with_tokens

case_flood() {
  local R statuses rows biggest suppressed
  # A real gate to aim at (the agent's own run): the decisions name it.
  curl -fsS -m 30 -o "$T/run.json" -H "Authorization: Bearer $TOK_AGENT" -H 'Content-Type: application/json' \
    --data '{"data": {}}' "$U/api/v1/workflows/flood-gated/runs" || rt_fail "agent could not start its gated run"
  R=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$T/run.json")
  rt_assert_eq awaiting_approval "$(gate_status "$R")" "the agent's run waits"
  # 300 refused decisions from one process, on one keep-alive connection.
  statuses=$(python3 - "${U#http://}" "$TOK_AGENT" "$R" <<'PY'
import collections, http.client, json, os, sys, time
addr, token, run_id = sys.argv[1:]
host, port = addr.rsplit(":", 1)
conn = http.client.HTTPConnection(host, int(port), timeout=60)
seen = collections.Counter()
for i in range(300):
    decision = {"run_id": run_id, "decision": "approve", "approver": "ops-lead", "comment": "x" * (100 * 1024),
                "ts": int(time.time() * 1000), "nonce": os.urandom(12).hex(), "action_hash": "0" * 64,
                "sig": "A" * 86 + "=="}
    body = json.dumps({"name": "ratchet.approval.decided", "data": decision})
    conn.request("POST", "/api/v1/events", body, {"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    seen[resp.status] += 1
print(" ".join("%d:%d" % kv for kv in sorted(seen.items())))
PY
  ) || rt_fail "the flood client failed"
  echo "flood: HTTP statuses $statuses"
  [[ $statuses != *5[0-9][0-9]:* ]] || rt_fail "server errors during the flood: $statuses"
  rt_serve_wait_ready a 60
  rt_assert_eq awaiting_approval "$(gate_status "$R")" "no agent decision moved the run"
  rows=$(q "select count(*) from ratchet.audit_log where actor like 'agent:%'")
  biggest=$(q "select coalesce(max(octet_length(details::text)), 0) from ratchet.audit_log where actor like 'agent:%'")
  suppressed=$(gate_metric "$U" ratchet_audit_refusals_suppressed_total "" "$TOK_VIEWER")
  echo "flood: $rows audit record(s) from the agent, largest details $biggest bytes, $suppressed suppressed"
  # The metric reader itself works (so a 0 above is a real 0): the 300 events were counted.
  (($(gate_metric "$U" ratchet_events_ingested_total 'transport="api"' "$TOK_VIEWER") >= 300)) ||
    rt_fail "cannot read ratchet_events_ingested_total{transport=\"api\"} >= 300 from /metrics"
  "$RATCHET_BIN" audit verify | grep -Eq '^ok: ' || rt_fail "audit verify after the flood: $("$RATCHET_BIN" audit verify 2>&1)"
  ((rows >= 1)) || rt_fail "the agent's refusals left no audit record at all"
  # Each bound is checked, and every one that does not hold is named.
  local broken=()
  ((rows <= 60)) || broken+=("300 refusals wrote $rows audit records from the agent: expected at most 60 (refusals are rate-limited: counted, not each written)")
  ((biggest <= 4096)) || broken+=("an agent refusal record holds $biggest bytes of details: expected at most 4096 (bounded; the rest as a hash)")
  ((rows + suppressed >= 300)) ||
    broken+=("refusals unaccounted for: $rows written + $suppressed counted on /metrics (ratchet_audit_refusals_suppressed_total) < 300")
  curl -fsS -m 30 -H "Authorization: Bearer $TOK_VIEWER" "$U/metrics" | grep -q '^ratchet_audit_refusals_suppressed_total' ||
    broken+=("no ratchet_audit_refusals_suppressed_total sample on /metrics")
  ((${#broken[@]} == 0)) || rt_fail "$(printf '%s; ' "${broken[@]}")"
}
gate_case 7 "audit flooding: an agent's 300 refusals with 100 KiB comments are rate-limited and bounded" case_flood

gate_done
rt_serve_stop a
rt_check_log "$T/a.log"
echo "ok: gate audit flood"
