#!/usr/bin/env bash
# Install the mosquitto MQTT broker (Debian package) for the plant-integration tests,
# which start their own broker on a free loopback port with a generated config; the
# package's own service is never started (no systemd here, and policy-rc.d is honoured).
# Idempotent: leaves .cache/bin/mosquitto pointing at the broker.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cache/bin/mosquitto
if [ -x "$dest" ]; then exit 0; fi
find_broker() { command -v mosquitto 2>/dev/null || { [ -x /usr/sbin/mosquitto ] && echo /usr/sbin/mosquitto; } || true; }
broker=$(find_broker)
if [ -z "$broker" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "mosquitto missing: run 'sudo apt-get install mosquitto' (the tests need the broker)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends mosquitto >/dev/null \
    || { apt-get -o DPkg::Lock::Timeout=300 update >/dev/null \
         && apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends mosquitto >/dev/null; }
  broker=$(find_broker)
fi
mkdir -p .cache/bin
ln -sf "$broker" "$dest"
"$dest" -h 2>&1 | head -1 || true
