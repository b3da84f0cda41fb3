#!/usr/bin/env bash
# Install Debian's docker-compose if missing: the test suite parses deploy/compose with
# `docker-compose config` (no Docker engine is needed for that). Debian packages Compose
# v1 (1.29); the Compose v2 plugin is not in Debian.
set -euo pipefail
if command -v docker-compose >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "docker-compose is missing and this user cannot install it: apt-get install docker-compose" >&2
    exit 1
  fi
fi
echo "installing docker-compose (Debian package) ..." >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q --no-install-recommends docker-compose >/dev/null 2>&1 || {
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q --no-install-recommends docker-compose >/dev/null
}
command -v docker-compose >/dev/null
