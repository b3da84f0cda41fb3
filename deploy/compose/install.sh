#!/usr/bin/env bash
# Debian's docker-compose, if missing: the suite parses deploy/compose with
# `docker-compose config` (no Docker engine is needed for that). Debian packages Compose
# v1 (1.29); the Compose v2 plugin is not in Debian.
exec bash "$(dirname "$0")/../debian-install.sh" docker-compose docker-compose
