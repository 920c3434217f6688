"""Where the daemon's runtime files live: TensorRT engines, the NG archive, CUDA kernels.

Two kinds of paths appear in a config. *Inputs* (model files, GenTL producers, replay
folders) resolve against the config file's directory. *Runtime paths* (what the daemon
writes: ``engine.dir``, ``archive.dir``) resolve, when relative, against the **state
directory**:

1. ``$STATE_DIRECTORY``, set by systemd from the unit's ``StateDirectory=``
   (``/var/lib/inspector``, or ``/var/lib/inspector/<station>`` for
   ``inspector@<station>.service``); the only writable place of the hardened unit;
2. otherwise the config file's directory (a checkout: ``make run`` keeps ``engines/``
   and ``archive/`` in the repository, as before);
3. for the embedded default config (no file given), ``$XDG_STATE_HOME/inspector``
   or ``~/.local/state/inspector``: never inside the installed package.

The CUDA kernel cache (``gpu/nvrtc.py``) follows the same rule: ``$INSPECTOR_KERNEL_CACHE``,
else ``$STATE_DIRECTORY/kernels``, else ``~/.cache/inspector/kernels``. This module is
the one place that reads these environment variables.
"""

from __future__ import annotations

import os
from pathlib import Path


def systemd_state_dir() -> Path | None:
    """The first directory of ``$STATE_DIRECTORY`` (systemd joins several with ':')."""
    value = os.environ.get("STATE_DIRECTORY", "")
    first = value.split(":")[0]
    return Path(first) if first else None


def state_dir(config_dir: Path | None) -> Path:
    """Base of relative runtime paths for a config read from ``config_dir`` (None: embedded)."""
    systemd = systemd_state_dir()
    if systemd is not None:
        return systemd
    if config_dir is not None:
        return config_dir
    xdg = os.environ.get("XDG_STATE_HOME", "")
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "inspector"


def default_engine_dir() -> Path:
    """``engine build --out`` without a config: $STATE_DIRECTORY/engines, else ./engines."""
    systemd = systemd_state_dir()
    return systemd / "engines" if systemd is not None else Path("engines")


def kernel_cache_dir() -> Path:
    """Root of the NVRTC cubin cache (one sub-directory per GPU architecture)."""
    explicit = os.environ.get("INSPECTOR_KERNEL_CACHE", "")
    if explicit:
        return Path(explicit)
    systemd = systemd_state_dir()
    if systemd is not None:
        return systemd / "kernels"
    return Path.home() / ".cache" / "inspector" / "kernels"
