#!/usr/bin/env bash
# Installs Debian's `prometheus` package (the server and promtool) when they are missing.
# The deploy tests run the real tools: promtool checks and unit-tests the rules, and an
# end-to-end test scrapes a live worker. Needs root (or sudo) and Debian's apt.
set -euo pipefail
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "install-prometheus: prometheus/promtool are missing and there is no apt-get;" \
         "install Prometheus 2.x so both are on PATH" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# The package would start a system service; there is none to start here, and the tests
# run their own server on loopback. policy-rc.d tells invoke-rc.d to leave it alone.
policy=/usr/sbin/policy-rc.d
created=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    created=1
fi
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
if [ -n "$created" ]; then
    $sudo rm -f "$policy"
fi
prometheus --version 2>&1 | head -1
