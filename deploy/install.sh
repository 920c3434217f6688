#!/usr/bin/env bash
# Install inspector as a systemd service: a Jetson AGX Orin (JetPack 6) or an x86 box.
#
#   sudo deploy/install.sh [--platform auto|jetson|x86] [--gpu|--no-gpu] [--wheel FILE]
#                          [--root DIR] [--python PY] [--pip-args ARGS] [--no-check]
#
# Idempotent: running it twice leaves the machine as running it once. It never edits
# a file an operator may have changed: /etc/inspector/config.yaml and the demo model are
# installed only when absent; the units, the venv and the shared files are replaced by
# identical copies. What goes where:
#   /opt/inspector/venv                the daemon (non-editable pip install, constraints)
#   /opt/inspector/share/              docs, Grafana dashboard, Prometheus rules, constraints
#   /etc/inspector/config.yaml         the config (the embedded default on first install)
#   /etc/inspector/models/             the demo model that default config names
#   /etc/systemd/system/inspector.service, inspector@.service
#   /usr/lib/sysusers.d/inspector.conf the service user (systemd-sysusers)
#   /var/lib/inspector                 created by systemd (StateDirectory=): engines,
#                                      archive, CUDA kernel cache
# Jetson: the venv sees the system site packages (TensorRT's Python bindings come from
# JetPack's python3-libnvinfer), cuda-python is pinned to JetPack's CUDA 12, and
# deploy/constraints-jetson.txt applies. x86: constraints.txt; with an NVIDIA GPU the
# `gpu` extra with cuda-python pinned to the driver's CUDA major (nvidia-smi).
# --root DIR installs into DIR instead of / (tests, image staging): no systemctl, no
# check against the running system; the venv then names DIR in its paths.
set -euo pipefail

src="$(cd "$(dirname "$0")/.." && pwd)"
root=/
platform=auto
gpu=auto
wheel=""
python=""
pip_args=""
check=1
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root="$2"; shift 2 ;;
    --platform) platform="$2"; shift 2 ;;
    --gpu) gpu=yes; shift ;;
    --no-gpu) gpu=no; shift ;;
    --wheel) wheel="$2"; shift 2 ;;
    --python) python="$2"; shift 2 ;;
    --pip-args) pip_args="$2"; shift 2 ;;
    --no-check) check=0; shift ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
root="${root%/}"
prefix="$root/opt/inspector"
venv="$prefix/venv"

# ---- platform: Jetson (L4T release file) or x86
if [ "$platform" = auto ]; then
  if [ -f "$root/etc/nv_tegra_release" ]; then platform=jetson; else platform=x86; fi
fi
case "$platform" in
  jetson)
    extras="camera,jetson"
    constraints="$src/deploy/constraints-jetson.txt"
    venv_opts="--system-site-packages"
    python="${python:-/usr/bin/python3}"
    ;;
  x86)
    extras="camera"
    constraints="$src/constraints.txt"
    venv_opts=""
    python="${python:-python3}"
    if [ "$gpu" = auto ]; then
      if command -v nvidia-smi >/dev/null 2>&1; then gpu=yes; else gpu=no; fi
    fi
    if [ "$gpu" = yes ]; then
      extras="camera,gpu"
      major="$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9]*\)\..*/\1/p' | head -1)"
      if [ -n "$major" ]; then pip_args="$pip_args cuda-python<$((major + 1))"; fi
    fi
    ;;
  *) echo "install.sh: --platform must be auto, jetson or x86" >&2; exit 2 ;;
esac
package="${wheel:-$src}"
echo "install.sh: platform $platform, extras [$extras], constraints ${constraints#"$src"/}," \
  "venv ${venv_opts:-without system site packages}, into ${root:-/}"

# ---- the venv and the package (pip leaves an identical install alone)
if [ ! -x "$venv/bin/python" ]; then
  # shellcheck disable=SC2086  # venv_opts is empty or one option
  "$python" -m venv $venv_opts "$venv"
fi
# shellcheck disable=SC2086  # pip_args are words on purpose
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  -c "$constraints" $pip_args "$package[$extras]"

# ---- files: replaced by identical copies, or installed once and then left alone
install -d "$root/etc/inspector" "$root/etc/systemd/system" "$root/usr/lib/sysusers.d" \
  "$prefix/share/doc" "$prefix/share/grafana" "$prefix/share/prometheus"
install -m 0644 "$src/systemd/inspector.service" "$src/systemd/inspector@.service" \
  "$root/etc/systemd/system/"
install -m 0644 "$src/deploy/sysusers.d/inspector.conf" "$root/usr/lib/sysusers.d/"
install -m 0644 "$src/docs/deploy.md" "$src/README.md" "$prefix/share/doc/"
install -m 0644 "$src/constraints.txt" "$src/deploy/constraints-jetson.txt" "$prefix/share/"
cp -R "$src/deploy/grafana/." "$prefix/share/grafana/"
cp -R "$src/deploy/prometheus/." "$prefix/share/prometheus/"
if [ ! -e "$root/etc/inspector/config.yaml" ]; then
  install -m 0644 "$src/inspector/data/default_config.yaml" "$root/etc/inspector/config.yaml"
fi
if [ ! -e "$root/etc/inspector/models/demo_detector.onnx" ]; then
  install -D -m 0644 "$src/inspector/data/models/demo_detector.onnx" \
    "$root/etc/inspector/models/demo_detector.onnx"
fi

# ---- the service user (idempotent by design of systemd-sysusers)
if [ "$root" = "" ]; then
  systemd-sysusers /usr/lib/sysusers.d/inspector.conf
else
  systemd-sysusers --root="$root" "$root/usr/lib/sysusers.d/inspector.conf"
fi

# ---- on the running system: check the config, let systemd see the units
if [ "$root" = "" ]; then
  if [ "$check" = 1 ]; then "$venv/bin/inspector" check-config /etc/inspector/config.yaml; fi
  systemctl daemon-reload
  echo "installed; edit /etc/inspector/config.yaml, then: systemctl enable --now inspector"
  echo "  (several stations: /etc/inspector/STATION.yaml and inspector@STATION)"
elif [ "$check" = 1 ]; then
  "$venv/bin/inspector" check-config "$root/etc/inspector/config.yaml"
fi
