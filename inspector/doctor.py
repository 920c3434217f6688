"""``inspector doctor``: the software stack under the daemon, against what was tested.

Not part of the flow: an operator's tool for the machine the daemon runs on. It reads
versions without loading a model or opening a device (L4T release file, CUDA's
version.json, the NVIDIA driver's /proc entry, package metadata), prints them, and
compares each with the combinations this project ran (``TESTED``): a version that no
executed combination had is named as never tested, and so is the whole Jetson stack,
which the project targets but has not run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Stack:
    """A combination of versions, and whether this project actually ran it."""

    name: str
    versions: dict[str, str]  # component → version prefix ("1.32" matches "1.32.0")
    executed: bool
    evidence: str


#: What ran, and where the evidence is. Update when a new combination is run.
TESTED: tuple[Stack, ...] = (
    Stack(
        "x86_64, CPU only (CI)",
        {
            "python": "3.11",
            "numpy": "2.4",
            "opencv": "5.0",
            "onnxruntime": "1.32",
            "pymodbus": "3.16",
            "harvesters": "1.4.3",
            "genicam": "1.6",
        },
        executed=True,
        evidence="make test on every change (constraints.txt)",
    ),
    Stack(
        "x86_64 + NVIDIA H200",
        {"python": "3.12", "cuda-python": "13.3", "torch": "2.11"},
        executed=True,
        evidence="GPU tests and benchmarks, benchmarks/results/*H200*",
    ),
    Stack(
        "Jetson AGX Orin, JetPack 6",
        {
            "l4t": "36",
            "cuda": "12.6",
            "tensorrt": "10.3",
            "cuda-python": "12.6",
            "python": "3.10",
            "numpy": "1.26",
            "onnxruntime": "1.23",
        },
        executed=False,
        evidence="the target (deploy/constraints-jetson.txt); never run in this project",
    ),
)

COMPONENTS = (
    "l4t",
    "cuda",
    "driver",
    "tensorrt",
    "cuda-python",
    "torch",
    "onnxruntime",
    "harvesters",
    "genicam",
    "pymodbus",
    "numpy",
    "opencv",
    "python",
)


def _dist(*names: str) -> Callable[[], str | None]:
    def probe() -> str | None:
        for name in names:
            try:
                return importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                continue
        return None

    return probe


def l4t_version(release: Path = Path("/etc/nv_tegra_release")) -> str | None:
    """``36.3.0`` from ``# R36 (release), REVISION: 3.0, …``; None off a Jetson."""
    try:
        text = release.read_text()
    except OSError:
        return None
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return f"{m.group(1)}.{m.group(2)}" if m else text.strip()[:40]


def cuda_version(root: Path = Path("/usr/local/cuda")) -> str | None:
    """The CUDA toolkit's version (version.json, else version.txt); None without one."""
    try:
        data: Any = json.loads((root / "version.json").read_text())
        return str(data["cuda"]["version"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        m = re.search(r"([\d.]+)", (root / "version.txt").read_text())
    except OSError:
        return None
    return m.group(1) if m else None


def driver_version(proc: Path = Path("/proc/driver/nvidia/version")) -> str | None:
    """The NVIDIA kernel driver's version (x86); on a Jetson the driver is L4T's."""
    try:
        m = re.search(r"Kernel Module\s+(?:for \S+\s+)?([\d.]+)", proc.read_text())
    except OSError:
        return None
    return m.group(1) if m else None


def tensorrt_version() -> str | None:
    """pip's tensorrt, else JetPack's python3-libnvinfer (no pip metadata: import it)."""
    found = _dist("tensorrt", "tensorrt-cu12", "tensorrt-cu13")()
    if found is not None:
        return found
    try:
        import tensorrt
    except ImportError:
        return None
    return str(tensorrt.__version__)


def opencv_version() -> str | None:
    return _dist("opencv-python-headless", "opencv-python", "opencv-contrib-python")()


PROBES: dict[str, Callable[[], str | None]] = {
    "l4t": l4t_version,
    "cuda": cuda_version,
    "driver": driver_version,
    "tensorrt": tensorrt_version,
    "cuda-python": _dist("cuda-python", "cuda-bindings"),
    "torch": _dist("torch"),
    "onnxruntime": _dist("onnxruntime", "onnxruntime-gpu"),
    "harvesters": _dist("harvesters"),
    "genicam": _dist("genicam"),
    "pymodbus": _dist("pymodbus"),
    "numpy": _dist("numpy"),
    "opencv": opencv_version,
    "python": platform.python_version,
}


def probe() -> dict[str, str | None]:
    """The version of every component on this machine (None: not there)."""
    return {name: PROBES[name]() for name in COMPONENTS}


def _matches(version: str, prefix: str) -> bool:
    return version == prefix or version.startswith(prefix + ".") or version.startswith(prefix + "+")


def verdicts(found: dict[str, str | None]) -> dict[str, str]:
    """Per component: 'tested (STACK)', 'never tested', or 'absent'."""
    out = {}
    for name in COMPONENTS:
        version = found.get(name)
        if version is None:
            out[name] = "absent"
            continue
        ran = [
            s.name for s in TESTED if s.executed and _matches(version, s.versions.get(name, "~"))
        ]
        out[name] = f"tested ({ran[0]})" if ran else "never tested"
    return out


def report(found: dict[str, str | None]) -> list[str]:
    """The lines ``inspector doctor`` prints."""
    status = verdicts(found)
    lines = [f"{'component':<12} {'version':<22} status"]
    for name in COMPONENTS:
        lines.append(f"{name:<12} {found.get(name) or '-':<22} {status[name]}")
    untested = [n for n in COMPONENTS if status[n] == "never tested"]
    lines.append("")
    if found.get("l4t") is not None:
        lines.append("This is a Jetson: the Jetson stack (JetPack 6) was never executed in this")
        lines.append("project (docs/tensorrt.md); run `make test` and the GPU tests here first.")
    if untested:
        lines.append("never tested here: " + ", ".join(f"{n} {found[n]}" for n in untested))
    else:
        lines.append("every component present matches a tested combination")
    lines.append("")
    lines.append("tested combinations:")
    for s in TESTED:
        ran = "executed" if s.executed else "NOT executed"
        pins = ", ".join(f"{k} {v}" for k, v in s.versions.items())
        lines.append(f"  {s.name} [{ran}]: {pins} — {s.evidence}")
    return lines


def cmd_doctor(args: argparse.Namespace) -> int:
    found = probe()
    if args.json:
        print(json.dumps({"versions": found, "status": verdicts(found)}, indent=2))
    else:
        print("\n".join(report(found)))
    return 0


def register_cli(subparsers: Any) -> None:
    """Add ``doctor`` to the top-level subparsers."""
    p = subparsers.add_parser(
        "doctor", help="print the software stack and compare it with the tested combinations"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_doctor)
