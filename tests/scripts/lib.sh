# Shared by the setup scripts of tests/scripts and bench/scripts/rocketmq.sh.
# Source it after `set -euo pipefail`:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# It defines LOG_NAME (the sourcing script's name without .sh, which its log
# lines start with), TOOLS_DIR (where the test tools live, outside the clone)
# and `start` (the script's start, in seconds), and the helpers below.

LOG_NAME="$(basename "${BASH_SOURCE[1]}" .sh)"
TOOLS_DIR="${PIER_TOOLS_DIR:-$HOME/.cache/pier-tools}"
start=$(date +%s)

# Progress and errors go to stderr; stdout is for what callers parse.
log() { echo "$LOG_NAME: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Seconds since the script started, e.g. "12s".
took() { echo "$(( $(date +%s) - start ))s"; }

# lock FILE: waits (up to 15 min) for an exclusive lock on FILE, so that
# concurrent runs (parallel test binaries, several clones sharing the tools)
# install one at a time. Held until the script exits or `unlock`. The caller
# checks again, once it holds the lock, whether another run did the work.
lock() {
  command -v flock >/dev/null 2>&1 || return 0
  exec {PIER_LOCK_FD}>"$1"
  flock -w 900 "$PIER_LOCK_FD" || die "timed out waiting for $1"
}
unlock() {
  if [[ -n "${PIER_LOCK_FD:-}" ]]; then
    exec {PIER_LOCK_FD}>&-
    PIER_LOCK_FD=
  fi
}

# run_logged LOG WHAT CMD...: runs CMD without stdin, its output appended to
# LOG; when it fails, shows the end of LOG and dies naming WHAT.
run_logged() {
  local log_file=$1 what=$2
  shift 2
  if ! "$@" </dev/null >>"$log_file" 2>&1; then
    tail -n 40 "$log_file" >&2
    die "$what failed (full log: $log_file)"
  fi
}

# apt_install PKG...: installs Debian packages quietly, as root or through
# sudo; returns 1 when apt-get cannot be used here.
apt_install() {
  command -v apt-get >/dev/null 2>&1 || return 1
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || return 1
    sudo=(sudo)
  fi
  log "apt-get install $*"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq </dev/null >&2
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" </dev/null >/dev/null
}
