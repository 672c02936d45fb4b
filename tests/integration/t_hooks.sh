#!/usr/bin/env bash
# Inbound webhooks against a real serve: POST /hooks/stripe (Stripe-Signature) and
# POST /hooks/generic/{name} (X-Ratchet-Signature), signed here with Python's hmac module,
# independently of the C code. Valid deliveries store their event and start runs; the same
# delivery again is a duplicate; bad and expired signatures, missing or malformed headers
# and bad bodies are refused with 400, counted in /metrics and store nothing; hooks without
# a secret answer 404; webhooks need no bearer token when tokens are on; no secret ever
# reaches the log.
source "$(dirname "$0")/lib.sh"
rt_test_init hooks

PY=/usr/bin/python3 # Debian's, with python3-prometheus-client
W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2 RATCHET_LOG_LEVEL=debug RATCHET_WEBHOOK_TOLERANCE=60s
STRIPE_SECRET="whsec_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
HOOK_SECRET="hooksecret-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export RATCHET_SECRET_STRIPE_WEBHOOK=$STRIPE_SECRET
export RATCHET_SECRET_HOOK_CI_BUILD_V2=$HOOK_SECRET # hook "ci_build_v2"

cat >"$W/payments.json" <<'EOF'
{"id": "payments", "triggers": [{"event": "stripe.>"}],
 "steps": [{"id": "amount", "uses": "transform", "with": {"value": "${{ event.data.data.object.amount }}"}}]}
EOF
cat >"$W/builds.json" <<'EOF'
{"id": "builds", "triggers": [{"event": "hook.ci_build_v2"}],
 "steps": [{"id": "ref", "uses": "transform", "with": {"value": "${{ event.data.ref }}"}}]}
EOF

# sign SECRET T FILE: hex HMAC-SHA256 of "T.body"
sign() {
  "$PY" -c 'import hmac,hashlib,sys; print(hmac.new(sys.argv[1].encode(), sys.argv[2].encode() + b"." + open(sys.argv[3],"rb").read(), hashlib.sha256).hexdigest())' "$@"
}
now() { date +%s; }

# post PATH FILE [curl args...]: sets CODE and BODY
post() {
  local p=$1 f=$2
  shift 2
  local rc=0
  CODE=$(curl -sS -m 30 -o "$T/resp" -D "$T/hdrs" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "@$f" "$@" \
    "$U$p") || rc=$?
  ((rc == 0)) || CODE=curl-failed-$rc
  BODY=$(cat "$T/resp")
  rt_contract_record POST "$p" "$CODE" "$T/resp" "$T/hdrs"
}
expect() { # STATUS MESSAGE
  [[ $CODE == "$1" ]] || rt_fail "$2: expected HTTP $1, got $CODE: $BODY"
}
jcheck() { # PYTHON-EXPR MESSAGE (d = the parsed BODY)
  "$PY" -c "import json,sys; d=json.loads(sys.argv[1]); assert $1, d" "$BODY" 2>/dev/null || rt_fail "$2: $BODY"
}
refused() { # STATUS MESSAGE-PART WHAT: an error answer whose message holds MESSAGE-PART
  expect "$1" "$3"
  jcheck "set(d)=={'error'} and '''$2''' in d['error']['message']" "$3: error message"
}
# metric NAME LABELS-PYTHON-DICT: the sample's value on /metrics (0 when absent)
metric() {
  curl -fsS -m 60 "$U/metrics" >"$T/metrics" || rt_fail "GET /metrics failed"
  "$PY" - "$T/metrics" "$1" "$2" <<'EOF'
import ast, sys
from prometheus_client.parser import text_string_to_metric_families
text, name, labels = open(sys.argv[1]).read(), sys.argv[2], ast.literal_eval(sys.argv[3])
v = 0
for fam in text_string_to_metric_families(text):
    for s in fam.samples:
        if s.name == name and s.labels == labels:
            v = s.value
print(int(v))
EOF
}
refusals() { metric ratchet_webhook_refused_total "{'hook': '$1', 'reason': '$2'}"; }
events() { rt_psql "select count(*) from ratchet.events where ${1:-true}"; }

