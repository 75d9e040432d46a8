#!/usr/bin/env bash
# Operator check of the fleet in `slipstream mirror`: a separately started
# nats-server, writes through the official nats CLI, artifacts on an
# S3-compatible server (gofakes3's command, its own process) or in a NATS
# object store.
#
# For each store:
#  1. three mirrors with --export-to and a 2 s period, under churn from the
#     nats CLI and repeated SIGKILLs of random nodes (each restarted on its
#     fold); the pointer's cursor is sampled throughout with
#     `slipstream fetch -peek` and must never decrease, and ends at the
#     bucket's last revision;
#  2. the exporters stop (exit 0), the bucket takes a few more writes, and a
#     new node with --bootstrap-from imports the artifact, receives exactly
#     the updates after its cursor, and ends equal to the bucket (as do the
#     three exporters' folds);
#  3. a stopped node whose cursor has expired (every key rewritten, history
#     1) restarts with --bootstrap-from: it recovers from the artifact, not
#     by a full resync, and ends equal to the bucket.
#
# Usage: scripts/operator-fleet.sh [s3|nats-object|both] [kills]
set -euo pipefail
. "$(dirname "$0")/lib/ops.sh"
ops_init operator-fleet 900 "$@"

STORES=${1:-both}
KILLS=${2:-8}
KEYS=30
start_nats server
start_s3 art

peek() { # peek URL KEY [flags]: the pointer's cursor, or nothing
  local url=$1 key=$2
  shift 2
  timeout 20 slipstream fetch --from "$url" --key "$key" -peek -json "$@" 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["cursor"])' 2>/dev/null || true
}

# sampler URL KEY OUT STOP [flags]: appends the pointer's cursor to OUT until STOP exists.
sampler() {
  local url=$1 key=$2 out=$3 stop=$4
  shift 4
  local c
  while [ ! -f "$stop" ]; do
    c=$(peek "$url" "$key" "$@")
    [ -n "$c" ] && echo "$c" >>"$out"
    sleep 0.2
  done
}

