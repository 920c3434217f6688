"""Frames that cannot be judged never pass: the real folder camera, real ONNX models.

The daemon runs (``App``) over a folder of real image files with a model that finds
nothing, the worst case: whatever reaches the model is OK. Black, saturated, flat and
blurred frames must be NG ``image_quality`` (VERDICT NG_NO_IMAGE), a 16-bit file whose
depth is not declared NG ``no_image``, and each refusal is counted by its check.
Deep files then go through the bundled demo detector: a 12-bit defect image declared
as 12-bit is found, declared as 16-bit it is refused by the gate (on main it was
scaled by guess to a dark frame and passed as OK), undeclared it is never read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector import metrics
from inspector.app import App
from inspector.camera.folder import FolderCamera
from inspector.config import (
    FolderCameraConfig,
    ModelConfig,
    RecipeConfig,
    SimCameraConfig,
    SimDefectConfig,
    parse_config,
)
from inspector.errors import FrameError
from inspector.inspect import LoadedRecipe, inspect_part
from inspector.recipes import load_recipe
from inspector.sim.render import render_part
from inspector.types import PartResult, PlcVerdict, Reason, Trigger
from tests.support.onnx_models import make_detector_onnx

DEMO = Path(__file__).resolve().parents[2] / "engines" / "demo_detector.onnx"
SMALL = SimCameraConfig(width=640, height=512, seed=77, defects=SimDefectConfig(rate=0.0))
CHECKS = ("brightness", "contrast", "saturation", "focus", "presence")


class Collect:
    """A result sink that records results and signals when ``want`` have arrived."""

    def __init__(self, want: int) -> None:
        self.want = want
        self.results: dict[int, PartResult] = {}
        self.done = threading.Event()

    def publish(self, result: PartResult) -> None:
        self.results[result.trigger.part_id] = result
        if len(self.results) >= self.want:
            self.done.set()


def _trigger(seq: int) -> Trigger:
    now = time.monotonic_ns()
    return Trigger(seq, seq, now, now + 1_000_000_000)


def _counts() -> dict[str, float]:
    out = {
        c: metrics.REGISTRY.get_sample_value("inspector_image_quality_rejects_total", {"check": c})
        or 0.0
        for c in CHECKS
    }
    out["parts"] = (
        metrics.REGISTRY.get_sample_value(
            "inspector_parts_total", {"verdict": "ng", "reason": "image_quality"}
        )
        or 0.0
    )
    return out


def _write_folder(folder: Path) -> dict[str, str]:
    """Real files, in name order, and the reason each must get."""
    folder.mkdir()
    good, _ = render_part(SMALL.seed, 1, SMALL)
    sharp_16 = (good.astype(np.uint16) << 4) | 7  # good pixels, as 12-bit in a 16-bit PNG
    files = {
        "a_good.png": (good, "ok"),
        "b_black.png": (np.zeros_like(good), "image_quality"),
        "c_saturated.png": (np.full_like(good, 255), "image_quality"),
        "d_blurred.png": (cv2.GaussianBlur(good, (0, 0), 3), "image_quality"),
        "e_flat.png": (np.full_like(good, 128), "image_quality"),
        "f_deep_undeclared.png": (sharp_16, "no_image"),
        "g_good_again.png": (good, "ok"),
    }
    for name, (image, _) in files.items():
        assert cv2.imwrite(str(folder / name), image)
    return {name: reason for name, (_, reason) in files.items()}


def test_unjudgeable_frames_through_the_daemon_are_ng_and_counted(tmp_path: Path) -> None:
    expected = _write_folder(tmp_path / "imgs")
    model = make_detector_onnx(tmp_path / "m.onnx", [])  # finds nothing: only the gate stops
    cfg = parse_config(
        f"""
line: {{cycle_budget_ms: 2000}}
trigger: {{source: internal, rate_hz: 50, max_parts: {len(expected)}}}
camera: {{type: folder, folder: {{path: "{tmp_path / "imgs"}", pixel_format: Mono8}}}}
recipes:
  - id: 1
    name: t
    models: [{{path: "{model}"}}]
    quality: {{min_focus: 400}}
