"""CPU preprocessing with OpenCV/numpy: frame → float32 NCHW tensor + Geometry.

Accepted frames are 8-bit: Mono8 (H×W), BGR8/RGB8 (H×W×3) and the Bayer 8-bit mosaics
(H×W; debayered here, as the GPU path does in its fused kernel). Cameras convert deeper
formats to these before handing frames over (camera/convert.py).

Order of work: debayer → resize (mono frames stay one channel until the end, which is
cheaper) → pad → scale/normalise → channel order → CHW.
"""

from __future__ import annotations

import functools

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


def preprocess(
    image: npt.NDArray[np.uint8],
    pixel_format: str,
    input_hw: tuple[int, int],
    cfg: PreprocessConfig,
    out: npt.NDArray[np.float32] | None = None,
    *,
    padding_done: bool = False,
) -> tuple[npt.NDArray[np.float32], Geometry]:
    """Turn one frame into a ``[1, 3, H, W]`` float32 tensor and its geometry.

    ``out``, when given, is reused (a fresh 5 MB tensor per part costs page faults); the
    caller must be done with the previous contents. ``padding_done`` says that ``out``
    already holds this geometry's letterbox border (same frame size as last time).
    """
    check_frame(image, pixel_format)
    img = to_color(image, pixel_format)
    src_order = "RGB" if pixel_format == "RGB8" else "BGR"
    dst_h, dst_w = input_hw
    geo = fit(img.shape[0], img.shape[1], dst_h, dst_w, cfg.resize)
    new_w, new_h = round(geo.src_w * geo.scale_x), round(geo.src_h * geo.scale_y)
    resized = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)

    scale, offset = affine(cfg)
    if out is None or out.shape != (1, 3, dst_h, dst_w):
        out = np.empty((1, 3, dst_h, dst_w), np.float32)
        padding_done = False
    px, py = int(geo.pad_x), int(geo.pad_y)
    if not padding_done:
        _fill_padding(out[0], cfg.pad_value * scale + offset, px, py, new_w, new_h)
    region = out[0, :, py : py + new_h, px : px + new_w]
    flip = src_order != cfg.channel_order
    uniform = bool(np.all(scale == scale[0]) and np.all(offset == offset[0]))
    if resized.ndim == 2 and uniform:
        # Mono with the same normalisation on every channel: compute one plane, copy it.
        np.multiply(resized, scale[0], out=region[0], casting="unsafe")
        if offset[0] != 0.0:
            region[0] += offset[0]
        region[1] = region[0]
        region[2] = region[0]
        return out, geo
    for c in range(3):
        src = resized if resized.ndim == 2 else resized[:, :, 2 - c if flip else c]
        # One pass from uint8 straight into the float32 output (no temporaries).
        np.multiply(src, scale[c], out=region[c], casting="unsafe")
        if offset[c] != 0.0:
            region[c] += offset[c]
    return out, geo


def _fill_padding(
    out: npt.NDArray[np.float32], value: npt.NDArray[np.float32], px: int, py: int, w: int, h: int
) -> None:
    """Write the letterbox border only (the image region is overwritten anyway)."""
    v = value[:, None, None]
    out[:, :py, :] = v
    out[:, py + h :, :] = v
    out[:, py : py + h, :px] = v
    out[:, py : py + h, px + w :] = v
