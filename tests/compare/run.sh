#!/usr/bin/env bash
# Behaviour side by side: Apache RocketMQ 5 and Pier, the same cases.
#
#   bash tests/compare/run.sh            # writes tests/compare/RESULTS.md
#
# Run by hand, not in CI. One command that:
#   1. builds pier-proxy, the pier CLI and the prober (tests/src/bin/compare/);
#   2. installs what it needs (RocketMQ's jars via bench/scripts/rocketmq.sh,
#      the Python venv via tests/scripts/setup-tools.sh; both idempotent, with
#      caches outside the clone);
#   3. starts RocketMQ (SYNC_FLUSH, small heaps) and a standalone Pier, both on
#      127.0.0.1 with free ports and data under one temp dir;
#   4. creates the same topics and groups on both (RocketMQ with mqadmin
#      through rocketmq.sh, Pier with the pier CLI);
#   5. runs the prober against both (at the same time), then the official
#      Python client's scenarios (tests/python) against both, and the Java
#      ones when tests/java and tests/scripts/setup-java.sh are there;
#   6. writes the table (compare table) and stops everything it started.
#
# Environment: COMPARE_OUT (default tests/compare/RESULTS.md), COMPARE_KEEP=1
# keeps the temp dir (logs, JSON), COMPARE_SCENARIOS=0 skips the client
# scenarios, ROCKETMQ_BROKER_HEAP (default here 512m), ROCKETMQ_NAMESRV_HEAP
# (128m), CARGO_TARGET_DIR, PIER_TOOLS_DIR.
# Exit status: 0 when the table has no unexplained difference, 1 otherwise
# (the table is written either way), 2 when something could not run.
set -euo pipefail

started=$SECONDS
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${COMPARE_OUT:-$ROOT/tests/compare/RESULTS.md}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET/debug"
RMQ="$ROOT/bench/scripts/rocketmq.sh"
TOOLS="${PIER_TOOLS_DIR:-$HOME/.cache/pier-tools}"
export ROCKETMQ_BROKER_HEAP="${ROCKETMQ_BROKER_HEAP:-512m}"
export ROCKETMQ_NAMESRV_HEAP="${ROCKETMQ_NAMESRV_HEAP:-128m}"
# RocketMQ 5.5.0 ships with RecallMessage turned off ("operation is
# forbidden"); the recall cases need it on.
export ROCKETMQ_BROKER_CONF="${ROCKETMQ_BROKER_CONF:-recallMessageEnable=true}"

say() { echo "compare: $*" >&2; }
die() { say "$*"; exit 2; }

