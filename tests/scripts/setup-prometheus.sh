#!/usr/bin/env bash
# Installs Prometheus (and promtool) from Debian for the metrics tests
# (tests/tests/e2e/metrics.rs): the package is downloaded with apt and unpacked
# under the tools dir, not installed system-wide, so no service is started
# and nothing outside the cache changes.
#
# Layout (PIER_TOOLS_DIR defaults to ~/.cache/pier-tools):
#   $PIER_TOOLS_DIR/prometheus/usr/bin/prometheus
#   $PIER_TOOLS_DIR/prometheus/usr/bin/promtool
#   $PIER_TOOLS_DIR/prometheus/.installed     marker: the package version
#
# stdout: the directory holding both binaries. Idempotent; needs no stdin;
# fine under CI=true.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DIR="$TOOLS_DIR/prometheus"
MARKER="$DIR/.installed"
BIN="$DIR/usr/bin"

installed() {
  [[ -f "$MARKER" && -x "$BIN/prometheus" && -x "$BIN/promtool" ]] || return 1
  "$BIN/prometheus" --version >/dev/null 2>&1
}

if installed; then
  echo "$BIN"
  exit 0
fi
command -v apt-get >/dev/null 2>&1 || die "apt-get not found: Prometheus comes from Debian's package"
mkdir -p "$TOOLS_DIR"
lock "$TOOLS_DIR/.prometheus.lock"
if installed; then
  echo "$BIN"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
download() {
  (cd "$work" && apt-get download -qq prometheus </dev/null >>"$work/apt.log" 2>&1)
}
if ! download; then
  # No package lists yet (a fresh container): fetch them once and retry.
  log "apt-get update"
  apt-get update -qq </dev/null >>"$work/apt.log" 2>&1 || true
  download || { tail -n 20 "$work/apt.log" >&2; die "apt-get download prometheus failed"; }
fi
deb=$(ls "$work"/prometheus_*.deb)
rm -rf "$DIR"
mkdir -p "$DIR"
dpkg-deb -x "$deb" "$DIR" || die "unpacking $deb failed"
"$BIN/prometheus" --version >/dev/null 2>&1 || die "$BIN/prometheus does not run"
dpkg-deb -f "$deb" Version >"$MARKER"
log "installed Prometheus $(cat "$MARKER") in $DIR in $(took)"
echo "$BIN"
