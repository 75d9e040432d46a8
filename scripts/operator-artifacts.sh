#!/usr/bin/env bash
# Operator check of artifacts and their transport, the way an operator runs
# them: a separately started nats-server, writes through the official nats
# CLI, an S3-compatible server (gofakes3's command) as its own process.
#
#  1. export --from a running mirror → verify → import → a mirror on the
#     imported fold resumes and receives exactly the updates after the
#     artifact's cursor, and ends equal to the bucket; export --from a
#     mirror behind HTTPS and a bearer token (-cacert, -token-file);
#  2. every refusal of a damaged artifact (flipped byte, truncated file,
#     extra file, symlink, edited cursor, trailing manifest data, no
#     manifest): verify and import exit 1 with one clear line, nothing at
#     the import destination;
#  3. publish / fetch / prune on file://, s3:// and nats-object://: publish,
#     a newer publish, an older one superseded (exit 0, pointer unchanged),
#     fetch → verify → import at the pointer's cursor, prune deleting only
#     the payload below the pointer; a damaged published payload is fetched
#     and then refused by import;
#  4. operator errors: bad URLs (exit 2), missing keys and buckets,
#     unreachable servers (exit 1, one line, bounded time).
#
# Usage: scripts/operator-artifacts.sh   (OPS_KEEP=1 keeps the work dir)
set -euo pipefail
. "$(dirname "$0")/lib/ops.sh"
ops_init operator-artifacts 600 "$@"

start_nats server
start_s3 art
B=ops
nats kv add $B --history 1 >/dev/null
for i in $(seq 1 30); do nats kv put $B "k.$i" "seed-$i" >/dev/null; done

# --- 1. export → verify → import → resume --------------------------------
HA=$(port)
start_mirror a --bucket $B --fold "$WORK/foldA" --http "127.0.0.1:$HA"
A=$MIRROR_PID
check "mirror A caught up with the bucket" wait_cursor "$HA" "$(bucket_last $B)" 60

run_expect 0 "export --from the running mirror" slipstream export --from "http://127.0.0.1:$HA" --out "$WORK/art1" -json
C1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["cursor"])' "$WORK/out")
check "export's cursor ($C1) is the bucket's last revision" [ "$C1" = "$(bucket_last $B)" ]
run_expect 0 "verify the exported artifact" slipstream verify -json "$WORK/art1"
check "verify -json prints backend, cursor, files, bytes" python3 -c '
import json,sys; d=json.load(open(sys.argv[1]))
assert d["backend"]=="append-log" and d["backend_version"]=="2" and d["cursor"]==int(sys.argv[2]) and d["files"]==1 and d["bytes"]>0, d' "$WORK/out" "$C1"
run_expect 1 "export --from into an occupied -out" slipstream export --from "http://127.0.0.1:$HA" --out "$WORK/art1"
check "  … says the destination is not empty" err_mentions "exists and is not empty"

# Writes after the artifact: 15 puts, a delete, a purge, an overwrite.
for i in $(seq 31 45); do nats kv put $B "k.$i" "late-$i" >/dev/null; done
nats kv del $B k.2 -f >/dev/null
nats kv purge $B k.3 -f >/dev/null
nats kv put $B k.4 rewritten >/dev/null
L2=$(bucket_last $B)

run_expect 0 "import the artifact into a new fold" slipstream import --artifact "$WORK/art1" --fold "$WORK/foldB"
run_expect 1 "import again onto the now non-empty fold" slipstream import --artifact "$WORK/art1" --fold "$WORK/foldB"
HB=$(port)
start_mirror b --bucket $B --fold "$WORK/foldB" --http "127.0.0.1:$HB"
MB=$MIRROR_PID
check "mirror B on the imported fold reaches the bucket's last revision $L2" wait_cursor "$HB" "$L2" 60
stop_mirror "$MB" && pass "mirror B stops with exit 0 on SIGTERM" || fail "mirror B exit status"
delivered=$(grep 'msg="caught up"' "$WORK/b.log" | head -1 | sed -n 's/.*delivered=\([0-9]*\).*/\1/p')
check "mirror B resumed from cursor $C1 and received exactly the $((L2 - C1)) later updates (got ${delivered:-?})" \
  [ "${delivered:-x}" = "$((L2 - C1))" ]
