#!/usr/bin/env bash
# Apache RocketMQ 5 as a local reference beside Pier: the released jars from
# Maven Central (no source build), one name server and one broker with its
# gRPC proxy in "local" mode (the proxy and the broker share one JVM, as
# `mqbroker --enable-proxy` runs them), on 127.0.0.1 with free ports and a
# data directory of the caller's choosing.
#
#   rocketmq.sh install
#       Fetches namesrv, broker, proxy and tools jars with their
#       dependencies into $PIER_ROCKETMQ_HOME (default ~/.cache/pier-rocketmq),
#       with Maven (and Java) from Debian when they are missing.
#       Idempotent: a marker per version makes later calls return at once.
#       Prints VERSION=... and LIB=....
#   rocketmq.sh installed
#       Exit status 0 when the jars are there (installs nothing).
#   rocketmq.sh start sync|async DIR [GRPC_PORT]
#       Starts both JVMs with their store, logs and config under DIR (created
#       if missing; it should be empty or a previous run's), flushDiskType
#       SYNC_FLUSH or ASYNC_FLUSH, waits until the gRPC port answers, and
#       prints KEY=VALUE lines (also kept in DIR/env):
#         GRPC=127.0.0.1:PORT      the apache.rocketmq.v2 endpoint (plaintext
#                                  and TLS on the same port)
#         NAMESRV=127.0.0.1:PORT   BROKER=127.0.0.1:PORT  (remoting protocol)
#         CLUSTER=... BROKER_NAME=... PIDS=NAMESRV_PID,BROKER_PID VERSION=...
#       Topics and groups are not created on first use (auto-creation is off,
#       as in a production setup): see create-topic / create-group.
#   rocketmq.sh stop DIR
#       SIGTERM to the JVMs started in DIR, SIGKILL after a bound; leaves no
#       process behind. The data stays in DIR (the caller removes it).
#   rocketmq.sh create-topic DIR TOPIC [NORMAL|FIFO|DELAY|TRANSACTION] [QUEUES]
#       A topic of that message type (default NORMAL, 8 queues), through
#       mqadmin updateTopic with the 5.x `message.type` attribute.
#   rocketmq.sh create-group DIR GROUP [fifo] [MAX_RETRIES]
#       A consumer group through mqadmin updateSubGroup; `fifo` makes it
#       consume orderly (what RocketMQ 5 FIFO delivery needs); MAX_RETRIES
#       defaults to 16 as RocketMQ's does.
#   rocketmq.sh admin DIR ARGS...
#       Any other mqadmin command against this instance's name server, e.g.
#       `admin DIR topicList`.
#
# Environment: ROCKETMQ_VERSION (default below), PIER_ROCKETMQ_HOME,
# ROCKETMQ_BROKER_HEAP (default 1g), ROCKETMQ_NAMESRV_HEAP (default 256m),
# ROCKETMQ_START_BOUND (seconds, default 300: on a loaded 2-core machine
# a start has taken 90 s), ROCKETMQ_STOP_BOUND (seconds before SIGKILL,
# default 15), ROCKETMQ_BROKER_CONF (extra broker.conf lines, KEY=VALUE
# separated by newlines or spaces, appended after the script's own; e.g.
# "recallMessageEnable=true").
# Output for programs goes to stdout as KEY=VALUE lines; progress to stderr.
set -euo pipefail

# The newest 5.x release whose namesrv, proxy and tools jars Maven Central
# served here (5.5.1 had only some of its artifacts: namesrv, proxy, client
# and tools were not found).
VERSION="${ROCKETMQ_VERSION:-5.5.0}"
HOME_DIR="${PIER_ROCKETMQ_HOME:-$HOME/.cache/pier-rocketmq}"
LIB="$HOME_DIR/lib-$VERSION"
MARKER="$HOME_DIR/.installed-$VERSION"
BROKER_HEAP="${ROCKETMQ_BROKER_HEAP:-1g}"
NAMESRV_HEAP="${ROCKETMQ_NAMESRV_HEAP:-256m}"
START_BOUND="${ROCKETMQ_START_BOUND:-300}"
CLUSTER="PierRefCluster"
BROKER_NAME="broker-a"

# log, die, apt_install: shared with the test tools' setup scripts.
. "$(dirname "${BASH_SOURCE[0]}")/../../tests/scripts/lib.sh"

