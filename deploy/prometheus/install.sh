#!/usr/bin/env bash
# Install Prometheus and Alertmanager from Debian's packages if missing (the tests run real
# ones: rules are evaluated by Prometheus and delivered by Alertmanager).
set -euo pipefail
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 \
  && command -v prometheus-alertmanager >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "prometheus is missing and this user cannot install it: apt-get install prometheus" >&2
    exit 1
  fi
fi
echo "installing prometheus (Debian package) ..." >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q --no-install-recommends prometheus prometheus-alertmanager >/dev/null 2>&1 || {
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q --no-install-recommends prometheus prometheus-alertmanager >/dev/null
}
# The package may start a system service on :9090; the tests run their own instance.
command -v prometheus >/dev/null
