#!/usr/bin/env bash
# Install Debian's Chromium and its WebDriver if missing: the console and report tests
# open pages in a real headless browser.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "chromium is missing and this user cannot install it: apt-get install chromium chromium-driver" >&2
    exit 1
  fi
fi
echo "installing chromium and chromium-driver (Debian packages) ..." >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null 2>&1 || {
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null
}
command -v chromium >/dev/null && command -v chromedriver >/dev/null
