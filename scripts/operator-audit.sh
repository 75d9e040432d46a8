#!/usr/bin/env bash
# Operator check of `slipstream audit` and of the mirror's own audit, with a
# separately started nats-server and writes through the official nats CLI.
#
#  1. The server loses acknowledged writes and reuses their sequence numbers:
#     stop the server, copy its store directory, start it, write (the fold
#     takes those writes), stop it, restore the copy, start it, write
#     different keys (the same revisions now carry other keys). The fold's
#     cursor equals the server's last sequence, so no cursor check can see
#     it. `slipstream audit` exits 1 and lists exactly the divergent keys,
#     each with its class; `--repair` converges the fold (a second audit
#     exits 0); a running mirror on a copy of the same fold repairs it too.
#  2. Per-key TTL purge markers expiring while the mirror is down (`nats kv
#     purge --ttl`): audit lists the keys as stale; the restarted mirror
#     finds and removes them.
#  3. The bucket deleted and recreated under a running mirror (`nats kv rm`,
#     `nats kv add`, new puts): the mirror converges without a restart.
#
# Usage: scripts/operator-audit.sh   (OPS_KEEP=1 keeps the work dir)
set -euo pipefail
. "$(dirname "$0")/lib/ops.sh"
ops_init operator-audit 600 "$@"

B=au
start_nats server
nats kv add $B --history 1 >/dev/null
for i in $(seq 1 20); do nats kv put $B "k.$i" "v$i" >/dev/null; done
HP=$(port)
mirror_until_last() { # mirror_until_last FOLD: run a mirror until it reaches the bucket's last revision, then stop it
  start_mirror audit-m --bucket $B --fold "$1" --http "127.0.0.1:$HP" --nats "$NATS_URL"
  local p=$MIRROR_PID
  wait_cursor "$HP" "$(bucket_last $B)" 60 || fail "mirror did not catch up"
  stop_mirror "$p" || fail "mirror exit status"
}

# --- 1. a server restored from an older copy ---------------------------------
mirror_until_last "$WORK/fold"
stop_nats
cp -a "$WORK/server.js" "$WORK/server.js.bak"
start_nats server
for i in 1 2 3 4 5; do nats kv put $B "lost.$i" "lost$i" >/dev/null; done
nats kv put $B k.1 lost-overwrite >/dev/null
nats kv del $B k.2 -f >/dev/null
mirror_until_last "$WORK/fold"
C=$(slipstream stat --fold "$WORK/fold" -json | python3 -c 'import json,sys; print(json.load(sys.stdin)["cursor"])')
stop_nats
rm -rf "$WORK/server.js"
mv "$WORK/server.js.bak" "$WORK/server.js"
start_nats server
check "the restored server is back at revision 20" [ "$(bucket_last $B)" = 20 ]
for i in 1 2 3 4 5 6 7; do nats kv put $B "new.$i" "new$i" >/dev/null; done
check "the server's last sequence ($(bucket_last $B)) again equals the fold's cursor ($C): revisions 21..$C reused" [ "$(bucket_last $B)" = "$C" ]
cp -r "$WORK/fold" "$WORK/fold-for-mirror"

