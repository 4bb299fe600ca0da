#!/usr/bin/env bash
# Builds tests/go (the scenarios Pier's tests run with the official RocketMQ 5 Go
# client, github.com/apache/rocketmq-clients/golang/v5 as pinned in tests/go/go.mod
# and go.sum) into one binary outside the clone:
#
#   $PIER_TOOLS_DIR/go/bin/pier-go-scenarios   the program tests/tests/official_go.rs runs
#   $PIER_TOOLS_DIR/go/{mod,cache,path}       GOMODCACHE, GOCACHE, GOPATH
#   $PIER_TOOLS_DIR/go/.installed             marker: hash of the sources and the Go version
#
# PIER_TOOLS_DIR defaults to ~/.cache/pier-tools. Needs Go >= 1.26 (`go` on PATH,
# /usr/local/go/bin/go, or PIER_GO); never downloads a toolchain (GOTOOLCHAIN=local)
# and never edits go.mod/go.sum (GOFLAGS=-mod=readonly). Idempotent: when the
# marker matches the sources, a run only hashes them and exits. Needs no stdin;
# fine under CI=true.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$(cd "$here/../go" && pwd)"
TOOLS_DIR="${PIER_TOOLS_DIR:-$HOME/.cache/pier-tools}"
GO_DIR="$TOOLS_DIR/go"
BIN="$GO_DIR/bin/pier-go-scenarios"
MARKER="$GO_DIR/.installed"

log() { echo "setup-go: $*" >&2; }
die() { log "error: $*"; exit 1; }

start=$(date +%s)

GO="${PIER_GO:-}"
if [[ -z "$GO" ]]; then
  if command -v go >/dev/null 2>&1; then
    GO="$(command -v go)"
  elif [[ -x /usr/local/go/bin/go ]]; then
    GO=/usr/local/go/bin/go
  else
    die "go not found (install Go >= 1.26 or set PIER_GO)"
  fi
fi

# Everything Go writes goes under $GO_DIR, not into the clone or ~/go.
export GOMODCACHE="$GO_DIR/mod" GOCACHE="$GO_DIR/cache" GOPATH="$GO_DIR/path"
# -modcacherw: the module cache stays removable with a plain rm -rf.
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -modcacherw -buildvcs=false" GO111MODULE=on
export GOWORK=off

go_version="$("$GO" env GOVERSION 2>/dev/null)" || die "$GO does not run"
# go.mod says `go 1.26`; older toolchains would try (and, with GOTOOLCHAIN=local,
# fail) to switch. Say so plainly instead.
if ! printf '%s\n' "${go_version#go}" | awk -F. '{ exit !($1 > 1 || ($1 == 1 && $2 >= 26)) }'; then
  die "$GO is $go_version; tests/go needs Go >= 1.26"
fi

# What the binary is built from: the module files, the program's sources and
# the toolchain.
fingerprint() {
  (
    cd "$SRC"
    printf '%s\n' "$go_version"
    find . -maxdepth 1 -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -print0 \
      | sort -z | xargs -0 sha256sum
  ) | sha256sum | cut -d' ' -f1
}

is_installed() {
  [[ -x "$BIN" && -f "$MARKER" && "$(cat "$MARKER")" == "$1" ]]
}

want="$(fingerprint)"
if is_installed "$want"; then
  echo "setup-go: up to date in $(( $(date +%s) - start ))s: $BIN ($go_version)"
  exit 0
fi

mkdir -p "$GO_DIR/bin"
# Serialize concurrent runs (parallel test binaries); re-check under the lock.
exec 9>"$GO_DIR/.lock"
flock -w 900 9 || die "timed out waiting for $GO_DIR/.lock"
if is_installed "$want"; then
  echo "setup-go: up to date in $(( $(date +%s) - start ))s: $BIN ($go_version)"
  exit 0
fi
rm -f "$MARKER"

build_log="$GO_DIR/build.log"
cd "$SRC"
# Download first, so a network failure reads as one.
if ! "$GO" mod download </dev/null >"$build_log" 2>&1; then
  tail -n 30 "$build_log" >&2
  die "go mod download failed (full log: $build_log)"
fi
tmp="$BIN.tmp.$$"
if ! "$GO" build -trimpath -o "$tmp" . </dev/null >>"$build_log" 2>&1; then
  rm -f "$tmp"
  tail -n 30 "$build_log" >&2
  die "go build failed (full log: $build_log)"
fi
mv -f "$tmp" "$BIN"

# A smoke check: the binary runs and rejects a missing endpoint with a summary.
out="$("$BIN" -case normal 2>/dev/null </dev/null || true)"
[[ "$out" == *'"ok":false'* ]] || die "$BIN does not run as expected (got: $out)"

echo "$want" >"$MARKER"
echo "setup-go: built in $(( $(date +%s) - start ))s: $BIN ($go_version, golang/v5 $(awk '/rocketmq-clients\/golang\/v5 /{print $NF; exit}' go.mod))"