need_java() {
    command -v java >/dev/null 2>&1 || die "java not found (Debian: apt-get install default-jre-headless)"
}

install() {
    if installed; then
        echo "VERSION=$VERSION"
        echo "LIB=$LIB"
        return 0
    fi
    local missing=()
    command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
    command -v mvn >/dev/null 2>&1 || missing+=(maven)
    if [ "${#missing[@]}" -gt 0 ]; then
        apt_install "${missing[@]}" || die "apt-get cannot install ${missing[*]} here"
    fi
    mkdir -p "$HOME_DIR"
    local work
    work="$(mktemp -d "$HOME_DIR/fetch.XXXXXX")"
    # A throwaway project whose only job is to name the artifacts; Maven
    # resolves their dependency trees and copies every jar into one folder.
    cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>pier.bench</groupId>
  <artifactId>rocketmq-reference</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.rocketmq</groupId><artifactId>rocketmq-namesrv</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.apache.rocketmq</groupId><artifactId>rocketmq-broker</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.apache.rocketmq</groupId><artifactId>rocketmq-proxy</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.apache.rocketmq</groupId><artifactId>rocketmq-tools</artifactId><version>$VERSION</version></dependency>
  </dependencies>
</project>
POM
    log "fetching RocketMQ $VERSION jars from Maven Central into $LIB"
    local t0=$SECONDS
    rm -rf "$LIB.tmp"
    (cd "$work" && CI=true mvn -B -q -ntp \
        -Dmaven.repo.local="$HOME_DIR/m2" \
        dependency:copy-dependencies \
        -DincludeScope=runtime \
        -DoutputDirectory="$LIB.tmp") </dev/null 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2 \
        || { rm -rf "$work" "$LIB.tmp"; die "mvn could not fetch RocketMQ $VERSION"; }
    rm -rf "$work" "$LIB"
    mv "$LIB.tmp" "$LIB"
    [ -f "$LIB/rocketmq-proxy-$VERSION.jar" ] || die "rocketmq-proxy-$VERSION.jar missing in $LIB"
    touch "$MARKER"
    log "fetched $(ls "$LIB" | wc -l) jars, $(du -sh "$LIB" | cut -f1), in $((SECONDS - t0)) s"
    echo "VERSION=$VERSION"
    echo "LIB=$LIB"
}

installed() {
    [ -f "$MARKER" ] && [ -d "$LIB" ] && command -v java >/dev/null 2>&1
}

require_installed() {
    installed || die "RocketMQ $VERSION is not installed: run $0 install"
    need_java
}

# Prints a TCP port on 127.0.0.1 that nobody listens on now, and (for the
# broker, which also listens on PORT-2 and PORT+1) whose neighbours are free.
free_port() {
    python3 - "$1" <<'PY'
import random, socket, sys
neighbours = sys.argv[1] == "broker"
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(1000):
    if neighbours:
        p = random.randint(20000, 30000)
        if free(p) and free(p - 2) and free(p + 1):
            print(p)
            break
    else:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
        s.close()
        break
else:
    sys.exit("no free port")
PY
}

# Whether something accepts TCP connections on 127.0.0.1:$1.
listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

alive() {
    kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != "Z" ]
}

# Sets JOPTS to the JVM options for a server with heap $1 and data dir $2.
java_opts() {
    local heap="$1" dir="$2"
    # G1 as RocketMQ's own start scripts choose it, but a heap sized for a
    # small shared machine and no AlwaysPreTouch (which would make the RSS
    # the whole heap from the first second). user.home moves RocketMQ's
    # logs (~/logs/rocketmqlogs) and ~/store defaults under DIR.
    JOPTS=(-server "-Xms$heap" "-Xmx$heap" -XX:+UseG1GC -XX:G1HeapRegionSize=16m
        -XX:G1ReservePercent=25 -XX:InitiatingHeapOccupancyPercent=30
        -XX:SoftRefLRUPolicyMSPerMB=0 -XX:-OmitStackTraceInFastThrow
        -XX:MaxDirectMemorySize=1g "-Duser.home=$dir" "-Drocketmq.home.dir=$dir"
        "-Djava.io.tmpdir=$dir/tmp" -cp "$LIB/*")
}