pipeline: {{queue_depth: 8}}
metrics: {{enabled: false}}
logging: {{per_part: false}}
"""
    )
    sink = Collect(len(expected))
    before = _counts()
    app = App(cfg, extra_sinks=[sink])
    app.start()
    try:
        assert sink.done.wait(30), f"only {len(sink.results)} of {len(expected)} results"
    finally:
        app.stop()
    after = _counts()
    got = {}
    for part_id, name in enumerate(expected, start=1):
        verdict = sink.results[part_id].verdict
        got[name] = verdict.reason.value
        if verdict.reason is not Reason.OK:
            assert verdict.plc_verdict is PlcVerdict.NG_NO_IMAGE, (name, verdict)
    assert got == expected
    details = {n: sink.results[i].verdict.detail for i, n in enumerate(expected, start=1)}
    assert details["d_blurred.png"].startswith("focus:")
    assert "never scaled by guess" in details["f_deep_undeclared.png"]
    delta = {k: after[k] - before[k] for k in after}
    assert delta == {
        "brightness": 2,
        "contrast": 1,
        "saturation": 0,
        "focus": 1,
        "presence": 0,
        "parts": 4,
    }


@pytest.fixture(scope="module")
def demo() -> Iterator[LoadedRecipe]:
    model = ModelConfig(name="demo_detector", path=DEMO)
    recipe = load_recipe(RecipeConfig(id=1, name="demo", models=[model]), warmup_runs=1)
    yield recipe
    recipe.close()


def _defect_12bit(folder: Path) -> Path:
    """The demo model's hold-out spot part, stored as 12-bit data in a 16-bit PNG."""
    sim = SimCameraConfig(seed=9000, defects=SimDefectConfig(rate=1.0, kinds=["spot"]))
    image, (spot,) = render_part(9000, 1, sim)
    assert spot.class_name == "spot"
    rng = np.random.default_rng(5)
    deep = (image.astype(np.uint16) << 4) | rng.integers(0, 16, image.shape, np.uint16)
    folder.mkdir(exist_ok=True)
    path = folder / "spot_12bit.png"
    assert cv2.imwrite(str(path), deep)
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    return folder


@pytest.mark.parametrize(
    ("bit_depth", "reason", "detail"),
    [
        (12, Reason.DEFECT, "spot"),  # declared right: scaled exactly, the spot is found
        (16, Reason.IMAGE_QUALITY, "brightness: mean level"),  # mis-declared: a dark frame
        (10, Reason.NO_IMAGE, "above the declared 10-bit range"),
        (8, Reason.NO_IMAGE, "declare its depth"),  # undeclared: never scaled by guess
    ],
)
def test_12bit_defect_image_by_declared_depth(
    demo: LoadedRecipe, tmp_path: Path, bit_depth: int, reason: Reason, detail: str
) -> None:
    folder = _defect_12bit(tmp_path / "deep")
    cam = FolderCamera(FolderCameraConfig(path=folder, pixel_format="Mono8", bit_depth=bit_depth))
    cam.open()
    try:
        try:
            frame = cam.grab(_trigger(1))
        except FrameError as exc:  # the pipeline makes this NG no_image
            assert reason is Reason.NO_IMAGE
            assert detail in str(exc)
            return
    finally:
        cam.close()
    verdict, _ = inspect_part(frame, demo)
    assert verdict.reason is reason and not verdict.ok, verdict
    assert detail in (verdict.detail or "".join(f.class_name for f in verdict.findings))


def test_8bit_file_under_a_declared_deep_depth_is_refused(tmp_path: Path) -> None:
    good, _ = render_part(SMALL.seed, 1, SMALL)
    assert cv2.imwrite(str(tmp_path / "a.png"), good)
    cam = FolderCamera(FolderCameraConfig(path=tmp_path, pixel_format="Mono8", bit_depth=12))
    cam.open()
    with pytest.raises(FrameError, match=r"8-bit but camera\.folder\.bit_depth is 12"):
        cam.grab(_trigger(1))
    cam.close()


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG signature and IHDR announcing ``width``×``height``, with no pixel data."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", zlib.crc32(chunk[4:])))


def test_oversized_images_are_refused_before_decoding(tmp_path: Path) -> None:
    _png_header_only(tmp_path / "a_huge.png", 16000, 16000)
    real = np.random.default_rng(3).integers(0, 255, (1500, 2000), np.uint8)
    assert cv2.imwrite(str(tmp_path / "b_large.png"), real)
    good, _ = render_part(SMALL.seed, 1, SMALL)
    assert cv2.imwrite(str(tmp_path / "c_good.png"), good)
    cam = FolderCamera(
        FolderCameraConfig(path=tmp_path, pixel_format="Mono8", max_pixels=1_000_000)
    )
    cam.open()
    try:
        for name in ("a_huge.png", "b_large.png"):
            t0 = time.monotonic_ns()
            with pytest.raises(FrameError, match=rf"{name}.*refused before decoding"):
                cam.grab(_trigger(1))
            # A 16000x16000 decode blocked acquisition for over a second on main.
            assert time.monotonic_ns() - t0 < 100_000_000
        assert cam.grab(_trigger(3)).source_name == "c_good.png"  # the next file is served
    finally:
        cam.close()
    # The default limit (16 Mpx) refuses the 256 Mpx header as well.
    cam = FolderCamera(FolderCameraConfig(path=tmp_path, pixel_format="Mono8"))
    cam.open()
    with pytest.raises(FrameError, match=r"above camera\.folder\.max_pixels 16777216"):
        cam.grab(_trigger(1))
    assert cam.grab(_trigger(2)).image.shape == (1500, 2000)
    cam.close()
