"""CPU preprocessing with OpenCV/numpy: frame → float32 NCHW tensor + Geometry.

Accepted frames are 8-bit: Mono8 (H×W), BGR8/RGB8 (H×W×3) and the Bayer 8-bit mosaics
(H×W; debayered here, as the GPU path does in its fused kernel). Cameras convert deeper
formats to these before handing frames over (camera/convert.py).

Order of work: debayer → resize (mono frames stay one channel until the end, which is
cheaper) → scale/normalise, channel order and CHW in one table lookup per plane. The
letterbox border is written once per frame size.
"""

from __future__ import annotations

import functools
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from inspector.config import PreprocessConfig
from inspector.errors import FrameError
from inspector.preprocess.geometry import Geometry, fit

# GenICam names the top-left 2×2 of the mosaic (BayerRG = R G / G B). OpenCV's RGGB
# aliases use the same convention.
_DEBAYER = {
    "BayerRG8": cv2.COLOR_BayerRGGB2BGR,
    "BayerBG8": cv2.COLOR_BayerBGGR2BGR,
    "BayerGR8": cv2.COLOR_BayerGRBG2BGR,
    "BayerGB8": cv2.COLOR_BayerGBRG2BGR,
}
PIXEL_FORMATS = ("Mono8", "BGR8", "RGB8", *_DEBAYER)