# stripe_event FILE ID TYPE: a Stripe event object
stripe_event() {
  printf '{\n  "id": "%s",\n  "object": "event",\n  "api_version": "2024-06-20",\n  "created": %s,\n  "type": "%s",\n  "livemode": false,\n  "data": {"object": {"id": "pi_3", "object": "payment_intent", "amount": 2000, "currency": "eur"}}\n}\n' \
    "$2" "$(now)" "$3" >"$1"
}

"$RATCHET_BIN" migrate >/dev/null
rt_serve_start a
rt_serve_wait_ready a
U=$(rt_serve_url a)

# ---- 1. Stripe: a valid delivery stores stripe.<type> with Stripe's id and starts a run ----
stripe_event "$T/pi.json" evt_1PiSucceeded payment_intent.succeeded
t=$(now)
SIG1="t=$t,v1=$(sign "$STRIPE_SECRET" "$t" "$T/pi.json"),v0=ignored"
post /hooks/stripe "$T/pi.json" -H "Stripe-Signature: $SIG1"
expect 200 "valid Stripe delivery"
jcheck "d['id']=='evt_1PiSucceeded' and d['name']=='stripe.payment_intent.succeeded' and d['duplicate'] is False and len(d['runs'])==1" "stored event"
run=$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["runs"][0])' "$BODY")
rt_assert_eq "stripe.payment_intent.succeeded|service|stripe|2000" \
  "$(rt_psql "select name, envelope->'actor'->>'type', envelope->'actor'->>'id', envelope->'data'->'data'->'object'->>'amount' from ratchet.events where id = 'evt_1PiSucceeded'")" \
  "stored envelope"
created=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["created"])' "$T/pi.json")
rt_assert_eq "${created}000" \
  "$(rt_psql "select envelope->>'ts' from ratchet.events where id = 'evt_1PiSucceeded'")" "ts from Stripe's created"
rt_assert_eq "payments|evt_1PiSucceeded" "$(rt_psql "select workflow_id, event_id from ratchet.runs where id = '$run'")" "the run"
rt_assert_eq webhook "$(rt_psql "select transport from ratchet.events where id = 'evt_1PiSucceeded'")" "stored as transport webhook"
rt_wait_for 60 '[ "$(rt_psql "select status from ratchet.runs where id = '"'$run'"'")" = completed ]'
rt_assert_eq t "$(rt_psql "select output::text like '%2000%' from ratchet.runs where id = '$run'")" \
  "the run read the Stripe object"

# ---- 2. replay: the same delivery again is a duplicate, nothing new starts ----
post /hooks/stripe "$T/pi.json" -H "Stripe-Signature: $SIG1"
expect 200 "replayed Stripe delivery"
jcheck "d['id']=='evt_1PiSucceeded' and d['duplicate'] is True and d['runs']==[]" "replay is a duplicate"
# Stripe's own retry: same event, signed again a second later
sleep 1
t=$(now)
post /hooks/stripe "$T/pi.json" -H "Stripe-Signature: t=$t,v1=$(sign "$STRIPE_SECRET" "$t" "$T/pi.json")"
expect 200 "Stripe retry"
jcheck "d['duplicate'] is True" "retry is a duplicate"
rt_assert_eq 1 "$(events "id = 'evt_1PiSucceeded'")" "one event"
rt_assert_eq 1 "$(rt_psql "select count(*) from ratchet.runs where workflow_id = 'payments'")" "one run"
rt_assert_eq 3 "$(metric ratchet_webhook_received_total "{'hook': 'stripe'}")" "received counter"

