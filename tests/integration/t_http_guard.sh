#!/usr/bin/env bash
# Where an `http` step's request may go (docs/steps.md "http step: where requests may go"),
# against real local HTTP servers (python http.server) and a real serve:
# - a redirect to another origin (another port here) goes without the workflow's headers
#   and signature (hmac or aws_sigv4); a redirect within the origin keeps them;
# - a templated URL never reaches the engine's own API (by address or by name), a URL
#   written literally in the workflow may; a redirect to it is refused too;
# - link-local / cloud metadata addresses are refused before any packet is sent, literal
#   or templated.
source "$(dirname "$0")/lib.sh"
rt_test_init http_guard

W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2
API_PORT=$(rt_free_port "$T")
export RATCHET_HTTP_ADDR=127.0.0.1:$API_PORT
PA=$(rt_free_port "$T")
PB=$(rt_free_port "$T")

cat > "$T/srv.py" <<'EOF2'
# /echo answers the request's headers as JSON; /to?u=URL redirects there (302, or the
# status given as &s=).
import json, sys, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def answer(self):
        u = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(u.query)
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode() if n else ""
        if u.path == "/to":
            self.send_response(int(q.get("s", ["302"])[0]))
            self.send_header("Location", q["u"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        out = json.dumps({"method": self.command, "headers": {k.lower(): v for k, v in self.headers.items()},
                          "body": body, "port": self.server.server_address[1]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    do_GET = do_POST = do_PUT = answer
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF2
python3 "$T/srv.py" "$PA" & SRV_A=$!
python3 "$T/srv.py" "$PB" & SRV_B=$!
trap 'rc=$?; set +e; kill $SRV_A $SRV_B 2>/dev/null; (exit $rc); rt__exit' EXIT
rt_wait_for 10 "curl -fsS -o /dev/null http://127.0.0.1:$PA/echo && curl -fsS -o /dev/null http://127.0.0.1:$PB/echo"

A=http://127.0.0.1:$PA B=http://127.0.0.1:$PB
enc() { python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
cat > "$W/fetch.json" <<EOF2
{"id": "fetch", "retries": {"max_attempts": 1},
 "steps": [{"id": "get", "uses": "http", "with": {"method": "\${{ default(event.data.method, 'GET') }}",
   "url": "\${{ event.data.url }}", "follow_redirects": true, "body": "\${{ default(event.data.body, null) }}",
   "headers": {"X-Api-Key": "s3cret-key", "Authorization": "Bearer s3cret-token", "Cookie": "sid=s3cret"},
   "hmac": {"secret": "s3cret-hmac"}, "timeout": "10s"}}]}
EOF2
cat > "$W/signed.json" <<'EOF2'
{"id": "signed", "retries": {"max_attempts": 1},
 "steps": [{"id": "get", "uses": "http", "with": {"url": "${{ event.data.url }}", "follow_redirects": true, "timeout": "10s",
   "aws_sigv4": {"region": "us-east-1", "service": "s3", "access_key": "AKIDGUARD", "secret_key": "s3cret-sigv4"}}}]}
EOF2
cat > "$W/literal.json" <<EOF2
{"id": "literal", "retries": {"max_attempts": 1},
 "steps": [{"id": "get", "uses": "http", "with": {"url": "http://127.0.0.1:$API_PORT/healthz", "timeout": "10s"}}]}
EOF2
cat > "$W/metadata.json" <<'EOF2'
{"id": "metadata", "retries": {"max_attempts": 1},
 "steps": [{"id": "get", "uses": "http", "with": {"url": "http://169.254.169.254/latest/meta-data/", "timeout": "20s"}}]}
EOF2
"$RATCHET_BIN" migrate >/dev/null
rt_serve_start a
rt_serve_wait_ready a

# run WF DATA -> run id, once the run has ended
run() {
  local id
  id=$("$RATCHET_BIN" run "$1" --data "$2" 2>/dev/null)
  rt_wait_for 30 '[[ "$(rt_psql "select status from ratchet.runs where id = '"'$id'"'")" =~ ^(completed|failed)$ ]]'
  echo "$id"
}
step_error() { rt_psql "select error from ratchet.steps where run_id = '$1' and step_id = 'get'"; }
got() { rt_psql "select output->'body'->$2 from ratchet.steps where run_id = '$1' and step_id = 'get'"; }

# 1. Cross-origin redirect: B sees none of the workflow's headers, nor the signature.
R=$(run fetch "{\"url\": \"$A/to?u=$(enc "$B/echo")\"}")
rt_assert_eq completed "$(status "$R")" "redirected request: $(step_error "$R")"
rt_assert_eq "$PB" "$(got "$R" "'port'")" "it reached B"
hdrs=$(got "$R" "'headers'")
for h in x-api-key authorization cookie x-ratchet-signature; do
  python3 -c 'import json,sys; h=json.loads(sys.argv[1]); sys.exit(sys.argv[2] in h)' "$hdrs" "$h" ||
    rt_fail "header $h went to another origin: $hdrs"
done
grep -q s3cret <<<"$hdrs" && rt_fail "a secret went to another origin: $hdrs"
rt_assert_eq "\"$R:get\"" "$(got "$R" "'headers'->'idempotency-key'")" "the idempotency key still goes"
# 307 keeps method and body across origins, still without the headers
R=$(run fetch "{\"url\": \"$A/to?s=307&u=$(enc "$B/echo")\", \"method\": \"POST\", \"body\": {\"n\": 1}}")
rt_assert_eq '"POST"|"{\"n\":1}"|' "$(got "$R" "'method'")|$(got "$R" "'body'")|$(got "$R" "'headers'->'x-api-key'")" "307 to another origin"
# Within the origin they stay.
R=$(run fetch "{\"url\": \"$A/to?u=$(enc "$A/echo")\"}")
rt_assert_eq '"s3cret-key"' "$(got "$R" "'headers'->'x-api-key'")" "same-origin redirect keeps the headers"
python3 -c 'import json,sys; assert json.loads(sys.argv[1]).startswith("sha256=")' "$(got "$R" "'headers'->'x-ratchet-signature'")" ||
  rt_fail "same-origin redirect keeps the signature"
# An AWS Signature V4 is not sent to another origin either; within the origin it is.
R=$(run signed "{\"url\": \"$A/to?u=$(enc "$B/echo")\"}")
rt_assert_eq "\"$PB\"|||" "\"$(got "$R" "'port'")\"|$(got "$R" "'headers'->'authorization'")|$(got "$R" "'headers'->'x-amz-date'")|$(got "$R" "'headers'->'x-amz-content-sha256'")" \
  "aws_sigv4 across origins: $(step_error "$R")"
R=$(run signed "{\"url\": \"$A/to?u=$(enc "$A/echo")\"}")
[[ $(got "$R" "'headers'->>'authorization'") == "AWS4-HMAC-SHA256 Credential=AKIDGUARD/"* ]] ||
  rt_fail "same-origin redirect keeps the AWS signature: $(got "$R" "'headers'")"

# 2. The engine's own API: not through a template, by address or by name, nor by a redirect.
for u in "http://127.0.0.1:$API_PORT/api/v1/workflows" "http://localhost:$API_PORT/api/v1/workflows" \
  "$A/to?u=$(enc "http://127.0.0.1:$API_PORT/api/v1/workflows")"; do
  R=$(run fetch "{\"url\": \"$u\"}")
  rt_assert_eq failed "$(status "$R")" "templated URL $u to the engine's own API"
  [[ $(step_error "$R") == "http: refused to connect to "*":$API_PORT, the engine's own API"* ]] ||
    rt_fail "error for $u: $(step_error "$R")"
done
R=$(run literal '{}')
rt_assert_eq completed "$(status "$R")" "a literal URL to the engine's own API: $(step_error "$R")"

# 3. Link-local / metadata: refused at once, literal or templated, or by a redirect.
t0=$(rt__now_ms)
R=$(run metadata '{}')
rt_assert_eq failed "$(status "$R")" "literal metadata URL"
[[ $(step_error "$R") == "http: refused to connect to 169.254.169.254:80, a link-local / cloud metadata (169.254.0.0/16) address"* ]] ||
  rt_fail "metadata error: $(step_error "$R")"
for u in "http://169.254.169.254/latest/" "http://[fd00:ec2::254]/latest/" "$A/to?u=$(enc "http://169.254.169.254/")"; do
  R=$(run fetch "{\"url\": \"$u\"}")
  rt_assert_eq failed "$(status "$R")" "templated $u"
  [[ $(step_error "$R") == "http: refused to connect to "*"metadata"* ]] || rt_fail "error for $u: $(step_error "$R")"
done
(($(rt__now_ms) - t0 < 15000)) || rt_fail "refusals should not wait for a timeout"
