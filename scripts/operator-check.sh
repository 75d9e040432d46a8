#!/usr/bin/env bash
# Operator-level check of `slipstream mirror`: a separately started
# nats-server, writes through the official nats CLI, and SIGKILLs of the
# mirror while writes keep arriving. After the churn, the fold must equal the
# bucket exactly (no missing, extra or stale key).
#
# Installs nats-server and the nats CLI with `go install` (pinned versions)
# into $OPBIN (default .cache/opbin). Usage: scripts/operator-check.sh [kills]
set -euo pipefail
cd "$(dirname "$0")/.."

KILLS=${1:-6}
OPBIN=${OPBIN:-$PWD/.cache/opbin}
mkdir -p "$OPBIN"
[ -x "$OPBIN/nats-server" ] || GOBIN=$OPBIN go install github.com/nats-io/nats-server/v2@v2.15.2
[ -x "$OPBIN/nats" ] || GOBIN=$OPBIN go install github.com/nats-io/natscli/nats@v0.5.0
go build -o "$OPBIN/slipstream" ./cmd/slipstream
export PATH="$OPBIN:$PATH"

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
NPORT=$(port); HPORT=$(port)
URL=nats://127.0.0.1:$NPORT
export NATS_URL=$URL

nats-server -js -a 127.0.0.1 -p "$NPORT" -sd "$WORK/js" >"$WORK/server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do nats account info >/dev/null 2>&1 && break; sleep 0.1; done

nats kv add ops --history 1 >/dev/null
for i in $(seq 1 30); do nats kv put ops "k.$i" "seed-$i" >/dev/null; done

start_mirror() {
  slipstream mirror --nats "$URL" --bucket ops --fold "$WORK/fold" --http "127.0.0.1:$HPORT" \
    --log-level warn >>"$WORK/mirror.out" 2>>"$WORK/mirror.log" &
  MIRROR=$!
  PIDS+=("$MIRROR")
}

churn() {
  local i=0
  while [ ! -f "$WORK/stop" ]; do
    i=$((i + 1))
    k="k.$((RANDOM % 40))"
    case $((RANDOM % 10)) in
      0|1) nats kv del ops "$k" -f >/dev/null 2>&1 || true ;;
      2) nats kv purge ops "$k" -f >/dev/null 2>&1 || true ;;
      *) nats kv put ops "$k" "v$i-$RANDOM" >/dev/null ;;
    esac
  done
}

churn &
CHURN=$!
PIDS+=("$CHURN")
for n in $(seq 1 "$KILLS"); do
  start_mirror
  sleep "$((RANDOM % 2)).$((RANDOM % 10))"
  kill -9 "$MIRROR"
  wait "$MIRROR" 2>/dev/null || true
  echo "kill $n: SIGKILL after a random delay"
done
touch "$WORK/stop"
wait "$CHURN"

# A final mirror catches up; then compare the fold with the bucket.
start_mirror
last=$(nats stream info KV_ops --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"]["last_seq"])')
for _ in $(seq 300); do
  cur=$(curl -fsS "127.0.0.1:$HPORT/v1/status" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get("cursor") or 0)' 2>/dev/null || echo 0)
  [ "$cur" = "$last" ] && break
  sleep 0.1
done
[ "$cur" = "$last" ] || { echo "mirror did not catch up: cursor $cur, bucket last revision $last"; cat "$WORK/mirror.log"; exit 1; }
kill -TERM "$MIRROR"
wait "$MIRROR"

slipstream range --fold "$WORK/fold" | python3 -c '
import base64, json, sys
for line in sys.stdin:
    e = json.loads(line)
    print(e["key"] + "=" + base64.b64decode(e["value"]).decode())
' | sort >"$WORK/fold.txt"
: >"$WORK/bucket.txt"
for k in $(nats kv ls ops 2>/dev/null); do
  echo "$k=$(nats kv get ops "$k" --raw)" >>"$WORK/bucket.txt"
done
sort -o "$WORK/bucket.txt" "$WORK/bucket.txt"
if ! diff -u "$WORK/bucket.txt" "$WORK/fold.txt"; then
  echo "FAIL: fold differs from bucket after $KILLS SIGKILLs"
  exit 1
fi
echo "operator check: 1 passed, 0 failed ($(wc -l <"$WORK/fold.txt") keys equal after $KILLS SIGKILLs, cursor $last)"
