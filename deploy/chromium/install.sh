#!/usr/bin/env bash
# Debian's Chromium and its WebDriver, if missing: the console and report tests open pages
# in a real headless browser.
exec bash "$(dirname "$0")/../debian-install.sh" "chromium chromedriver" chromium chromium-driver
