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


def _grey(view: npt.NDArray[np.uint8], pixel_format: str) -> U8:
    """A contiguous one-channel copy of a (strided) view."""
    small = np.ascontiguousarray(view)
    if pixel_format in _COLOUR:
        return np.asarray(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), np.uint8)
    return small


def _mean_std(grey: U8) -> tuple[float, float]:
    mean, std = cv2.meanStdDev(grey)
    return float(mean[0, 0]), float(std[0, 0])


def _saturated(view: npt.NDArray[np.uint8], grey: U8, pixel_format: str) -> float:
    """Fraction of pixels with a value at 255 (any channel of a colour pixel)."""
    if pixel_format in _COLOUR:
        hits = np.count_nonzero((view == 255).any(axis=2))
    else:
        hits = np.count_nonzero(grey == 255)
    return hits / max(1, grey.size)


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
    img = _checked(image, pixel_format)
    step = stride(img.shape[0], img.shape[1], samples)
    view = img[::step, ::step]
    grey = _grey(view, pixel_format)
    mean, std = _mean_std(grey)
    return QualityStats(mean, std, _saturated(view, grey, pixel_format), focus(grey))


def check_quality(
    image: npt.NDArray[np.generic], pixel_format: str, cfg: QualityConfig
) -> QualityFailure | None:
    """The first check the frame fails, or None when it can be judged.

    Raises FrameError when the frame is not 8-bit (deep frames must be converted by
    their declared bit depth before they get here).
    """
    img = _checked(image, pixel_format)
    step = stride(img.shape[0], img.shape[1], cfg.samples)
    view = img[::step, ::step]
    grey = _grey(view, pixel_format)
    mean, std = _mean_std(grey)
    lo, hi = cfg.mean
    if not lo <= mean <= hi:
        return QualityFailure("brightness", f"mean level {mean:.1f} outside {lo:g}..{hi:g}")
    if std < cfg.min_std:
        return QualityFailure("contrast", f"level std {std:.1f} below {cfg.min_std:g}")
    saturated = _saturated(view, grey, pixel_format)
    if saturated > cfg.max_saturated:
        return QualityFailure(
            "saturation", f"{saturated:.1%} of pixels saturated, above {cfg.max_saturated:.1%}"
        )
    if cfg.min_focus is not None and (sharp := focus(grey)) < cfg.min_focus:
        return QualityFailure("focus", f"focus {sharp:.1f} below {cfg.min_focus:g}")
    if cfg.presence is not None:
        return _presence(img, pixel_format, cfg.presence, step)
    return None


def _presence(
    img: npt.NDArray[np.uint8], pixel_format: str, cfg: PresenceConfig, step: int
) -> QualityFailure | None:
    x1, y1, x2, y2 = cfg.box
    box = img[y1:y2:step, x1:x2:step]
    if box.shape[0] < 1 or box.shape[1] < 1:
        return QualityFailure("presence", f"box {list(cfg.box)} lies outside the frame")
    mean, std = _mean_std(_grey(box, pixel_format))
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
