"""Golden check and the build flow, with real ONNX Runtime outputs.

The "engine" under test is ONNX Runtime again, with its outputs perturbed the way a
reduced-precision engine would perturb them (or worse). The compiler is a stand-in
that returns bytes: the subject here is the flow around TensorRT (hashes, golden
check, manifest written only after agreement), not TensorRT.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inspector.backends.onnxruntime import OnnxRuntimeBackend, open_reference
from inspector.config import ModelConfig, PreprocessConfig
from inspector.engine import cache, golden
from inspector.engine.build import Toolchain, build_engine, verdict_function
from inspector.engine.manifest import Manifest, read_manifest, sha256_bytes, sha256_file
from inspector.engine.options import BuildPlan, BuildRequest, ShapeProfile
from inspector.engine.progress import BuildProgress
from inspector.errors import EngineError
from tests.support.onnx_models import IMGSZ, make_conv_detector


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_conv_detector(tmp_path_factory.mktemp("model") / "detector.onnx")


@pytest.fixture(scope="module")
def ort(onnx_path: Path) -> OnnxRuntimeBackend:
    backend = OnnxRuntimeBackend(ModelConfig(name="detector", path=onnx_path))
    backend.load()
    return backend


def model_cfg(onnx_path: Path) -> ModelConfig:
    return ModelConfig(name="detector", path=onnx_path, detection={"conf": 0.25})


def images() -> list[tuple[str, Any, Any]]:
    return golden.golden_inputs(None, (IMGSZ, IMGSZ), PreprocessConfig())


def perturbed(
    ort: OnnxRuntimeBackend, change: Callable[[np.ndarray[Any, Any]], np.ndarray[Any, Any]]
) -> Callable[[Any], list[np.ndarray[Any, Any]]]:
    return lambda tensor: [change(o.copy()) for o in ort.infer(tensor)]


def test_identical_outputs_pass_at_every_precision(ort: OnnxRuntimeBackend) -> None:
    for precision in ("fp32", "fp16", "int8"):
        report = golden.run_golden(images(), ort.infer, ort.infer, precision)
        assert report.ok, report.failures()
        assert report.summary()["max_abs_diff"] == 0.0


def test_fp16_sized_error_passes_fp16_and_fails_fp32(ort: OnnxRuntimeBackend) -> None:
    rng = np.random.default_rng(3)
    noisy = perturbed(ort, lambda o: o * (1 + rng.uniform(-3e-3, 3e-3, o.shape)).astype(np.float32))
    assert golden.run_golden(images(), ort.infer, noisy, "fp16").ok
    fp32 = golden.run_golden(images(), ort.infer, noisy, "fp32")
    assert not fp32.ok
    assert "outside fp32 tolerance" in fp32.failures()[0]


def test_broken_engines_fail_every_precision(ort: OnnxRuntimeBackend) -> None:
    broken = {
        "scaled": perturbed(ort, lambda o: o * 1.5),
        "nan": perturbed(ort, lambda o: np.where(o > 0, np.nan, o)),
        "shape": perturbed(ort, lambda o: o[:, :, :-1]),
    }
    for name, runner in broken.items():
        for precision in ("fp32", "fp16", "int8"):
            report = golden.run_golden(images(), ort.infer, runner, precision)
            assert not report.ok, (name, precision)
    with pytest.raises(EngineError, match="refusing to use it"):
        golden.require_agreement(golden.run_golden(images(), ort.infer, broken["scaled"], "int8"))


def test_no_images_is_not_a_pass(ort: OnnxRuntimeBackend) -> None:
    report = golden.run_golden([], ort.infer, ort.infer, "fp16")
    assert not report.ok and report.failures() == ["no golden images were run"]


def test_verdicts_are_compared_with_the_real_postprocessor(
    ort: OnnxRuntimeBackend, onnx_path: Path
) -> None:
    verdict_of = verdict_function(model_cfg(onnx_path), ort.info, None)
    assert verdict_of is not None
    base = golden.run_golden(images(), ort.infer, ort.infer, "int8", verdict_of)
    refs = [r.ref_verdict for r in base.images]
    assert base.ok and "OK:ok" in refs and "NG:defect" in refs  # the images exercise both

    def hide_defects(o: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        o[:, 4:, :] = np.minimum(o[:, 4:, :], 0.2)  # every score below detection.conf: all OK
        return o

    report = golden.run_golden(
        images(), ort.infer, perturbed(ort, hide_defects), "int8", verdict_of
    )
    assert not report.ok
    assert any("verdict OK:ok vs reference NG:defect" in f for f in report.failures())


class FakeCompiler:
    """Stands in for TensorRT's builder: records the call, returns plan bytes."""

    def __init__(self) -> None:
        self.calls: list[tuple[BuildRequest, BuildPlan, Sequence[ShapeProfile]]] = []

    def __call__(
        self,
        request: BuildRequest,
        plan: BuildPlan,
        profiles: Sequence[ShapeProfile],
        progress: BuildProgress,
        calib: Sequence[Any],
    ) -> bytes:
        self.calls.append((request, plan, profiles))
        progress.phase_start("Building engine", None, 1)
        progress.phase_finish("Building engine")
        return b"PLAN:" + request.precision.encode() + bytes(range(64))


