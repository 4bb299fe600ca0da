#!/usr/bin/env bash
# The cost of a setting (TLS, auth, tracing), in one run: the same scenario
# against several Pier systems of one build, each measured ROUNDS times,
# interleaved and in alternating order (A B C, C B A, A B C, ...) so the
# disk's and the machine's drift lands on every system alike. One run of a
# 10 s step on a 2-core machine moves by 10-20 % from run to run; a median
# of several interleaved runs is what a few-percent goal can be read from.
#
#   bench/scripts/variants.sh ROUNDS SCENARIO SYSTEM...
#
# SYSTEM is an `--only` selector of pier-bench naming one system, e.g.
# "pier standalone" (plain), "otel 0.01", "TLS", "TLS, auth". The release
# pier-bench (with its pier-proxy and pier-store beside it) is
# $VARIANTS_BIN (default target/release/pier-bench). Records go to
# $VARIANTS_OUT (default bench/results/variants), one JSON + report per
# system and round; $VARIANTS_ARGS adds pier-bench options (e.g.
# VARIANTS_ARGS="--concurrency 256" for many short rounds of one step). At
# the end, per step: each system's msgs/s of every round, its median, and
# its ratio to the first SYSTEM: the median of the per-round ratios (each
# against the first SYSTEM of the same round, so drift between rounds
# cancels), written to summary-SCENARIO.md too.
set -euo pipefail
if [ $# -lt 3 ]; then
    sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
rounds=$1
scenario=$2
shift 2
bin=${VARIANTS_BIN:-target/release/pier-bench}
out=${VARIANTS_OUT:-bench/results/variants}
[ -x "$bin" ] || { echo "variants: $bin missing (cargo build --release -p pier-bench)" >&2; exit 2; }
mkdir -p "$out"
systems=("$@")
slug() { tr -c 'A-Za-z0-9.\n' '-' <<<"$1" | tr -s '-'; }
# Dirty pages of whatever was written before would be flushed during the
# first measurement and slow its fsyncs.
sync
for round in $(seq 1 "$rounds"); do
    order=("${systems[@]}")
    if [ $((round % 2)) -eq 0 ]; then
        order=()
        for ((i = ${#systems[@]} - 1; i >= 0; i--)); do order+=("${systems[i]}"); done
    fi
    for sys in "${order[@]}"; do
        echo "== round $round, $scenario, $sys"
        # shellcheck disable=SC2086 # VARIANTS_ARGS is split into options
        "$bin" "$scenario" --no-peers --only "$sys" ${VARIANTS_ARGS:-} \
            --out "$out/$(slug "$sys")-$scenario-$round.json" 2>&1 |
            grep -E "^\s+$scenario\b" || true
    done
done
python3 - "$out" "$scenario" "$rounds" "${systems[@]}" <<'EOF' | tee "$out/summary-$scenario.md"
import json, statistics, sys, re
out, scenario, rounds, systems = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
slug = lambda s: re.sub('-+', '-', re.sub(r'[^A-Za-z0-9.\n]', '-', s))
rates, configs = {}, {}
for s in systems:
    for r in range(1, rounds + 1):
        try:
            recs = json.load(open(f"{out}/{slug(s)}-{scenario}-{r}.json"))
        except (OSError, ValueError):
            continue
        for rec in recs:
            if rec.get("scenario") != scenario:
                continue
            step = (rec["config"].split("; ", 1)[1] if "; " in rec["config"] else "") + f" c={rec['concurrency']}"
            rates.setdefault((s, step), {})[r] = rec["throughput_msgs_per_s"]
            configs[s] = rec["config"].split("; ", 1)[0]
steps = sorted({k[1] for k in rates}, key=lambda t: (t.rsplit(" c=", 1)[0], int(t.rsplit("=", 1)[1])))
print(f"# {scenario}: {rounds} interleaved rounds\n")
print(f"| system | step | msgs/s per round | median | per-round ratios to {systems[0]} | median ratio |")
print("|---|---|---|---|---|---|")
for step in steps:
    base = rates.get((systems[0], step), {})
    for s in systems:
        v = rates.get((s, step), {})
        if not v:
            continue
        runs = " / ".join(f"{v[r]:.0f}" for r in sorted(v))
        pairs = [v[r] / base[r] for r in sorted(v) if r in base]
        ratios = " ".join(f"{x:.2f}" for x in pairs) if s != systems[0] else "-"
        ratio = f"{statistics.median(pairs):.2f}x" if pairs else "-"
        print(f"| {configs.get(s, s)} | {step.strip()} | {runs} | {statistics.median(v.values()):.0f} | {ratios} | {ratio} |")
EOF
