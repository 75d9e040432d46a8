# Shared helpers of the operator checks (scripts/operator-*.sh): pinned
# tools, servers started as their own processes on loopback, bounded waits,
# one-line pass/fail reporting, and cleanup of every process and temp dir a
# check started. Source it, then call ops_init NAME LIMIT_SECONDS.
#
# Tools are installed with `go install` at pinned versions into $OPBIN
# (default .cache/opbin): nats-server, the official nats CLI, and gofakes3's
# command (an S3-compatible server whose conditional writes are checked
# before use, see start_s3).

NATS_SERVER_VERSION=v2.15.2
NATS_CLI_VERSION=v0.5.0
GOFAKES3_VERSION=v1.2.0

# ops_init NAME LIMIT "$@": re-executes the calling script (with its
# arguments) under `timeout LIMIT` seconds, so a hung check ends cleanly
# (SIGTERM runs the cleanup); installs the tools, builds slipstream and
# makes $WORK.
ops_init() {
  OPS_NAME=$1
  local limit=$2
  shift 2
  if [ -z "${OPS_UNDER_TIMEOUT:-}" ]; then
    OPS_UNDER_TIMEOUT=1 exec timeout --signal=TERM --kill-after=20 "$limit" bash "$0" "$@"
  fi
  cd "$(dirname "$0")/.."
  OPBIN=${OPBIN:-$PWD/.cache/opbin}
  mkdir -p "$OPBIN"
  [ -x "$OPBIN/nats-server" ] || GOBIN=$OPBIN go install "github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION"
  [ -x "$OPBIN/nats" ] || GOBIN=$OPBIN go install "github.com/nats-io/natscli/nats@$NATS_CLI_VERSION"
  [ -x "$OPBIN/gofakes3" ] || GOBIN=$OPBIN go install "github.com/johannesboyne/gofakes3/cmd/gofakes3@$GOFAKES3_VERSION"
  go build -o "$OPBIN/slipstream" ./cmd/slipstream
  export PATH="$OPBIN:$PATH"
  # Nothing from the caller's environment redirects the tools.
  unset NATS_URL NATS_CONTEXT NATS_CREDS NATS_NKEY NATS_USER NATS_PASSWORD NATS_TOKEN NATS_CA NATS_CERT NATS_KEY
  export XDG_CONFIG_HOME # set below: the nats CLI's contexts stay in $WORK
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/slipstream-$OPS_NAME.XXXXXX")
  XDG_CONFIG_HOME=$WORK/xdg
  PIDS=()
  PASSED=0
  FAILED=0
  trap ops_cleanup EXIT
  trap 'echo "$OPS_NAME: interrupted (time limit or signal)" >&2; exit 124' TERM INT
}

