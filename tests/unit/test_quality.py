"""The image-quality gate (inspector/quality.py) on synthetic and simulated frames.

The sim line's frames are the "good" reference: the default gate must pass every one
of them (no overkill from the gate), and refuse frames that cannot be judged.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inspector.config import PresenceConfig, QualityConfig, SimCameraConfig
from inspector.errors import FrameError
from inspector.quality import check_quality, measure, stride
from inspector.sim.camera import SimCamera
from inspector.sim.render import render_part
from inspector.types import Trigger

DEFAULT = QualityConfig()
SMALL = {"width": 640, "height": 512}


def _sim(index: int = 3, pixel_format: str = "Mono8", **size: int) -> np.ndarray:
    cfg = SimCameraConfig(pixel_format=pixel_format, **(size or SMALL))  # type: ignore[arg-type]
    image, _ = render_part(cfg.seed, index, cfg)
    return image


def _failed(image: np.ndarray, pixel_format: str = "Mono8", cfg: QualityConfig = DEFAULT) -> str:
    failure = check_quality(image, pixel_format, cfg)
    return "" if failure is None else failure.check


def test_stride_is_odd_and_leaves_about_the_samples_asked_for() -> None:
    for h, w in ((1024, 1280), (512, 640), (3000, 4000), (64, 64)):
        step = stride(h, w, 16384)
        assert step % 2 == 1
        kept = -(-h // step) * -(-w // step)
        assert kept <= max(16384 * 1.6, h * w), (h, w, step, kept)
    assert stride(64, 64, 16384) == 1


@pytest.mark.parametrize(
    ("name", "shape", "value", "check"),
    [
        ("black mono", (1024, 1280), 0, "brightness"),
        ("saturated mono", (1024, 1280), 255, "brightness"),
        ("black colour", (1024, 1280, 3), 0, "brightness"),
        ("saturated colour", (1024, 1280, 3), 255, "brightness"),
        ("flat grey", (1024, 1280), 128, "contrast"),
    ],
)
def test_default_gate_refuses_unjudgeable_frames(
    name: str, shape: tuple[int, ...], value: int, check: str
) -> None:
    fmt = "BGR8" if len(shape) == 3 else "Mono8"
    assert _failed(np.full(shape, value, np.uint8), fmt) == check, name


def test_black_frame_with_sensor_noise_is_refused() -> None:
    rng = np.random.default_rng(1)
    noisy_black = rng.integers(0, 12, size=(1024, 1280), dtype=np.uint8)
    assert _failed(noisy_black) == "brightness"


def test_half_saturated_frame_is_refused_for_saturation() -> None:
    image = _sim()
    image[: image.shape[0] // 2] = 255  # a blown-out half: the mean alone is still fine
    assert 20 <= measure(image, "Mono8", 16384).mean <= 240
    assert _failed(image) == "saturation"
    colour = _sim(pixel_format="BGR8")
    colour[: colour.shape[0] // 2, :, 2] = 255  # one channel clipped counts too
    assert _failed(colour, "BGR8") == "saturation"


def test_blur_is_refused_only_with_a_focus_threshold() -> None:
    sharp = _sim()
    blurred = cv2.GaussianBlur(sharp, (0, 0), 3)
    assert _failed(blurred) == ""  # the default gate has no focus check
    with_focus = QualityConfig(min_focus=400)
    assert _failed(sharp, cfg=with_focus) == ""
    assert _failed(blurred, cfg=with_focus) == "focus"


def test_presence_box() -> None:
    image = _sim()  # the plate lies around the centre of the frame, brighter than the belt
    plate = PresenceConfig(box=(240, 200, 400, 312), mean=(110, 255))
    cfg = QualityConfig(presence=plate)
    assert _failed(image, cfg=cfg) == ""
    empty_belt = image.copy()
    empty_belt[150:362, 180:460] = 55  # the part is missing: belt grey
    assert _failed(empty_belt, cfg=QualityConfig(presence=plate, min_std=0)) == "presence"
    outside = QualityConfig(presence=PresenceConfig(box=(700, 600, 800, 700)))
    assert _failed(image, cfg=outside) == "presence"


def test_deep_frames_are_not_judged_here() -> None:
    deep = _sim().astype(np.uint16) << 4
    with pytest.raises(FrameError, match="8-bit"):
        check_quality(deep, "Mono8", DEFAULT)
    with pytest.raises(FrameError, match="shape"):
        check_quality(np.zeros((64, 64, 3), np.uint8), "Mono8", DEFAULT)


def test_sim_camera_500_parts_no_false_rejects() -> None:
    """The default gate passes every part of the sim line (good or defective: all can be
    judged), over 500 distinct parts served by the real sim camera."""
    cam = SimCamera(SimCameraConfig(**SMALL, pool_size=500, seed=4242))  # type: ignore[arg-type]
    cam.open()
    try:
        rejected = []
        for seq in range(1, 501):
            frame = cam.grab(Trigger(seq, seq, 0, 0))
            if (failure := check_quality(frame.image, frame.pixel_format, DEFAULT)) is not None:
                rejected.append((seq, failure))
    finally:
        cam.close()
    assert rejected == []


@pytest.mark.parametrize("pixel_format", ["Mono8", "BGR8", "BayerRG8"])
def test_full_size_sim_frames_pass_in_every_format(pixel_format: str) -> None:
    for index in range(8):
        image = _sim(index, pixel_format, width=1280, height=1024)
        assert _failed(image, pixel_format) == "", (pixel_format, index)


def test_gate_reads_a_subsample_only() -> None:
    """A defect-sized change between samples does not move the statistics: the gate
    looks at about ``samples`` pixels, not the whole frame (which is what keeps it cheap)."""
    image = _sim(width=1280, height=1024)
    step = stride(1024, 1280, DEFAULT.samples)
    before = measure(image, "Mono8", DEFAULT.samples)
    image[1::step, 1::step] = 0  # every pixel the subsample skips on this lattice
    assert measure(image, "Mono8", DEFAULT.samples) == before