WORK="$(mktemp -d /tmp/pier-compare.XXXXXX)"
PIER_PID=""
RMQ_STARTED=""
BG_PIDS=""
cleanup() {
    local rc=$?
    # Best effort from here on: under `set -e` the first command that fails
    # (pkill finding no child, say) would end the trap and leave RocketMQ and
    # Pier running.
    set +e
    # Probes and scenario runners still going (after a failure) go first.
    local p
    for p in $BG_PIDS; do
        kill -0 "$p" 2>/dev/null && pkill -TERM -P "$p" 2>/dev/null
        kill -TERM "$p" 2>/dev/null
    done
    if [ -n "$RMQ_STARTED" ]; then
        bash "$RMQ" stop "$WORK/rmq" >/dev/null 2>&1 || true
    fi
    if [ -n "$PIER_PID" ] && kill -0 "$PIER_PID" 2>/dev/null; then
        kill -TERM "$PIER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$PIER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PIER_PID" 2>/dev/null || true
    fi
    if [ "${COMPARE_KEEP:-0}" = 1 ]; then
        say "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. build, 2. install -----------------------------------------------------
say "building pier-proxy, pier, compare"
# --workspace (not -p): the same feature set as every other build, so the
# RocksDB C++ is not compiled a second time.
(cd "$ROOT" && cargo build -q --workspace \
    --bin pier-proxy --bin pier --bin compare) || die "build failed"
bash "$RMQ" install >/dev/null || die "rocketmq.sh install failed"
SCENARIOS="${COMPARE_SCENARIOS:-1}"
if [ "$SCENARIOS" = 1 ]; then
    bash "$ROOT/tests/scripts/setup-tools.sh" >/dev/null || die "setup-tools.sh failed"
fi
JAVA_CP=""
if [ "$SCENARIOS" = 1 ] && [ -f "$ROOT/tests/scripts/setup-java.sh" ] && [ -d "$ROOT/tests/java" ]; then
    JAVA_CP="$(bash "$ROOT/tests/scripts/setup-java.sh" | tail -n 1)" || die "setup-java.sh failed"
fi

# --- 3. start both ------------------------------------------------------------
say "starting RocketMQ (SYNC_FLUSH) and Pier under $WORK"
bash "$RMQ" start sync "$WORK/rmq" >"$WORK/rmq.env" 2>"$WORK/rmq.start.log" &
rmq_starter=$!
BG_PIDS="$rmq_starter"
RMQ_STARTED=1

mkdir -p "$WORK/pier"
RUST_LOG=warn,pier_proxy=info "$BIN/pier-proxy" --listen 127.0.0.1:0 --data "$WORK/pier" \
    </dev/null >/dev/null 2>"$WORK/pier.log" &
PIER_PID=$!
PIER=""
for _ in $(seq 1 300); do
    PIER="$(sed -n 's/.*listening.*addr=\([0-9.]*:[0-9]*\).*/\1/p' "$WORK/pier.log" | head -n 1)"
    [ -n "$PIER" ] && break
    kill -0 "$PIER_PID" 2>/dev/null || { tail "$WORK/pier.log" >&2; die "pier-proxy exited"; }
    sleep 0.1
done
[ -n "$PIER" ] || die "pier-proxy did not report listening"
say "Pier on $PIER"

# --- 4. the same topics and groups on both -----------------------------------
# "topic NAME TYPE QUEUES" / "group NAME fifo|normal": the prober's own and the
# client scenarios'.
resources() {
    "$BIN/compare" resources | awk '$1 == "topic" { print $0, 1; next } { print }'
    cat <<'LIST'
topic py-orders NORMAL 4
topic py-fifo FIFO 4
topic py-delay DELAY 2
topic py-tx TRANSACTION 2
group py-simple normal
group py-fifo-group fifo
group py-delay-group normal
group py-tx-group normal
LIST
    if [ -n "$JAVA_CP" ]; then java_resources; fi
}

# Java scenarios (tests/java's pier.Scenarios, from the java branch), with
# the options tests/tests/e2e/official_java.rs gives them; one line each:
# CASE TOPIC_TYPE GROUP_KIND OPTIONS... (topic java-CASE, group java-CASE-g).
# Left out: retry (its group needs a customized backoff that neither the
# pier CLI nor rocketmq.sh sets) and push-load (a load run, not behaviour).
JAVA_CASES="normal NORMAL normal --count 50
async NORMAL normal --count 200
invisible NORMAL normal --short-ms 2000 --long-ms 5000
filter NORMAL normal --group2 java-filter-c --count 10
fifo FIFO fifo --producers 3 --groups 4 --count 10
delay DELAY normal --count 10 --delay-ms 3000
transaction TRANSACTION normal --count 10 --orphans 2"
java_resources() {
    local name kind group opts
    while read -r name kind group opts; do
        echo "topic java-$name $kind 4"
        echo "group java-$name-g $group"
    done <<<"$JAVA_CASES"
    echo "group java-filter-c normal"
}

resources >"$WORK/resources"
while read -r what name kind queues; do
    case "$what" in
        topic) "$BIN/pier" --endpoint "$PIER" topic create "$name" --type "${kind,,}" --queues "$queues" >/dev/null ;;
        group) if [ "$kind" = fifo ]; then
                   "$BIN/pier" --endpoint "$PIER" group create "$name" --fifo >/dev/null
               else
                   "$BIN/pier" --endpoint "$PIER" group create "$name" >/dev/null
               fi ;;
    esac || die "pier: creating $what $name failed"
done <"$WORK/resources"

wait "$rmq_starter" || { cat "$WORK/rmq.start.log" >&2; die "RocketMQ did not start"; }
ROCKETMQ="$(sed -n 's/^GRPC=//p' "$WORK/rmq.env")"
RMQ_VERSION="$(sed -n 's/^VERSION=//p' "$WORK/rmq.env")"
say "RocketMQ $RMQ_VERSION on $ROCKETMQ (started in $(sed -n 's/^STARTED_IN_S=//p' "$WORK/rmq.env" | cut -d. -f1) s)"
# mqadmin is a JVM per call: three at a time.
t0=$SECONDS
while read -r what name kind queues; do
    case "$what" in
        topic) echo "create-topic $WORK/rmq $name $kind $queues" ;;
        group) echo "create-group $WORK/rmq $name $kind" ;;
    esac