# ops_cleanup stops every process this check started (by pid: SIGTERM, then
# SIGKILL), and removes $WORK unless OPS_KEEP=1.
ops_cleanup() {
  local rc=$?
  trap - EXIT TERM INT
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${OPS_KEEP:-0}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
  exit $rc
}

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# waitfor SECONDS CMD...: runs CMD every 0.1 s until it succeeds; fails
# once SECONDS have passed (a deadline, not a count: on a loaded machine one
# try can take seconds).
waitfor() {
  local end=$((SECONDS + $1))
  shift
  while [ $SECONDS -lt $end ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

# pass/fail record one check each; ops_summary prints the totals and sets
# the exit status.
pass() { PASSED=$((PASSED + 1)); echo "ok   $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $*"; }
check() { # check LABEL CMD...: passes when CMD succeeds
  local label=$1
  shift
  if "$@"; then pass "$label"; else fail "$label"; fi
}
ops_summary() {
  echo "$OPS_NAME: $PASSED passed, $FAILED failed"
  [ "$FAILED" = 0 ]
}

# run_expect CODE LABEL CMD...: runs CMD (bounded to 120 s), stdout in
# $WORK/out, stderr in $WORK/err; passes when it exits with CODE and, for a
# non-zero CODE, stderr is exactly one line starting "slipstream: " (with
# ALLOW_LOGS=1, log lines "time=… level=…" may precede it).
run_expect() {
  local want=$1 label=$2
  shift 2
  local rc=0
  timeout 120 "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
  if [ "$rc" != "$want" ]; then
    fail "$label: exit $rc, want $want: $(head -c 400 "$WORK/err")"
    return 1
  fi
  if [ "$want" != 0 ]; then
    local errlines=$WORK/err
    if [ "${ALLOW_LOGS:-0}" = 1 ]; then
      grep -v '^time=[^ ]* level=' "$WORK/err" >"$WORK/err.nolog" || true
      errlines=$WORK/err.nolog
    fi
    if [ "$(wc -l <"$errlines")" != 1 ] || ! head -1 "$errlines" | grep -q '^slipstream: '; then
      fail "$label: stderr is not one 'slipstream: ' line: $(head -c 400 "$WORK/err")"
      return 1
    fi
  fi
  pass "$label (exit $rc)"
}

# err_mentions TEXT: the last run_expect's stderr contains TEXT.
err_mentions() { grep -qF -- "$1" "$WORK/err"; }

# start_nats NAME [extra nats-server flags]: a JetStream server on loopback,
# store in $WORK/NAME.js. Sets NATS_URL (exported for the nats CLI),
# NATS_PORT and NATS_PID.
start_nats() {
  local name=$1
  shift
  NATS_PORT=${NATS_PORT:-$(port)}
  nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$WORK/$name.js" "$@" >>"$WORK/$name.server.log" 2>&1 &
  NATS_PID=$!
  PIDS+=("$NATS_PID")
  export NATS_URL=nats://127.0.0.1:$NATS_PORT
  waitfor 20 nats account info || { echo "nats-server did not start"; cat "$WORK/$name.server.log"; exit 1; }
}

# stop_nats: graceful stop of the server started last (its store is
# flushed), waiting until it is gone.
stop_nats() {
  kill -TERM "$NATS_PID"
  for _ in $(seq 200); do kill -0 "$NATS_PID" 2>/dev/null || break; sleep 0.05; done
  wait "$NATS_PID" 2>/dev/null || true
}

# start_s3 BUCKET...: gofakes3 on loopback (memory backend) with the buckets
# created, as its own process. Before any check relies on it, proves that
# it implements conditional writes: If-None-Match: * on an existing object
# and a stale If-Match are refused with 412, a current If-Match succeeds.
# Sets S3_ENDPOINT and the AWS_* variables the SDK's default chain reads.
start_s3() {
  local sport
  sport=$(port)
  gofakes3 -backend memory -host "127.0.0.1:$sport" -initialbucket "$1" -quiet >>"$WORK/s3.log" 2>&1 &
  PIDS+=($!)
  S3_ENDPOINT=http://127.0.0.1:$sport
  waitfor 20 curl -fsS -o /dev/null "$S3_ENDPOINT/$1" || { echo "gofakes3 did not start"; cat "$WORK/s3.log"; exit 1; }
  local b
  for b in "${@:2}"; do curl -fsS -o /dev/null -X PUT "$S3_ENDPOINT/$b"; done
  local u=$S3_ENDPOINT/$1/.conditional-write-probe c1 c2 etag c3 c4
  c1=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'If-None-Match: *' --data-binary one "$u")
  c2=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'If-None-Match: *' --data-binary two "$u")
  etag=$(curl -sI "$u" | tr -d '\r' | awk 'tolower($1)=="etag:" {print $2}')
  c3=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'If-Match: "0123456789abcdef0123456789abcdef"' --data-binary three "$u")
  c4=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "If-Match: $etag" --data-binary four "$u")
  if [ "$c1 $c2 $c3 $c4" != "200 412 412 200" ] || [ "$(curl -s "$u")" != four ]; then
    echo "gofakes3 does not implement conditional writes (create, create again, stale If-Match, current If-Match: $c1 $c2 $c3 $c4)"
    exit 1
  fi
  curl -s -o /dev/null -X DELETE "$u"
  pass "S3 server refuses If-None-Match:* on an existing object and a stale If-Match (412), accepts the current ETag"
  export AWS_ACCESS_KEY_ID=operator AWS_SECRET_ACCESS_KEY=operator-secret AWS_REGION=us-east-1
  export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
  unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3
  S3FLAGS=(-s3-endpoint "$S3_ENDPOINT" -s3-path-style)
}

