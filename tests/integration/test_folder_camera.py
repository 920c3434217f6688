"""Folder replay camera against real image files written to a temporary directory."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.camera.base import Camera
from inspector.camera.folder import FolderCamera, load_labels
from inspector.config import FolderCameraConfig, SimCameraConfig, SimDefectConfig
from inspector.errors import CameraError, ConfigError
from inspector.sim.camera import render_part, write_dataset
from inspector.types import Label, Trigger


def _trigger(seq: int) -> Trigger:
    now = time.monotonic_ns()
    return Trigger(trigger_seq=seq, part_id=seq, t_trigger_ns=now, deadline_ns=now + 30_000_000)


def _image(value: int, shape: tuple[int, ...] = (24, 32, 3)) -> np.ndarray:
    img = np.full(shape, value, np.uint8)
    if len(shape) == 3:
        img[:, :, 2] = 255 - value  # distinct channels, to see BGR order survive
    return img


def _write(directory: Path, names_values: dict[str, int]) -> None:
    for name, value in names_values.items():
        assert cv2.imwrite(str(directory / name), _image(value)), name


def _grab_all(cam: FolderCamera, n: int) -> list:
    return [cam.grab(_trigger(i + 1)) for i in range(n)]


def test_serves_images_in_name_order_in_bgr(tmp_path: Path) -> None:
    _write(tmp_path, {"b.png": 20, "a.bmp": 10, "c.tiff": 30, "d.jpg": 40})
    (tmp_path / "notes.txt").write_text("not an image")
    cam = FolderCamera(FolderCameraConfig(path=tmp_path))
    assert isinstance(cam, Camera)
    cam.open()
    try:
        assert cam.count == 4
        frames = _grab_all(cam, 4)
    finally:
        cam.close()
    assert [f.source_name for f in frames] == ["a.bmp", "b.png", "c.tiff", "d.jpg"]
    assert [f.frame_id for f in frames] == [1, 2, 3, 4]
    first = frames[0]
    assert first.pixel_format == "BGR8" and first.image.shape == (24, 32, 3)
    assert first.image.dtype == np.uint8
    assert int(first.image[0, 0, 0]) == 10 and int(first.image[0, 0, 2]) == 245
    assert abs(int(frames[3].image[5, 5, 0]) - 40) <= 3  # JPEG: lossy, close
    assert all(f.truth is None for f in frames)  # no labels file: truth unknown


def test_mono8_reads_one_channel(tmp_path: Path) -> None:
    assert cv2.imwrite(str(tmp_path / "x.png"), _image(77, (16, 16)))
    cam = FolderCamera(FolderCameraConfig(path=tmp_path, pixel_format="Mono8"))
    cam.open()
    frame = cam.grab(_trigger(1))
    cam.close()
    assert frame.pixel_format == "Mono8" and frame.image.shape == (16, 16)
    assert int(frame.image[3, 3]) == 77


def test_labels_known_good_defective_and_unknown(tmp_path: Path) -> None:
    _write(tmp_path, {"p1.png": 1, "p2.png": 2, "p3.png": 3})
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"p1.png": [["spot", 1, 2, 5, 6]], "p2.png": []}))
    cam = FolderCamera(FolderCameraConfig(path=tmp_path, labels=labels))
    cam.open()
    frames = _grab_all(cam, 3)
    cam.close()
    assert frames[0].truth == (Label("spot", (1.0, 2.0, 5.0, 6.0)),)
    assert frames[1].truth == ()  # listed with []: known good
    assert frames[2].truth is None  # not listed: unknown


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps(["a.png"]),
        json.dumps({"a.png": "scratch"}),
        json.dumps({"a.png": [["scratch", 1, 2, 3]]}),
        json.dumps({"a.png": [["scratch", 5, 5, 1, 1]]}),
        json.dumps({"a.png": [[3, 1, 2, 3, 4]]}),
    ],
)
def test_malformed_labels_file_is_a_config_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "labels.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match="labels"):
        load_labels(path)


def test_corrupt_file_raises_naming_it_and_replay_moves_on(tmp_path: Path) -> None:
    _write(tmp_path, {"a.png": 10, "c.png": 30})
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (tmp_path / "d.png").write_bytes(b"")
    cam = FolderCamera(FolderCameraConfig(path=tmp_path))
    cam.open()
    try:
        assert cam.grab(_trigger(1)).source_name == "a.png"
        with pytest.raises(CameraError, match=r"b\.png"):
            cam.grab(_trigger(2))
        assert not cam.exhausted  # broken, not done
        assert cam.grab(_trigger(3)).source_name == "c.png"
        with pytest.raises(CameraError, match=r"d\.png"):
            cam.grab(_trigger(4))
    finally:
        cam.close()


def test_exhaustion_without_loop(tmp_path: Path) -> None:
    _write(tmp_path, {"a.png": 1, "b.png": 2})
    cam = FolderCamera(FolderCameraConfig(path=tmp_path))
    cam.open()
    _grab_all(cam, 2)
    assert not cam.exhausted  # the last image was served; nothing was refused yet
    with pytest.raises(CameraError, match="replayed"):
        cam.grab(_trigger(3))
    assert cam.exhausted
    with pytest.raises(CameraError):
        cam.grab(_trigger(4))
    cam.close()
    cam.close()  # idempotent
    with pytest.raises(CameraError):
        cam.grab(_trigger(5))


def test_loop_starts_again(tmp_path: Path) -> None:
    _write(tmp_path, {"a.png": 1, "b.png": 2})
    cam = FolderCamera(FolderCameraConfig(path=tmp_path, loop=True))
    cam.open()
    names = [f.source_name for f in _grab_all(cam, 5)]
    cam.close()
    assert names == ["a.png", "b.png", "a.png", "b.png", "a.png"]
    assert not cam.exhausted


def test_missing_or_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="not a directory"):
        FolderCamera(FolderCameraConfig(path=tmp_path / "nope")).open()
    with pytest.raises(CameraError, match="no images"):
        FolderCamera(FolderCameraConfig(path=tmp_path)).open()


def test_replays_a_sim_dataset_with_its_ground_truth(tmp_path: Path) -> None:
    sim = SimCameraConfig(width=320, height=256, defects=SimDefectConfig(rate=0.5))
    labels = write_dataset(tmp_path, seed=3, count=6, cfg=sim)
    cam = FolderCamera(FolderCameraConfig(path=tmp_path, labels=labels, pixel_format="Mono8"))
    cam.open()
    frames = _grab_all(cam, 6)
    cam.close()
    for index, frame in enumerate(frames):
        image, truth = render_part(3, index, sim)
        assert np.array_equal(frame.image, image)
        assert frame.truth == truth
    assert any(f.truth for f in frames) and any(f.truth == () for f in frames)
