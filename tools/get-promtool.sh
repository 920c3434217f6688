#!/usr/bin/env bash
# Fetch promtool (Prometheus' metric linter) into .cache/bin without installing or
# starting a Prometheus server: the Debian package is downloaded and only unpacked.
# Used by `make test` so that the metrics endpoint is checked by the real promtool.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cache/bin/promtool
if [ -x "$dest" ]; then exit 0; fi
if command -v promtool >/dev/null 2>&1; then
  mkdir -p .cache/bin && ln -sf "$(command -v promtool)" "$dest" && exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
( cd "$work" && (apt-get download prometheus >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get download prometheus >/dev/null; }) )
dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
mkdir -p .cache/bin
cp "$work/root/usr/bin/promtool" "$dest"
"$dest" --version | head -1
