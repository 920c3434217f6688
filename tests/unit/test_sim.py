"""The simulated line: determinism, ground truth, defect rate, pixel formats, the camera."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.camera.base import Camera
from inspector.config import SimCameraConfig, SimDefectConfig
from inspector.errors import CameraError, ConfigError
from inspector.sim.camera import (
    DEFECT_CLASSES,
    SimCamera,
    render_bgr,
    render_part,
    write_dataset,
)
from inspector.types import Trigger

# Half size keeps the tests fast; the scene scales with the frame.
SMALL = {"width": 640, "height": 512}


def _trigger(seq: int) -> Trigger:
    now = time.monotonic_ns()
    return Trigger(trigger_seq=seq, part_id=seq, t_trigger_ns=now, deadline_ns=now + 30_000_000)


def test_same_seed_same_bytes_and_different_seeds_differ() -> None:
    cfg = SimCameraConfig(seed=7, **SMALL)
    a, la = render_part(7, 3, cfg)
    b, lb = render_part(7, 3, cfg)
    assert a.tobytes() == b.tobytes() and la == lb
    other_seed, _ = render_part(8, 3, cfg)
    other_index, _ = render_part(7, 4, cfg)
    assert not np.array_equal(a, other_seed)
    assert not np.array_equal(a, other_index)


def test_default_frame_size_and_format() -> None:
    image, _ = render_part(1, 0, SimCameraConfig())
    assert image.shape == (1024, 1280) and image.dtype == np.uint8


@pytest.mark.parametrize("pixel_format", ["Mono8", "BGR8", "BayerRG8"])
def test_pixel_formats(pixel_format: str) -> None:
    cfg = SimCameraConfig(pixel_format=pixel_format, **SMALL)  # type: ignore[arg-type]  # literal
    image, _ = render_part(5, 2, cfg)
    want = (512, 640, 3) if pixel_format == "BGR8" else (512, 640)
    assert image.shape == want and image.dtype == np.uint8
    assert 40 < float(image.mean()) < 200  # a lit scene, not black or saturated


def test_bayer_is_an_rggb_mosaic_of_the_colour_render() -> None:
    cfg = SimCameraConfig(pixel_format="BayerRG8", **SMALL)
    bayer, _ = render_part(5, 2, cfg)
    bgr, _ = render_bgr(5, 2, cfg)
    assert np.array_equal(bayer[0::2, 0::2], bgr[0::2, 0::2, 2])  # R
    assert np.array_equal(bayer[0::2, 1::2], bgr[0::2, 1::2, 1])  # G
    assert np.array_equal(bayer[1::2, 0::2], bgr[1::2, 0::2, 1])  # G
    assert np.array_equal(bayer[1::2, 1::2], bgr[1::2, 1::2, 0])  # B
    # Debayered back, the part is colour: belt and plate have different tints.
    back = cv2.cvtColor(bayer, cv2.COLOR_BayerRGGB2BGR)
    assert not np.array_equal(back[:, :, 0], back[:, :, 2])


def test_labels_inside_frame_and_of_known_classes() -> None:
    cfg = SimCameraConfig(defects=SimDefectConfig(rate=1.0, max_per_part=3), **SMALL)
    seen: set[str] = set()
    for index in range(30):
        _, labels = render_part(11, index, cfg)
        assert labels, "rate=1.0 must put a defect on every part"
        for label in labels:
            x1, y1, x2, y2 = label.box
            assert label.class_name in DEFECT_CLASSES
            assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 512
            seen.add(label.class_name)
    assert seen == set(DEFECT_CLASSES)


def test_defect_rate_roughly_honoured() -> None:
    cfg = SimCameraConfig(width=160, height=128, defects=SimDefectConfig(rate=0.3))
    defective = sum(bool(render_part(3, i, cfg)[1]) for i in range(300))
    assert 0.2 * 300 < defective < 0.4 * 300
    none = SimCameraConfig(width=160, height=128, defects=SimDefectConfig(rate=0.0))
    assert all(render_part(3, i, none)[1] == () for i in range(20))


def test_only_configured_kinds_appear() -> None:
    cfg = SimCameraConfig(defects=SimDefectConfig(rate=1.0, kinds=["spot"]), **SMALL)
    names = {lb.class_name for i in range(10) for lb in render_part(2, i, cfg)[1]}
    assert names == {"spot"}


def test_missing_hole_is_plain_plate_where_the_hole_should_be() -> None:
    cfg = SimCameraConfig(defects=SimDefectConfig(rate=1.0, kinds=["missing_hole"]))
    image, labels = render_part(4, 0, cfg)
    (label,) = labels
    x1, y1, x2, y2 = (round(v) for v in label.box)
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    centre = image[cy - 10 : cy + 10, cx - 10 : cx + 10]
    assert float(centre.mean()) > 100  # bright steel, not a dark bore
    assert 50 <= x2 - x1 <= 80  # about one hole across (r=26 px + margin)


def test_spot_and_scratch_change_the_pixels_they_label() -> None:
    """A labelled defect must be visible: its box differs from the plain plate around it."""
    for kind in ("spot", "scratch"):
        cfg = SimCameraConfig(defects=SimDefectConfig(rate=1.0, kinds=[kind], max_per_part=1))
        for index in range(5):
            image, (label,) = render_part(21, index, cfg)
            x1, y1, x2, y2 = (round(v) for v in label.box)
            box = image[y1:y2, x1:x2].astype(np.float32)
            # A defect is the box's extreme pixels: well away from the box median.
            spread = max(box.max() - np.median(box), np.median(box) - box.min())
            assert spread > 30, (kind, index, spread)


def test_camera_serves_the_pool_by_trigger_seq() -> None:
    cfg = SimCameraConfig(seed=9, pool_size=3, **SMALL)
    cam = SimCamera(cfg)
    assert isinstance(cam, Camera)
    with pytest.raises(CameraError):
        cam.grab(_trigger(1))
    cam.open()
    try:
        frames = [cam.grab(_trigger(seq)) for seq in (1, 2, 3, 4)]
    finally:
        cam.close()
        cam.close()  # idempotent
    expect1, truth1 = render_part(9, 1, cfg)
    assert np.array_equal(frames[0].image, expect1) and frames[0].truth == truth1
    assert np.array_equal(frames[3].image, frames[0].image)  # 4 % 3 == 1: the pool cycles
    assert [f.frame_id for f in frames] == [1, 2, 3, 4]
    assert all(f.pixel_format == "Mono8" for f in frames)
    assert frames[0].t_grab_ns <= frames[1].t_grab_ns
    assert not frames[0].image.flags.writeable  # shared pool frames are read-only
    with pytest.raises(CameraError):
        cam.grab(_trigger(5))


def test_part_image_does_not_depend_on_pool_size() -> None:
    small = SimCamera(SimCameraConfig(seed=9, pool_size=2, **SMALL))
    large = SimCamera(SimCameraConfig(seed=9, pool_size=6, **SMALL))
    small.open()
    large.open()
    try:
        assert np.array_equal(small.grab(_trigger(1)).image, large.grab(_trigger(1)).image)
    finally:
        small.close()
        large.close()


def test_write_dataset_round_trips(tmp_path: Path) -> None:
    cfg = SimCameraConfig(defects=SimDefectConfig(rate=0.5), **SMALL)
    path = write_dataset(tmp_path, seed=5, count=4, cfg=cfg, start=10)
    labels = json.loads(path.read_text())
    assert sorted(labels) == [f"part_{i:06d}.png" for i in range(10, 14)]
    for i in range(10, 14):
        image, truth = render_part(5, i, cfg)
        assert np.array_equal(cv2.imread(str(tmp_path / f"part_{i:06d}.png"), 0), image)
        assert labels[f"part_{i:06d}.png"] == [[lb.class_name, *lb.box] for lb in truth]
    with pytest.raises(ConfigError):
        write_dataset(tmp_path, 5, 1, SimCameraConfig(pixel_format="BayerRG8", **SMALL))
