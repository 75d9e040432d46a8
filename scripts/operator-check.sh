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

# --- a NATS outage of 10 s -----------------------------------------------------
# The mirror logs the disconnect (WARN), turns not ready once the outage
# outlasts --disconnect-grace, shows it in /v1/status, logs the reconnect
# with the outage's duration (INFO), is ready again and keeps following.
MIRROR_LOG_LEVEL=info
start_mirror outage --nats "$NATS_URL" --bucket ops --fold "$WORK/fold" --http "127.0.0.1:$HPORT" --disconnect-grace 2s
wait_cursor "$HPORT" "$(bucket_last ops)" 60 || fail "mirror did not catch up"
readyz() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "127.0.0.1:$HPORT/readyz"; }
check "ready before the outage" [ "$(readyz)" = 200 ]
stop_nats
check "a WARN when NATS disconnects" waitfor 10 grep -q 'level=WARN msg="NATS disconnected' "$WORK/outage.log"
check "/readyz 503 once the outage outlasts the 2 s grace" waitfor 15 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' 127.0.0.1:$HPORT/readyz)\" = 503 ]"
check "/v1/status shows the outage" wait_status "$HPORT" 'd["nats_connected"] is False and bool(d.get("nats_disconnected_since")) and d["ready"] is False' 5
sleep 8 # a 10 s outage in all
start_nats server
check "an INFO with the outage's duration on reconnect" waitfor 30 grep -Eq 'level=INFO msg="NATS reconnected".* outage=([0-9]+m)?[0-9.]+s' "$WORK/outage.log"
grep -E 'msg="NATS (disconnected|still|reconnected)' "$WORK/outage.log" | cut -c1-200 | sed 's/^/     /'
check "ready again after the reconnect" waitfor 30 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' 127.0.0.1:$HPORT/readyz)\" = 200 ]"
nats kv put ops after-outage x >/dev/null
check "it keeps following" wait_cursor "$HPORT" "$(bucket_last ops)" 60
stop_mirror "$MIRROR_PID" && pass "the mirror stops with exit 0" || fail "mirror exit status"
check "the fold equals the bucket after the outage" same_as_bucket "$WORK/fold" ops
ops_summary
