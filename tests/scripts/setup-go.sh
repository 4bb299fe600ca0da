#!/usr/bin/env bash
# Builds tests/go (the scenarios Pier's tests run with the official RocketMQ 5 Go
# client, github.com/apache/rocketmq-clients/golang/v5 as pinned in tests/go/go.mod
# and go.sum) into one binary outside the clone:
#
#   $PIER_TOOLS_DIR/go/bin/pier-go-scenarios   the program tests/tests/e2e/official_go.rs runs
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
. "$here/lib.sh"
SRC="$(cd "$here/../go" && pwd)"
GO_DIR="$TOOLS_DIR/go"
BIN="$GO_DIR/bin/pier-go-scenarios"
MARKER="$GO_DIR/.installed"

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

up_to_date() {
  echo "setup-go: up to date in $(took): $BIN ($go_version)"
  exit 0
}

want="$(fingerprint)"
if is_installed "$want"; then up_to_date; fi

mkdir -p "$GO_DIR/bin"
lock "$GO_DIR/.lock"
if is_installed "$want"; then up_to_date; fi
rm -f "$MARKER"

build_log="$GO_DIR/build.log"
cd "$SRC"
: >"$build_log"
# Download first, so a network failure reads as one.
run_logged "$build_log" "go mod download" "$GO" mod download
tmp="$BIN.tmp.$$"
trap 'rm -f "$tmp"' EXIT
run_logged "$build_log" "go build" "$GO" build -trimpath -o "$tmp" .
mv -f "$tmp" "$BIN"

# A smoke check: the binary runs and rejects a missing endpoint with a summary.
out="$("$BIN" -case normal 2>/dev/null </dev/null || true)"
[[ "$out" == *'"ok":false'* ]] || die "$BIN does not run as expected (got: $out)"

echo "$want" >"$MARKER"
echo "setup-go: built in $(took): $BIN ($go_version, golang/v5 $(awk '/rocketmq-clients\/golang\/v5 /{print $NF; exit}' go.mod))"