# ---- 3. bad signature: 400, nothing stored, counted ----
stripe_event "$T/bad.json" evt_bad payment_intent.succeeded
t=$(now)
post /hooks/stripe "$T/bad.json" -H "Stripe-Signature: t=$t,v1=$(sign "whsec_wrong" "$t" "$T/bad.json")"
refused 400 "no v1 signature matches" "wrong secret"
jcheck "d['error']['code']=='bad_request'" "400 code"
# the body changed after signing
cp "$T/bad.json" "$T/bad2.json"
sed -i 's/2000/2001/' "$T/bad2.json"
post /hooks/stripe "$T/bad2.json" -H "Stripe-Signature: t=$t,v1=$(sign "$STRIPE_SECRET" "$t" "$T/bad.json")"
refused 400 "no v1 signature matches" "changed body"
# a signature over another timestamp
post /hooks/stripe "$T/bad.json" -H "Stripe-Signature: t=$((t + 1)),v1=$(sign "$STRIPE_SECRET" "$t" "$T/bad.json")"
refused 400 "no v1 signature matches" "other t"
rt_assert_eq 0 "$(events "id = 'evt_bad'")" "nothing stored for bad signatures"
rt_assert_eq 3 "$(refusals stripe bad_signature)" "bad_signature counter"

# ---- 4. expired: signed 120 s ago with a 60 s tolerance; also one from the future ----
stripe_event "$T/old.json" evt_old invoice.paid
t=$(($(now) - 120))
post /hooks/stripe "$T/old.json" -H "Stripe-Signature: t=$t,v1=$(sign "$STRIPE_SECRET" "$t" "$T/old.json")"
refused 400 "timestamp outside the tolerance" "expired timestamp"
t=$(($(now) + 120))
post /hooks/stripe "$T/old.json" -H "Stripe-Signature: t=$t,v1=$(sign "$STRIPE_SECRET" "$t" "$T/old.json")"
refused 400 "in the future" "future timestamp"
rt_assert_eq 0 "$(events "id = 'evt_old'")" "nothing stored for expired signatures"
rt_assert_eq 2 "$(refusals stripe expired)" "expired counter"

# ---- 5. several v1 entries (secret rotation): the second one is right ----
stripe_event "$T/rot.json" evt_rotated customer.subscription.updated
t=$(now)
post /hooks/stripe "$T/rot.json" \
  -H "Stripe-Signature: t=$t,v1=$(sign "whsec_old_secret" "$t" "$T/rot.json"),v1=$(sign "$STRIPE_SECRET" "$t" "$T/rot.json")"
expect 200 "second v1 matches"
jcheck "d['name']=='stripe.customer.subscription.updated' and d['duplicate'] is False and len(d['runs'])==1" "rotated"

# ---- 6. missing and malformed headers ----
post /hooks/stripe "$T/rot.json"
refused 400 "Stripe-Signature: the header is missing" "missing header"
for h in "garbage" "v1=$(sign "$STRIPE_SECRET" "$t" "$T/rot.json")" "t=$t" "t=abc,v1=00" "t=$t,t=$t,v1=00"; do
  post /hooks/stripe "$T/rot.json" -H "Stripe-Signature: $h"
  refused 400 "Stripe-Signature:" "malformed header [$h]"
done
rt_assert_eq 6 "$(refusals stripe malformed)" "malformed counter"

