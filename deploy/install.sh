#!/usr/bin/env bash
# Install inspector as a systemd service (Jetson AGX Orin with JetPack 6, or x86 + NVIDIA).
#   sudo deploy/install.sh [--gpu]
# On JetPack, TensorRT's Python bindings come from the system (python3-libnvinfer), so
# the virtual environment is created with --system-site-packages.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
prefix=/opt/inspector
extras="camera"
[[ "${1:-}" == "--gpu" ]] && extras="camera,gpu"

id inspector >/dev/null 2>&1 || useradd --system --home /var/lib/inspector --shell /usr/sbin/nologin inspector
install -d -o inspector -g inspector /var/lib/inspector /etc/inspector
install -d "$prefix"
cp -r "$src/inspector" "$src/engines" "$src/pyproject.toml" "$src/README.md" "$prefix/"
python3 -m venv --system-site-packages "$prefix/.venv"
"$prefix/.venv/bin/pip" install --quiet "$prefix[$extras]"
chown -R inspector:inspector "$prefix/engines"
[[ -f /etc/inspector/config.yaml ]] || cp "$src/config.yaml" /etc/inspector/config.yaml
sed -i "s#engines/#$prefix/engines/#" /etc/inspector/config.yaml
"$prefix/.venv/bin/inspector" check-config /etc/inspector/config.yaml
install -m 0644 "$src/systemd/inspector.service" /etc/systemd/system/inspector.service
systemctl daemon-reload
echo "installed; edit /etc/inspector/config.yaml, then: systemctl enable --now inspector"
