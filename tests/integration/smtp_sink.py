#!/usr/bin/python3
"""A real SMTP server (aiosmtpd) that saves what it receives, for tests/integration/t_email.sh.

usage: smtp_sink.py DIR PORT USER PASSWORD [CERT KEY [smtps]]

Listens on 127.0.0.1:PORT and requires AUTH (PLAIN or LOGIN) as USER/PASSWORD. With CERT
and KEY it offers STARTTLS and refuses mail before it (530); with `smtps` too, it speaks
TLS from the first byte instead (SMTPS). Every message accepted at end
of data is saved as DIR/msg-N.eml (the bytes as received) with DIR/msg-N.json (envelope
sender and recipients). Recipients make it misbehave on purpose:
  reject*@...   RCPT answered 550 (a recipient refused for good)
  flaky*@...    the first message with a given Message-ID is saved, then answered 451 at
                end of data (the client must send it again: same Message-ID expected)
DIR/ready appears once the server answers.
"""
import json
import os
import ssl
import sys
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

DIR, PORT, USER, PASSWORD = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), sys.argv[4].encode()
CERT, KEY = (sys.argv[5], sys.argv[6]) if len(sys.argv) > 6 else (None, None)
IMPLICIT = len(sys.argv) > 7 and sys.argv[7] == "smtps"
lock = threading.Lock()
seen_ids = set()
count = 0


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = getattr(auth_data, "login", None) == USER and getattr(auth_data, "password", None) == PASSWORD
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().startswith("reject"):
            return "550 5.1.1 <%s>: Recipient address rejected: no such user" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        global count
        data = envelope.original_content or envelope.content
        mid = None
        for line in data.split(b"\r\n"):
            if not line:
                break
            if line.lower().startswith(b"message-id:"):
                mid = line.split(b":", 1)[1].strip().decode()
        with lock:
            count += 1
            n = count
            first_time = mid not in seen_ids
            seen_ids.add(mid)
        base = os.path.join(DIR, "msg-%d" % n)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(data)
        with open(base + ".json.tmp", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}, f)
        os.replace(base + ".json.tmp", base + ".json")
        os.replace(base + ".eml.tmp", base + ".eml")
        if first_time and any(r.lower().startswith("flaky") for r in envelope.rcpt_tos):
            return "451 4.3.0 Temporary failure, please try again"
        return "250 Message accepted for delivery"


def main():
    kwargs = dict(authenticator=authenticator, auth_required=True, auth_require_tls=False)
    if CERT:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(CERT, KEY)
        if IMPLICIT:
            kwargs.update(ssl_context=ctx)
        else:
            kwargs.update(tls_context=ctx, require_starttls=True, auth_require_tls=True)
    controller = Controller(Handler(), hostname="127.0.0.1", port=PORT, ready_timeout=60, **kwargs)
    controller.start()
    open(os.path.join(DIR, "ready"), "w").close()
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
