"""Folder replay: a camera source that serves images from a directory (step 2 of the flow).

Used by ``inspector replay``, by offline evaluation of a model on a held-out set and for
reproducing a line problem from archived NG images. Images (PNG, JPEG, BMP, TIFF) are
served in file-name order, one per ``grab``, read as Mono8 or BGR8.

An optional JSON labels file gives the ground truth::

    {"part_000001.png": [["scratch", x1, y1, x2, y2], ...], "part_000002.png": []}

A name listed with ``[]`` is a known-good part (``Frame.truth == ()``); a name absent
from the file has unknown truth (``Frame.truth is None``). ``write_dataset`` in
``sim/camera.py`` writes folders in this format.

When every image has been served and ``loop`` is off, ``grab`` raises ``CameraError``
and ``exhausted`` becomes true, so a replay loop can tell "done" from "broken". A file
that cannot be decoded raises ``CameraError`` naming it (the part is NG_NO_IMAGE) and
the next ``grab`` moves on to the next file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from inspector.config import FolderCameraConfig
from inspector.errors import CameraError, ConfigError
from inspector.types import Frame, Label, Trigger

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})

Truth = dict[str, tuple[Label, ...]]


def list_images(directory: Path) -> list[Path]:
    """Image files of ``directory`` (not recursive), sorted by name."""
    if not directory.is_dir():
        raise CameraError(f"folder camera: {directory} is not a directory")
    return sorted(
        (p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: p.name,
    )


def read_folder(directory: Path) -> Iterator[tuple[str, npt.NDArray[np.uint8]]]:
    """``(file name, BGR8 image)`` for every image of ``directory``, in name order.

    The engine build's golden and calibration images come through here (injected as
    ``engine.golden.ReadFolder``); a file that cannot be decoded raises CameraError.
    """
    for path in list_images(directory):
        yield path.name, read_image(path, "BGR8")


def load_labels(path: Path) -> Truth:
    """Read a labels file; raise ConfigError (with the offending entry) if malformed."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read labels file {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"labels file {path}: invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"labels file {path}: top level must be {{image name: [labels]}}")
    truth: Truth = {}
    for name, entries in data.items():
        if not isinstance(entries, list):
            raise ConfigError(f"labels file {path}: {name!r} must map to a list")
        truth[name] = tuple(_label(path, name, e) for e in entries)
    return truth


def _label(path: Path, name: str, entry: object) -> Label:
    ok = (
        isinstance(entry, list)
        and len(entry) == 5
        and isinstance(entry[0], str)
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in entry[1:])
    )
    if not ok:
        raise ConfigError(f"labels file {path}: {name!r}: {entry!r} is not [class, x1, y1, x2, y2]")
    assert isinstance(entry, list)  # narrowed by ``ok``
    x1, y1, x2, y2 = (float(v) for v in entry[1:])
    if not (x2 > x1 and y2 > y1):
        raise ConfigError(f"labels file {path}: {name!r}: box {entry[1:]} is empty or inverted")
    return Label(entry[0], (x1, y1, x2, y2))


def read_image(path: Path, pixel_format: str) -> npt.NDArray[np.uint8]:
    """Decode one image as Mono8 (H×W) or BGR8 (H×W×3); CameraError if it cannot be."""
    flag = cv2.IMREAD_GRAYSCALE if pixel_format == "Mono8" else cv2.IMREAD_COLOR
    try:
        # imdecode of bytes instead of imread: also works for non-ASCII paths on any OS.
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise CameraError(f"folder camera: cannot read {path}: {exc.strerror}") from exc
    image = cv2.imdecode(raw, flag) if raw.size else None
    if image is None:
        raise CameraError(f"folder camera: cannot decode {path} (corrupt or not an image)")
    # Without IMREAD_ANYDEPTH OpenCV scales 16-bit files to 8 bits: always uint8 here.
    return np.ascontiguousarray(image, dtype=np.uint8)


class FolderCamera:
    """Replays a directory of images as a ``Camera``.

    Single consumer: ``grab`` is called from one thread (the pipeline's acquisition
    thread, or the replay loop).
    """

    def __init__(self, cfg: FolderCameraConfig, name: str = "folder") -> None:
        self.cfg = cfg
        self.name = name
        self._files: list[Path] | None = None
        self._truth: Truth | None = None
        self._next = 0
        self._frame_id = 0
        self._exhausted = False

    @property
    def exhausted(self) -> bool:
        """True once a ``grab`` found no image left (never, when looping)."""
        return self._exhausted

    @property
    def count(self) -> int:
        """Number of images in the folder (0 before ``open``)."""
        return len(self._files or ())

    def open(self) -> None:
        """List the images and read the labels file; CameraError if there is nothing."""
        files = list_images(self.cfg.path)
        if not files:
            raise CameraError(f"folder camera: no images in {self.cfg.path}")
        self._truth = load_labels(self.cfg.labels) if self.cfg.labels is not None else None
        self._files = files
        self._next = 0
        self._exhausted = False

    def grab(self, trigger: Trigger) -> Frame:
        """The next image in name order (``trigger`` is not needed to choose it)."""
        if self._files is None:
            raise CameraError(f"{self.name}: grab before open (or after close)")
        if self._next >= len(self._files):
            if not self.cfg.loop:
                self._exhausted = True
                raise CameraError(f"{self.name}: all {len(self._files)} images replayed")
            self._next = 0
        path = self._files[self._next]
        self._next += 1  # a corrupt file is skipped next time, not retried forever
        image = read_image(path, self.cfg.pixel_format)
        self._frame_id += 1
        return Frame(
            image=image,
            pixel_format=self.cfg.pixel_format,
            frame_id=self._frame_id,
            t_grab_ns=time.monotonic_ns(),
            truth=self._truth.get(path.name) if self._truth is not None else None,
            source_name=path.name,
        )

    def close(self) -> None:
        """Forget the file list; safe to call twice."""
        self._files = None
