#!/usr/bin/env bash
# The `email` step against real SMTP servers (aiosmtpd, tests/integration/smtp_sink.py)
# that require AUTH and save what they receive:
# - a message with text and html arrives as multipart/alternative, with the RFC 2047-encoded
#   subject, Date, From/To/Cc, a Message-ID made from the step key, and the envelope
#   recipients to + cc; the step's output names the Message-ID and the recipients;
# - a step retried after the server answered 451 sends the same Message-ID again;
# - header injection (CR/LF in the subject or an address) is refused before connecting;
# - a refused recipient (550) and a refused login (535) fail at once, a refused
#   connection is retried; the password is in no error, log or database row;
# - STARTTLS with a self-signed certificate (ca_file) delivers; tls "none" to a server
#   that requires STARTTLS is refused; so is a certificate no CA vouches for; smtps://
#   delivers.
source "$(dirname "$0")/lib.sh"
rt_test_init email

W=$T/workflows
mkdir -p "$W" "$T/smtp" "$T/smtp-tls" "$T/smtps"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2
P1=$(rt_free_port "$T")
P2=$(rt_free_port "$T")
P3=$(rt_free_port "$T") # nothing listens there
P4=$(rt_free_port "$T")
PASSWORD="pw-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
WRONG_PASSWORD="pw-wrong-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
export RATCHET_SECRET_SMTP_USER=ratchet RATCHET_SECRET_SMTP_PASSWORD=$PASSWORD RATCHET_SECRET_SMTP_WRONG_PASSWORD=$WRONG_PASSWORD

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" -days 2 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null || rt_fail "openssl could not make a test certificate"
python3 "$RT_INTEGRATION_DIR/smtp_sink.py" "$T/smtp" "$P1" ratchet "$PASSWORD" 2>"$T/smtp.err" & SINK1=$!
python3 "$RT_INTEGRATION_DIR/smtp_sink.py" "$T/smtp-tls" "$P2" ratchet "$PASSWORD" "$T/cert.pem" "$T/key.pem" 2>"$T/smtp-tls.err" & SINK2=$!
python3 "$RT_INTEGRATION_DIR/smtp_sink.py" "$T/smtps" "$P4" ratchet "$PASSWORD" "$T/cert.pem" "$T/key.pem" smtps 2>"$T/smtps.err" & SINK3=$!
trap 'rc=$?; set +e; kill $SINK1 $SINK2 $SINK3 2>/dev/null; wait $SINK1 $SINK2 $SINK3 2>/dev/null; (exit $rc); rt__exit' EXIT
rt_wait_for 60 '[ -e "$T/smtp/ready" ] && [ -e "$T/smtp-tls/ready" ] && [ -e "$T/smtps/ready" ]'

mail_wf() { # ID PASSWORD_SECRET
  cat > "$W/$1.json" <<EOF2
{"id": "$1", "retries": {"max_attempts": 2, "backoff": "fixed", "delay": "1s"},
 "steps": [{"id": "send", "uses": "email", "with": {
   "url": "\${{ event.data.url }}", "tls": "\${{ default(event.data.tls, 'none') }}", "ca_file": "\${{ event.data.ca_file }}",
   "username": "\${{ secrets.SMTP_USER }}", "password": "\${{ secrets.$2 }}",
   "from": "Ratchet Ops <ops@example.com>", "to": "\${{ event.data.to }}", "cc": "\${{ event.data.cc }}",
   "subject": "\${{ event.data.subject }}", "text": "\${{ event.data.text }}", "html": "\${{ event.data.html }}",
   "timeout": "20s"}}]}
EOF2
}
mail_wf mail SMTP_PASSWORD
mail_wf mail-wrong-password SMTP_WRONG_PASSWORD

"$RATCHET_BIN" migrate >/dev/null
"$RATCHET_BIN" validate "$W" >/dev/null || rt_fail "ratchet validate: $("$RATCHET_BIN" validate "$W" 2>&1)"
rt_serve_start a
rt_serve_wait_ready a

# run WF DATA -> run id, once the run has ended
run() {
  local id
  id=$("$RATCHET_BIN" run "$1" --data "$2")
  rt_wait_for 90 '[[ "$(rt_psql "select status from ratchet.runs where id = '"'$id'"'")" =~ ^(completed|failed)$ ]]'
  echo "$id"
}
step() { rt_psql "select $2 from ratchet.steps where run_id = '$1' and step_id = 'send'"; }
received() { find "$1" -name 'msg-*.json' | wc -l; }
SMTP=smtp://127.0.0.1:$P1

