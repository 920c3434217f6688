"""The engine cache: which plan to run at start, or whether to build one.

At start the TensorRT backend describes what it needs as a ``Target`` (model hash,
TensorRT version, GPU, precision, DLA core), ``decide`` reads every manifest in the
engine directory and returns one ``Decision``:

========================================  ==================  =====================
situation                                 build_on_start      decision
========================================  ==================  =====================
a manifest matches, plan hash verifies    any                 USE that plan
a manifest matches, plan hash differs     any                 FAIL (tampered)
a manifest matches, plan file missing     True / False        BUILD / FAIL
no manifest matches (other GPU, TRT, …)   True / False        BUILD / FAIL
========================================  ==================  =====================

A tampered plan never triggers a silent rebuild: plans are written atomically, so a
hash mismatch means someone or something changed executable code, and a person
should look. Every FAIL names the exact ``inspector engine build`` command to run.
Pure Python: no TensorRT, no CUDA.
"""

from __future__ import annotations

import enum
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from inspector.engine.manifest import (
    Manifest,
    read_manifest,
    read_verified_plan,
    sha256_file,
)
from inspector.errors import EngineError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Target:
    """What the running daemon needs a plan to have been built from and for."""

    model_name: str
    onnx_path: Path
    onnx_sha256: str
    trt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    dla_core: int | None = None


def cache_key(target: Target) -> str:
    """File stem of the plan for ``target``; different keys never share a file.

    The GPU name is not in the key (it is in the manifest and checked by ``decide``),
    so the name stays short; the compute capability is, since plans are per SM.
    """
    cc = target.compute_capability.replace(".", "")
    dla = f".dla{target.dla_core}" if target.dla_core is not None else ""
    return (
        f"{target.model_name}.{target.precision}{dla}.{target.onnx_sha256[:12]}"
        f".trt{target.trt_version}.sm{cc}"
    )


def plan_path(engine_dir: Path, target: Target) -> Path:
    return engine_dir / f"{cache_key(target)}.plan"


def build_command(target: Target, engine_dir: Path) -> str:
    """The exact command that builds the plan ``target`` needs."""
    argv = ["inspector", "engine", "build", str(target.onnx_path)]
    argv += ["--precision", target.precision]
    if target.dla_core is not None:
        argv += ["--dla", str(target.dla_core)]
    argv += ["--out", str(engine_dir)]
    return shlex.join(argv)


def mismatches(manifest: Manifest, target: Target) -> list[str]:
    """Why ``manifest`` does not fit ``target``, in words; empty when it fits."""
    out = []
    if manifest.onnx_sha256 != target.onnx_sha256:
        out.append("built from another ONNX file (model hash differs)")
    if manifest.trt_version != target.trt_version:
        out.append(f"built with TensorRT {manifest.trt_version}, this is {target.trt_version}")
    if manifest.compute_capability != target.compute_capability:
        out.append(
            f"built for compute capability {manifest.compute_capability}, "
            f"this GPU is {target.compute_capability}"
        )
    if manifest.gpu_name != target.gpu_name:
        out.append(f"built on {manifest.gpu_name!r}, this GPU is {target.gpu_name!r}")
    if manifest.precision != target.precision:
        out.append(f"precision {manifest.precision}, wanted {target.precision}")
    if manifest.dla_core != target.dla_core:
        out.append(f"DLA core {manifest.dla_core}, wanted {target.dla_core}")
    return out


def scan(engine_dir: Path) -> list[tuple[Path, Manifest | EngineError]]:
    """Every ``*.plan.json`` in ``engine_dir`` with its manifest or why it is unreadable."""
    found: list[tuple[Path, Manifest | EngineError]] = []
    for path in sorted(engine_dir.glob("*.plan.json")):
        try:
            found.append((path, read_manifest(path)))
        except EngineError as exc:
            found.append((path, exc))
    return found


class Action(enum.Enum):
    USE = "use"
    BUILD = "build"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do at start; ``plan``/``manifest`` are set for USE, ``plan`` for BUILD."""

    action: Action
    reason: str
    plan: Path | None = None
    manifest: Manifest | None = None


def decide(engine_dir: Path, target: Target, *, build_on_start: bool) -> Decision:
    """Pick the plan for ``target`` from ``engine_dir``, or say to build or fail."""
    rejected: list[str] = []
    matching: list[tuple[Path, Manifest]] = []
    for path, found in scan(engine_dir):
        if isinstance(found, EngineError):
            rejected.append(f"{path.name}: {found}")
        elif why := mismatches(found, target):
            rejected.append(f"{path.name}: {'; '.join(why)}")
        else:
            matching.append((path, found))
    # Newest build first: a rebuild after a failed golden check leaves the old plan.
    matching.sort(key=lambda pm: pm[1].built_at, reverse=True)
    for path, manifest in matching:
        plan = path.parent / manifest.plan_file
        if not plan.is_file():
            rejected.append(f"{path.name}: plan file {manifest.plan_file} is missing")
            continue
        if sha256_file(plan) != manifest.plan_sha256:
            return Decision(
                Action.FAIL,
                f"plan {plan} does not match its manifest's SHA-256: it was modified or "
                "damaged after the build. It will not be loaded or rebuilt over "
                "automatically; inspect it, delete it, then run: "
                + build_command(target, engine_dir),
            )
        return Decision(Action.USE, f"using {plan.name}", plan, manifest)
    detail = "; ".join(rejected) if rejected else f"no engine in {engine_dir}"
    if build_on_start:
        return Decision(
            Action.BUILD, f"no matching engine ({detail}); building", plan_path(engine_dir, target)
        )
    return Decision(
        Action.FAIL,
        f"no TensorRT engine matches this model, TensorRT {target.trt_version} and "
        f"{target.gpu_name} (sm {target.compute_capability}) [{detail}]. Build one with: "
        f"{build_command(target, engine_dir)}  (or set engine.build_on_start: true)",
    )


def open_verified(decision: Decision, deserialize: Callable[[bytes], T]) -> T:
    """Verify the chosen plan's bytes, then hand exactly those bytes to ``deserialize``."""
    if decision.action is not Action.USE or decision.plan is None or decision.manifest is None:
        raise EngineError(f"no plan to open: {decision.reason}")
    data = read_verified_plan(decision.plan, decision.manifest)
    return deserialize(data)


def timing_cache_path(engine_dir: Path, trt_version: str, compute_capability: str) -> Path:
    """Default timing cache, one per TensorRT version and SM: reused between builds."""
    return engine_dir / f"trt{trt_version}.sm{compute_capability.replace('.', '')}.timing"
