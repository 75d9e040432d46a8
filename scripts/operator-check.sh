#!/usr/bin/env bash
# Operator-level check of `slipstream mirror`: a separately started
# nats-server, writes through the official nats CLI, and SIGKILLs of the
# mirror while writes keep arriving. After the churn, the fold must equal the
# bucket exactly (no missing, extra or stale key).
#
# Installs nats-server and the nats CLI with `go install` (pinned versions,
# scripts/lib/ops.sh) into $OPBIN (default .cache/opbin).
# Usage: scripts/operator-check.sh [kills]
# The other operator checks: operator-artifacts.sh, operator-fleet.sh,
# operator-audit.sh; operator-all.sh runs them all.
set -euo pipefail
. "$(dirname "$0")/lib/ops.sh"
ops_init operator-check 600 "$@"

KILLS=${1:-6}
start_nats server
HPORT=$(port)
nats kv add ops --history 1 >/dev/null
for i in $(seq 1 30); do nats kv put ops "k.$i" "seed-$i" >/dev/null; done

churn ops 40 "$WORK/stop" &
PIDS+=($!)
CHURN=$!
MIRROR_LOG_LEVEL=warn
for n in $(seq 1 "$KILLS"); do
  start_mirror mirror --nats "$NATS_URL" --bucket ops --fold "$WORK/fold" --http "127.0.0.1:$HPORT"
  sleep "$((RANDOM % 2)).$((RANDOM % 10))"
  kill -9 "$MIRROR_PID"
  wait "$MIRROR_PID" 2>/dev/null || true
  echo "kill $n: SIGKILL after a random delay"
done
touch "$WORK/stop"
wait "$CHURN"

# A final mirror catches up; then compare the fold with the bucket.
start_mirror mirror --nats "$NATS_URL" --bucket ops --fold "$WORK/fold" --http "127.0.0.1:$HPORT"
last=$(bucket_last ops)
if ! wait_cursor "$HPORT" "$last" 60; then
  echo "mirror did not catch up to the bucket's last revision $last"
  cat "$WORK/mirror.log"
  exit 1
fi
stop_mirror "$MIRROR_PID"
check "the fold equals the bucket after $KILLS SIGKILLs under churn ($(bucket_dump ops | wc -l) keys, cursor $last)" same_as_bucket "$WORK/fold" ops
ops_summary
