"""Score map → blobs in frame pixels: the shared end of segmentation and anomaly (step 5).

A model's map is ``h×w`` cells covering the whole model input (``dst_h×dst_w``), often
at a lower resolution (a stride). The steps:

1. crop the cells whose centre lies in the letterbox padding, so grey or black padding
   can never become a defect;
2. threshold the rest and label connected components (8-connected);
3. map each component's cell box to model-input pixels (× stride), then to the frame
   through ``Geometry.to_frame``; its area scales by ``stride² / (scale_x·scale_y)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from inspector.preprocess.geometry import Geometry

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Blob:
    """One connected region of a map above threshold, in frame pixels."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    area_px: float
    value: float  # mean or max of the map inside the region, in map units


def _cell_index(model_px: float, stride: float) -> int:
    """First cell whose centre lies at or beyond ``model_px`` (model-input pixels)."""
    return max(0, math.ceil(model_px / stride - 0.5))


def valid_cells(shape: tuple[int, int], geometry: Geometry) -> tuple[slice, slice]:
    """Rows and columns of an ``h×w`` map whose cell centres lie inside the image content."""
    h, w = shape
    stride_y, stride_x = geometry.dst_h / h, geometry.dst_w / w
    content_w, content_h = geometry.content_wh
    x0 = _cell_index(geometry.pad_x, stride_x)
    x1 = min(w, _cell_index(geometry.pad_x + content_w, stride_x))
    y0 = _cell_index(geometry.pad_y, stride_y)
    y1 = min(h, _cell_index(geometry.pad_y + content_h, stride_y))
    return slice(y0, max(y0, y1)), slice(x0, max(x0, x1))


def find_blobs(
    score_map: FloatArray,
    threshold: float,
    geometry: Geometry,
    *,
    reduce: Literal["mean", "max"] = "mean",
    max_blobs: int = 100,
) -> list[Blob]:
    """Connected regions of ``score_map`` (``h×w``) at or above ``threshold``.

    Returns at most ``max_blobs`` blobs, largest first; ``value`` is the mean or max of
    the map inside each blob. Cells in the letterbox padding are ignored.
    """
    h, w = score_map.shape
    rows, cols = valid_cells((h, w), geometry)
    content = score_map[rows, cols]
    if content.size == 0:
        return []
    mask = (content >= threshold).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return []
    order = np.argsort(-stats[1:, cv2.CC_STAT_AREA], kind="stable")[:max_blobs] + 1
    stride_y, stride_x = geometry.dst_h / h, geometry.dst_w / w
    cell_area = stride_x * stride_y / (geometry.scale_x * geometry.scale_y)
    cell_boxes = np.empty((len(order), 4), np.float32)
    values: list[float] = []
    areas: list[float] = []
    for row, label in enumerate(order):
        x, y, bw, bh, area = (int(v) for v in stats[label])
        cell_boxes[row] = (
            (x + cols.start) * stride_x,
            (y + rows.start) * stride_y,
            (x + bw + cols.start) * stride_x,
            (y + bh + rows.start) * stride_y,
        )
        inside = content[y : y + bh, x : x + bw][labels[y : y + bh, x : x + bw] == label]
        values.append(float(inside.mean() if reduce == "mean" else inside.max()))
        areas.append(area * cell_area)
    frame_boxes = geometry.to_frame(cell_boxes)
    return [
        Blob(box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])), area_px=a, value=v)
        for b, a, v in zip(frame_boxes, areas, values, strict=True)
    ]
