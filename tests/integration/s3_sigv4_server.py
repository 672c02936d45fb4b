#!/usr/bin/python3
"""A small S3-compatible endpoint that checks every request's AWS Signature V4 with AWS's
own signer (botocore), for tests/integration/t_http_s3.sh.

usage: s3_sigv4_server.py DIR ACCESS_KEY SECRET_KEY REGION

Listens on 127.0.0.1, on a free port it writes to DIR/port once it accepts connections.
PUT /bucket/key stores the body under DIR/objects/bucket/key; GET answers it. Each request
is checked as S3 does: an Authorization header for ACCESS_KEY and the credential scope
REGION/s3, x-amz-date within 15 minutes, x-amz-content-sha256 present and equal to the
SHA-256 of the body, host, x-amz-date and x-amz-content-sha256 among the signed headers,
and the signature recomputed by botocore from the canonical request (403
SignatureDoesNotMatch otherwise). Every request is logged as one JSON line in
DIR/requests.jsonl: method, path, status, error code, the x-amz-content-sha256 sent and
the body's real SHA-256, the signed headers. The secret is never written anywhere.
"""
import datetime
import hashlib
import hmac
import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

DIR, ACCESS_KEY, SECRET_KEY, REGION = sys.argv[1:5]
OBJECTS = os.path.join(DIR, "objects")
LOG_LOCK = threading.Lock()
AUTH_RE = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request,\s*"
                     r"SignedHeaders=([a-z0-9;_.-]+),\s*Signature=([0-9a-f]{64})$")


class S3Error(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def expected_signature(method, path, headers, signed, body, amz_date, region, service):
    """What botocore computes for this request, from the headers the client says it signed."""
    req = AWSRequest(method=method, url="http://" + headers["host"] + path, data=body,
                     headers={h: headers[h] for h in signed})
    req.context["timestamp"] = amz_date
    signer = S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), service, region)
    canonical = signer.canonical_request(req)
    return signer.signature(signer.string_to_sign(req, canonical), req), signer.signed_headers(
        signer.headers_to_sign(req))


def check(method, path, headers, body):
    auth = headers.get("authorization")
    if not auth:
        raise S3Error(403, "AccessDenied", "Anonymous access is forbidden for this operation")
    m = AUTH_RE.match(auth)
    if not m:
        raise S3Error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed")
    key, day, region, service, signed_list, signature = m.groups()
    if key != ACCESS_KEY:
        raise S3Error(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
    if region != REGION or service != "s3":
        raise S3Error(400, "AuthorizationHeaderMalformed", f"the credential scope is {region}/{service}, "
                                                          f"expected {REGION}/s3")
    amz_date = headers.get("x-amz-date", "")
    try:
        when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        raise S3Error(403, "AccessDenied", "x-amz-date is missing or malformed")
    if abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()) > 900 or amz_date[:8] != day:
        raise S3Error(403, "RequestTimeTooSkewed", "The difference between the request time and the current time is too large.")
    sent_sha = headers.get("x-amz-content-sha256")
    if sent_sha is None:
        raise S3Error(400, "InvalidRequest", "Missing required header for this request: x-amz-content-sha256")
    if sent_sha != hashlib.sha256(body).hexdigest():
        raise S3Error(400, "XAmzContentSHA256Mismatch",
                      "The provided 'x-amz-content-sha256' header does not match what was computed.")
    signed = signed_list.split(";")
    for need in ("host", "x-amz-date", "x-amz-content-sha256"):
        if need not in signed:
            raise S3Error(403, "AccessDenied", f"{need} must be signed")
    missing = [h for h in signed if h not in headers]
    if missing:
        raise S3Error(403, "SignatureDoesNotMatch", f"signed headers not sent: {', '.join(missing)}")
    want, want_list = expected_signature(method, path, headers, signed, body, amz_date, region, service)
    if want_list != signed_list or not hmac.compare_digest(want, signature):
        raise S3Error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the "
                                                    "signature you provided. Check your key and signing method.")


def object_path(path):
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    if len(parts) < 2 or any(p in (".", "..") for p in parts):
        raise S3Error(400, "InvalidRequest", "expected /bucket/key")
    return os.path.join(OBJECTS, *parts)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, status, body=b"", ctype="application/xml", extra=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        headers = {k.lower(): v.strip() for k, v in self.headers.items()}
        entry = {"method": self.command, "path": self.path, "content_sha256": headers.get("x-amz-content-sha256"),
                 "body_sha256": hashlib.sha256(body).hexdigest(), "body_len": len(body),
                 "signed_headers": (re.search(r"SignedHeaders=([^,]+)", headers.get("authorization", "")) or
                                    [None, None])[1]}
        try:
            check(self.command, self.path, headers, body)
            target = object_path(self.path)
            if self.command == "PUT":
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target + ".tmp", "wb") as f:
                    f.write(body)
                os.replace(target + ".tmp", target)
                status, out, extra = 200, b"", {"ETag": '"%s"' % hashlib.md5(body).hexdigest()}
            elif self.command in ("GET", "HEAD"):
                if not os.path.isfile(target):
                    raise S3Error(404, "NoSuchKey", "The specified key does not exist.")
                with open(target, "rb") as f:
                    out = f.read()
                status, extra = 200, {}
            else:
                raise S3Error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
            entry.update(status=status, code=None)
            self.answer(status, out, "application/octet-stream" if self.command != "PUT" else "application/xml", extra)
        except S3Error as e:
            entry.update(status=e.status, code=e.code)
            xml = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{e.code}</Code>"
                   f"<Message>{e.message}</Message></Error>").encode()
            self.answer(e.status, xml)
        with LOG_LOCK, open(os.path.join(DIR, "requests.jsonl"), "a") as f:
            f.write(json.dumps(entry) + "\n")

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = handle_any


def main():
    os.makedirs(OBJECTS, exist_ok=True)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(os.path.join(DIR, "port.tmp"), "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(os.path.join(DIR, "port.tmp"), os.path.join(DIR, "port"))
    srv.serve_forever()


if __name__ == "__main__":
    main()
