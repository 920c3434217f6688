"""One engine build, start to finish: hash, compile, golden check, manifest.

``build_engine`` is the flow behind ``inspector engine build`` and behind a start-time
build (``engine.build_on_start``). The TensorRT parts and the ONNX Runtime reference
come in as a ``Toolchain`` (the real one is ``backends.tensorrt.toolchain()``; engine/
never imports a backend), so this flow is tested with real ONNX Runtime and a
stand-in compiler. Golden and calibration folders are read by the ``read_folder``
passed in (the daemon's is ``camera.folder.read_folder``). The manifest is written
last, and only after the golden check passed: the cache only ever picks plans that
have a manifest, so an engine that disagrees with ONNX Runtime is never switched to.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

import numpy as np

from inspector import __version__, systemd
from inspector.config import ModelConfig, RulesConfig
from inspector.engine import cache, golden
from inspector.engine.manifest import (
    Manifest,
    atomic_write,
    model_sha256,
    read_l4t_release,
    sha256_bytes,
)
from inspector.engine.manifest import write_manifest as write_manifest_file
from inspector.engine.options import (
    BuildPlan,
    BuildRequest,
    ShapeProfile,
    plan_build,
    profiles_for,
    trt_major,
)
from inspector.engine.progress import BuildProgress
from inspector.errors import EngineError, InspectorError
from inspector.model_info import ModelInfo
from inspector.preprocess.geometry import Geometry

#: systemd start-timeout extension per keepalive during a build.
BUILD_KEEPALIVE_S = 120.0


def systemd_keepalive(status: str) -> None:
    """``build_engine``'s ``keepalive`` under systemd: extend the start timeout by
    ``BUILD_KEEPALIVE_S`` and show ``status``."""
    systemd.extend_timeout(BUILD_KEEPALIVE_S, status)


class Runner(Protocol):
    """What the golden check runs: the new engine, loaded from its bytes."""

    def infer(self, tensor: np.ndarray[Any, Any]) -> list[np.ndarray[Any, Any]]: ...
    def close(self) -> None: ...


class Reference(Protocol):
    """The model as trained (ONNX Runtime), loaded: its I/O description and outputs."""

    @property
    def info(self) -> ModelInfo: ...
    def infer(self, tensor: np.ndarray[Any, Any]) -> list[np.ndarray[Any, Any]]: ...


Compile = Callable[
    [
        BuildRequest,
        BuildPlan,
        Sequence[ShapeProfile],
        BuildProgress,
        Sequence[np.ndarray[Any, Any]],
    ],
    bytes,
]


@dataclass(frozen=True, slots=True)
class Toolchain:
    """The installed TensorRT and GPU, the two calls only TensorRT can make, and the
    reference the new engine is checked against (``open_reference`` loads the model
    with ONNX Runtime)."""

    trt_version: str
    gpu_name: str
    compute_capability: str
    compile: Compile
    open_runner: Callable[[ModelConfig, bytes, Manifest], Runner]
    open_reference: Callable[[ModelConfig], Reference]


def verdict_function(
    model: ModelConfig, info: ModelInfo, rules: RulesConfig | None
) -> golden.VerdictOf | None:
    """Outputs → Verdict with the model's postprocessor and ``rules`` (default rules if None)."""
    from inspector.decide import decide
    from inspector.models import build_postprocessor

    try:
        post = build_postprocessor(model, info)
    except InspectorError:
        return None
    the_rules = rules or RulesConfig()

    def verdict_of(outputs: list[np.ndarray[Any, Any]], geometry: Geometry) -> Any:
        return decide(post(outputs, geometry), the_rules)

    return verdict_of


def _manifest(
    request: BuildRequest, tools: Toolchain, plan: BuildPlan, info: ModelInfo, **fields: Any
) -> Manifest:
    return Manifest(
        model_name=request.onnx.stem,
        trt_version=tools.trt_version,
        gpu_name=tools.gpu_name,
        compute_capability=tools.compute_capability,
        l4t_release=read_l4t_release(),
        precision=request.precision,
        dla_core=request.dla_core,
        strongly_typed=plan.strongly_typed,
        flags=list(plan.flags),
        onnx_inputs=[t.name for t in info.inputs],
        onnx_outputs=[t.name for t in info.outputs],
        workspace_mib=request.workspace_mib,
        built_at=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        inspector_version=__version__,
        **fields,
    )