scenario() { # scenario NAME URL [store flags]
  local name=$1 url=$2
  shift 2
  local sflags=("$@") bucket=fl-$name key=fleet/$name
  echo "--- $name: $url"
  nats kv add "$bucket" --history 1 >/dev/null
  for i in $(seq 0 $((KEYS - 1))); do nats kv put "$bucket" "k.$i" "seed-$i" >/dev/null; done

  local hp=() pids=() args=() n
  for n in 0 1 2; do
    hp[$n]=$(port)
    local backend=applog
    [ $n = 1 ] && backend=pebble # a pebble exporter: its artifacts must bootstrap applog-less nodes too
    args[$n]="--bucket $bucket --fold $WORK/$name-n$n --backend $backend --http 127.0.0.1:${hp[$n]} --export-to $url --export-key $key --export-every 2s --node-id $name-n$n ${sflags[*]}"
    # shellcheck disable=SC2086
    start_mirror "$name-n$n" ${args[$n]}
    pids[$n]=$MIRROR_PID
  done

  rm -f "$WORK/stop-$name"
  churn "$bucket" $KEYS "$WORK/stop-$name" &
  local churner=$!
  PIDS+=("$churner")
  sampler "$url" "$key" "$WORK/$name-samples" "$WORK/stop-$name" "${sflags[@]}" &
  local samp=$!
  PIDS+=("$samp")

  local k victim
  for k in $(seq 1 "$KILLS"); do
    sleep "$((1 + RANDOM % 3)).$((RANDOM % 10))"
    victim=$((RANDOM % 3))
    kill -KILL "${pids[$victim]}" 2>/dev/null || true
    wait "${pids[$victim]}" 2>/dev/null || true
    # shellcheck disable=SC2086
    start_mirror "$name-n$victim" ${args[$victim]}
    pids[$victim]=$MIRROR_PID
    echo "     kill $k: SIGKILL of node $victim, restarted"
  done
  touch "$WORK/stop-$name"
  wait "$churner" "$samp" || true

  local last
  last=$(bucket_last "$bucket")
  for n in 0 1 2; do
    check "$name: node $n caught up to the bucket's last revision $last" wait_cursor "${hp[$n]}" "$last" 90
  done
  # After the churn, the next round publishes the last revision.
  local pc=""
  local end=$((SECONDS + 60))
  while [ $SECONDS -lt $end ]; do
    pc=$(peek "$url" "$key" "${sflags[@]}")
    [ "$pc" = "$last" ] && break
    sleep 0.3
  done
  echo "$pc" >>"$WORK/$name-samples"
  check "$name: the pointer reached the last revision $last (at ${pc:-none})" [ "$pc" = "$last" ]
  local nsamples
  nsamples=$(wc -l <"$WORK/$name-samples")
  check "$name: the pointer's cursor never decreased ($nsamples samples, $(sort -un "$WORK/$name-samples" | wc -l) distinct cursors)" \
    python3 -c 'import sys; s=[int(l) for l in open(sys.argv[1])]; assert len(s) >= 5 and all(a <= b for a, b in zip(s, s[1:])), s' "$WORK/$name-samples"
  local rounds
  rounds=$(for n in 0 1 2; do status "${hp[$n]}" 'json.dumps(d["fleet"]["export"]["rounds"])'; done)
  echo "     rounds by node (after the last restart): $(echo "$rounds" | tr '\n' ' ')"
  local errors
  errors=$(cat "$WORK/$name"-n?.log | grep -c 'level=ERROR' || true)
  echo "     ERROR lines in the three logs: $errors"
  grep -h 'level=ERROR' "$WORK/$name"-n?.log | sed 's/^/       /' | head -5 || true

  for n in 0 1 2; do
    stop_mirror "${pids[$n]}" && pass "$name: node $n stops with exit 0" || fail "$name: node $n exit status"
  done
  for n in 0 1 2; do
    check "$name: node $n's fold equals the bucket" same_as_bucket "$WORK/$name-n$n" "$bucket"
  done
  # A few writes the artifact does not hold: its tail.
  local ac
  ac=$(peek "$url" "$key" "${sflags[@]}")
  for i in 1 2 3 4 5; do nats kv put "$bucket" "tail.$i" "t$i" >/dev/null; done
  nats kv del "$bucket" k.1 -f >/dev/null
  last=$(bucket_last "$bucket")

  # 2. a new node bootstraps from the artifact and replays only the tail.
  local h4
  h4=$(port)
  start_mirror "$name-new" --bucket "$bucket" --fold "$WORK/$name-new" --http "127.0.0.1:$h4" --bootstrap-from "$url" --bootstrap-key "$key" "${sflags[@]}"
  local p4=$MIRROR_PID
  check "$name: the new node reaches the bucket's last revision $last" wait_cursor "$h4" "$last" 60
  check "$name: it bootstrapped (imported the artifact at cursor $ac)" \
    python3 -c 'import json,sys,urllib.request; b=json.load(urllib.request.urlopen(sys.argv[1]))["fleet"]["bootstrap"]["last"]; assert b["outcome"]=="imported" and b["cursor"]==int(sys.argv[2]), b' \
    "http://127.0.0.1:$h4/v1/status" "$ac"
  local delivered
  delivered=$(grep 'msg="caught up"' "$WORK/$name-new.log" | head -1 | sed -n 's/.*delivered=\([0-9]*\).*/\1/p')
  check "$name: it received exactly the $((last - ac)) updates after the artifact (got ${delivered:-?})" [ "${delivered:-x}" = "$((last - ac))" ]
  stop_mirror "$p4" || true
  check "$name: the new node's fold equals the bucket" same_as_bucket "$WORK/$name-new" "$bucket"
  check "$name: k.1, deleted after the export, is absent" bash -c "! slipstream get --fold '$WORK/$name-new' k.1 >/dev/null 2>&1"

  # 3. an expired cursor: node 0 is stopped at $ac; rewrite every key so
  #    the stream's first sequence passes it; node 2 exports the new state.
  for i in $(seq 0 $((KEYS - 1))); do nats kv put "$bucket" "k.$i" "again-$i" >/dev/null; done
  for i in 1 2 3 4 5; do nats kv put "$bucket" "tail.$i" "again-$i" >/dev/null; done
  local first
  first=$(nats stream info "KV_$bucket" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"]["first_seq"])')
  check "$name: the bucket's history now starts at $first, past node 0's cursor $ac + 1" [ "$first" -gt $((ac + 1)) ]
  # shellcheck disable=SC2086
  start_mirror "$name-n2" ${args[2]}
  pids[2]=$MIRROR_PID
  last=$(bucket_last "$bucket")
  end=$((SECONDS + 60))
  while [ $SECONDS -lt $end ]; do
    pc=$(peek "$url" "$key" "${sflags[@]}")
    [ "$pc" = "$last" ] && break
    sleep 0.3
  done
  check "$name: node 2 published the rewritten state (pointer at $pc)" [ "$pc" = "$last" ]
  stop_mirror "${pids[2]}" || true
  : >"$WORK/$name-n0.log"
  start_mirror "$name-n0" --bucket "$bucket" --fold "$WORK/$name-n0" --http "127.0.0.1:${hp[0]}" --bootstrap-from "$url" --bootstrap-key "$key" "${sflags[@]}"
  local p0=$MIRROR_PID
  check "$name: the expired node reaches $last" wait_cursor "${hp[0]}" "$last" 60
  check "$name: it recovered from the artifact (reason: cursor expired; outcome imported)" \
    python3 -c 'import json,sys,urllib.request; b=json.load(urllib.request.urlopen(sys.argv[1]))["fleet"]["bootstrap"]["last"]; assert b["outcome"]=="imported" and "expired" in b["reason"], b' \
    "http://127.0.0.1:${hp[0]}/v1/status"
  check "$name: and did not resync from the bucket" bash -c "! grep -q 'resync folded' '$WORK/$name-n0.log'"
  stop_mirror "$p0" || true
  check "$name: its fold equals the bucket" same_as_bucket "$WORK/$name-n0" "$bucket"
}

case $STORES in
  s3) scenario s3 s3://art/fleet "${S3FLAGS[@]}" ;;
  nats-object) scenario nats nats-object://fleetart/p ;;
  both)
    scenario s3 s3://art/fleet "${S3FLAGS[@]}"
    scenario nats nats-object://fleetart/p
    ;;
  *) echo "usage: $0 [s3|nats-object|both] [kills]" >&2; exit 2 ;;
esac
ops_summary
