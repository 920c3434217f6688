"""How a frame was fitted into the model input, and how to map boxes back."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inspector.errors import FrameError


@dataclass(frozen=True, slots=True)
class Geometry:
    """Frame → model-input mapping: ``model = frame * scale + pad``.

    ``scale_x``/``scale_y`` differ only for 'stretch' resizing.
    """

    src_h: int
    src_w: int
    dst_h: int
    dst_w: int
    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float

    @property
    def content_wh(self) -> tuple[int, int]:
        """Width and height of the resized frame inside the model input (the rest is
        letterbox padding)."""
        return round(self.src_w * self.scale_x), round(self.src_h * self.scale_y)

    def to_frame(self, boxes: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Map xyxy boxes from model-input pixels to frame pixels, clipped to the frame."""
        out = np.empty_like(boxes)
        # Strided slices, not fancy indexing: this runs per part, right after inference,
        # when every numpy call is cache-cold.
        np.subtract(boxes[:, 0::2], self.pad_x, out=out[:, 0::2])
        np.subtract(boxes[:, 1::2], self.pad_y, out=out[:, 1::2])
        np.divide(out[:, 0::2], self.scale_x, out=out[:, 0::2])
        np.divide(out[:, 1::2], self.scale_y, out=out[:, 1::2])
        np.clip(out[:, 0::2], 0, self.src_w, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, self.src_h, out=out[:, 1::2])
        return out


def fit(src_h: int, src_w: int, dst_h: int, dst_w: int, mode: str) -> Geometry:
    """Compute the letterbox (aspect kept, centred padding) or stretch geometry."""
    if mode == "stretch":
        return Geometry(src_h, src_w, dst_h, dst_w, dst_w / src_w, dst_h / src_h, 0.0, 0.0)
    scale = min(dst_h / src_h, dst_w / src_w)
    new_w, new_h = round(src_w * scale), round(src_h * scale)
    if new_w < 1 or new_h < 1:
        # e.g. a 4000×3 line-scan strip into 640×640: nothing of the frame would remain.
        raise FrameError(f"a {src_w}×{src_h} frame letterboxed into {dst_w}×{dst_h} is empty")
    pad_x, pad_y = (dst_w - new_w) // 2, (dst_h - new_h) // 2
    # Effective per-axis scale of the rounded size, so mapping back is exact.
    return Geometry(src_h, src_w, dst_h, dst_w, new_w / src_w, new_h / src_h, pad_x, pad_y)
