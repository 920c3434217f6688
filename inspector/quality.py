"""The image-quality gate: can this frame be judged at all? (between steps 2 and 3).

A model only says whether it sees a defect; on a black, flat, saturated or blurred frame
it sees nothing, and "nothing" reads as OK. So before any model runs, ``inspect_part``
asks ``check_quality`` whether the frame is fit to be judged, with the recipe's
``quality:`` block; a frame that fails is NG ``image_quality`` (VERDICT NG_NO_IMAGE).

Pure functions, no state. Every statistic is taken on a subsampled view of about
``samples`` pixels with an odd stride (so a Bayer mosaic contributes all four of its
colour sites): about 40 µs on a 1280×1024 Mono8 frame, whatever the frame size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from inspector.config import PresenceConfig, QualityConfig
from inspector.errors import FrameError

U8 = npt.NDArray[np.uint8]
_COLOUR = ("BGR8", "RGB8")


@dataclass(frozen=True, slots=True)
class QualityFailure:
    """The first check a frame failed: its name (the metric label) and a readable detail."""

    check: str  # brightness | contrast | saturation | focus | presence
    detail: str


@dataclass(frozen=True, slots=True)
class QualityStats:
    """The gate's measures of one frame (``measure``), for setting thresholds."""

    mean: float
    std: float
    saturated: float  # fraction of pixels at full scale
    focus: float  # variance of the Laplacian of the subsampled view


def stride(height: int, width: int, samples: int) -> int:
    """An odd step that leaves about ``samples`` pixels of a ``height``×``width`` frame."""
    step = max(1, round(math.sqrt(height * width / samples)))
    return step if step % 2 else step + 1


@dataclass(frozen=True, slots=True)
class _Sample:
    """The subsampled frame the gate reads: one grey plane and its saturated fraction."""

    grey: U8
    saturated: float  # fraction of pixels at 255 (any channel of a colour pixel)
    step: int


def _sample(img: npt.NDArray[np.uint8], pixel_format: str, samples: int) -> _Sample:
    """Every ``step``-th pixel of every ``step``-th row (odd step), as a grey plane."""
    h, w = img.shape[:2]
    step = stride(h, w, samples)
    if pixel_format in _COLOUR:
        # OpenCV's nearest-neighbour resize picks the same kind of lattice, and is ~5x
        # faster than numpy's strided gather of 3-byte pixels.
        small = cv2.resize(img, (-(-w // step), -(-h // step)), interpolation=cv2.INTER_NEAREST)
        grey = np.asarray(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), np.uint8)
        b, g, r = cv2.split(small)
        top = cv2.max(cv2.max(b, g), r)
    else:
        grey = np.ascontiguousarray(img[::step, ::step])
        top = grey
    saturated = np.count_nonzero(top == 255) / max(1, grey.size)
    return _Sample(grey, float(saturated), step)


def _mean_std(grey: U8) -> tuple[float, float]:
    mean, std = cv2.meanStdDev(grey)
    return float(mean[0, 0]), float(std[0, 0])


def focus(grey: U8) -> float:
    """Variance of the 3×3 Laplacian: high for sharp edges, low for a blurred frame."""
    lap = cv2.Laplacian(grey, cv2.CV_16S)
    _, std = cv2.meanStdDev(lap)
    return float(std[0, 0]) ** 2


def _checked(image: npt.NDArray[np.generic], pixel_format: str) -> npt.NDArray[np.uint8]:
    """The frame as 8-bit pixels; FrameError for anything the gate cannot read."""
    if image.dtype != np.uint8:
        raise FrameError(f"{pixel_format} frame must be 8-bit, is {image.dtype}")
    colour = pixel_format in _COLOUR
    if image.ndim != (3 if colour else 2) or (colour and image.shape[2] != 3):
        raise FrameError(f"{pixel_format} frame has shape {image.shape}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise FrameError(f"frame too small: {image.shape}")
    return image  # type: ignore[return-value]  # dtype checked above


def measure(image: npt.NDArray[np.generic], pixel_format: str, samples: int) -> QualityStats:
    """All of the gate's measures (tools and threshold setting; the gate itself is lazier)."""
    sample = _sample(_checked(image, pixel_format), pixel_format, samples)
    mean, std = _mean_std(sample.grey)
    return QualityStats(mean, std, sample.saturated, focus(sample.grey))


def check_quality(
    image: npt.NDArray[np.generic], pixel_format: str, cfg: QualityConfig
) -> QualityFailure | None:
    """The first check the frame fails, or None when it can be judged.

    Raises FrameError when the frame is not 8-bit (deep frames must be converted by
    their declared bit depth before they get here).
    """
    sample = _sample(_checked(image, pixel_format), pixel_format, cfg.samples)
    mean, std = _mean_std(sample.grey)
    lo, hi = cfg.mean
    if not lo <= mean <= hi:
        return QualityFailure("brightness", f"mean level {mean:.1f} outside {lo:g}..{hi:g}")
    if std < cfg.min_std:
        return QualityFailure("contrast", f"level std {std:.1f} below {cfg.min_std:g}")
    if sample.saturated > cfg.max_saturated:
        return QualityFailure(
            "saturation",
            f"{sample.saturated:.1%} of pixels saturated, above {cfg.max_saturated:.1%}",
        )
    if cfg.min_focus is not None and (sharp := focus(sample.grey)) < cfg.min_focus:
        return QualityFailure("focus", f"focus {sharp:.1f} below {cfg.min_focus:g}")
    if cfg.presence is not None:
        return _presence(sample, cfg.presence)
    return None


def _presence(sample: _Sample, cfg: PresenceConfig) -> QualityFailure | None:
    """The presence box, read on the subsample (at least one sample of it)."""
    x1, y1, x2, y2 = cfg.box
    step, grey = sample.step, sample.grey
    r0, c0 = -(-y1 // step), -(-x1 // step)
    box = grey[r0 : max(-(-y2 // step), r0 + 1), c0 : max(-(-x2 // step), c0 + 1)]
    if box.size == 0:
        return QualityFailure("presence", f"box {list(cfg.box)} lies outside the frame")
    mean, std = _mean_std(np.ascontiguousarray(box))
    lo, hi = cfg.mean
    if not lo <= mean <= hi:
        return QualityFailure(
            "presence", f"no part in box {list(cfg.box)}: mean {mean:.1f} outside {lo:g}..{hi:g}"
        )
    if std < cfg.min_std:
        return QualityFailure(
            "presence", f"no part in box {list(cfg.box)}: std {std:.1f} below {cfg.min_std:g}"
        )
    return None


def fits(cfg: QualityConfig, height: int, width: int) -> str | None:
    """Why the gate's presence box does not fit a ``height``×``width`` frame, or None."""
    if cfg.presence is None:
        return None
    x1, y1, x2, y2 = cfg.presence.box
    if x2 > width or y2 > height:
        return f"quality.presence.box {[x1, y1, x2, y2]} exceeds the {width}x{height} frame"
    return None