done <"$WORK/resources" | xargs -P 3 -L 1 bash "$RMQ" 2>"$WORK/mqadmin.log" >/dev/null \
    || { tail -n 30 "$WORK/mqadmin.log" >&2; die "mqadmin failed"; }
say "RocketMQ topics and groups created in $((SECONDS - t0)) s"

# --- 5. the prober, then the client scenarios ---------------------------------
# CPU of both servers over 10 s while nobody talks to them, with the busiest
# thread (a JVM thread that keeps spinning shows here).
idle_cpu() {
    python3 - "$@" <<'PY'
import os, sys, time
hz = os.sysconf("SC_CLK_TCK")
def ticks(pid):
    out = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/stat") as f:
                s = f.read()
            with open(f"/proc/{pid}/task/{t}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        fields = s[s.rindex(")") + 2:].split()
        out[t] = (name, int(fields[11]) + int(fields[12]))
    return out
pids = sys.argv[1:]
before = {p: ticks(p) for p in pids}
time.sleep(10)
for p in pids:
    after = ticks(p)
    deltas = [(after[t][1] - before[p].get(t, (None, 0))[1], after[t][0]) for t in after]
    total = sum(d for d, _ in deltas)
    top = max(deltas, default=(0, "-"))
    print(f"{100 * total / (10 * hz):.0f}% of a core (busiest thread {top[1]!r}: {100 * top[0] / (10 * hz):.0f}%)")
PY
}
BROKER_PID="$(sed -n 's/^PIDS=[0-9]*,//p' "$WORK/rmq.env")"
IDLE_BEFORE="$(idle_cpu "$BROKER_PID" "$PIER_PID" 2>/dev/null | paste -sd'|' || true)"
say "idle CPU before any traffic: RocketMQ broker ${IDLE_BEFORE%%|*}; Pier ${IDLE_BEFORE##*|}"
say "probing both (logs: $WORK/probe-*.log)"
"$BIN/compare" probe --endpoint "$ROCKETMQ" --system rocketmq --out "$WORK/rocketmq.json" \
    2>"$WORK/probe-rocketmq.log" &
p1=$!
BG_PIDS="$BG_PIDS $p1"
"$BIN/compare" probe --endpoint "$PIER" --system pier --out "$WORK/pier.json" \
    2>"$WORK/probe-pier.log" &
p2=$!
BG_PIDS="$BG_PIDS $p2"
wait "$p1" || { tail -n 20 "$WORK/probe-rocketmq.log" >&2; die "the probe of RocketMQ failed"; }
wait "$p2" || { tail -n 20 "$WORK/probe-pier.log" >&2; die "the probe of Pier failed"; }
say "probes done after $((SECONDS - started)) s"

# One scenario: appends "system client scenario pass|fail seconds note" to
# $WORK/scenarios-SYSTEM.tsv. The note is picked from the JSON summary line.
scenario() {
    local system=$1 client=$2 name=$3
    shift 3
    local t0=$SECONDS rc=0
    "$@" >"$WORK/sc-$system-$client-$name.out" 2>"$WORK/sc-$system-$client-$name.err" </dev/null || rc=$?
    local verdict=pass
    [ "$rc" = 0 ] || verdict="fail (exit $rc)"
    local note
    note="$(tail -n 1 "$WORK/sc-$system-$client-$name.out" | python3 -c '
import json, sys
try:
    v = json.loads(sys.stdin.read())
except Exception:
    print("no JSON summary"); sys.exit()
keys = ["sent", "received", "duplicates", "missing", "orphan_check_after_s", "lateness_ms",
        "fifo_mode", "nacks", "dlq", "error", "errors", "failures"]
out = []
for k in keys:
    if k in v and v[k] not in (None, [], {}):
        out.append(f"{k} {json.dumps(v[k])[:120]}")
print(", ".join(out))
' 2>/dev/null || echo "unreadable summary")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$system" "$client" "$name" "$verdict" "$((SECONDS - t0))" "$note" \
        >>"$WORK/scenarios-$system.tsv"
    say "$system $client $name: $verdict ($((SECONDS - t0)) s)"
}

py() { HOME="$WORK/home-$1" "$TOOLS/venv/bin/python" "$ROOT/tests/python/$2" "${@:3}"; }

