"""Compile CUDA C++ with NVRTC to a cubin, cached on disk per GPU architecture.

Why a cache: NVRTC takes a few hundred milliseconds, and the daemon should be ready fast
after a restart. The cubin is keyed by a hash of the source, the options and the NVRTC
version, under ``$INSPECTOR_KERNEL_CACHE`` or ``~/.cache/inspector/kernels/<arch>/``.
A cache that cannot be written (read-only home under systemd) only costs the compile.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from inspector.errors import BackendError
from inspector.nvidia.driver import bindings


def cache_dir(arch: str) -> Path:
    """Directory holding the cubins for one architecture (``sm_90``)."""
    root = os.environ.get("INSPECTOR_KERNEL_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "inspector" / "kernels"
    return base / arch


def _nvrtc_check(result: Any, what: str, prog: Any = None) -> Any:
    _, nvrtc = bindings()
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        _, msg = nvrtc.nvrtcGetErrorString(err)
        log = _program_log(prog) if prog is not None else ""
        raise BackendError(f"{bytes(msg).decode()} in {what}{': ' + log if log else ''}")
    return values[0] if len(values) == 1 else tuple(values) if values else None


def _program_log(prog: object) -> str:
    _, nvrtc = bindings()
    err, size = nvrtc.nvrtcGetProgramLogSize(prog)
    if int(err) != 0 or size <= 1:
        return ""
    buf = b" " * size
    nvrtc.nvrtcGetProgramLog(prog, buf)
    text: str = buf.rstrip(b"\0 ").decode(errors="replace")
    return text


def nvrtc_version() -> str:
    _, nvrtc = bindings()
    version: tuple[int, int] = _nvrtc_check(nvrtc.nvrtcVersion(), "nvrtcVersion")
    return f"{version[0]}.{version[1]}"


def compile_cubin(source: str, name: str, arch: str, options: tuple[str, ...] = ()) -> bytes:
    """Return the cubin of ``source`` for ``arch`` (``sm_87``, ``sm_90``...), from cache if any."""
    opts = (f"--gpu-architecture={arch}", "--std=c++17", "-default-device", *options)
    key = hashlib.sha256("\0".join((source, *opts, nvrtc_version())).encode()).hexdigest()[:24]
    path = cache_dir(arch) / f"{name}-{key}.cubin"
    try:
        return path.read_bytes()
    except OSError:
        pass
    cubin = _compile(source, name, opts)
    _store(path, cubin)
    return cubin


def _compile(source: str, name: str, opts: tuple[str, ...]) -> bytes:
    _, nvrtc = bindings()
    prog = _nvrtc_check(
        nvrtc.nvrtcCreateProgram(source.encode(), f"{name}.cu".encode(), 0, [], []),
        "nvrtcCreateProgram",
    )
    try:
        raw = [o.encode() for o in opts]
        _nvrtc_check(nvrtc.nvrtcCompileProgram(prog, len(raw), raw), "nvrtcCompileProgram", prog)
        size = _nvrtc_check(nvrtc.nvrtcGetCUBINSize(prog), "nvrtcGetCUBINSize")
        buf = b" " * int(size)
        _nvrtc_check(nvrtc.nvrtcGetCUBIN(prog, buf), "nvrtcGetCUBIN")
        cubin: bytes = buf
        return cubin
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


def _store(path: Path, cubin: bytes) -> None:
    """Write atomically (rename), so a crash never leaves a half cubin to load."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(cubin)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs the next start a compile
