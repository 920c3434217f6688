#!/usr/bin/env bash
# Fetch promtool (Prometheus' metric and rule checker) and the prometheus server binary
# into .cache/bin, without installing or starting anything: Debian's `prometheus`
# package is downloaded and only unpacked, so both come from one release.
# Used by `make test`: the metrics endpoint is checked by the real promtool, the alert
# rules by `promtool test rules`, and the Grafana dashboard's queries by a real
# Prometheus that scrapes a running daemon (tests/integration/test_monitoring.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.cache/bin
if [ -x "$bin/promtool" ] && [ -x "$bin/prometheus" ]; then exit 0; fi
mkdir -p "$bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
( cd "$work" && (apt-get download prometheus >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get download prometheus >/dev/null; }) )
dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
cp "$work/root/usr/bin/promtool" "$work/root/usr/bin/prometheus" "$bin/"
"$bin/promtool" --version | head -1