# 1. A full message.
SUBJECT='Checkpoint ✓ — Übersicht für heute: a subject long enough to take more than one encoded word'
TEXT=$'Hello Ada,\nthe checkpoint is stored.\n.\nThe line above is a lone dot. ✓'
HTML=$'<p>Checkpoint <b>stored</b></p>\n.\n<p>after a lone dot</p>'
data=$(python3 -c 'import json,sys; print(json.dumps({"url": sys.argv[1], "to": ["Ada Lovelace <ada@example.com>", "grace@example.com"],
  "cc": "cc@example.com", "subject": sys.argv[2], "text": sys.argv[3], "html": sys.argv[4]}))' "$SMTP" "$SUBJECT" "$TEXT" "$HTML")
id=$(run mail "$data")
rt_assert_eq "completed|1" "$(step "$id" "status || '|' || attempts")" "full message: $(step "$id" error)"
rt_assert_eq 1 "$(received "$T/smtp")" "messages received"
python3 - "$T/smtp/msg-1" "$id" "$SUBJECT" "$TEXT" "$HTML" "$(step "$id" output)" <<'EOF2' || rt_fail "the received message"
import datetime, email.utils, json, sys
from email import policy
from email.parser import BytesParser
base, run_id, subject, text, html, output = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], json.loads(sys.argv[6])
raw = open(base + ".eml", "rb").read()
env = json.load(open(base + ".json"))
msg = BytesParser(policy=policy.default).parse(open(base + ".eml", "rb"))
mid = "<ratchet.%s.send@example.com>" % run_id
assert msg["Message-ID"] == mid, (msg["Message-ID"], mid)
assert output == {"message_id": mid, "recipients": ["ada@example.com", "grace@example.com", "cc@example.com"]}, output
assert str(msg["Subject"]) == subject, msg["Subject"]
head = raw.split(b"\r\n\r\n", 1)[0]
assert all(b < 0x80 for b in head), "non-ASCII bytes in the header"
assert b"=?UTF-8?B?" in head and max(len(l) for l in head.split(b"\r\n")) <= 998, head
assert [a.addr_spec for a in msg["From"].addresses] == ["ops@example.com"] and msg["From"].addresses[0].display_name == "Ratchet Ops"
assert [a.addr_spec for a in msg["To"].addresses] == ["ada@example.com", "grace@example.com"], msg["To"]
assert msg["To"].addresses[0].display_name == "Ada Lovelace"
assert [a.addr_spec for a in msg["Cc"].addresses] == ["cc@example.com"], msg["Cc"]
sent = email.utils.parsedate_to_datetime(msg["Date"])
assert abs((datetime.datetime.now(datetime.timezone.utc) - sent).total_seconds()) < 600, msg["Date"]
assert msg.get_content_type() == "multipart/alternative", msg.get_content_type()
parts = [p.get_content_type() for p in msg.iter_parts()]
assert parts == ["text/plain", "text/html"], parts
norm = lambda s: s.replace("\r\n", "\n").rstrip("\n")
assert norm(msg.get_body(("plain",)).get_content()) == text, repr(msg.get_body(("plain",)).get_content())
assert norm(msg.get_body(("html",)).get_content()) == html, repr(msg.get_body(("html",)).get_content())
assert env == {"mail_from": "ops@example.com", "rcpt_tos": ["ada@example.com", "grace@example.com", "cc@example.com"]}, env
print("ok: received %s, %d bytes, subject in %d encoded words" % (mid, len(raw), head.count(b"=?UTF-8?B?")))
EOF2

# 2. A retried step sends the same Message-ID (the server saved the first copy, then said 451).
id=$(run mail "{\"url\": \"$SMTP\", \"to\": \"flaky@example.com\", \"subject\": \"retry me\", \"text\": \"once or twice\"}")
rt_assert_eq "completed|2" "$(step "$id" "status || '|' || attempts")" "retried message: $(step "$id" error)"
rt_assert_eq 3 "$(received "$T/smtp")" "messages received after the retry"
m2=$(grep -i '^message-id:' "$T/smtp/msg-2.eml" | tr -d '\r')
m3=$(grep -i '^message-id:' "$T/smtp/msg-3.eml" | tr -d '\r')
rt_assert_eq "Message-ID: <ratchet.$id.send@example.com>" "$m2" "first attempt's Message-ID"
rt_assert_eq "$m2" "$m3" "the retry's Message-ID"
[[ $(rt_psql "select error from ratchet.step_attempts where run_id = '$id' and step_id = 'send' and attempt = 1") == *451* ]] ||
  rt_fail "the first attempt's error does not name the 451"
echo "ok: a retried step resent $m3"