check "mirror B logged a resume, not a sync" grep -q "follower resuming.*cursor=$C1" "$WORK/b.log"
check "mirror B verified the imported fold, then bound it to $B" grep -q "fold verified against the bucket; bound to it" "$WORK/b.log"
check "  … in the fold's binding file" grep -q "\"bucket\": \"$B\"" "$WORK/foldB/slipstream-binding.json"
run_expect 1 "a mirror of another bucket (a typo) on fold B is refused" slipstream mirror --bucket "${B}x" --fold "$WORK/foldB"
check "  … naming the bucket fold B mirrors" err_mentions "mirrors bucket \"$B\""
run_expect 1 "a mirror of a bucket missing on the server is refused (no -create-bucket)" slipstream mirror --bucket "${B}x" --fold "$WORK/foldX"
check "  … naming bucket and server" err_mentions "bucket \"${B}x\" on $NATS_URL"
check "fold B equals the bucket (nats kv ls -v)" same_as_bucket "$WORK/foldB" $B
run_expect 0 "export --fold of the closed fold B" slipstream export --fold "$WORK/foldB" --out "$WORK/art2" -json
C2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["cursor"])' "$WORK/out")
check "closed-fold export at cursor $C2 = $L2" [ "$C2" = "$L2" ]

# export --from a mirror served over HTTPS with a bearer token (loopback,
# a self-signed certificate made here).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/tls.key" -out "$WORK/tls.crt" \
  -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null
printf 'operator-token' >"$WORK/token"
printf 'wrong-token' >"$WORK/badtoken"
HS=$(port)
start_mirror secure --bucket $B --fold "$WORK/foldS" --http "127.0.0.1:$HS" --http-tls-cert "$WORK/tls.crt" --http-tls-key "$WORK/tls.key" --http-token-file "$WORK/token"
S=$MIRROR_PID
waitfor 30 curl -fsS --cacert "$WORK/tls.crt" "https://127.0.0.1:$HS/readyz" || fail "the HTTPS mirror did not become ready"
run_expect 1 "export --from https without -cacert" slipstream export --from "https://127.0.0.1:$HS" --out "$WORK/artS"
check "  … says the certificate is not trusted" err_mentions "certificate signed by unknown authority"
run_expect 1 "export --from https without -token-file" slipstream export --from "https://127.0.0.1:$HS" --out "$WORK/artS" -cacert "$WORK/tls.crt"
check "  … names -token-file" err_mentions "-token-file"
run_expect 1 "export --from https with a wrong token" slipstream export --from "https://127.0.0.1:$HS" --out "$WORK/artS" -cacert "$WORK/tls.crt" -token-file "$WORK/badtoken"
check "  … says the token was refused" err_mentions "refused the token"
run_expect 0 "export --from https with -cacert and -token-file" slipstream export --from "https://127.0.0.1:$HS" --out "$WORK/artS" -cacert "$WORK/tls.crt" -token-file "$WORK/token"
run_expect 0 "verify it" slipstream verify "$WORK/artS"
stop_mirror "$S" && pass "the HTTPS mirror stops with exit 0" || fail "HTTPS mirror exit status"

