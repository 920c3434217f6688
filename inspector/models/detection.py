"""YOLO-style detection: raw output → findings, with class-aware NMS in numpy.

Two output layouts are read, both for batch 1:

* YOLOv8/v11 (Ultralytics): ``[1, 4+nc, N]``, rows cx, cy, w, h, then nc class scores
  (already sigmoid-ed, no objectness);
* YOLOv5: ``[1, N, 5+nc]``, columns cx, cy, w, h, objectness, then nc class scores.

Boxes are in model-input pixels; ``Geometry.to_frame`` maps them back to the frame.
Class names and input size come from config, else from Ultralytics ONNX metadata
(``names``, ``imgsz``; values are Python reprs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inspector.config import ModelConfig
from inspector.errors import ModelError
from inspector.model_info import ModelInfo
from inspector.models.base import input_hw_of, names_of
from inspector.models.outputs import FloatArray, first_output, require_finite
from inspector.preprocess.geometry import Geometry
from inspector.types import Finding


def detect_layout(shape: tuple[int, ...], nc: int | None) -> str:
    """Return 'yolov8' or 'yolov5' for a raw output shape; raise ModelError if neither."""
    if len(shape) != 3 or shape[0] != 1:
        raise ModelError(f"detection output must be [1, A, B], got {list(shape)}")
    _, a, b = shape
    if nc is not None:
        if a == 4 + nc:
            return "yolov8"
        if b == 5 + nc:
            return "yolov5"
        raise ModelError(
            f"detection output {list(shape)} fits neither [1, 4+{nc}, N] nor [1, N, 5+{nc}]"
        )
    # Without class names: the candidate axis is the long one.
    if a < b and a > 4:
        return "yolov8"
    if b < a and b > 5:
        return "yolov5"
    raise ModelError(f"cannot tell the detection layout of {list(shape)}; set model.layout")


def decode(
    raw: FloatArray, layout: str, conf_floor: float
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.intp]]:
    """Candidates above ``conf_floor`` as (xyxy boxes, scores, class ids)."""
    n_fixed = 4 if layout == "yolov8" else 5
    if raw.shape[1 if layout == "yolov8" else 2] <= n_fixed:
        raise ModelError("detection output has no class columns")
    # Threshold on the best class score first, so only candidates are gathered.
    if layout == "yolov8":
        body = raw[0]  # [4+nc, N], rows contiguous
        best = body[4:].max(axis=0)
        keep = np.flatnonzero(best >= conf_floor)
        preds = body[:, keep].T  # [k, 4+nc]
        cls_scores = preds[:, 4:]
    else:
        body = raw[0]  # [N, 5+nc]
        all_scores = body[:, 5:] * body[:, 4:5]
        best = all_scores.max(axis=1, initial=0.0)
        keep = np.flatnonzero(best >= conf_floor)
        preds = body[keep]
        cls_scores = all_scores[keep]
    if keep.size == 0:  # the common case on a good line: skip the gathering below
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.intp)
    class_ids = cls_scores.argmax(axis=1)
    scores = cls_scores[np.arange(len(cls_scores)), class_ids]
    c = preds[:, :4]
    boxes = np.empty_like(c)
    half_w, half_h = c[:, 2] / 2, c[:, 3] / 2
    boxes[:, 0], boxes[:, 1] = c[:, 0] - half_w, c[:, 1] - half_h
    boxes[:, 2], boxes[:, 3] = c[:, 0] + half_w, c[:, 1] + half_h
    return boxes, scores.astype(np.float32), class_ids


def nms(
    boxes: FloatArray,
    scores: FloatArray,
    class_ids: npt.NDArray[np.intp],
    iou_threshold: float,
    max_det: int,
) -> npt.NDArray[np.intp]:
    """Class-aware greedy NMS; returns kept indices, best score first.

    Boxes of different classes never suppress each other: each class is shifted to its
    own region of the plane, so one vectorised IoU pass serves all classes.
    """
    if len(boxes) == 0:
        return np.zeros(0, np.intp)
    span = float(boxes.max() - boxes.min()) + 1.0
    shifted = boxes + (class_ids.astype(np.float32) * span)[:, None]
    x1, y1, x2, y2 = shifted.T
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    order = scores.argsort()[::-1]
    keep: list[int] = []
    while order.size and len(keep) < max_det:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0)
        ih = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0)
        inter = iw * ih
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, np.intp)


@dataclass(frozen=True)
class DetectionPostprocessor:
    """Callable postprocessor for one detection model (see models/base.Postprocessor)."""

    name: str
    input_hw: tuple[int, int]
    class_names: tuple[str, ...]
    layout: str
    conf_floor: float
    iou_threshold: float
    max_detections: int

    def __call__(self, outputs: list[FloatArray], geometry: Geometry) -> list[Finding]:
        raw = first_output(self.name, outputs)
        layout = detect_layout(raw.shape, len(self.class_names))
        if self.layout != "auto" and layout != self.layout:
            raise ModelError(f"{self.name}: output {list(raw.shape)} is not {self.layout}")
        require_finite(self.name, "output", raw)  # a NaN anywhere: a broken model or engine
        boxes, scores, class_ids = decode(raw, layout, self.conf_floor)
        if len(scores) == 0:
            return []
        kept = nms(boxes, scores, class_ids, self.iou_threshold, self.max_detections)
        frame_boxes = geometry.to_frame(boxes[kept])
        return [
            Finding(
                class_name=self.class_names[int(class_ids[k])],
                class_id=int(class_ids[k]),
                confidence=float(scores[k]),
                box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                model=self.name,
            )
            for k, b in zip(kept, frame_boxes, strict=True)
        ]


def build(model: ModelConfig, info: ModelInfo) -> DetectionPostprocessor:
    """Bind a detection postprocessor to a loaded model, reading its metadata."""
    names = names_of(model, info)
    input_hw = input_hw_of(model, info)
    if names is None:
        out_shape = info.outputs[0].shape
        if len(out_shape) != 3 or not all(isinstance(d, int) for d in out_shape[1:]):
            raise ModelError(f"{model.name}: class names unknown; set model.class_names")
        layout = detect_layout(tuple(int(d or 0) for d in out_shape), None)
        nc = (out_shape[1] or 0) - 4 if layout == "yolov8" else (out_shape[2] or 0) - 5
        names = tuple(f"class{i}" for i in range(nc))
    return DetectionPostprocessor(
        name=model.name,
        input_hw=input_hw,
        class_names=names,
        layout=model.layout,
        conf_floor=model.conf_floor,
        iou_threshold=model.iou_threshold,
        max_detections=model.max_detections,
    )