# ---- 7. signed but bad bodies: 400 with line and column, or the missing key ----
printf '{"id": "evt_x", "type": }' >"$T/nojson.json"
t=$(now)
post /hooks/stripe "$T/nojson.json" -H "Stripe-Signature: t=$t,v1=$(sign "$STRIPE_SECRET" "$t" "$T/nojson.json")"
refused 400 "body is not valid JSON: line 1, column" "not JSON"
printf '{"id": "evt_notype", "object": "event"}' >"$T/notype.json"
post /hooks/stripe "$T/notype.json" -H "Stripe-Signature: t=$t,v1=$(sign "$STRIPE_SECRET" "$t" "$T/notype.json")"
refused 400 '$.type: a Stripe event needs a non-empty string' "missing type"
printf '{"type": "invoice.paid"}' >"$T/noid.json"
post /hooks/stripe "$T/noid.json" -H "Stripe-Signature: t=$t,v1=$(sign "$STRIPE_SECRET" "$t" "$T/noid.json")"
refused 400 '$.id: a Stripe event needs a non-empty string' "missing id"
printf '{"id": "evt_sp", "type": "invoice paid"}' >"$T/badtype.json"
post /hooks/stripe "$T/badtype.json" -H "Stripe-Signature: t=$t,v1=$(sign "$STRIPE_SECRET" "$t" "$T/badtype.json")"
refused 400 '$.type: event name' "type that makes a bad event name"
printf '[1, 2]' >"$T/array.json"
post /hooks/stripe "$T/array.json" -H "Stripe-Signature: t=$t,v1=$(sign "$STRIPE_SECRET" "$t" "$T/array.json")"
refused 400 '$: expected a JSON object' "array body"
rt_assert_eq 5 "$(refusals stripe bad_body)" "bad_body counter"
rt_assert_eq 0 "$(events "id in ('evt_x', 'evt_notype', 'evt_sp')")" "nothing stored for bad bodies"

# ---- 8. generic hooks: unknown and invalid names are 404 ----
post /hooks/generic/nope "$T/pi.json" -H "X-Ratchet-Signature: t=$t,v1=00"
refused 404 'no webhook named "nope" is configured' "unconfigured generic hook"
post /hooks/generic/CI_BUILD_V2 "$T/pi.json"
refused 404 'is not a hook name' "upper-case name"
# "-" and "." are not hook-name characters: "ci-build.v2" and "ci_build_v2" would both
# read RATCHET_SECRET_HOOK_CI_BUILD_V2, so one secret would sign for two hooks.
for n in ci-build_v2 ci_build.v2 ci-build.v2; do
  t=$(now)
  post /hooks/generic/$n "$T/pi.json" -H "X-Ratchet-Signature: t=$t,v1=$(sign "$HOOK_SECRET" "$t" "$T/pi.json")"
  refused 404 'is not a hook name: names are 1 to 64 of [a-z0-9_]' "name $n"
done
rt_assert_eq 5 "$(refusals generic not_configured)" "not_configured counter"

# ---- 9. generic: a payload becomes hook.<name>; its id comes from t and the body ----
printf '{"ref": "main", "name": "release build", "sha": "abc123"}' >"$T/build.json"
t=$(now)
GSIG="t=$t,v1=$(sign "$HOOK_SECRET" "$t" "$T/build.json")"
want_id="hook:ci_build_v2:$("$PY" -c 'import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode() + b"." + open(sys.argv[2],"rb").read()).hexdigest())' "$t" "$T/build.json")"
post /hooks/generic/ci_build_v2 "$T/build.json" -H "X-Ratchet-Signature: $GSIG"
expect 200 "valid generic delivery"
jcheck "d['id']=='$want_id' and d['name']=='hook.ci_build_v2' and d['duplicate'] is False and len(d['runs'])==1" "generic event"
rt_assert_eq "main|service|hook:ci_build_v2" \
  "$(rt_psql "select envelope->'data'->>'ref', envelope->'actor'->>'type', envelope->'actor'->>'id' from ratchet.events where id = '$want_id'")" \
  "generic envelope"
post /hooks/generic/ci_build_v2 "$T/build.json" -H "X-Ratchet-Signature: $GSIG"
expect 200 "replayed generic delivery"
jcheck "d['id']=='$want_id' and d['duplicate'] is True and d['runs']==[]" "generic replay is a duplicate"
rt_assert_eq 1 "$(rt_psql "select count(*) from ratchet.runs where workflow_id = 'builds'")" "one build run"
# the same body signed at another second is another delivery
sleep 1
t2=$(now)
post /hooks/generic/ci_build_v2 "$T/build.json" -H "X-Ratchet-Signature: t=$t2,v1=$(sign "$HOOK_SECRET" "$t2" "$T/build.json")"
expect 200 "same body, new signature"
jcheck "d['id']!='$want_id' and d['duplicate'] is False" "new delivery, new event"
# an id in a header is not signed, so it cannot choose the event: a replayed delivery with a
# new X-Ratchet-Event-Id is still the same event (a sender's retries name their id in an
# envelope body, below)
post /hooks/generic/ci_build_v2 "$T/build.json" -H "X-Ratchet-Signature: t=$t2,v1=$(sign "$HOOK_SECRET" "$t2" "$T/build.json")" \
  -H "X-Ratchet-Event-Id: build-42"
