# shellcheck shell=bash
# tests/integration/wf_lib.sh — helpers shared by the t_workflows_*.sh tests (the runtime
# registry, docs/workflows.md). Source after lib.sh.

# Writes a workflow file: wf_write FILE ID VALUE [TRIGGER_JSON] [EXTRA_STEP_JSON]: one
# optional first step, then a transform step "v" whose output (the run's output) is VALUE.
wf_write() { # FILE ID VALUE [TRIGGERS] [FIRST_STEP]
  local file=$1 id=$2 value=$3 triggers=${4:-[]} first=${5:-}
  cat >"$file" <<EOF2
{"id": "$id", "triggers": $triggers, "steps": [${first:+$first, }
  {"id": "v", "uses": "transform", "with": {"value": "$value"}}]}
EOF2
}

# HTTP against serve NAME: wf_http NAME METHOD PATH [BODY]; prints "STATUS BODY". The
# answer is recorded for the test's contract check (rt_http, rt_contract_check).
wf_http() {
  local code
  code=$(rt_http "$2" "$(rt_serve_url "$1")$3" -m 10 -H 'content-type: application/json' ${4:+--data-binary "$4"})
  printf '%s %s\n' "$code" "$(<"$T/http.body")"
}

# Starts a manual run through serve NAME's API; prints the run id, or fails.
wf_api_run() { # NAME WORKFLOW
  local out; out=$(wf_http "$1" POST "/api/v1/workflows/$2/runs" '{}')
  [[ ${out%% *} == 201 ]] || { echo "run of $2 via $1: $out" >&2; return 1; }
  python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "${out#* }"
}

wf_runs() { rt_psql "select count(*) from ratchet.runs where workflow_id = '$1'${2:+ and $2}"; }