start() {
    local mode="${1:-}" dir="${2:-}" grpc="${3:-}"
    local flush
    case "$mode" in
        sync) flush=SYNC_FLUSH ;;
        async) flush=ASYNC_FLUSH ;;
        *) die "usage: $0 start sync|async DIR [GRPC_PORT]" ;;
    esac
    [ -n "$dir" ] || die "usage: $0 start sync|async DIR [GRPC_PORT]"
    require_installed
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if [ -f "$dir/pids" ]; then
        for p in $(cat "$dir/pids"); do
            alive "$p" && die "an instance already runs from $dir (pid $p): stop it first"
        done
    fi
    mkdir -p "$dir/store" "$dir/tmp" "$dir/conf"
    local ns_port broker_port remoting_port
    ns_port="$(free_port any)"
    broker_port="$(free_port broker)"
    remoting_port="$(free_port any)"
    [ -n "$grpc" ] || grpc="$(free_port any)"

    # bindAddress keeps the name server and the broker on loopback; the
    # proxy's gRPC and remoting ports have no such setting and listen on all
    # interfaces.
    cat >"$dir/conf/namesrv.properties" <<CONF
listenPort=$ns_port
bindAddress=127.0.0.1
CONF
    cat >"$dir/conf/broker.conf" <<CONF
brokerClusterName=$CLUSTER
brokerName=$BROKER_NAME
brokerId=0
brokerRole=ASYNC_MASTER
flushDiskType=$flush
brokerIP1=127.0.0.1
listenPort=$broker_port
bindAddress=127.0.0.1
namesrvAddr=127.0.0.1:$ns_port
storePathRootDir=$dir/store
storePathCommitLog=$dir/store/commitlog
autoCreateTopicEnable=false
autoCreateSubscriptionGroup=false
CONF
    # The caller's additions come last, so they win over the lines above.
    local extra
    for extra in ${ROCKETMQ_BROKER_CONF:-}; do
        echo "$extra" >>"$dir/conf/broker.conf"
    done
    cat >"$dir/conf/proxy.json" <<CONF
{
  "rocketMQClusterName": "$CLUSTER",
  "proxyMode": "local",
  "namesrvAddr": "127.0.0.1:$ns_port",
  "grpcServerPort": $grpc,
  "remotingListenPort": $remoting_port
}
CONF
    local t0
    t0=$(date +%s.%N)
    # setsid: each JVM leads its own session and process group, so stop can
    # signal the group and a caller's Ctrl-C does not reach it half-way.
    java_opts "$NAMESRV_HEAP" "$dir"
    setsid java "${JOPTS[@]}" \
        org.apache.rocketmq.namesrv.NamesrvStartup -c "$dir/conf/namesrv.properties" \
        </dev/null >"$dir/namesrv.out" 2>&1 &
    local ns_pid=$!
    echo "$ns_pid" >"$dir/pids"
    java_opts "$BROKER_HEAP" "$dir"
    setsid java "${JOPTS[@]}" \
        org.apache.rocketmq.proxy.ProxyStartup -pm local \
        -bc "$dir/conf/broker.conf" -pc "$dir/conf/proxy.json" -n "127.0.0.1:$ns_port" \
        </dev/null >"$dir/broker.out" 2>&1 &
    local br_pid=$!
    echo "$ns_pid $br_pid" >"$dir/pids"

    # Ready: the name server, the broker's remoting port and the gRPC port
    # accept connections and the proxy says it started. The broker may
    # register with the name server a moment later, so topics and groups
    # are created at the broker's address (see mqadmin_change).
    local deadline=$((SECONDS + START_BOUND))
    while :; do
        alive "$ns_pid" || { tail -n 20 "$dir/namesrv.out" >&2; stop_pids "$dir"; die "the name server exited (see $dir/namesrv.out)"; }
        alive "$br_pid" || { tail -n 20 "$dir/broker.out" >&2; stop_pids "$dir"; die "the broker/proxy exited (see $dir/broker.out)"; }
        if listening "$ns_port" && listening "$grpc" && listening "$broker_port" \
            && grep -q "rocketmq-proxy startup successfully" "$dir/broker.out"; then
            break
        fi
        [ "$SECONDS" -lt "$deadline" ] || { stop_pids "$dir"; die "not ready within ${START_BOUND} s (see $dir/*.out, $dir/logs)"; }
        sleep 0.2
    done
    local took
    took=$(echo "$(date +%s.%N) - $t0" | bc)
    cat >"$dir/env" <<ENV