def _input_hw(
    model: ModelConfig, info: ModelInfo, profiles: Sequence[ShapeProfile]
) -> tuple[int, int]:
    if model.input_size:
        return model.input_size
    if info.input_hw:
        return info.input_hw
    if profiles and len(profiles[0].opt) == 4:
        return profiles[0].opt[2], profiles[0].opt[3]
    raise EngineError(f"input size of {model.path} unknown; set model.input_size")


def build_engine(
    request: BuildRequest,
    tools: Toolchain,
    *,
    model: ModelConfig | None = None,
    rules: RulesConfig | None = None,
    golden_dir: Path | None = None,
    run_golden_check: bool = True,
    out: TextIO = sys.stderr,
    keepalive: Callable[[str], object] | None = None,
    read_folder: golden.ReadFolder | None = None,
) -> tuple[Path, Manifest]:
    """Build the plan for ``request``, check it, write plan + manifest; return both."""
    model = (model or ModelConfig(name=request.onnx.stem, path=request.onnx)).model_copy(
        update={"path": request.onnx, "backend": "onnxruntime"}
    )
    # the model as trained; also gives ONNX I/O names and metadata
    reference = tools.open_reference(model)
    info = reference.info
    plan = plan_build(request, trt_major(tools.trt_version))
    for note in plan.notes:
        print(f"note: {note}", file=out)
    profiles = profiles_for(request.shapes, [(t.name, t.shape) for t in info.inputs])
    input_hw = _input_hw(model, info, profiles)
    calib: list[np.ndarray[Any, Any]] = []
    if plan.calibrate and request.calib_images is not None:
        calib = [
            t
            for _, t, _ in golden.folder_inputs(
                request.calib_images, input_hw, model.preprocess, read_folder
            )
        ]
        if not calib:
            raise EngineError(f"no calibration images in {request.calib_images}")
    onnx_sha = model_sha256(request.onnx)
    progress = BuildProgress(out, keepalive=keepalive)
    t0 = time.monotonic_ns()
    data = tools.compile(request, plan, profiles, progress, calib)
    build_seconds = (time.monotonic_ns() - t0) / 1e9
    target = cache.Target(
        request.onnx.stem, request.onnx, onnx_sha, tools.trt_version, tools.gpu_name,
        tools.compute_capability, request.precision, request.dla_core,
    )  # fmt: skip
    plan_path = cache.plan_path(request.out_dir, target)
    manifest = _manifest(
        request, tools, plan, info,
        onnx_sha256=onnx_sha,
        plan_file=plan_path.name,
        plan_sha256=sha256_bytes(data),
        shapes={p.name: [list(p.min), list(p.opt), list(p.max)] for p in profiles},
        build_seconds=round(build_seconds, 3),
        onnx_metadata=dict(info.metadata),
    )  # fmt: skip
    atomic_write(plan_path, data)
    if run_golden_check:
        try:
            report = _golden(
                model, info, rules, golden_dir, input_hw, tools, data, manifest, reference,
                read_folder,
            )  # fmt: skip
        except BaseException:
            plan_path.unlink(missing_ok=True)
            raise
        manifest = manifest.model_copy(update={"golden": report.summary()})
        print(f"golden check passed on {len(report.images)} images", file=out)
    write_manifest_file(plan_path, manifest)
    return plan_path, manifest


def _golden(
    model: ModelConfig,
    info: ModelInfo,
    rules: RulesConfig | None,
    golden_dir: Path | None,
    input_hw: tuple[int, int],
    tools: Toolchain,
    data: bytes,
    manifest: Manifest,
    reference: Reference,
    read_folder: golden.ReadFolder | None,
) -> golden.GoldenReport:
    images = golden.golden_inputs(golden_dir, input_hw, model.preprocess, read_folder=read_folder)
    runner = tools.open_runner(model, data, manifest)
    try:
        report = golden.run_golden(
            images, reference.infer, runner.infer, manifest.precision,
            verdict_function(model, info, rules),
        )  # fmt: skip
    finally:
        runner.close()
    golden.require_agreement(report)
    return report