# start_mirror NAME ARGS...: `slipstream mirror ARGS` in the background,
# stdout in $WORK/NAME.out, stderr (logs) appended to $WORK/NAME.log.
# Sets MIRROR_PID.
start_mirror() {
  local name=$1
  shift
  slipstream mirror --log-level "${MIRROR_LOG_LEVEL:-info}" "$@" >>"$WORK/$name.out" 2>>"$WORK/$name.log" &
  MIRROR_PID=$!
  PIDS+=("$MIRROR_PID")
}

# stop_mirror PID: SIGTERM and wait (the mirror flushes and exits 0).
stop_mirror() {
  kill -TERM "$1" 2>/dev/null || true
  local rc=0
  wait "$1" 2>/dev/null || rc=$?
  return $rc
}

# status HTTPPORT EXPR: evaluates the Python expression EXPR on /v1/status
# (as d); prints it, or nothing when the status cannot be read (it always
# succeeds: safe in assignments under set -e).
status() {
  curl -fsS --max-time 5 "127.0.0.1:$1/v1/status" 2>/dev/null |
    python3 -c "import json,sys
try:
    d=json.load(sys.stdin); print($2)
except Exception:
    pass" 2>/dev/null || true
}

# bucket_last BUCKET: the bucket stream's last sequence, from the nats CLI.
bucket_last() {
  nats stream info "KV_$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"]["last_seq"])'
}

# wait_cursor HTTPPORT CURSOR SECONDS: until the mirror reports the cursor.
wait_cursor() {
  local cur end=$((SECONDS + $3))
  while [ $SECONDS -lt $end ]; do
    cur=$(status "$1" 'd.get("cursor") or 0')
    [ "$cur" = "$2" ] && return 0
    sleep 0.1
  done
  echo "mirror on :$1 at cursor ${cur:-?}, want $2" >&2
  return 1
}

# wait_status HTTPPORT EXPR SECONDS: until EXPR (Python, on /v1/status as d)
# prints True.
wait_status() {
  local end=$((SECONDS + $3))
  while [ $SECONDS -lt $end ]; do
    [ "$(status "$1" "$2")" = True ] && return 0
    sleep 0.1
  done
  return 1
}

# bucket_dump BUCKET: "key=value" per live key, sorted, read with the
# official nats CLI (values must be short single words).
bucket_dump() {
  nats kv ls "$1" -v --display-value 2>/dev/null | python3 -c '
import sys
for line in sys.stdin:
    cells = [c.strip() for c in line.strip().strip("│").split("│")]
    if len(cells) == 5 and cells[3].isdigit():
        print(cells[0] + "=" + cells[4])
' | sort
}

# fold_dump FOLD: "key=value" per key of a fold no mirror holds, sorted.
fold_dump() {
  timeout 60 slipstream range --fold "$1" | python3 -c '
import base64, json, sys
for line in sys.stdin:
    e = json.loads(line)
    print(e["key"] + "=" + base64.b64decode(e["value"]).decode())
' | sort
}

# same_as_bucket FOLD BUCKET: the fold holds exactly the bucket's live keys
# and values (diff on stderr otherwise).
same_as_bucket() {
  bucket_dump "$2" >"$WORK/bucket.txt"
  fold_dump "$1" >"$WORK/fold.txt"
  [ -s "$WORK/bucket.txt" ] || { echo "bucket $2 listed no keys" >&2; return 1; }
  diff -u "$WORK/bucket.txt" "$WORK/fold.txt" >&2
}

# churn BUCKET KEYS STOPFILE: puts (80 %), deletes and purges of random keys
# through the nats CLI until STOPFILE exists. Run it in the background.
churn() {
  local i=0 k
  while [ ! -f "$3" ]; do
    i=$((i + 1))
    k="k.$((RANDOM % $2))"
    case $((RANDOM % 10)) in
      0) nats kv del "$1" "$k" -f >/dev/null 2>&1 || true ;;
      1) nats kv purge "$1" "$k" -f >/dev/null 2>&1 || true ;;
      *) nats kv put "$1" "$k" "v$i-$RANDOM" >/dev/null 2>&1 || true ;;
    esac
  done
}
