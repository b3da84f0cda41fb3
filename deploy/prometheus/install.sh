#!/usr/bin/env bash
# Prometheus and Alertmanager from Debian's packages, if missing (the tests run real ones:
# rules are evaluated by Prometheus and delivered by Alertmanager). The package may start
# a system service on :9090; the tests run their own instance.
exec bash "$(dirname "$0")/../debian-install.sh" "prometheus promtool prometheus-alertmanager" \
  prometheus prometheus-alertmanager
