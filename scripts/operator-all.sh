#!/usr/bin/env bash
# Runs every operator check in turn (each bounded in time, loopback only,
# cleaning up after itself) and exits 1 if any failed. About 8 minutes on a
# quiet 2-core machine, once the pinned tools are installed.
set -uo pipefail
cd "$(dirname "$0")"
rc=0
for s in operator-check.sh operator-artifacts.sh operator-audit.sh operator-fleet.sh; do
  echo "=== $s"
  bash "$s" || rc=1
done
exit $rc