jcheck "d['id']!='build-42' and d['duplicate'] is True" "a header id does not turn a replay into a new event"
rt_assert_eq 4 "$(metric ratchet_webhook_received_total "{'hook': 'generic/ci_build_v2'}")" "generic received counter"

# ---- 10. generic: a full envelope is stored as it is ----
printf '{"name": "order.created", "id": "ord-1", "data": {"n": 1}, "entity_id": "acct_9", "x-source": "shop"}' >"$T/env.json"
t=$(now)
post /hooks/generic/ci_build_v2 "$T/env.json" -H "X-Ratchet-Signature: t=$t,v1=$(sign "$HOOK_SECRET" "$t" "$T/env.json")"
expect 200 "envelope delivery"
jcheck "d['id']=='ord-1' and d['name']=='order.created' and d['duplicate'] is False" "envelope event"
rt_assert_eq "1|acct_9|hook:ci_build_v2|shop" \
  "$(rt_psql "select envelope->'data'->>'n', envelope->>'entity_id', envelope->'actor'->>'id', envelope->>'x-source' from ratchet.events where id = 'ord-1'")" \
  "stored envelope"
# the sender's retry of the same envelope, signed anew, is a duplicate
sleep 1
t=$(now)
post /hooks/generic/ci_build_v2 "$T/env.json" -H "X-Ratchet-Signature: t=$t,v1=$(sign "$HOOK_SECRET" "$t" "$T/env.json")"
jcheck "d['id']=='ord-1' and d['duplicate'] is True" "an envelope's retry is a duplicate"
printf '{"name": "order created"}' >"$T/env3.json"
post /hooks/generic/ci_build_v2 "$T/env3.json" -H "X-Ratchet-Signature: t=$t,v1=$(sign "$HOOK_SECRET" "$t" "$T/env3.json")"
refused 400 '$.name' "bad envelope name"
# the hook is the requester of what it starts: it may say its actor's type, not name someone
printf '{"name": "order.created", "id": "ord-actor", "actor": {"type": "user", "id": "ops-lead"}}' >"$T/env4.json"
post /hooks/generic/ci_build_v2 "$T/env4.json" -H "X-Ratchet-Signature: t=$t,v1=$(sign "$HOOK_SECRET" "$t" "$T/env4.json")"
refused 400 '$.actor.id: a webhook'"'"'s events speak for "hook:ci_build_v2"' "envelope naming another actor"
printf '{"name": "order.created", "id": "ord-actor", "actor": {"type": "user"}}' >"$T/env4.json"
post /hooks/generic/ci_build_v2 "$T/env4.json" -H "X-Ratchet-Signature: t=$t,v1=$(sign "$HOOK_SECRET" "$t" "$T/env4.json")"
expect 200 "envelope with an actor type"
rt_assert_eq "user|hook:ci_build_v2" "$(rt_psql "select (envelope->'actor'->>'type') || '|' || (envelope->'actor'->>'id') from ratchet.events where id = 'ord-actor'")" "actor id stamped"
# ratchet.* is the engine's own namespace (approval decisions, alerts, ...): never from a hook
for n in ratchet.approval.decided ratchet.run.failed RATCHET.manual; do
  printf '{"name": "%s", "id": "hook-reserved-%s", "data": {}}' "$n" "$n" >"$T/res.json"
  post /hooks/generic/ci_build_v2 "$T/res.json" -H "X-Ratchet-Signature: t=$t,v1=$(sign "$HOOK_SECRET" "$t" "$T/res.json")"
  refused 400 '$.name: "ratchet." names are the engine'"'"'s own' "reserved name $n"
