#!/usr/bin/env bash
# Install Debian packages unless the commands they provide are already there:
#   deploy/debian-install.sh "cmd1 cmd2" pkg1 pkg2
# Used by `make test` for the real services the tests run (Prometheus, Alertmanager,
# Chromium, docker-compose); exits non-zero, saying what to install, if it cannot.
set -euo pipefail
commands=$1
shift
[ $# -ge 1 ] || { echo "usage: $0 \"commands\" package..." >&2; exit 2; }
have_all() {
  for c in $commands; do command -v "$c" >/dev/null 2>&1 || return 1; done
}
if have_all; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "missing: $commands; this user cannot install them: apt-get install $*" >&2
    exit 1
  fi
fi
echo "installing $* (Debian packages) ..." >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 || {
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q --no-install-recommends "$@" >/dev/null
}
have_all
