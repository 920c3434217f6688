"""The simulated production line's parts: how one synthetic part is drawn (demo only).

Each part is a machined metal plate with six drilled holes and a stamped part number,
lying on a conveyor belt, with slight random position, rotation, brightness and lighting
jitter and sensor noise. A configurable fraction of parts carries defects:

* ``scratch``: a thin bright or dark line (45..220 px long at 1280×1024);
* ``spot``: a dark or bright contamination blob (10..34 px across);
* ``missing_hole``: one of the six holes is not drilled.

``render_part(seed, index, cfg)`` is a pure function: part ``index`` of ``seed`` is
always the same image, whatever the pool size, so the training script
(tools/train_detector.py), the tests and the daemon all see the same parts. The ground
truth comes back as ``Label``s (class name + box in frame pixels), empty for good parts.

The camera that serves these parts is ``sim/camera.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from inspector.config import SimCameraConfig
from inspector.errors import ConfigError
from inspector.types import Label

#: Defect class names, in model class-id order (the demo detector uses these ids).
DEFECT_CLASSES: tuple[str, ...] = ("scratch", "spot", "missing_hole")

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]

# Geometry of the part at the reference frame size 1280×1024 (scaled for other sizes).
_REF_W, _REF_H = 1280, 1024
_PLATE_W, _PLATE_H = 820.0, 620.0
_HOLE_R = 26.0
_HOLES_LOCAL = [(fx * _PLATE_W, fy * _PLATE_H) for fy in (-0.26, 0.26) for fx in (-0.3, 0.0, 0.3)]
_BELT_TINT = np.array([0.92, 1.0, 0.94], np.float32)  # B, G, R: greenish rubber belt
_PLATE_TINT = np.array([1.03, 1.0, 0.96], np.float32)  # cool steel
_RUST_TINT = np.array([0.78, 0.93, 1.18], np.float32)  # brownish contamination


@dataclass(frozen=True, slots=True)
class _Plate:
    """Where the plate lies in this frame (frame pixels, radians)."""

    cx: float
    cy: float
    w: float
    h: float
    angle: float
    scale: float

    def to_frame(self, x: float, y: float) -> tuple[float, float]:
        """Plate-local point (origin at the plate centre) → frame pixels."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        return self.cx + c * x - s * y, self.cy + s * x + c * y


def _rng(seed: int, index: int) -> np.random.Generator:
    # Seeding by (seed, index) makes part i independent of how many parts come before.
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed % 2**63, index])))


def _paint(dst: F32, mask: U8, value: float | F32, x0: int, y0: int) -> None:
    """Blend ``value`` into ``dst`` where the 8-bit ``mask``, placed at (x0, y0), is set.

    ``value`` is a scalar, a per-channel vector, or an array laid out like the mask
    (clipped with it at the frame border).
    """
    h, w = mask.shape
    ys, xs = max(y0, 0), max(x0, 0)
    ye, xe = min(y0 + h, dst.shape[0]), min(x0 + w, dst.shape[1])
    if ye <= ys or xe <= xs:
        return
    m = mask[ys - y0 : ye - y0, xs - x0 : xe - x0].astype(np.float32) * (1.0 / 255.0)
    region = dst[ys:ye, xs:xe]
    if region.ndim == 3:
        m = m[:, :, None]
    val = value
    if isinstance(value, np.ndarray) and value.ndim >= 2:
        val = value[ys - y0 : ye - y0, xs - x0 : xe - x0]
    region *= 1.0 - m
    region += m * val