# The command logs the backwards finding (error level) before its own line.
ALLOW_LOGS=1 run_expect 1 "slipstream audit on the diverged fold" slipstream audit --fold "$WORK/fold" --bucket $B --nats "$NATS_URL"
cp "$WORK/out" "$WORK/audit1.jsonl"
check "  … the error line counts the classes" err_mentions "not repaired (run with -repair)"
sed 's/^/     /' "$WORK/err"
check "  … lists exactly the divergent keys, each with its class" python3 - "$WORK/audit1.jsonl" <<'EOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
summary = lines[-1]["summary"]
got = {l["key"]: l["class"] for l in lines[:-1] if "key" in l}
want = {f"lost.{i}": "stale" for i in range(1, 6)}     # in the fold, never on the restored server
want.update({f"new.{i}": "missed" for i in range(1, 8)})  # on the server at revisions the cursor covers
want["k.1"] = "backwards"                               # the server's revision 1 is below the fold's
want["k.2"] = "missed"                                  # deleted in the fold, live at revision 2 on the server
print("     divergences:", json.dumps(got, sort_keys=True))
print("     summary:", json.dumps(summary))
assert got == want, (got, want)
assert not summary["equal"] and summary["stale"] == 5 and summary["missed"] == 8 and summary["backwards"] == 1, summary
EOF
ALLOW_LOGS=1 run_expect 1 "slipstream audit --repair (exit 1: it diverged, even though repaired)" slipstream audit --fold "$WORK/fold" --bucket $B --nats "$NATS_URL" --repair
check "  … says it repaired the keys" err_mentions "repaired"
run_expect 0 "slipstream audit after the repair" slipstream audit --fold "$WORK/fold" --bucket $B --nats "$NATS_URL"
check "  … prints only the summary, equal" python3 -c 'import json,sys; l=open(sys.argv[1]).read().splitlines(); assert len(l)==1 and json.loads(l[0])["summary"]["equal"], l' "$WORK/out"
check "the repaired fold equals the bucket" same_as_bucket "$WORK/fold" $B
check "the repair did not move the cursor ($C)" [ "$(slipstream stat --fold "$WORK/fold" -json | python3 -c 'import json,sys; print(json.load(sys.stdin)["cursor"])')" = "$C" ]

# The same divergence under a running mirror: its audit after the resume
# repairs it through the follower.
start_mirror audit-r --bucket $B --fold "$WORK/fold-for-mirror" --http "127.0.0.1:$HP" --nats "$NATS_URL"
R=$MIRROR_PID
repaired=""
end=$((SECONDS + 60))
while [ $SECONDS -lt $end ]; do
  repaired=$(status "$HP" '(d.get("last_audit") or {}).get("repaired", "")')
  [ -n "$repaired" ] && [ "$repaired" != 0 ] && break
  sleep 0.1
done
check "the running mirror's audit repaired $repaired keys" [ "${repaired:-0}" -ge 14 ]
check "its log reports the backwards key at error level, with the evidence" grep -q 'level=ERROR.*k\.1' "$WORK/audit-r.log"
grep 'level=ERROR' "$WORK/audit-r.log" | head -2 | sed 's/^/     /'
curl -fsS "127.0.0.1:$HP/metrics" | grep -E '^slipstream_audit' | sed 's/^/     /' || true
stop_mirror "$R" && pass "the mirror stops with exit 0" || fail "mirror exit status"
check "the mirror's fold equals the bucket" same_as_bucket "$WORK/fold-for-mirror" $B