scenarios() {
    local system=$1 ep=$2
    mkdir -p "$WORK/home-$system"
    : >"$WORK/scenarios-$system.tsv"
    scenario "$system" python producer py "$system" producer.py --endpoint "$ep" --topic py-orders \
        --count 100 --prefix py --timeout 60
    scenario "$system" python simple_consumer py "$system" simple_consumer.py --endpoint "$ep" \
        --topic py-orders --group py-simple --expect 100 --timeout 60 --prefix py
    scenario "$system" python fifo py "$system" fifo.py --endpoint "$ep" --topic py-fifo \
        --group py-fifo-group --groups 3 --count 100 --timeout 60
    scenario "$system" python delay py "$system" delay.py --endpoint "$ep" --topic py-delay \
        --group py-delay-group --delay 3 --timeout 30 --tail-await 5
    # RocketMQ's first orphan check comes at its next 30 s check pass after
    # the half message is 6 s old: give both systems 90 s. The 1 s receives
    # of the scripts' tails are refused by RocketMQ (under its 5 s minimum
    # long poll): 5 s for both.
    scenario "$system" python transaction py "$system" transaction.py --endpoint "$ep" --topic py-tx \
        --group py-tx-group --timeout 90 --tail 3 --tail-await 5
    if [ -n "$JAVA_CP" ]; then
        local name kind group opts
        while read -r name kind group opts; do
            # shellcheck disable=SC2086 # opts are separate words on purpose
            scenario "$system" java "$name" java -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xmx256m \
                "-Drocketmq.log.root=$WORK/home-$system/java-logs" "-Duser.home=$WORK/home-$system" \
                -cp "$JAVA_CP" pier.Scenarios --case "$name" --endpoints "$ep" \
                --topic "java-$name" --group "java-$name-g" --timeout 120 $opts
        done <<<"$JAVA_CASES"
    fi
}

: >"$WORK/scenarios.tsv"
if [ "$SCENARIOS" = 1 ]; then
    say "client scenarios against both"
    scenarios rocketmq "$ROCKETMQ" &
    s1=$!
    scenarios pier "$PIER" &
    s2=$!
    BG_PIDS="$BG_PIDS $s1 $s2"
    wait "$s1" || true
    wait "$s2" || true
    cat "$WORK/scenarios-rocketmq.tsv" "$WORK/scenarios-pier.tsv" >"$WORK/scenarios.tsv"
fi
[ -n "$JAVA_CP" ] || say "Java scenarios skipped: tests/java or tests/scripts/setup-java.sh is not in this tree"

IDLE="$(idle_cpu "$BROKER_PID" "$PIER_PID" 2>/dev/null | paste -sd'|' || true)"
say "idle CPU after the run: RocketMQ broker ${IDLE%%|*}; Pier ${IDLE##*|}"

# --- 6. the table -------------------------------------------------------------
commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
git -C "$ROOT" diff --quiet HEAD -- proxy store 2>/dev/null || commit="$commit + local changes"
cat >"$WORK/meta.md" <<META
Run: $(date -u '+%Y-%m-%d %H:%M UTC'); Apache RocketMQ $RMQ_VERSION (SYNC_FLUSH, broker heap
$ROCKETMQ_BROKER_HEAP) at $ROCKETMQ; Pier at $commit (debug build) at $PIER; $(nproc) cores.
run.sh took $((SECONDS - started)) s up to the table (probes $(python3 -c "import json;print(round(json.load(open('$WORK/rocketmq.json'))['seconds']))") s on RocketMQ,
$(python3 -c "import json;print(round(json.load(open('$WORK/pier.json'))['seconds']))") s on Pier, run at the same time).
RocketMQ runs with \`$ROCKETMQ_BROKER_CONF\` added to its broker.conf (RecallMessage is off by default in 5.5.0).
CPU while idle, over 10 s: before any traffic RocketMQ's broker JVM ${IDLE_BEFORE%%|*}, Pier ${IDLE_BEFORE##*|};
after everything was done RocketMQ's broker JVM ${IDLE%%|*}, Pier ${IDLE##*|}.
META
rc=0
"$BIN/compare" table --rocketmq "$WORK/rocketmq.json" --pier "$WORK/pier.json" \
    --scenarios "$WORK/scenarios.tsv" --meta "$WORK/meta.md" --out "$OUT" || rc=$?
say "wrote $OUT in $((SECONDS - started)) s"
exit "$rc"