# 3. Header injection is refused before anything is sent.
for field in subject to; do
  if [ $field = subject ]; then d="{\"url\": \"$SMTP\", \"to\": \"ada@example.com\", \"subject\": \"hi\\r\\nBcc: victim@example.com\", \"text\": \"x\"}"
  else d="{\"url\": \"$SMTP\", \"to\": \"ada@example.com\\r\\nBcc: victim@example.com\", \"subject\": \"hi\", \"text\": \"x\"}"; fi
  id=$(run mail "$d")
  rt_assert_eq "failed|1" "$(step "$id" "status || '|' || attempts")" "injection in $field"
  err=$(step "$id" error)
  [[ $err == *"header injection refused"* && $err != *victim* ]] || rt_fail "injection in $field: error $err"
done
rt_assert_eq 3 "$(received "$T/smtp")" "messages received after the injection attempts"
echo "ok: header injection refused ($err)"

# 4. Failures: refused recipient and login fail at once, a refused connection is retried.
id=$(run mail "{\"url\": \"$SMTP\", \"to\": [\"ada@example.com\", \"reject-me@example.com\"], \"subject\": \"s\", \"text\": \"x\"}")
rt_assert_eq "failed|1" "$(step "$id" "status || '|' || attempts")" "refused recipient"
err=$(step "$id" error)
[[ $err == *550* && $err == *"Recipient address rejected"* ]] || rt_fail "refused recipient: error $err"
echo "ok: refused recipient: $err"
id=$(run mail-wrong-password "{\"url\": \"$SMTP\", \"to\": \"ada@example.com\", \"subject\": \"s\", \"text\": \"x\"}")
rt_assert_eq "failed|1" "$(step "$id" "status || '|' || attempts")" "refused login"
err=$(step "$id" error)
[[ $err == *"refused the login"* ]] || rt_fail "refused login: error $err"
echo "ok: refused login: $err"
id=$(run mail "{\"url\": \"smtp://127.0.0.1:$P3\", \"to\": \"ada@example.com\", \"subject\": \"s\", \"text\": \"x\"}")
rt_assert_eq "failed|2" "$(step "$id" "status || '|' || attempts")" "refused connection (retried)"
echo "ok: refused connection retried: $(step "$id" error)"
rt_assert_eq 3 "$(received "$T/smtp")" "messages received after the failures"

# 5. STARTTLS.
id=$(run mail "{\"url\": \"smtp://127.0.0.1:$P2\", \"tls\": \"starttls\", \"ca_file\": \"$T/cert.pem\", \"to\": \"ada@example.com\", \"subject\": \"over TLS\", \"text\": \"x\"}")
rt_assert_eq "completed" "$(step "$id" status)" "STARTTLS: $(step "$id" error)"
rt_assert_eq 1 "$(received "$T/smtp-tls")" "messages received over STARTTLS"
id=$(run mail "{\"url\": \"smtp://127.0.0.1:$P2\", \"tls\": \"none\", \"to\": \"ada@example.com\", \"subject\": \"in clear\", \"text\": \"x\"}")
rt_assert_eq "failed|1" "$(step "$id" "status || '|' || attempts")" "no TLS to a server that requires STARTTLS"
id=$(run mail "{\"url\": \"smtp://127.0.0.1:$P2\", \"tls\": \"starttls\", \"to\": \"ada@example.com\", \"subject\": \"unknown CA\", \"text\": \"x\"}")
rt_assert_eq "failed|1" "$(step "$id" "status || '|' || attempts")" "STARTTLS with a certificate nobody vouches for"
rt_assert_eq 1 "$(received "$T/smtp-tls")" "messages received over STARTTLS after the refusals"
echo "ok: STARTTLS delivers with ca_file; in clear and with an unknown CA it does not"
id=$(run mail "{\"url\": \"smtps://127.0.0.1:$P4\", \"tls\": \"required\", \"ca_file\": \"$T/cert.pem\", \"to\": \"ada@example.com\", \"subject\": \"smtps\", \"html\": \"<p>only html</p>\"}")
rt_assert_eq "completed" "$(step "$id" status)" "SMTPS: $(step "$id" error)"
rt_assert_eq 1 "$(received "$T/smtps")" "messages received over SMTPS"
grep -q '^Content-Type: text/html; charset=utf-8' "$T/smtps/msg-1.eml" || rt_fail "an html-only message is text/html: $(cat "$T/smtps/msg-1.eml")"
echo "ok: SMTPS (TLS from the first byte) delivers an html-only message"

rt_serve_stop a
pg_dump -a "$RATCHET_DATABASE_URL" >"$T/dump.sql"
for s in "$PASSWORD" "$WRONG_PASSWORD"; do
  ! grep -qF -- "$s" "$T/dump.sql" || rt_fail "an SMTP password is in the database"
  ! grep -qF -- "$s" "$T"/a.log || rt_fail "an SMTP password is in the serve log"
done
echo "ok: no password in the database or the log"
