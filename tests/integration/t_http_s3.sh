#!/usr/bin/env bash
# The shipped daily-ledger-checkpoint workflow uploads its checkpoint to an S3-compatible
# endpoint with the `http` step's aws_sigv4, against s3_sigv4_server.py, which recomputes
# every request's Signature V4 with botocore and answers 403 on a mismatch:
# - not configured (no RATCHET_SECRET_CHECKPOINT_S3_*): the run completes, the upload step
#   is skipped and the run says "not configured";
# - configured: the object lands at <bucket>/checkpoints/chk_<date>.json and is the stored
#   checkpoint row (entries, volume, hash), byte for byte what the step sent; the request
#   carried x-amz-content-sha256 = SHA-256 of the body, signed; a GET signed the same way
#   reads it back;
# - a wrong secret key: 403 SignatureDoesNotMatch, the step fails at once (not retried)
#   saying so, and neither secret appears in the serve log or the database.
source "$(dirname "$0")/lib.sh"
rt_test_init http_s3

W=$T/workflows
mkdir -p "$W" "$T/s3"
export RATCHET_WORKFLOWS=$W RATCHET_WORKERS=2
cp "$RATCHET_SOURCE_DIR/workflows/daily-ledger-checkpoint.json" "$W/"
cat > "$W/fetch-object.json" <<'EOF2'
{"id": "fetch-object", "retries": {"max_attempts": 1},
 "steps": [{"id": "get", "uses": "http", "with": {"url": "${{ secrets.CHECKPOINT_S3_ENDPOINT }}/${{ event.data.path }}",
   "aws_sigv4": {"region": "${{ secrets.CHECKPOINT_S3_REGION }}", "service": "s3",
                 "access_key": "${{ secrets.CHECKPOINT_S3_ACCESS_KEY }}", "secret_key": "${{ secrets.CHECKPOINT_S3_SECRET_KEY }}"},
   "timeout": "20s"}}]}
EOF2

AK=AKIDRATCHETTEST
SK="sk-right-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
WRONG="sk-wrong-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
REGION=eu-test-1
BUCKET=ledger-bucket

python3 "$RT_INTEGRATION_DIR/s3_sigv4_server.py" "$T/s3" "$AK" "$SK" "$REGION" 2>"$T/s3.err" & S3=$!
trap 'rc=$?; set +e; kill $S3 2>/dev/null; wait $S3 2>/dev/null; (exit $rc); rt__exit' EXIT
rt_wait_for 30 '[ -s "$T/s3/port" ]'
ENDPOINT=http://127.0.0.1:$(cat "$T/s3/port")

"$RATCHET_BIN" migrate >/dev/null
"$RATCHET_BIN" validate "$W" >/dev/null || rt_fail "ratchet validate refuses the workflows: $("$RATCHET_BIN" validate "$W" 2>&1)"
rt_psql "create table app_ledger_entries (id bigserial primary key, account text not null, amount numeric not null, created_at timestamptz not null default now());
  insert into app_ledger_entries (account, amount) values ('acct_1', 10.50), ('acct_2', -3), ('acct_1', 7)" >/dev/null

# run WF [DATA] -> run id, once the run has ended
run() {
  local id
  id=$("$RATCHET_BIN" run "$1" --data "${2:-{\}}")
  rt_wait_for 60 '[[ "$(rt_psql "select status from ratchet.runs where id = '"'$id'"'")" =~ ^(completed|failed|partial)$ ]]'
  echo "$id"
}
step() { rt_psql "select $3 from ratchet.steps where run_id = '$1' and step_id = '$2'"; }

# 1. Not configured: skipped cleanly.
rt_serve_start plain
rt_serve_wait_ready plain
id=$(run daily-ledger-checkpoint)
rt_assert_eq completed "$(rt_psql "select status from ratchet.runs where id = '$id'")" "run without S3 settings: $(rt_psql "select error from ratchet.runs where id = '$id'")"
rt_assert_eq skipped "$(step "$id" upload status)" "upload step without S3 settings"
rt_assert_eq "not configured" "$(rt_psql "select output->>'upload' from ratchet.runs where id = '$id'")" "run output's upload"
rt_assert_eq '{"bucket": false, "endpoint": false, "access_key": false, "secret_key": false}' \
  "$(step "$id" s3_not_configured "output->'set'")" "what the run says is missing"
day=$(rt_psql "select output->>'day' from ratchet.runs where id = '$id'")
rt_assert_eq "chk_$day|3|20.50" "$(rt_psql "select checkpoint || '|' || entries || '|' || volume from app_ledger_checkpoints where day = '$day'")" \
  "the stored checkpoint"
[ ! -s "$T/s3/requests.jsonl" ] || rt_fail "the S3 endpoint was called without settings: $(cat "$T/s3/requests.jsonl")"
rt_serve_stop plain
echo "ok: not configured: upload skipped, run completed, checkpoint chk_$day stored"

