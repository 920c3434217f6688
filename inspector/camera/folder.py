"""Folder replay: a camera source that serves images from a directory (step 2 of the flow).

Used by ``inspector replay``, by offline evaluation of a model on a held-out set and for
reproducing a line problem from archived NG images. Images (PNG, JPEG, BMP, TIFF) are
served in file-name order, one per ``grab``, read as Mono8 or BGR8. Files deeper than
8 bits (16-bit PNG/TIFF) need their depth declared (``bit_depth``) and are scaled by
it; undeclared, or larger than ``max_pixels`` (read from the header, before
decoding), they are refused with ``FrameError`` (the part is NG_NO_IMAGE).

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

from inspector.camera.base import FrameAllocator
from inspector.camera.header import read_header
from inspector.config import FolderCameraConfig
from inspector.errors import CameraError, ConfigError, FrameError
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


#: Bytes a file may have per allowed pixel (16-bit RGBA uncompressed), plus headers.
_BYTES_PER_PIXEL = 8
_HEADER_SLACK = 1 << 20


def read_image(
    path: Path, pixel_format: str, *, bit_depth: int = 8, max_pixels: int = 16_777_216
) -> npt.NDArray[np.uint8]:
    """Decode one image as Mono8 (H×W) or BGR8 (H×W×3); CameraError if it cannot be.

    Before decoding, the file size and the header's width × height are checked against
    ``max_pixels`` (FrameError: too large to decode within a cycle). A file deeper than
    8 bits is served only when ``bit_depth`` declares its depth, and scaled by it; an
    8-bit file under a declared deeper depth, a 16-bit file under ``bit_depth`` 8, or a
    value above the declared depth is refused (FrameError): never scaled by guess.
    """
    flag = cv2.IMREAD_GRAYSCALE if pixel_format == "Mono8" else cv2.IMREAD_COLOR
    try:
        size = path.stat().st_size
        if size > max_pixels * _BYTES_PER_PIXEL + _HEADER_SLACK:
            raise FrameError(f"folder camera: {path} has {size} bytes, too large to decode")
        header = read_header(path)
        if header.pixels > max_pixels:
            raise FrameError(
                f"folder camera: {path} is {header.width}x{header.height}, above "
                f"camera.folder.max_pixels {max_pixels}: refused before decoding"
            )
        # imdecode of bytes instead of imread: also works for non-ASCII paths on any OS.
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise CameraError(f"folder camera: cannot read {path}: {exc.strerror}") from exc
    # ANYDEPTH: a 16-bit file stays 16-bit, so its depth is checked, never guessed.
    image = cv2.imdecode(raw, flag | cv2.IMREAD_ANYDEPTH) if raw.size else None
    if image is None:
        raise CameraError(f"folder camera: cannot decode {path} (corrupt or not an image)")
    return to_8bit(image, bit_depth, path)


def to_8bit(image: npt.NDArray[np.generic], bit_depth: int, path: Path) -> npt.NDArray[np.uint8]:
    """A decoded image as 8 bits, scaled by its declared ``bit_depth``; FrameError if the
    file's depth does not match the declaration."""
    if image.dtype == np.uint8:
        if bit_depth != 8:
            raise FrameError(
                f"folder camera: {path} is 8-bit but camera.folder.bit_depth is {bit_depth}"
            )
        return np.ascontiguousarray(image)
    if image.dtype != np.uint16:
        raise FrameError(f"folder camera: {path} has {image.dtype} samples; not supported")
    if bit_depth == 8:
        raise FrameError(
            f"folder camera: {path} is a 16-bit image; declare its depth in "
            "camera.folder.bit_depth (10, 12 or 16): it is never scaled by guess"
        )
    top = int(image.max())
    if top >> bit_depth:
        raise FrameError(
            f"folder camera: {path} holds value {top}, above the declared {bit_depth}-bit range"
        )
    out = np.empty(image.shape, np.uint8)
    np.right_shift(image, bit_depth - 8, out=out, casting="unsafe")
    return out


class FolderCamera:
    """Replays a directory of images as a ``Camera``.

    Single consumer: ``grab`` is called from one thread (the pipeline's acquisition
    thread, or the replay loop).
    """

    def __init__(
        self, cfg: FolderCameraConfig, name: str = "folder", *, alloc: FrameAllocator | None = None
    ) -> None:
        self.cfg = cfg
        self.name = name
        self._alloc = alloc  # where decoded frames land (pinned memory on the GPU path)
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
        cfg = self.cfg
        image = read_image(
            path, cfg.pixel_format, bit_depth=cfg.bit_depth, max_pixels=cfg.max_pixels
        )
        if self._alloc is not None and image.dtype == np.uint8:  # one copy into the slot
            slot = self._alloc(image.shape)
            np.copyto(slot, image)
            image = slot
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