# --- 2. delete markers gone while the mirror is down ---------------------------
# A bucket with per-key TTLs: `nats kv purge --ttl 1s` writes a purge marker
# that expires a second later, so the key vanishes without a trace the
# mirror could resume over. (`nats kv compact` keeps markers younger than
# 30 min, and natscli refuses to purge a KV stream's subjects unattended.)
B=am
nats kv add $B --history 1 --marker-ttl 1s >/dev/null
for i in $(seq 1 10); do nats kv put $B "k.$i" "v$i" >/dev/null; done
mirror_until_last "$WORK/fold-am"
nats kv put $B k.1 after >/dev/null
nats kv purge $B k.5 --ttl 1s -f >/dev/null
nats kv purge $B k.6 --ttl 1s -f >/dev/null
msgs() { nats stream info "KV_$B" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"]["messages"])'; }
gone=0
end=$((SECONDS + 20))
while [ $SECONDS -lt $end ]; do [ "$(msgs)" = 8 ] && { gone=1; break; }; sleep 0.1; done
check "the purge markers expired (the stream holds the 8 live keys only)" [ $gone = 1 ]
ALLOW_LOGS=1 run_expect 1 "audit after the markers expired while the mirror was down" slipstream audit --fold "$WORK/fold-am" --bucket $B --nats "$NATS_URL"
check "  … lists exactly k.5 and k.6 as stale (k.1's newer put is in flight, not divergent)" python3 -c '
import json,sys; ls=[json.loads(l) for l in open(sys.argv[1])]; got={l["key"]: l["class"] for l in ls if "key" in l}
assert got=={"k.5":"stale","k.6":"stale"}, got' "$WORK/out"
# The expired markers' revisions are gone with them: the restarted mirror's
# cursor stays at the last revision it could read, 2 below the bucket's last
# sequence, but once its resume is done it is caught up to that sequence
# (caught_up_to) and reports lag 0 (docs/OPERATIONS.md, "Lag").
start_mirror audit-m --bucket $B --fold "$WORK/fold-am" --http "127.0.0.1:$HP" --nats "$NATS_URL"
R=$MIRROR_PID
check "a restarted mirror audits the fold (verified: true)" wait_status "$HP" 'd.get("verified") is True and (d.get("last_audit") or {}).get("repaired") == 2' 60
echo "     status: $(status "$HP" 'dict(cursor=d["cursor"], server_head=d["server_head"], caught_up_to=d["caught_up_to"], lag=d["lag"], ready=d["ready"])')"
check "  … idle and caught up: lag 0, the cursor 2 below the last sequence ($(bucket_last $B))" \
  wait_status "$HP" "d['lag'] == 0 and d['caught_up_to'] == $(bucket_last $B) and d['cursor'] == $(bucket_last $B) - 2" 10
stop_mirror "$R" && pass "the mirror stops with exit 0" || fail "mirror exit status"
check "it removed them (the fold equals the bucket)" same_as_bucket "$WORK/fold-am" $B
run_expect 0 "audit after that mirror" slipstream audit --fold "$WORK/fold-am" --bucket $B --nats "$NATS_URL"

# --- 3. the bucket recreated under a running mirror ----------------------------
start_mirror audit-rc --bucket $B --fold "$WORK/fold-am" --http "127.0.0.1:$HP" --nats "$NATS_URL"
R=$MIRROR_PID
check "the mirror is synced and verified" wait_status "$HP" 'd.get("state") == "synced" and d.get("verified") is True' 60
nats kv rm $B -f >/dev/null
nats kv add $B --history 1 >/dev/null
for i in 1 2 3; do nats kv put $B "fresh.$i" "f$i" >/dev/null; done
check "the running mirror noticed the recreated bucket and holds exactly its 3 keys at cursor 3" \
  wait_status "$HP" 'd["cursor"] == 3 and d["keys"] == 3 and d["state"] == "synced"' 90
for i in 1 2 3 4 5 6 7 8; do nats kv put $B "after.$i" "a$i" >/dev/null; done
check "  … the resync's own audit found it equal (verified, nothing repaired)" \
  wait_status "$HP" 'd["verified"] is True and d["last_audit"]["equal"] and d["last_audit"]["repaired"] == 0 and d["resyncs"] >= 1' 30
check "it then folds the new stream's revisions 4..11 (below its old cursor 11)" \
  wait_status "$HP" 'd["cursor"] == 11 and d["keys"] == 11' 60
echo "     status: $(status "$HP" 'dict(cursor=d["cursor"], keys=d["keys"], verified=d["verified"], resyncs=d["resyncs"], last_audit={k: d["last_audit"][k] for k in ("cursor", "server_last", "fold_keys", "missed", "backwards", "repaired")})')"
grep -E 'level=(WARN|ERROR)' "$WORK/audit-rc.log" | head -3 | cut -c1-220 | sed 's/^/     /'
check "  … and logged no error (no backwards finding after the resync)" bash -c "! grep -q 'level=ERROR' '$WORK/audit-rc.log'"
stop_mirror "$R" && pass "the mirror stops with exit 0" || fail "mirror exit status"
check "its fold equals the recreated bucket" same_as_bucket "$WORK/fold-am" $B

# --- operator errors ---------------------------------------------------------
run_expect 1 "audit of a missing bucket (not created)" slipstream audit --fold "$WORK/fold-am" --bucket nosuch --nats "$NATS_URL"
check "  … the bucket was not created" bash -c "! nats kv info nosuch >/dev/null 2>&1"
run_expect 1 "audit of a missing fold" slipstream audit --fold "$WORK/nofold" --bucket $B --nats "$NATS_URL"
run_expect 1 "audit with the server unreachable" slipstream audit --fold "$WORK/fold-am" --bucket $B --nats nats://127.0.0.1:1
run_expect 2 "audit without -bucket" slipstream audit --fold "$WORK/fold-am"
ops_summary