GRPC=127.0.0.1:$grpc
NAMESRV=127.0.0.1:$ns_port
BROKER=127.0.0.1:$broker_port
CLUSTER=$CLUSTER
BROKER_NAME=$BROKER_NAME
PIDS=$ns_pid,$br_pid
FLUSH=$flush
VERSION=$VERSION
STARTED_IN_S=$took
ENV
    cat "$dir/env"
}

# SIGTERM to each JVM's process group, SIGKILL to what is left after the bound.
stop_pids() {
    local dir="$1" p left
    [ -f "$dir/pids" ] || return 0
    for p in $(cat "$dir/pids"); do
        alive "$p" && kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true
    done
    local deadline=$((SECONDS + ${ROCKETMQ_STOP_BOUND:-15}))
    while :; do
        left=""
        for p in $(cat "$dir/pids"); do alive "$p" && left="$left $p"; done
        [ -n "$left" ] || break
        if [ "$SECONDS" -ge "$deadline" ]; then
            for p in $left; do kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true; done
            sleep 0.5
            break
        fi
        sleep 0.2
    done
    rm -f "$dir/pids"
}

stop() {
    local dir="${1:-}"
    [ -n "$dir" ] || die "usage: $0 stop DIR"
    stop_pids "$dir"
}

# The namesrv address of the instance in DIR.
namesrv_of() {
    [ -f "$1/env" ] || die "no instance started in $1 (no $1/env)"
    sed -n 's/^NAMESRV=//p' "$1/env"
}

broker_of() {
    [ -f "$1/env" ] || die "no instance started in $1 (no $1/env)"
    sed -n 's/^BROKER=//p' "$1/env"
}

# mqadmin for a change that must happen: addressed to the broker itself
# (`-b`), not to a cluster name, which mqadmin resolves through the name
# server: a broker that has not registered there yet (it does so a moment
# after its ports listen) makes `-c CLUSTER` update no broker at all, and
# mqadmin still exits 0, printing "[error] Make sure the specified
# clusterName exists". That error is fatal here too.
mqadmin_change() {
    local dir="$1" what="$2" out
    shift 2
    out="$(mqadmin "$dir" "$@" -b "$(broker_of "$dir")" 2>&1)" || { echo "$out" >&2; die "$what failed"; }
    echo "$out" >&2
    case "$out" in *"[error]"*) die "$what failed (mqadmin: [error])" ;; esac
}

mqadmin() {
    local dir="$1"
    shift
    require_installed
    java -Xms64m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Duser.home="$dir" -Drocketmq.home.dir="$dir" -cp "$LIB/*" \
        org.apache.rocketmq.tools.command.MQAdminStartup "$@" -n "$(namesrv_of "$dir")" </dev/null
}

create_topic() {
    local dir="${1:-}" topic="${2:-}" type="${3:-NORMAL}" queues="${4:-8}"
    [ -n "$topic" ] || die "usage: $0 create-topic DIR TOPIC [NORMAL|FIFO|DELAY|TRANSACTION] [QUEUES]"
    type="$(echo "$type" | tr '[:lower:]' '[:upper:]')"
    case "$type" in NORMAL|FIFO|DELAY|TRANSACTION) ;; *) die "unknown message type $type" ;; esac
    local extra=()
    # FIFO topics keep a message group's order within one queue; mqadmin's
    # -o marks the topic as ordered too.
    [ "$type" = FIFO ] && extra=(-o true)
    mqadmin_change "$dir" "updateTopic $topic" updateTopic -t "$topic" -r "$queues" -w "$queues" \
        -a "+message.type=$type" "${extra[@]}"
}

create_group() {
    local dir="${1:-}" group="${2:-}" kind="${3:-}" retries="${4:-16}"
    [ -n "$group" ] || die "usage: $0 create-group DIR GROUP [fifo|normal] [MAX_RETRIES]"
    local orderly=false
    [ "$kind" = fifo ] && orderly=true
    mqadmin_change "$dir" "updateSubGroup $group" updateSubGroup -g "$group" -o "$orderly" -r "$retries"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
    install) install ;;
    installed) installed ;;
    start) start "$@" ;;
    stop) stop "$@" ;;
    create-topic) create_topic "$@" ;;
    create-group) create_group "$@" ;;
    admin) d="${1:-}"; shift || true; mqadmin "$d" "$@" ;;
    *) die "usage: $0 install|installed|start|stop|create-topic|create-group|admin (see the comment at the top)" ;;
esac
