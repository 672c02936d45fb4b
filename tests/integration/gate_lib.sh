# shellcheck shell=bash
# tests/integration/gate_lib.sh — sourced by the t_gate_*.sh tests (after lib.sh): each of
# them reproduces side doors of the approval gate and the agent boundaries (DESIGN §6),
# one case per door. A case runs in a subshell, so that its first failed assertion
# (rt_fail, rt_assert_eq, rt_wait_for) ends that case only, with its precise message; the
# other cases still run and the test fails at the end naming every failed case.
#
#   gate_case 1a "debounce: an agent's event does not join a service's pending run" case_fn
#   ...
#   gate_done

GATE_FAILED=()

gate_case() { # NUMBER TITLE FUNCTION
  local num=$1 title=$2 fn=$3 rc=0
  echo "case $num: $title"
  set +e
  (
    set -e
    trap 'rt__on_err $? $LINENO "$BASH_COMMAND"' ERR
    RT_TEST_NAME="$RT_TEST_NAME case $num"
    "$fn"
  )
  rc=$?
  set -e
  if ((rc == 0)); then
    echo "case $num: ok"
  else
    GATE_FAILED+=("$num")
    echo "case $num: FAILED" >&2
  fi
}

gate_done() {
  ((${#GATE_FAILED[@]} == 0)) || rt_fail "failed case(s): ${GATE_FAILED[*]} (their messages are above)"
}

# gate_mint ROLE [ENTITY]: prints a new API token and appends its line to $TOKENS.
gate_mint() {
  local out
  out=$("$RATCHET_BIN" token create --role "$1" ${2:+--entity "$2"} 2>/dev/null)
  sed -n 2p <<<"$out" >>"$TOKENS"
  sed -n 1p <<<"$out"
}

# gate_serve_with_tokens: migrates, starts serve "a" with RATCHET_TOKENS=$TOKENS, sets $U.
gate_serve_with_tokens() {
  "$RATCHET_BIN" migrate >/dev/null
  RATCHET_TOKENS=$TOKENS rt_serve_start a
  rt_serve_wait_ready a 60
  U=$(rt_serve_url a)
}

gate_status() { rt_psql "select status from ratchet.runs where id = '$1'"; }

# A metric's value summed over every label set that contains LABELS (e.g. 'reason="x"');
# 0 when there is none. URL is serve's base URL; TOKEN may be empty.
gate_metric() { # URL NAME [LABELS] [TOKEN]
  curl -fsS -m 30 ${4:+-H "Authorization: Bearer $4"} "$1/metrics" |
    awk -v n="$2" -v l="${3:-}" '
      $1 ~ /^#/ { next }
      { name = $1; sub(/\{.*/, "", name) }
      name == n && (l == "" || index($1, l) > 0) { s += $2 }
      END { printf "%d\n", s + 0 }'
}