def _belt(rng: np.random.Generator, h: int, w: int) -> F32:
    """Conveyor belt: dark rubber with coarse blotches and cross seams."""
    base = float(rng.uniform(45, 70))
    coarse = rng.standard_normal((max(h // 32, 2), max(w // 32, 2)), dtype=np.float32)
    lum = base + 6.0 * cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    period = int(rng.integers(90, 140))
    phase = int(rng.integers(0, period))
    lum[:, phase::period] -= 12.0  # belt seams across the travel direction
    return lum.astype(np.float32)


def _place_plate(rng: np.random.Generator, h: int, w: int) -> _Plate:
    s = min(w / _REF_W, h / _REF_H)
    return _Plate(
        cx=w / 2 + float(rng.uniform(-40, 40)) * s,
        cy=h / 2 + float(rng.uniform(-35, 35)) * s,
        w=_PLATE_W * s * float(rng.uniform(0.97, 1.03)),
        h=_PLATE_H * s * float(rng.uniform(0.97, 1.03)),
        angle=math.radians(float(rng.uniform(-4, 4))),
        scale=s,
    )


def _draw_plate(rng: np.random.Generator, lum: F32, plate: _Plate) -> U8:
    """Shadow, brushed steel surface and bevelled edge; returns the plate mask."""
    h, w = lum.shape
    box = ((plate.cx, plate.cy), (plate.w, plate.h), math.degrees(plate.angle))
    corners = cv2.boxPoints(box).astype(np.int32)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [corners], 255, cv2.LINE_AA)
    off = round(10 * plate.scale)
    shadow = cv2.GaussianBlur(np.roll(mask, (off, off), axis=(0, 1)), (0, 0), 6 * plate.scale)
    lum *= 1.0 - 0.45 * shadow.astype(np.float32) / 255.0
    base = float(rng.uniform(135, 185))
    streaks = rng.standard_normal((h, max(w // 16, 2)), dtype=np.float32)
    brushed = cv2.resize(streaks, (w, h), interpolation=cv2.INTER_LINEAR)
    _paint(lum, mask, base + 5.0 * brushed, 0, 0)
    edge = np.zeros((h, w), np.uint8)
    cv2.polylines(edge, [corners], True, 255, max(2, round(3 * plate.scale)), cv2.LINE_AA)
    _paint(lum, edge, base - 35.0, 0, 0)
    return mask


def _draw_holes(lum: F32, plate: _Plate, missing: set[int]) -> None:
    """Drilled through-holes: dark bore, bright chamfer ring."""
    r = _HOLE_R * plate.scale
    ring = max(2, round(4 * plate.scale))
    half = math.ceil(r + ring) + 3
    for i, (lx, ly) in enumerate(_HOLES_LOCAL):
        if i in missing:
            continue
        x, y = plate.to_frame(lx * plate.scale, ly * plate.scale)
        x0, y0 = round(x) - half, round(y) - half
        centre = (round((x - x0) * 16), round((y - y0) * 16))  # 4 fractional bits
        chamfer = np.zeros((2 * half + 1, 2 * half + 1), np.uint8)
        cv2.circle(chamfer, centre, round((r + ring / 2) * 16), 255, ring, cv2.LINE_AA, 4)
        _paint(lum, chamfer, 215.0, x0, y0)
        bore = np.zeros_like(chamfer)
        cv2.circle(bore, centre, round(r * 16), 255, -1, cv2.LINE_AA, 4)
        _paint(lum, bore, 30.0, x0, y0)


def _stamp_text(rng: np.random.Generator, lum: F32, plate: _Plate) -> None:
    """A stamped part number: legitimate dark strokes the detector must not call scratches."""
    text = f"P{int(rng.integers(100, 999))}-{int(rng.integers(10, 99))}"
    x, y = plate.to_frame(-0.4 * plate.w, 0.43 * plate.h)
    scale = 0.9 * plate.scale
    thick = max(1, round(2 * plate.scale))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    mask = np.zeros((th + base + 4, tw + 4), np.uint8)
    cv2.putText(mask, text, (2, th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thick, cv2.LINE_AA)
    _paint(lum, mask, 95.0, round(x), round(y) - th - 2)


def _defect_site(rng: np.random.Generator, plate: _Plate, clearance: float) -> tuple[float, float]:
    """A random point on the bare plate surface (frame pixels): away from the edges, the
    stamped number and, by ``clearance`` plate-local pixels, from the holes, so every
    planted defect is visible (a dark spot inside a dark bore would be an unfair escape)."""
    s = plate.scale
    for _ in range(100):
        lx = float(rng.uniform(-0.42, 0.42)) * plate.w
        ly = float(rng.uniform(-0.38, 0.38)) * plate.h
        if ly > 0.34 * plate.h and lx < -0.18 * plate.w:
            continue  # the stamped part number
        near = min(math.hypot(lx - hx * s, ly - hy * s) for hx, hy in _HOLES_LOCAL)
        if near > (_HOLE_R + 6) * s + clearance * s:
            break
    return plate.to_frame(lx, ly)


def _contrast(rng: np.random.Generator, bright: float, lo: float, hi: float) -> float:
    sign = 1.0 if rng.random() < bright else -1.0
    return sign * float(rng.uniform(lo, hi))


def _draw_scratch(rng: np.random.Generator, lum: F32, plate: _Plate) -> Label:
    s = plate.scale
    x, y = _defect_site(rng, plate, clearance=25.0)
    length = float(rng.uniform(45, 220)) * s
    theta = float(rng.uniform(0, math.pi))
    dx, dy = math.cos(theta) * length / 2, math.sin(theta) * length / 2
    bend = float(rng.uniform(-0.08, 0.08)) * length
    pts = np.array(
        [
            (x - dx, y - dy),
            (x - bend * math.sin(theta), y + bend * math.cos(theta)),
            (x + dx, y + dy),
        ],
        np.float32,
    )
    thick = max(2, round(float(rng.uniform(2.0, 3.5)) * s))
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - thick - 2
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + thick + 2
    x0, y0 = max(int(x0), 0), max(int(y0), 0)
    mask = np.zeros((int(y1) - y0 + 1, int(x1) - x0 + 1), np.uint8)
    local = np.round((pts - (x0, y0)) * 16).astype(np.int32)
    cv2.polylines(mask, [local], False, 255, thick, cv2.LINE_AA, 4)
    region = lum[y0 : y0 + mask.shape[0], x0 : x0 + mask.shape[1]]
    _paint(lum, mask, region + _contrast(rng, 0.7, 45, 80), x0, y0)
    return _label("scratch", pts, thick / 2 + 1, lum.shape)


def _draw_spot(rng: np.random.Generator, lum: F32, tint: F32 | None, plate: _Plate) -> Label:
    s = plate.scale
    d_ref = float(rng.uniform(10, 34))  # diameter at the reference frame size
    x, y = _defect_site(rng, plate, clearance=d_ref / 2 + 6)
    d = d_ref * s
    ax = (d / 2, d / 2 * float(rng.uniform(0.6, 1.0)))
    half = math.ceil(d / 2) + 4
    x0, y0 = max(round(x) - half, 0), max(round(y) - half, 0)
    mask = np.zeros((2 * half + 1, 2 * half + 1), np.uint8)
    centre = (round((x - x0) * 16), round((y - y0) * 16))
    axes = (round(ax[0] * 16), round(ax[1] * 16))
    cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1, cv2.LINE_AA, 4)
    mask = np.asarray(cv2.GaussianBlur(mask, (0, 0), 1.2 * s), np.uint8)  # soft edge
    region = lum[y0 : y0 + mask.shape[0], x0 : x0 + mask.shape[1]]
    delta = _contrast(rng, 0.35, 55, 95)
    _paint(lum, mask, region + delta, x0, y0)
    if delta < 0 and tint is not None:  # dark contamination is rust/oil: brownish
        _paint(tint, mask, _RUST_TINT, x0, y0)
    pts = np.array([(x - ax[0], y - ax[0]), (x + ax[0], y + ax[0])], np.float32)
    return _label("spot", pts, 2.0, lum.shape)


def _label(name: str, pts: F32, margin: float, shape: tuple[int, ...]) -> Label:
    """A label box around ``pts`` plus ``margin``, clipped to the frame, 0.1 px steps."""
    h, w = shape[:2]
    lo = pts.min(axis=0) - margin
    hi = pts.max(axis=0) + margin
    x1, y1 = round(max(float(lo[0]), 0.0), 1), round(max(float(lo[1]), 0.0), 1)
    x2, y2 = round(min(float(hi[0]), float(w)), 1), round(min(float(hi[1]), float(h)), 1)
    return Label(name, (x1, y1, x2, y2))


def _hole_label(plate: _Plate, i: int, shape: tuple[int, ...]) -> Label:
    lx, ly = _HOLES_LOCAL[i]
    x, y = plate.to_frame(lx * plate.scale, ly * plate.scale)
    r = (_HOLE_R + 5) * plate.scale
    return _label("missing_hole", np.array([(x - r, y - r), (x + r, y + r)], np.float32), 0, shape)


def _pick_defects(rng: np.random.Generator, cfg: SimCameraConfig) -> list[str]:
    d = cfg.defects
    if rng.random() >= d.rate:
        return []
    n = int(rng.integers(1, d.max_per_part + 1))
    kinds = [str(k) for k in rng.choice(d.kinds, size=n)]
    # At most one hole is missing per part: a plate with several would be another product.
    holes = ["missing_hole"] if "missing_hole" in kinds else []
    return holes + [k for k in kinds if k != "missing_hole"]


def _render(
    seed: int, index: int, cfg: SimCameraConfig, colour: bool
) -> tuple[F32, F32 | None, tuple[Label, ...]]:
    """Luminance (float), colour tint map (colour formats only) and ground truth."""
    rng = _rng(seed, index)
    h, w = cfg.height, cfg.width
    kinds = _pick_defects(rng, cfg)
    lum = _belt(rng, h, w)
    plate = _place_plate(rng, h, w)
    plate_mask = _draw_plate(rng, lum, plate)
    missing = {int(rng.integers(0, len(_HOLES_LOCAL)))} if "missing_hole" in kinds else set()
    _draw_holes(lum, plate, missing)
    _stamp_text(rng, lum, plate)
    tint = None
    if colour:
        tint = np.empty((h, w, 3), np.float32)
        tint[:] = _BELT_TINT
        _paint(tint, plate_mask, _PLATE_TINT, 0, 0)
    labels = [_hole_label(plate, i, lum.shape) for i in sorted(missing)]
    for kind in kinds:
        if kind == "scratch":
            labels.append(_draw_scratch(rng, lum, plate))
        elif kind == "spot":
            labels.append(_draw_spot(rng, lum, tint, plate))
    gain = float(rng.uniform(0.85, 1.15))  # exposure / lamp ageing
    gx, gy = (float(v) for v in rng.uniform(-0.08, 0.08, size=2))
    lum *= gain * (
        1.0
        + gx * np.linspace(-1, 1, w, dtype=np.float32)[None, :]
        + gy * np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    )
    # Sensor noise drawn at half resolution and upsampled: 4× cheaper, looks the same.
    noise = rng.standard_normal(((h + 1) // 2, (w + 1) // 2), dtype=np.float32)
    sigma = float(rng.uniform(2.0, 4.0))
    lum += cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR) * (1.4 * sigma)
    return lum, tint, tuple(labels)


def render_bgr(seed: int, index: int, cfg: SimCameraConfig) -> tuple[U8, tuple[Label, ...]]:
    """Render part ``index`` of ``seed`` as a BGR8 image with its ground-truth labels."""
    lum, tint, labels = _render(seed, index, cfg, colour=True)
    assert tint is not None  # colour=True always builds the tint map
    return np.clip(lum[:, :, None] * tint, 0, 255).astype(np.uint8), labels


def to_pixel_format(bgr: U8, pixel_format: str) -> U8:
    """Convert a rendered BGR8 image to BGR8 or BayerRG8 (RGGB mosaic)."""
    if pixel_format == "BGR8":
        return bgr
    if pixel_format == "BayerRG8":
        h, w = bgr.shape[:2]
        out = np.empty((h, w), np.uint8)
        out[0::2, 0::2] = bgr[0::2, 0::2, 2]  # R
        out[0::2, 1::2] = bgr[0::2, 1::2, 1]  # G
        out[1::2, 0::2] = bgr[1::2, 0::2, 1]  # G
        out[1::2, 1::2] = bgr[1::2, 1::2, 0]  # B
        return out
    raise ConfigError(f"sim camera cannot render pixel format {pixel_format!r}")


def render_part(seed: int, index: int, cfg: SimCameraConfig) -> tuple[U8, tuple[Label, ...]]:
    """Render part ``index`` of ``seed`` in ``cfg.pixel_format``, with ground truth.

    Pure and deterministic: the same arguments give the same bytes on every call.
    """
    if cfg.pixel_format == "Mono8":  # no colour work at all: the common, fast case
        lum, _, labels = _render(seed, index, cfg, colour=False)
        return np.clip(lum, 0, 255).astype(np.uint8), labels
    bgr, labels = render_bgr(seed, index, cfg)
    return to_pixel_format(bgr, cfg.pixel_format), labels
