"""Pixel conversion of the GenICam source (step 2 of the flow, no harvesters import).

``convert_raw()`` / ``convert()``: the pixels of one GenTL buffer → the 8-bit array the
preprocessor accepts (Mono8, RGB8, BGR8 or an 8-bit Bayer mosaic), in exactly one copy,
so the producer's buffer can be queued again as soon as it returns. ``convert_raw``
takes the producer's bytes (what the source uses; packed formats are unpacked straight
to 8 bits); ``convert`` takes arrays as harvesters' ``Component`` delivers them (uint16
for 10/12/16-bit formats, packed ones already expanded). Tested without a camera.
Matching frames to parts is ``camera/matching.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from inspector.camera.base import FrameAllocator, host_frame
from inspector.errors import FrameError

# ------------------------------------------------------------------ pixel formats
_BAYER = re.compile(r"^Bayer(RG|BG|GR|GB)(8|10|12|16)(p|Packed)?$")
_MONO = re.compile(r"^Mono(8|10|12|16)(p|Packed)?$")
# 8-bit colour formats: name -> (values per pixel in the buffer, output format)
_COLOR8 = {
    "RGB8": (3, "RGB8"),
    "BGR8": (3, "BGR8"),
    "RGBa8": (4, "RGB8"),
    "BGRa8": (4, "BGR8"),
}


@dataclass(frozen=True, slots=True)
class PixelLayout:
    """How one GenICam pixel format arrives and what it becomes."""

    channels: int  # values per pixel in the delivered array
    depth: int  # significant bits per value (8, 10, 12, 16)
    out_format: str  # the 8-bit format handed to preprocessing
    packing: str = ""  # "" unpacked, "p" (PFNC LSB packed), "Packed" (GigE Vision 1.x)


def layout_of(pixel_format: str) -> PixelLayout:
    """The layout of a supported GenICam pixel format; FrameError for any other."""
    if (color := _COLOR8.get(pixel_format)) is not None:
        return PixelLayout(channels=color[0], depth=8, out_format=color[1])
    if (m := _MONO.match(pixel_format)) is not None:
        depth = int(m.group(1))
        if depth == 8 and m.group(2):
            raise FrameError(f"unsupported pixel format {pixel_format!r}")
        return PixelLayout(1, depth, "Mono8", m.group(2) or "")
    if (m := _BAYER.match(pixel_format)) is not None:
        depth = int(m.group(2))
        if depth == 8 and m.group(3):
            raise FrameError(f"unsupported pixel format {pixel_format!r}")
        # A deeper mosaic keeps its pattern: BayerRG12 -> BayerRG8, debayered later.
        return PixelLayout(1, depth, f"Bayer{m.group(1)}8", m.group(3) or "")
    raise FrameError(
        f"unsupported pixel format {pixel_format!r}; supported: Mono8/10/12/16 (packed or "
        "not), Bayer{RG,BG,GR,GB}8/10/12/16 (packed or not), RGB8, BGR8, RGBa8, BGRa8"
    )


def is_supported(pixel_format: str) -> bool:
    """True when ``convert`` accepts this GenICam pixel format."""
    try:
        layout_of(pixel_format)
    except FrameError:
        return False
    return True


def convert(
    data: npt.NDArray[np.generic],
    width: int,
    height: int,
    pixel_format: str,
    *,
    x_padding: int = 0,
    alloc: FrameAllocator | None = None,
) -> tuple[npt.NDArray[np.uint8], str]:
    """Copy one delivered buffer into a new 8-bit image; returns (image, pixel format).

    ``data`` is the flat component array as harvesters delivers it (it may be a view on
    the producer's memory: the result never is). ``x_padding`` is the number of padding
    *bytes* at the end of each line. The image is allocated by ``alloc`` when given (the
    GPU's pinned frame pool: the one copy lands where the GPU reads it). A buffer whose
    size does not match the announced geometry is damaged: FrameError, so it is never
    inferred on.
    """
    layout = layout_of(pixel_format)
    want_dtype = np.uint8 if layout.depth == 8 else np.uint16
    if data.dtype != want_dtype or data.ndim != 1:
        raise FrameError(
            f"{pixel_format} buffer must be a flat {np.dtype(want_dtype)} array, "
            f"is {data.dtype} with shape {data.shape}"
        )
    if width < 2 or height < 2:
        raise FrameError(f"{pixel_format} buffer has an implausible size {width}x{height}")
    view = _image_view(data, width, height, layout, x_padding, pixel_format)
    out = (alloc or host_frame)(view.shape[:2] + ((3,) if view.ndim == 3 else ()))
    if layout.channels == 4:
        # Dropping alpha: OpenCV's SIMD loop is ~100x numpy's strided copy (same bytes).
        cv2.cvtColor(view.view(np.uint8), cv2.COLOR_RGBA2RGB, dst=out)
    elif layout.depth == 8:
        # The only copy: out of the producer's memory, leaving line padding behind.
        np.copyto(out, view)
    else:
        # One pass, one output array: shift the LSB-aligned value down to its top 8 bits.
        np.right_shift(view, layout.depth - 8, out=out, casting="unsafe")
    return out, layout.out_format


def convert_raw(
    raw: npt.NDArray[np.uint8],
    width: int,
    height: int,
    pixel_format: str,
    *,
    x_padding: int = 0,
    alloc: FrameAllocator | None = None,
) -> tuple[npt.NDArray[np.uint8], str]:
    """Like ``convert``, from the producer's raw bytes (little-endian PFNC layout).

    Packed formats are unpacked straight to their top 8 bits, without the 16-bit
    intermediate harvesters would build (10-20 ms for a 3 MP frame in Python); other
    formats are viewed in place and go through ``convert``. Still exactly one copy.
    """
    layout = layout_of(pixel_format)
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise FrameError(f"raw {pixel_format} buffer must be flat bytes, is {raw.dtype}")
    if not layout.packing:
        if layout.depth > 8:
            raw = raw[: raw.size - raw.size % 2]
            return convert(
                raw.view("<u2"), width, height, pixel_format, x_padding=x_padding, alloc=alloc
            )
        return convert(raw, width, height, pixel_format, x_padding=x_padding, alloc=alloc)
    group_px, group_bytes = (4, 5) if layout.packing == "p" and layout.depth == 10 else (2, 3)
    if width % group_px or width < 2 or height < 2:
        raise FrameError(f"{pixel_format} width {width} is not whole {group_px}-pixel groups")
    line = width // group_px * group_bytes + x_padding
    if raw.size < line * height:
        raise FrameError(
            f"damaged {pixel_format} buffer: {raw.size} bytes for {width}x{height} "
            f"(needs {line * height})"
        )
    flat = np.ascontiguousarray(raw[: line * height])  # already contiguous: no copy
    out = (alloc or host_frame)((height, width))
    _unpack_top8(flat, out, layout, line, group_bytes)
    return out, layout.out_format


def _unpack_top8(
    flat: npt.NDArray[np.uint8],
    out: npt.NDArray[np.uint8],
    layout: PixelLayout,
    line: int,
    group: int,
) -> None:
    """Write the top 8 bits of each packed pixel to ``out``, one pass per pixel slot.

    Each slot reads a little-endian uint16 at its byte offset inside every group (an
    unaligned strided view, no copy), shifts it and keeps the low byte on the way into
    ``out``: no temporaries, no 16-bit image.
    """
    height, width = out.shape
    groups = width // (4 if layout.packing == "p" and layout.depth == 10 else 2)

    def at(offset: int, dtype: str) -> npt.NDArray[np.generic]:
        view: npt.NDArray[np.generic] = np.ndarray(
            (height, groups), dtype, buffer=flat, offset=offset, strides=(line, group)
        )
        return view

    if layout.packing == "Packed":  # GigE Vision: B0 and B2 hold each pixel's high bits
        np.copyto(out[:, 0::2], at(0, "u1"))
        np.copyto(out[:, 1::2], at(2, "u1"))
    elif layout.depth == 12:  # 12p: p0 = bits 0-11, p1 = bits 12-23 (LSB first)
        np.right_shift(at(0, "<u2"), 4, out=out[:, 0::2], casting="unsafe")
        np.copyto(out[:, 1::2], at(2, "u1"))
    else:  # 10p: four pixels in 40 bits, least significant first
        np.right_shift(at(0, "<u2"), 2, out=out[:, 0::4], casting="unsafe")
        np.right_shift(at(1, "<u2"), 4, out=out[:, 1::4], casting="unsafe")
        np.right_shift(at(2, "<u2"), 6, out=out[:, 2::4], casting="unsafe")
        np.copyto(out[:, 3::4], at(4, "u1"))


def _image_view(
    data: npt.NDArray[np.generic],
    width: int,
    height: int,
    layout: PixelLayout,
    x_padding: int,
    pixel_format: str,
) -> npt.NDArray[np.generic]:
    """A (H, W) or (H, W, C) view of ``data``, skipping line padding; no copy."""
    itemsize = data.dtype.itemsize
    if x_padding % itemsize:
        raise FrameError(f"{pixel_format} line padding of {x_padding} bytes is not whole values")
    line = width * layout.channels + x_padding // itemsize
    need = line * height
    if data.size < need:
        raise FrameError(
            f"damaged {pixel_format} buffer: {data.size} values for {width}x{height} (needs {need})"
        )
    rows = data[:need].reshape(height, line)[:, : width * layout.channels]
    if layout.channels == 1:
        return rows
    return rows.reshape(height, width, layout.channels)