# --- 2. damaged artifacts --------------------------------------------------
damage() { # damage NAME HOW EXPECTED-TEXT
  local d=$WORK/bad-$1
  cp -r "$WORK/art1" "$d"
  case $2 in
    flip) python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[len(b)//2]^=1; open(p,"wb").write(b)' "$d/data/fold.snap" ;;
    truncate) truncate -s -7 "$d/data/fold.snap" ;;
    extra) echo x >"$d/data/extra" ;;
    symlink) ln -s /etc/hostname "$d/data/link" ;;
    cursor) sed -i "s/\"cursor_hex\": \"[0-9a-f]*\"/\"cursor_hex\": \"$(printf %016x $((C1 - 1)))\"/" "$d/MANIFEST.json" ;;
    trailing) echo '{}' >>"$d/MANIFEST.json" ;;
    nomanifest) rm "$d/MANIFEST.json" ;;
  esac
  run_expect 1 "verify refuses a damaged artifact ($2)" slipstream verify "$d" && {
    check "  … naming the problem ('$3')" err_mentions "$3"
  }
  run_expect 1 "import refuses it ($2)" slipstream import --artifact "$d" --fold "$WORK/bad-fold-$1" && {
    check "  … and leaves nothing at the destination" [ ! -e "$WORK/bad-fold-$1" ]
  }
}
damage flip flip "checksum mismatch"
damage trunc truncate "manifest says"
damage extra extra "undeclared file"
damage link symlink "non-regular file"
damage cur cursor "disagrees with manifest cursor"
damage trail trailing "trailing data"
damage none nomanifest "no MANIFEST.json"
run_expect 1 "publish refuses a damaged artifact" slipstream publish --artifact "$WORK/bad-flip" --to "file://$WORK/never" --key k
check "  … before uploading anything" [ -z "$(find "$WORK/never" -type f 2>/dev/null)" ]

# --- 3. publish / fetch / prune on each store ---------------------------------
# tamper_tar FILE: flips a byte inside data/fold.snap of a payload tar.
tamper_tar() {
  python3 - "$1" <<'EOF'
import sys, tarfile
p = sys.argv[1]
with tarfile.open(p) as t:
    m = t.getmember("data/fold.snap")
    off = m.offset_data + m.size // 2
with open(p, "r+b") as f:
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 1]))
EOF
}

store_check() { # store_check LABEL URL [flags...]
  local label=$1 url=$2
  shift 2
  local key=edge/latest
  run_expect 0 "$label: publish the artifact at cursor $C1" slipstream publish --artifact "$WORK/art1" --to "$url" --key $key "$@"
  check "  … printed published" grep -q "^published $key: artifact cursor $C1" "$WORK/out"
  local extra=()
  if [ "$label" = file ]; then
    run_expect 1 "$label: a second publish needs the non-atomic opt-in" slipstream publish --artifact "$WORK/art2" --to "$url" --key $key
    check "  … and the error names the flag" err_mentions "-non-atomic-pointer-fallback"
    extra=(-non-atomic-pointer-fallback -log-level error)
  fi
  run_expect 0 "$label: publish the newer artifact at cursor $C2" slipstream publish --artifact "$WORK/art2" --to "$url" --key $key "$@" "${extra[@]}" -json
  check "  … outcome published, remote cursor $C2" python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["outcome"]=="published" and d["remote_cursor"]==int(sys.argv[2]), d' "$WORK/out" "$C2"
  run_expect 0 "$label: publish the older artifact again" slipstream publish --artifact "$WORK/art1" --to "$url" --key $key "$@" "${extra[@]}"
  check "  … is superseded by cursor $C2" grep -q "^superseded $key: artifact cursor $C1, remote cursor $C2" "$WORK/out"
  run_expect 0 "$label: fetch -peek" slipstream fetch --from "$url" --key $key -peek -json "$@"
  check "  … the pointer still names cursor $C2" python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["cursor"]==int(sys.argv[2]), d' "$WORK/out" "$C2"
  run_expect 0 "$label: fetch" slipstream fetch --from "$url" --key $key --out "$WORK/$label-fetched" "$@"
  run_expect 0 "$label: verify the fetched artifact" slipstream verify "$WORK/$label-fetched"
  run_expect 0 "$label: import it" slipstream import --artifact "$WORK/$label-fetched" --fold "$WORK/$label-fold"
  check "$label: the imported fold equals fold B" [ "$(fold_dump "$WORK/$label-fold")" = "$(fold_dump "$WORK/foldB")" ]
  run_expect 0 "$label: prune -grace 0" slipstream prune --from "$url" --key $key --grace 0 -json "$@"
  check "  … deleted exactly the payload below the pointer" python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["deleted"]==1, d' "$WORK/out"
  run_expect 0 "$label: prune again deletes nothing" slipstream prune --from "$url" --key $key --grace 0 "$@"
  check "  … deleted 0" grep -q "deleted 0 payloads" "$WORK/out"
  run_expect 0 "$label: fetch after prune still works" slipstream fetch --from "$url" --key $key --out "$WORK/$label-fetched2" "$@"
  run_expect 1 "$label: fetch of a key never published" slipstream fetch --from "$url" --key never/published --out "$WORK/$label-none" "$@"
  check "  … says not found" err_mentions "not found"
}

