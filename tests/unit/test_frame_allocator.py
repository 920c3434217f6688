"""Cameras write frames into memory from a ``FrameAllocator`` (the GPU's pinned pool).

On a CPU, a recording allocator stands in for the pinned pool: the GenICam conversion's
one copy, the sim camera's pool and the folder camera's decoded images must land in the
buffers it gave, with the same pixels as without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inspector.camera.convert import convert_raw
from inspector.camera.folder import FolderCamera
from inspector.config import FolderCameraConfig, SimCameraConfig
from inspector.sim.camera import SimCamera, write_dataset
from inspector.types import Trigger


class Recording:
    def __init__(self) -> None:
        self.given: list[np.ndarray] = []

    def __call__(self, shape: tuple[int, ...]) -> np.ndarray:
        buf = np.full(shape, 77, np.uint8)  # not zeros: an unwritten pixel shows
        self.given.append(buf)
        return buf

    def owns(self, image: np.ndarray) -> bool:
        return any(np.shares_memory(image, b) for b in self.given)


def test_genicam_conversion_copies_straight_into_the_allocated_frame() -> None:
    rng = np.random.default_rng(31)
    for fmt, raw in (
        ("Mono8", rng.integers(0, 256, 6 * 4, dtype=np.uint8)),
        ("Mono12p", rng.integers(0, 256, 6 * 4 * 3 // 2, dtype=np.uint8)),
        ("BayerRG8", rng.integers(0, 256, 6 * 4, dtype=np.uint8)),
    ):
        alloc = Recording()
        want, _ = convert_raw(raw, 6, 4, fmt)
        got, _ = convert_raw(raw, 6, 4, fmt, alloc=alloc)
        assert alloc.owns(got), fmt
        np.testing.assert_array_equal(got, want)


def test_sim_pool_and_folder_frames_land_in_the_allocated_buffers(tmp_path: Path) -> None:
    cfg = SimCameraConfig(width=160, height=128, pool_size=2)
    alloc = Recording()
    cam = SimCamera(cfg, alloc=alloc)
    plain = SimCamera(cfg)
    cam.open()
    plain.open()
    frame = cam.grab(Trigger(1, 1, 0, 0))
    assert alloc.owns(frame.image) and len(alloc.given) == 2  # the pool, once
    np.testing.assert_array_equal(frame.image, plain.grab(Trigger(1, 1, 0, 0)).image)
    write_dataset(tmp_path, 3, 2, SimCameraConfig(width=96, height=64))
    folder = FolderCamera(FolderCameraConfig(path=tmp_path), alloc=alloc)
    folder.open()
    image = folder.grab(Trigger(1, 1, 0, 0)).image
    assert alloc.owns(image)
    assert image.shape[:2] == (64, 96) and (image != 77).any()