def check_frame(image: npt.NDArray[np.generic], pixel_format: str) -> None:
    """Raise FrameError unless ``image`` is a plausible frame of ``pixel_format``."""
    if pixel_format not in PIXEL_FORMATS:
        raise FrameError(f"unsupported pixel format {pixel_format!r}; expected {PIXEL_FORMATS}")
    if image.dtype != np.uint8:
        raise FrameError(f"{pixel_format} frame must be uint8, is {image.dtype}")
    want_ndim = 3 if pixel_format in ("BGR8", "RGB8") else 2
    if image.ndim != want_ndim or (want_ndim == 3 and image.shape[2] != 3):
        raise FrameError(f"{pixel_format} frame has shape {image.shape}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise FrameError(f"frame too small: {image.shape}")


def to_color(image: npt.NDArray[np.uint8], pixel_format: str) -> npt.NDArray[np.uint8]:
    """Debayer or pass through; returns Mono (H×W) or BGR/RGB (H×W×3) as given."""
    code = _DEBAYER.get(pixel_format)
    if code is not None:
        return np.asarray(cv2.cvtColor(image, code), dtype=np.uint8)
    return image


@functools.lru_cache(maxsize=64)
def affine(cfg: PreprocessConfig) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Per model channel, ``(pixel / 255 - mean) / std == pixel * scale + offset``.

    Cached per (frozen) config, so the constants are computed once, not per part. The
    arrays are shared: read them, never write them.
    """
    mean = np.asarray(cfg.mean, np.float32)  # RGB order in config
    std = np.asarray(cfg.std, np.float32)
    if cfg.channel_order == "BGR":
        mean, std = mean[::-1], std[::-1]
    scale = (1.0 / (255.0 * std)).astype(np.float32)
    offset = (-mean / std).astype(np.float32)
    return scale, offset


def pad_levels(cfg: PreprocessConfig) -> npt.NDArray[np.float32]:
    """Per model channel, the letterbox border's value: ``pad_value * scale + offset``."""
    scale, offset = affine(cfg)
    return (cfg.pad_value * scale + offset).astype(np.float32)


class HostPreprocessor:
    """One model's CPU preprocessing, with everything that is fixed per model done once.

    The per-part call is the hot path of a CPU line and runs right after inference,
    when caches are cold, so it does the minimum: the frame check, the geometry, the
    letterbox border and the normalisation tables are recomputed only when the frame's
    shape or pixel format changes. Each part is then a resize into a reused buffer and
    one table lookup (``cv2.LUT``: ``pixel * scale + offset`` in one pass, exactly the
    float32 values numpy would compute) per output plane, straight into the reused
    tensor. One instance serves one worker: the returned tensor is overwritten by the
    next call.
    """

    def __init__(self, input_hw: tuple[int, int], cfg: PreprocessConfig) -> None:
        self.input_hw, self.cfg = input_hw, cfg
        scale, offset = affine(cfg)
        levels = np.arange(256, dtype=np.float32)[:, None]
        # tables[c][v] == v * scale[c] + offset[c], in float32 as in the reference maths
        self._tables = [np.ascontiguousarray((levels * scale[c] + offset[c]).T) for c in range(3)]
        self._one_table = all(np.array_equal(t, self._tables[0]) for t in self._tables)
        self._pad = pad_levels(cfg)
        dst_h, dst_w = input_hw
        self._out = np.empty((1, 3, dst_h, dst_w), np.float32)
        self._key: tuple[object, ...] | None = None
        # Set by _prepare for the current frame shape and format:
        self._geo: Geometry | None = None
        self._debayer: int | None = None  # cv2 colour-conversion code, Bayer formats only
        self._color: npt.NDArray[np.uint8] | None = None  # its output buffer
        self._resized: npt.NDArray[np.uint8] | None = None  # None: frame is input-sized
        self._flip = False  # colour planes come in the reverse of the model's order

    def __call__(
        self, image: npt.NDArray[np.uint8], pixel_format: str
    ) -> tuple[npt.NDArray[np.float32], Geometry]:
        """Fill the model input from one frame; returns (the reused tensor, geometry)."""
        key = (image.shape, image.dtype.str, pixel_format)
        if key != self._key:
            self._prepare(image, pixel_format)
            self._key = key
        geo = self._geo
        assert geo is not None
        img = image
        if self._debayer is not None:
            img = _u8(cv2.cvtColor(image, self._debayer, dst=self._color))
        src = img
        if self._resized is not None:
            new_h, new_w = self._resized.shape[:2]
            out = cv2.resize(img, (new_w, new_h), dst=self._resized, interpolation=cv2.INTER_LINEAR)
            _into(out, self._resized)
            src = self._resized
        px, py = int(geo.pad_x), int(geo.pad_y)
        region = self._out[0, :, py : py + src.shape[0], px : px + src.shape[1]]
        if src.ndim == 2 and self._one_table:
            # Mono with the same normalisation on every channel: one plane, copied.
            _into(cv2.LUT(src, self._tables[0], dst=region[0]), region[0])
            np.copyto(region[1], region[0])
            np.copyto(region[2], region[0])
            return self._out, geo
        planes = [src] * 3 if src.ndim == 2 else [_u8(p) for p in cv2.split(src)]
        if self._flip:
            planes.reverse()
        for c in range(3):
            _into(cv2.LUT(planes[c], self._tables[c], dst=region[c]), region[c])
        return self._out, geo

    def _prepare(self, image: npt.NDArray[np.uint8], pixel_format: str) -> None:
        """New frame shape or format: check it, fit it, size the buffers, draw the border."""
        check_frame(image, pixel_format)
        h, w = image.shape[:2]
        dst_h, dst_w = self.input_hw
        geo = fit(h, w, dst_h, dst_w, self.cfg.resize)
        new_w, new_h = geo.content_wh
        mono = pixel_format == "Mono8"
        self._debayer = _DEBAYER.get(pixel_format)
        self._color = np.empty((h, w, 3), np.uint8) if self._debayer is not None else None
        self._resized = None
        if (new_h, new_w) != (h, w):
            self._resized = np.empty((new_h, new_w) if mono else (new_h, new_w, 3), np.uint8)
        src_order = "RGB" if pixel_format == "RGB8" else "BGR"
        self._flip = not mono and src_order != self.cfg.channel_order
        self._geo = geo
        _fill_padding(self._out[0], self._pad, int(geo.pad_x), int(geo.pad_y), new_w, new_h)


def preprocess(
    image: npt.NDArray[np.uint8],
    pixel_format: str,
    input_hw: tuple[int, int],
    cfg: PreprocessConfig,
) -> tuple[npt.NDArray[np.float32], Geometry]:
    """One frame into a fresh ``[1, 3, H, W]`` float32 tensor and its geometry.

    For one-off use (tools, tests, golden checks); a worker keeps a ``HostPreprocessor``.
    """
    return HostPreprocessor(input_hw, cfg)(image, pixel_format)


def _u8(array: object) -> npt.NDArray[np.uint8]:
    """OpenCV's stubs return ``Mat | ndarray``; its results here are always uint8 arrays."""
    return cast("npt.NDArray[np.uint8]", array)


def _into(result: npt.NDArray[np.generic], dst: npt.NDArray[np.generic]) -> None:
    """OpenCV writes into ``dst`` when it can; copy if it had to allocate instead."""
    if result is not dst and not np.shares_memory(result, dst):
        np.copyto(dst, result)


def _fill_padding(
    out: npt.NDArray[np.float32], value: npt.NDArray[np.float32], px: int, py: int, w: int, h: int
) -> None:
    """Write the letterbox border only (the image region is overwritten anyway)."""
    v = value[:, None, None]
    out[:, :py, :] = v
    out[:, py + h :, :] = v
    out[:, py : py + h, :px] = v
    out[:, py : py + h, px + w :] = v