done
rt_assert_eq 3 "$(refusals generic/ci_build_v2 reserved_name)" "reserved_name counter"
rt_assert_eq 0 "$(events "id like 'hook-reserved-%'")" "nothing stored for reserved names"

# ---- 11. generic: refusals ----
post /hooks/generic/ci_build_v2 "$T/build.json" -H "X-Ratchet-Signature: t=$t,v1=$(sign "$STRIPE_SECRET" "$t" "$T/build.json")"
refused 400 "X-Ratchet-Signature: no v1 signature matches" "generic bad signature"
t=$(($(now) - 120))
post /hooks/generic/ci_build_v2 "$T/build.json" -H "X-Ratchet-Signature: t=$t,v1=$(sign "$HOOK_SECRET" "$t" "$T/build.json")"
refused 400 "timestamp outside the tolerance" "generic expired"
post /hooks/generic/ci_build_v2 "$T/build.json" -H "Stripe-Signature: $GSIG"
refused 400 "X-Ratchet-Signature: the header is missing" "generic missing header"
rt_assert_eq 1 "$(refusals generic/ci_build_v2 bad_signature)" "generic bad_signature counter"
rt_assert_eq 1 "$(refusals generic/ci_build_v2 expired)" "generic expired counter"
rt_assert_eq 2 "$(events "name = 'hook.ci_build_v2'")" "generic events stored (two derived ids)"
rt_serve_stop a

# ---- 12. with tokens on, webhooks need no bearer token; an empty secret means not configured ----
"$RATCHET_BIN" token create --role admin 2>/dev/null | sed -n 2p >"$T/tokens"
RATCHET_TOKENS=$T/tokens RATCHET_SECRET_HOOK_CI_BUILD_V2='' rt_serve_start b
rt_serve_wait_ready b
U=$(rt_serve_url b)
post /api/v1/events "$T/env.json"
expect 401 "tokens are on"
stripe_event "$T/auth.json" evt_with_tokens charge.refunded
t=$(now)
post /hooks/stripe "$T/auth.json" -H "Stripe-Signature: t=$t,v1=$(sign "$STRIPE_SECRET" "$t" "$T/auth.json")"
expect 200 "Stripe delivery without a bearer token"
jcheck "d['id']=='evt_with_tokens' and d['duplicate'] is False" "stored with tokens on"
post /hooks/generic/ci_build_v2 "$T/build.json" -H "X-Ratchet-Signature: $GSIG"
refused 404 'no webhook named "ci_build_v2" is configured' "empty secret"
post /hooks/stripe "$T/auth.json" -H "Stripe-Signature: t=$t,v1=00" -H "Authorization: Bearer nonsense"
refused 400 "no v1 signature matches" "a bearer header changes nothing"
rt_serve_stop b

RATCHET_SECRET_STRIPE_WEBHOOK='' rt_serve_start c
rt_serve_wait_ready c
U=$(rt_serve_url c)
post /hooks/stripe "$T/auth.json" -H "Stripe-Signature: t=$t,v1=$(sign "$STRIPE_SECRET" "$t" "$T/auth.json")"
refused 404 'no webhook named "stripe" is configured' "Stripe without a secret"
rt_serve_stop c

# ---- 13. secrets and signatures never reach the log; refusals are logged at warn ----
for log in "$T"/a.log "$T"/b.log "$T"/c.log; do
  rt_check_log "$log"
  grep -qF "$STRIPE_SECRET" "$log" && rt_fail "Stripe secret in $log"
  grep -qF "$HOOK_SECRET" "$log" && rt_fail "generic hook secret in $log"
  grep -qF "${SIG1#*v1=}" "$log" && rt_fail "a signature in $log"
done
grep -q 'webhook stripe: POST /hooks/stripe refused (bad_signature, 400)' "$T/a.log" || rt_fail "refusal not logged"
rt_contract_check
exit 0
