"""The device path on a real GPU (marked ``gpu``): torch lanes, the detector kernels, the
device runner with frames in flight, and the GPU findings against the CPU path.

- the candidate filter + class-aware NMS kernels against ``models/detection`` on the same
  raw outputs (YOLOv8 and YOLOv5 layouts, fp32 and fp16): the same boxes in the same
  order; a NaN fails the part closed as on the CPU; too many candidates fail it closed;
- the runner (two lanes, one CUDA graph each) against the host postprocessor on the same
  model input: each of two frames in flight gets its own findings;
- 200 sim frames through the trained demo model: GPU findings match the CPU path's
  (same classes, boxes within 1 px).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inspector.config import (
    ModelConfig,
    PipelineConfig,
    QualityConfig,
    RecipeConfig,
    SimCameraConfig,
)
from inspector.errors import ModelError
from inspector.models.detection import DetectionPostprocessor
from inspector.preprocess.geometry import Geometry
from inspector.types import Finding, Frame
from tests.support.gpu_models import DEMO_TS

pytestmark = pytest.mark.gpu

INPUT_HW = (64, 96)
NAMES = ["scratch", "spot", "hole"]


def _cfg(path: Path, *, fp16: bool = False, floor: float = 0.5, **kw: Any) -> ModelConfig:
    return ModelConfig(
        name="tiny",
        path=path,
        backend="torch",
        input_size=INPUT_HW,
        torch={"fp16": fp16},
        detection={"conf": floor, "iou": 0.5, "max_det": 100},
        class_names=NAMES,
        **kw,
    )


def _backend(cfg: ModelConfig) -> Any:
    from inspector.backends.torch import TorchBackend

    backend = TorchBackend(cfg)
    backend.load()
    return backend


def _same(got: list[Finding], want: list[Finding], tol: float = 1e-3) -> None:
    assert [f.class_id for f in got] == [f.class_id for f in want]
    for g, w in zip(got, want, strict=True):
        assert abs(g.confidence - w.confidence) <= tol
        assert np.allclose(g.box, w.box, atol=tol), (g.box, w.box)


# ------------------------------------------------------------------- detector kernels
def _raw(layout: str, rng: np.random.Generator, n: int = 600) -> np.ndarray:
    """Clustered, overlapping boxes; unique best scores (exact in fp16) so the score
    order is the same on both paths."""
    centres = rng.uniform(40, 600, (25, 2))
    which = rng.integers(0, len(centres), n)
    cxcy = centres[which] + rng.uniform(-3, 3, (n, 2))
    wh = rng.uniform(18, 26, (n, 2))
    cls = rng.integers(0, 3, n)
    best = np.zeros(n)
    top = rng.permutation(n)[: n // 2]  # half the candidates pass the floor
    best[top] = 0.5 + rng.permutation(len(top)) * 2.0**-10
    scores = np.zeros((n, 3))
    scores[np.arange(n), cls] = np.where(best > 0, best, rng.uniform(0, 0.4, n))
    scores += (scores.max(1, keepdims=True) * 0.5) * (scores == 0)  # others lower
    cols = np.concatenate([cxcy, wh, scores], 1).astype(np.float32)  # [n, 7]
    if layout == "yolov8":
        return cols.T[None].copy()  # [1, 7, n]
    obj = np.ones((n, 1), np.float32)
    return np.concatenate([cols[:, :4], obj, cols[:, 4:]], 1)[None].copy()  # [1, n, 8]


def _post(layout: str, floor: float = 0.5) -> DetectionPostprocessor:
    return DetectionPostprocessor("det", (640, 640), tuple(NAMES), layout, floor, 0.5, 100)


def _device_findings(raw: np.ndarray, post: DetectionPostprocessor, half: bool) -> list[Finding]:
    import torch

    from inspector.backends.device import DeviceTensor
    from inspector.gpu.detect import DeviceDetect, yolo_layout
    from inspector.nvidia import driver as cu

    dev = torch.from_numpy(raw).cuda()
    dev = dev.half() if half else dev
    torch.cuda.synchronize()
    tensor = DeviceTensor(dev.data_ptr(), tuple(dev.shape), str(dev.dtype).split(".")[1])
    layout = yolo_layout(post, tensor)
    assert layout == post.layout
    stream = cu.stream_create()
    det = DeviceDetect(post, tensor, layout)
    try:
        det.enqueue([tensor], stream)
        cu.stream_sync(stream)
        return det.findings(Geometry(640, 640, 640, 640, 1.0, 1.0, 0.0, 0.0))
    finally:
        det.close()
        cu.stream_destroy(stream)


@pytest.mark.parametrize("layout", ["yolov8", "yolov5"])
@pytest.mark.parametrize("half", [False, True])
def test_device_nms_keeps_the_cpu_paths_boxes(layout: str, half: bool) -> None:
    rng = np.random.default_rng(11)
    raw = _raw(layout, rng)
    if half:
        raw = raw.astype(np.float16).astype(np.float32)
    post = _post(layout)
    want = post([raw], Geometry(640, 640, 640, 640, 1.0, 1.0, 0.0, 0.0))
    got = _device_findings(raw, post, half)
    assert 25 <= len(want) < 100  # NMS really suppressed boxes, and max_det did not cut
    _same(got, want, tol=1e-5)


def test_device_nms_fails_closed_on_nan_and_on_too_many_candidates() -> None:
    rng = np.random.default_rng(12)
    raw = _raw("yolov8", rng)
    raw[0, 5, 17] = np.nan  # one class score of one candidate
    with pytest.raises(ModelError, match="NaN"):
        _device_findings(raw, _post("yolov8"), half=False)
    big = np.tile(_raw("yolov8", rng), (1, 1, 4))  # 2400 candidates, 1200 above the floor
    with pytest.raises(ModelError, match=r"candidates above detection\.conf"):
        _device_findings(big, _post("yolov8"), half=False)


# ------------------------------------------------------------------------ the runner
def _runner(backend: Any, cfg: ModelConfig, lanes: int = 2, keepalive_ms: float = 0.0) -> Any:
    from inspector.gpu.runner import DeviceRunner
    from inspector.models import build_postprocessor

    post = build_postprocessor(cfg, backend.info)
    return DeviceRunner(cfg, backend, post, frames_in_flight=lanes, keepalive_ms=keepalive_ms)


def _reference(backend: Any, cfg: ModelConfig, frame: Frame) -> list[Finding]:
    """Host postprocessing of the model on the GPU-preprocessed input."""
    from inspector.models import build_postprocessor
    from inspector.preprocess.cuda import preprocess_once

    tensor, geo = preprocess_once(
        frame.image, frame.pixel_format, INPUT_HW, cfg.preprocess, fp16=backend.fp16
    )
    found: list[Finding] = build_postprocessor(cfg, backend.info)(backend.infer(tensor), geo)
    return found


@pytest.mark.parametrize("fmt", ["Mono8", "BayerRG8", "BGR8"])
def test_two_frames_in_flight_each_get_their_own_findings(tiny_detector: Path, fmt: str) -> None:
    cfg = _cfg(tiny_detector)
    backend = _backend(cfg)
    runner = _runner(backend, cfg)
    rng = np.random.default_rng(13)
    try:
        assert runner.graphs == 2, "each lane captured its CUDA graph"
        shape = (203, 301, 3) if fmt == "BGR8" else (203, 301)
        frames = [Frame(rng.integers(0, 256, shape, dtype=np.uint8), fmt, i, 0) for i in range(4)]
        for a, b in zip(frames[::2], frames[1::2], strict=True):
            tickets = [runner.submit(a), runner.submit(b)]
            for frame, ticket in zip((a, b), tickets, strict=True):
                found, stage_ns = runner.collect(ticket)
                want = _reference(backend, cfg, frame)
                assert want, "the tiny detector finds something on noise"
                _same(found, want)
                assert {"submit", "device", "gpu_wait", "postprocess"} <= set(stage_ns)
                assert stage_ns["device"] > 0
    finally:
        runner.close()
        backend.close()


def test_pinned_frames_skip_the_host_copy_and_idle_keeps_the_gpu_busy(
    tiny_detector: Path,
) -> None:
    from inspector.gpu.pinned import shared_frames

    cfg = _cfg(tiny_detector)
    backend = _backend(cfg)
    runner = _runner(backend, cfg, lanes=1, keepalive_ms=1.0)
    try:
        frames = shared_frames()
        image = frames((120, 160))
        image[...] = np.random.default_rng(14).integers(0, 256, image.shape, dtype=np.uint8)
        assert frames.lookup(image) is not None
        found, _ = runner.collect(runner.submit(Frame(image, "Mono8", 1, 0)))
        lane = runner._lanes[0]
        assert lane._staging == {}, "a pinned frame was copied again"
        _same(found, _reference(backend, cfg, Frame(image, "Mono8", 1, 0)))
        found, _ = runner.collect(runner.submit(Frame(image.copy(), "Mono8", 2, 0)))
        assert lane._staging, "a pageable frame goes through the lane's staging buffer"
        time.sleep(0.005)
        runner.idle()
        assert runner._spare_busy, "idle replays the spare lane after the keep-alive period"
    finally:
        runner.close()
        backend.close()


def test_a_nan_model_is_ng_error_through_inspect_part(tmp_path: Path) -> None:
    import torch

    from inspector.inspect import LoadedModel, LoadedRecipe, inspect_part
    from inspector.models import build_postprocessor
    from inspector.types import Reason

    class Nan(torch.nn.Module):  # type: ignore[misc]
        def forward(self, x: Any) -> Any:
            y = torch.nn.functional.avg_pool2d(x, 4).flatten(2)[:, :1].repeat(1, 7, 1)
            return y * float("nan")

    path = tmp_path / "nan.ts"
    torch.jit.trace(Nan().cuda(), torch.rand(1, 3, *INPUT_HW, device="cuda")).save(str(path))
    cfg = _cfg(path, preprocess={"device": "cuda"})
    backend = _backend(cfg)
    model = LoadedModel.with_runner(
        cfg, backend, build_postprocessor(cfg, backend.info), PipelineConfig()
    )
    quality = QualityConfig(enabled=False)  # a black frame: the model is the subject
    recipe = LoadedRecipe(RecipeConfig(id=1, name="t", models=[cfg], quality=quality), [model])
    try:
        image = np.zeros((64, 96), np.uint8)
        verdict, _ = inspect_part(Frame(image, "Mono8", 1, 0), recipe)
        assert verdict.reason is Reason.ERROR and "NaN" in verdict.detail
    finally:
        recipe.close()


# -------------------------------------------------------------- GPU path vs CPU path
def test_200_sim_frames_gpu_findings_match_the_cpu_path() -> None:
    """The trained demo model on the sim line: the device runner (GPU preprocessing and
    NMS) against the host runner (OpenCV preprocessing, numpy NMS), same FP16 backend.

    The issue's target: on every frame the same classes, every box within 1 frame px. The
    GPU kernel resizes in OpenCV's fixed point, so both paths feed the model the same
    tensor (``test_cuda_preprocess``); what is left is the device NMS against the host's.
    (Before that kernel, with a float resize 1/255 away: 31 of 94 boxes over 1 px, up to
    7.6 px, where NMS picked a neighbouring near-tied candidate.)
    """
    from inspector.gpu.pinned import shared_frames
    from inspector.inspect import HostRunner
    from inspector.models import build_postprocessor
    from inspector.sim.camera import SimCamera
    from inspector.types import Trigger

    cfg = ModelConfig(
        name="demo",
        path=DEMO_TS,
        backend="torch",
        torch={"fp16": True},
        input_size=(640, 640),
        detection={"conf": 0.25, "iou": 0.5, "max_det": 100},
        class_names=["scratch", "spot", "missing_hole"],
    )
    backend = _backend(cfg)
    post = build_postprocessor(cfg, backend.info)
    host = HostRunner(cfg, backend, post)
    runner = _runner(backend, cfg)
    camera = SimCamera(SimCameraConfig(pool_size=200), alloc=shared_frames())
    camera.open()
    counted, floor_flips, dists = [], [], []
    try:
        for i in range(200):
            frame = camera.grab(Trigger(i, i, 0, 0))
            got, _ = runner.collect(runner.submit(frame))
            want, _ = host.collect(host.submit(frame))
            # Findings that count in decide (default min_confidence 0.5) must match.
            strong = _match([f for f in got if f.confidence >= 0.5],
                            [f for f in want if f.confidence >= 0.5])  # fmt: skip
            if strong is None:
                counted.append((i, _names(got), _names(want)))
            pairs = _match(got, want)
            if pairs is None:  # at the candidate floor: a box one path keeps, one drops
                floor_flips.append((i, _names(got), _names(want)))
            else:
                dists += pairs
    finally:
        camera.close()
        runner.close()
        backend.close()
    d = np.asarray(dists)
    print(
        f"200 sim frames: {len(d)} boxes paired; frame-pixel distance max {d.max():.3f}, "
        f"p99 {np.percentile(d, 99):.3f}, median {np.median(d):.3f}; "
        f"{int((d > 1.0).sum())} boxes over 1 frame px; frames differing at the 0.25 "
        f"floor: {floor_flips}"
    )
    assert len(d) > 50, "the demo model finds the sim defects"
    assert counted == [], counted[:5]
    assert floor_flips == [], floor_flips
    assert d.max() <= 1.0, f"{int((d > 1.0).sum())} boxes over 1 frame px"


def _names(found: list[Finding]) -> list[tuple[str, float]]:
    return sorted((f.class_name, round(f.confidence, 3)) for f in found)


def _match(got: list[Finding], want: list[Finding]) -> list[float] | None:
    """Greedy pairing by class and box: the largest coordinate difference of each pair
    (frame pixels), or None when the classes differ."""
    if sorted(f.class_id for f in got) != sorted(f.class_id for f in want):
        return None
    left = list(want)
    dists = []
    for g in got:
        best = min(
            (w for w in left if w.class_id == g.class_id),
            key=lambda w: float(np.abs(np.subtract(g.box, w.box)).max()),
        )
        left.remove(best)
        dists.append(float(np.abs(np.subtract(g.box, best.box)).max()))
    return dists