# 2. Configured: the upload lands and is what was sent.
export RATCHET_SECRET_CHECKPOINT_S3_ENDPOINT=$ENDPOINT RATCHET_SECRET_CHECKPOINT_S3_BUCKET=$BUCKET \
  RATCHET_SECRET_CHECKPOINT_S3_ACCESS_KEY=$AK RATCHET_SECRET_CHECKPOINT_S3_SECRET_KEY=$SK RATCHET_SECRET_CHECKPOINT_S3_REGION=$REGION
rt_serve_start good
rt_serve_wait_ready good
id=$(run daily-ledger-checkpoint)
rt_assert_eq "completed|uploaded" "$(rt_psql "select status || '|' || (output->>'upload') from ratchet.runs where id = '$id'")" \
  "run with S3 settings: $(rt_psql "select error from ratchet.runs where id = '$id'")"
rt_assert_eq "completed|200" "$(step "$id" upload "status || '|' || (output->>'status')")" "upload step"
obj=$T/s3/objects/$BUCKET/checkpoints/chk_$day.json
[ -f "$obj" ] || rt_fail "no object at $BUCKET/checkpoints/chk_$day.json: $(cat "$T/s3/requests.jsonl")"
python3 - "$obj" "$T/s3/requests.jsonl" "$day" "$(rt_psql "select row_to_json(c) from (select checkpoint, to_char(day, 'YYYY-MM-DD') as day, entries, volume::text as volume, last_entry_id, hash from app_ledger_checkpoints where day = '$day') c")" <<'EOF2' || rt_fail "the uploaded object"
import hashlib, json, sys
obj, log, day, row = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
data = open(obj, "rb").read()
stored = json.loads(data)
assert stored == row, (stored, row)
assert stored["checkpoint"] == "chk_" + day and stored["entries"] == 3 and stored["volume"] == "20.50", stored
puts = [json.loads(l) for l in open(log) if '"PUT"' in l]
assert len(puts) == 1, puts
p = puts[0]
assert p["status"] == 200 and p["path"] == "/ledger-bucket/checkpoints/chk_%s.json" % day, p
# x-amz-content-sha256 was sent, is the body's SHA-256, is signed, and the stored bytes are what was sent.
assert p["content_sha256"] == p["body_sha256"] == hashlib.sha256(data).hexdigest(), p
assert "x-amz-content-sha256" in p["signed_headers"].split(";"), p
print("ok: uploaded %d bytes, sha256 %s…, signed headers %s" % (len(data), p["body_sha256"][:16], p["signed_headers"]))
EOF2
# The same object read back by a GET signed the same way (an empty payload's SHA-256).
gid=$(run fetch-object "{\"path\": \"$BUCKET/checkpoints/chk_$day.json\"}")
rt_assert_eq completed "$(rt_psql "select status from ratchet.runs where id = '$gid'")" "signed GET: $(rt_psql "select error from ratchet.runs where id = '$gid'")"
rt_assert_eq "$(cat "$obj")" "$(step "$gid" get "output->>'body'")" "object read back"
rt_assert_eq "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
  "$(python3 -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1]) if "\"GET\"" in l][-1]["content_sha256"])' "$T/s3/requests.jsonl")" \
  "GET's x-amz-content-sha256"
rt_serve_stop good

# 3. A wrong secret: refused by the endpoint, a clear non-retried failure, no secret anywhere.
export RATCHET_SECRET_CHECKPOINT_S3_SECRET_KEY=$WRONG
rt_serve_start wrong
rt_serve_wait_ready wrong
id=$(run daily-ledger-checkpoint)
rt_assert_eq failed "$(rt_psql "select status from ratchet.runs where id = '$id'")" "run with a wrong secret"
rt_assert_eq "failed|1" "$(step "$id" upload "status || '|' || attempts")" "upload step with a wrong secret (a 403 is not retried)"
err=$(step "$id" upload error)
[[ $err == *"HTTP 403"*SignatureDoesNotMatch* ]] || rt_fail "the upload step's error does not say why: $err"
tail -n1 "$T/s3/requests.jsonl" | grep -q '"code": "SignatureDoesNotMatch"' || rt_fail "the endpoint did not refuse the signature: $(tail -n1 "$T/s3/requests.jsonl")"
rt_serve_stop wrong
pg_dump -a "$RATCHET_DATABASE_URL" >"$T/dump.sql"
for s in "$SK" "$WRONG"; do
  ! grep -qF -- "$s" "$T/dump.sql" || rt_fail "a secret key is in the database"
  ! grep -qF -- "$s" "$T"/*.log || rt_fail "a secret key is in a serve log"
done
echo "ok: wrong secret refused (${err:0:120}…); no secret in the database or the logs"
