#!/usr/bin/env bash
# Before/after of a server change, in one run: the same scenarios against two
# builds of Pier, interleaved (A B A B ...) so the disk's and the machine's
# drift lands on both sides alike.
#
#   bench/scripts/ab.sh BEFORE_DIR AFTER_DIR ROUNDS SCENARIO...
#
# Each DIR holds a release pier-bench with the pier-proxy and pier-store it
# starts (pier-bench uses the binaries next to itself), e.g. copies of
# target/release/pier-{bench,proxy,store} taken before and after the change.
# Pier only (--no-peers) unless $AB_ARGS says otherwise (e.g. AB_ARGS='--only
# "pier standalone,tonic-echo"' when the change is in the load generator, which
# every system shares). Records go to $AB_OUT (default bench/results/ab), one
# JSON + report per build, scenario and round; the figures are printed as
# they come.
set -euo pipefail
if [ $# -lt 4 ]; then
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
before=$(cd "$1" && pwd)
after=$(cd "$2" && pwd)
rounds=$3
shift 3
out=${AB_OUT:-bench/results/ab}
eval "extra=(${AB_ARGS:---no-peers})"
mkdir -p "$out"
for side in "$before" "$after"; do
    for b in pier-bench pier-proxy pier-store; do
        [ -x "$side/$b" ] || { echo "ab: $side/$b missing" >&2; exit 2; }
    done
done
# Dirty pages from the builds or copies that made these directories would
# be written back during the first measurement and slow its fsyncs.
sync
for round in $(seq 1 "$rounds"); do
    for scenario in "$@"; do
        for side in before after; do
            dir=$before
            [ "$side" = after ] && dir=$after
            echo "== round $round, $scenario, $side ($dir)"
            "$dir/pier-bench" "$scenario" "${extra[@]}" \
                --out "$out/$side-$scenario-$round.json" 2>&1 |
                grep -E "^\s+$scenario\b" || true
        done
    done
done
