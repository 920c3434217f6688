#!/usr/bin/env bash
# Install Debian's chromium for the station web page's browser test (tests/integration/
# test_hmi_browser.py), like get-promtool.sh fetches promtool. Playwright drives it with
# executable_path=/usr/bin/chromium: no browser download, ever. Marks .cache/bin/chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cache/bin/chromium
if [ ! -x /usr/bin/chromium ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "get-chromium: need root (or sudo) to apt-get install chromium" >&2; exit 1; }
    sudo=sudo
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends chromium >/dev/null \
    || { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends chromium >/dev/null; }
fi
mkdir -p .cache/bin
ln -sf /usr/bin/chromium "$dest"
/usr/bin/chromium --version 2>/dev/null | head -1
