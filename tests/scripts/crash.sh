#!/usr/bin/env bash
# The crash checker, long: builds the release binaries and runs
# target/release/crash in both modes (standalone, then cluster), CYCLES
# SIGKILL cycles each (default 100, the issue-14 acceptance run).
#
#   tests/scripts/crash.sh [CYCLES] [EXTRA CHECKER FLAGS...]
#
# Reports go to $CRASH_OUT (default /tmp/pier-crash), one JSON per mode,
# named after the mode and the time; the summaries are printed as they come.
# Exit status: 0 when both modes pass, 1 when one found a lost or
# redelivered-after-ack message, 2 when one could not run.
set -uo pipefail
cd "$(dirname "$0")/../.."
cycles=${1:-100}
shift || true
out=${CRASH_OUT:-/tmp/pier-crash}
target=${CARGO_TARGET_DIR:-target}
mkdir -p "$out"
cargo build --release --workspace --bins || exit 2
stamp=$(date -u +%Y%m%dT%H%M%SZ)
worst=0
for mode in standalone cluster; do
    json="$out/$mode-$stamp.json"
    "$target/release/crash" --mode "$mode" --cycles "$cycles" --json "$json" "$@"
    rc=$?
    echo "crash.sh: $mode exit $rc, report $json"
    [ "$rc" -gt "$worst" ] && worst=$rc
done
exit "$worst"
