#!/usr/bin/env bash
# Installs nginx (Debian's package) and the openssl CLI for the fleet test
# (tests/tests/e2e/fleet.rs), which runs two proxies behind nginx with the config
# of deploy/nginx/pier.conf. Prints the nginx binary's path on stdout.
#
# Only the binary is used: the test starts its own nginx (`-p TMPDIR -c
# CONF`) on ephemeral 127.0.0.1 ports and stops it by PID; the package's
# service is never started here (in containers policy-rc.d forbids it; on a
# host with systemd, Debian starts it on port 80: stop it with
# `systemctl disable --now nginx` if unwanted). Idempotent; needs no stdin;
# fine under CI=true. PIER_NGINX overrides the binary.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

find_nginx() {
  if [[ -n "${PIER_NGINX:-}" ]]; then
    [[ -x "$PIER_NGINX" ]] && echo "$PIER_NGINX"
    return
  fi
  command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true
}

nginx_bin=$(find_nginx)
if [[ -z "$nginx_bin" ]] || ! command -v openssl >/dev/null 2>&1; then
  lock "$TOOLS_DIR/.nginx.lock"
  nginx_bin=$(find_nginx)
  if [[ -z "$nginx_bin" ]] || ! command -v openssl >/dev/null 2>&1; then
    apt_install nginx openssl || die "nginx is not installed and apt-get cannot be used (set PIER_NGINX)"
    nginx_bin=$(find_nginx)
  fi
  unlock
fi
[[ -n "$nginx_bin" ]] || die "nginx not found after installing it"
# The gRPC proxy module and HTTP/2 are in Debian's build; fail early if not.
"$nginx_bin" -V 2>&1 | grep -q -- '--with-http_v2_module' || die "$nginx_bin lacks HTTP/2"
log "nginx: $nginx_bin ($("$nginx_bin" -v 2>&1)) in $(took)"
echo "$nginx_bin"