store_check file "file://$WORK/store"
store_check s3 "s3://art/fleet" "${S3FLAGS[@]}"
store_check nats "nats-object://arts/fleet"

# A payload damaged in the store is fetched (fetch checks the archive, not
# the hashes) and refused at import.
payload=$(find "$WORK/store" -name '*.tar' | head -1)
tamper_tar "$payload"
run_expect 0 "file: fetch of a payload damaged in the store" slipstream fetch --from "file://$WORK/store" --key edge/latest --out "$WORK/file-damaged"
run_expect 1 "file: import refuses it" slipstream import --artifact "$WORK/file-damaged" --fold "$WORK/file-damaged-fold"
check "  … checksum mismatch" err_mentions "checksum mismatch"
obj=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["payload"])' <(slipstream publish --artifact "$WORK/art2" --to s3://art/fleet --key edge/latest "${S3FLAGS[@]}" -json))
curl -fsS -o "$WORK/s3payload.tar" "$S3_ENDPOINT/art/$obj"
tamper_tar "$WORK/s3payload.tar"
curl -fsS -o /dev/null -X PUT --data-binary @"$WORK/s3payload.tar" "$S3_ENDPOINT/art/$obj"
run_expect 0 "s3: fetch of a payload damaged in the store" slipstream fetch --from s3://art/fleet --key edge/latest --out "$WORK/s3-damaged" "${S3FLAGS[@]}"
run_expect 1 "s3: import refuses it" slipstream import --artifact "$WORK/s3-damaged" --fold "$WORK/s3-damaged-fold"
check "  … checksum mismatch" err_mentions "checksum mismatch"

# --- 4. operator errors ---------------------------------------------------
run_expect 2 "unknown URL scheme" slipstream fetch --from ftp://x/y --key k --out "$WORK/x"
run_expect 2 "s3:// without a bucket" slipstream publish --artifact "$WORK/art1" --to s3:// --key k
run_expect 2 "relative file URL" slipstream fetch --from file://relative/dir --key k --out "$WORK/x"
run_expect 2 "export --from without a scheme" slipstream export --from "127.0.0.1:$HA" --out "$WORK/x"
run_expect 1 "publish to a missing S3 bucket" slipstream publish --artifact "$WORK/art1" --to s3://no-such-bucket/p --key k "${S3FLAGS[@]}"
check "  … says NoSuchBucket" err_mentions "NoSuchBucket"
run_expect 1 "nats-object:// with the server unreachable" slipstream fetch --from nats-object://arts/fleet --key k --out "$WORK/x" -nats nats://127.0.0.1:1
check "  … says the connection failed" err_mentions "connection failed"
s=$(date +%s)
run_expect 1 "s3:// with the endpoint unreachable" slipstream publish --artifact "$WORK/art1" --to s3://art/p --key k -s3-endpoint http://127.0.0.1:1 -s3-path-style
check "  … within 30 s ($(($(date +%s) - s)) s)" [ $(($(date +%s) - s)) -lt 30 ]
run_expect 1 "export --from a port that is not a mirror" slipstream export --from "http://127.0.0.1:$NATS_PORT" --out "$WORK/x"
run_expect 1 "export --fold of a fold a mirror holds" slipstream export --fold "$WORK/foldA" --out "$WORK/x"
check "  … points to export --from" err_mentions "-from http://"
check "failed commands left no output directory" [ ! -e "$WORK/x" ]

stop_mirror "$A" && pass "mirror A stops with exit 0" || fail "mirror A exit status"
check "mirror A logged no error" bash -c "! grep -q 'level=ERROR' '$WORK/a.log'"
ops_summary