class OrtRunner:
    def __init__(self, ort: OnnxRuntimeBackend, factor: float) -> None:
        self.ort, self.factor, self.closed = ort, factor, False

    def infer(self, tensor: Any) -> list[np.ndarray[Any, Any]]:
        return [o * self.factor for o in self.ort.infer(tensor)]

    def close(self) -> None:
        self.closed = True


def toolchain(ort: OnnxRuntimeBackend, factor: float, runners: list[OrtRunner]) -> Toolchain:
    def open_runner(model: ModelConfig, data: bytes, manifest: Manifest) -> OrtRunner:
        assert sha256_bytes(data) == manifest.plan_sha256  # the runner gets the checked bytes
        runners.append(OrtRunner(ort, factor))
        return runners[-1]

    return Toolchain("10.3.0", "Orin", "8.7", FakeCompiler(), open_runner, open_reference)


def test_build_writes_manifest_after_golden_pass_and_cache_uses_it(
    ort: OnnxRuntimeBackend, onnx_path: Path, tmp_path: Path
) -> None:
    runners: list[OrtRunner] = []
    out = io.StringIO()
    request = BuildRequest(onnx=onnx_path, out_dir=tmp_path, precision="fp16")
    plan, manifest = build_engine(
        request, toolchain(ort, 1.0, runners), model=model_cfg(onnx_path), out=out
    )
    assert runners[0].closed and "golden check passed on 6 images" in out.getvalue()
    assert read_manifest(plan.with_name(plan.name + ".json")) == manifest
    assert manifest.onnx_sha256 == sha256_file(onnx_path)
    assert manifest.plan_sha256 == sha256_file(plan)
    assert (manifest.onnx_inputs, manifest.onnx_outputs) == (["images"], ["output0"])
    assert manifest.flags == ["FP16"] and manifest.golden and manifest.golden["ok"] is True
    assert manifest.onnx_metadata["imgsz"] == "[64, 64]"
    target = cache.Target(
        "detector", onnx_path, sha256_file(onnx_path), "10.3.0", "Orin", "8.7", "fp16"
    )
    decision = cache.decide(tmp_path, target, build_on_start=False)
    assert decision.action is cache.Action.USE and decision.plan == plan


def test_build_refuses_engine_that_disagrees(
    ort: OnnxRuntimeBackend, onnx_path: Path, tmp_path: Path
) -> None:
    runners: list[OrtRunner] = []
    request = BuildRequest(onnx=onnx_path, out_dir=tmp_path, precision="fp16")
    with pytest.raises(EngineError, match="disagrees with ONNX Runtime"):
        build_engine(request, toolchain(ort, 1.1, runners), model=model_cfg(onnx_path))
    assert runners[0].closed
    assert list(tmp_path.iterdir()) == []  # no plan, no manifest: nothing to switch to
    target = cache.Target(
        "detector", onnx_path, sha256_file(onnx_path), "10.3.0", "Orin", "8.7", "fp16"
    )
    assert cache.decide(tmp_path, target, build_on_start=False).action is cache.Action.FAIL
