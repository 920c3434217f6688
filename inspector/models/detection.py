"""YOLO-style detection: raw outputs → findings (step 5), with class-aware NMS in numpy.

Output layouts read, all for batch 1:

* ``yolov8`` (YOLOv8/v11/YOLO26 plain head): ``[1, 4+nc, N]``, rows cx, cy, w, h, then
  nc class scores (already sigmoid-ed, no objectness);
* ``yolov5``: ``[1, N, 5+nc]``, columns cx, cy, w, h, objectness, then nc class scores;
* ``end2end`` (NMS-free: YOLO26 and YOLOv10 end-to-end heads, any Ultralytics
  ``nms=True`` export): ``[1, N, 6]``, columns x1, y1, x2, y2, score, class id; no NMS;
* ``efficient_nms`` (TensorRT's EfficientNMS plugin): ``num_dets [1,1]``,
  ``det_boxes [1,K,4]`` (x1, y1, x2, y2), ``det_scores [1,K]``, ``det_classes [1,K]``.

Boxes are in model-input pixels; ``Geometry.to_frame`` maps them back to the frame.
Class names and input size come from config, else from Ultralytics ONNX metadata
(``names``, ``imgsz``; values are Python reprs). ``detection.conf`` / ``iou`` /
``max_det`` default to Ultralytics' 0.25 / 0.7 / 300. Everything the model alone can
tell (layout, class count against the names) is checked at start by ``build``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inspector.config import ModelConfig
from inspector.errors import ModelError
from inspector.model_info import ModelInfo
from inspector.models.base import input_hw_of, names_of
from inspector.models.identify import MAX_END2END, describe, efficient_nms_indices
from inspector.models.outputs import FloatArray, first_output, require_finite
from inspector.preprocess.geometry import Geometry
from inspector.types import Finding


def detect_layout(shape: tuple[int, ...], nc: int | None) -> str:
    """Return 'yolov8' or 'yolov5' for a raw output shape; raise ModelError if neither."""
    if len(shape) != 3 or shape[0] != 1:
        raise ModelError(f"detection output must be [1, A, B], got {list(shape)}")
    _, a, b = shape
    if nc is not None and a == 4 + nc and b == 5 + nc:
        raise ModelError(f"detection output {list(shape)} is ambiguous; set detection.layout")
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
    """Class-aware greedy NMS; returns kept indices, best score first, equal scores in
    candidate (anchor) order: a fixed order, the device NMS's too (``gpu/detect.py``), so
    tied candidates (saturated scores of 1.0 are common) resolve the same way everywhere.

    Boxes of different classes never suppress each other: each class is shifted to its
    own region of the plane, so one vectorised IoU pass serves all classes.
    """
    if len(boxes) == 0:
        return np.zeros(0, np.intp)
    span = float(boxes.max() - boxes.min()) + 1.0
    shifted = boxes + (class_ids.astype(np.float32) * span)[:, None]
    x1, y1, x2, y2 = shifted.T
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    order = np.argsort(-scores, kind="stable")
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


def _rows(name: str, raw: FloatArray, cols: int, what: str) -> FloatArray:
    if raw.ndim != 3 or raw.shape[0] != 1 or raw.shape[2] < cols:
        raise ModelError(f"{name}: {what} output must be [1, N, {cols}], got {list(raw.shape)}")
    rows: FloatArray = raw[0]
    return rows


def decode_end2end(
    name: str, raw: FloatArray, conf: float, nc: int
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.intp]]:
    """``[1, N, 6(+extra)]`` rows x1, y1, x2, y2, score, class → kept (boxes, scores, ids)."""
    rows = _rows(name, raw, 6, "end-to-end")
    keep = rows[:, 4] >= conf
    picked = rows[keep]
    ids = picked[:, 5]
    if picked.size and (ids.min() < 0 or ids.max() > nc - 1 or (ids != np.round(ids)).any()):
        raise ModelError(f"{name}: class id outside 0..{nc - 1} in the end-to-end output")
    boxes: FloatArray = picked[:, :4]
    return boxes, picked[:, 4], ids.astype(np.intp)


def decode_efficient_nms(
    name: str, outputs: list[FloatArray], idx: tuple[int, int, int, int], conf: float, nc: int
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.intp]]:
    """TensorRT EfficientNMS (count, boxes, scores, classes) → kept (boxes, scores, ids)."""
    count_raw, boxes_raw, scores_raw, classes_raw = (np.asarray(outputs[i]) for i in idx)
    for what, arr in zip(
        ("count", "boxes", "scores", "classes"),
        (count_raw, boxes_raw, scores_raw, classes_raw),
        strict=True,
    ):
        require_finite(name, f"EfficientNMS {what}", arr.astype(np.float32))
    if count_raw.size != 1 or boxes_raw.ndim != 3 or boxes_raw.shape[-1] != 4:
        raise ModelError(f"{name}: EfficientNMS outputs have unexpected shapes")
    k = boxes_raw.shape[1]
    n = int(count_raw.reshape(()))
    if not 0 <= n <= k or scores_raw.size != k or classes_raw.size != k:
        raise ModelError(f"{name}: EfficientNMS reports {n} detections of {k} slots")
    boxes = boxes_raw[0, :n].astype(np.float32)
    scores = scores_raw.reshape(k)[:n].astype(np.float32)
    ids = classes_raw.reshape(k)[:n]
    if n and (ids.min() < 0 or ids.max() > nc - 1):
        raise ModelError(f"{name}: class id outside 0..{nc - 1} in EfficientNMS output")
    keep = scores >= conf
    return boxes[keep], scores[keep], ids[keep].astype(np.intp)


@dataclass(frozen=True)
class DetectionPostprocessor:
    """Callable postprocessor for one detection model (see models/base.Postprocessor)."""

    name: str
    input_hw: tuple[int, int]
    class_names: tuple[str, ...]
    layout: str
    conf: float
    iou: float
    max_det: int
    nms_indices: tuple[int, int, int, int] | None = None
    family: str = "detection"

    def candidates(
        self, outputs: list[FloatArray]
    ) -> tuple[FloatArray, FloatArray, npt.NDArray[np.intp]]:
        """Kept boxes (model-input xyxy), scores and class ids, best first, NMS applied."""
        nc = len(self.class_names)
        if self.layout == "efficient_nms":
            assert self.nms_indices is not None  # build sets it for this layout
            if len(outputs) <= max(self.nms_indices):
                raise ModelError(f"{self.name}: model returned {len(outputs)} outputs, needs 4")
            boxes, scores, ids = decode_efficient_nms(
                self.name, outputs, self.nms_indices, self.conf, nc
            )
            order = np.argsort(-scores, kind="stable")[: self.max_det]
            return boxes[order], scores[order], ids[order]
        raw = first_output(self.name, outputs)
        require_finite(self.name, "output", raw)  # a NaN anywhere: a broken model or engine
        if self.layout == "end2end":
            boxes, scores, ids = decode_end2end(self.name, raw, self.conf, nc)
            order = np.argsort(-scores, kind="stable")[: self.max_det]
            return boxes[order], scores[order], ids[order]
        if detect_layout(raw.shape, nc) != self.layout:
            raise ModelError(f"{self.name}: output {list(raw.shape)} is not {self.layout}")
        boxes, scores, ids = decode(raw, self.layout, self.conf)
        kept = nms(boxes, scores, ids, self.iou, self.max_det)
        return boxes[kept], scores[kept], ids[kept]

    def __call__(self, outputs: list[FloatArray], geometry: Geometry) -> list[Finding]:
        boxes, scores, class_ids = self.candidates(outputs)
        return self.findings(boxes, scores, class_ids, geometry)

    def findings(
        self,
        boxes: FloatArray,
        scores: FloatArray,
        class_ids: npt.NDArray[np.intp],
        geometry: Geometry,
    ) -> list[Finding]:
        """Final boxes (model-input xyxy, after NMS) as findings in frame pixels: the
        tail of the CPU path, and of the device path, which runs NMS on the GPU
        (``gpu/detect.py``)."""
        return box_findings(self.class_names, self.name, boxes, scores, class_ids, geometry)


def box_findings(
    class_names: tuple[str, ...],
    model: str,
    boxes: FloatArray,
    scores: FloatArray,
    class_ids: npt.NDArray[np.intp],
    geometry: Geometry,
    areas: list[float] | None = None,
) -> list[Finding]:
    """Boxes in model-input xyxy → findings in frame pixels (with mask areas when known);
    shared by the detection and instance-segmentation families."""
    if len(scores) == 0:
        return []
    frame_boxes = geometry.to_frame(np.ascontiguousarray(boxes, np.float32))
    per_box = areas if areas is not None else [None] * len(scores)
    # .tolist() turns each array into Python numbers at once (the same values float()
    # and int() give one element at a time, at a fraction of the per-part cost).
    rows = zip(frame_boxes.tolist(), scores.tolist(), class_ids.tolist(), per_box, strict=True)
    return [
        Finding(
            class_name=class_names[c],
            class_id=c,
            confidence=s,
            box=(b[0], b[1], b[2], b[3]),
            model=model,
            area_px=a,
        )
        for b, s, c, a in rows
    ]


def _raw_head_names(
    model: ModelConfig, info: ModelInfo, names: tuple[str, ...] | None, layout: str
) -> tuple[str, tuple[str, ...]]:
    """Layout and class names of a raw ``[1, A, B]`` head, checked against each other."""
    shape = info.outputs[0].shape
    if len(shape) != 3 or not all(isinstance(d, int) for d in shape[1:]):
        if names is None or layout == "auto":
            raise ModelError(
                f"{model.name}: detection output {list(shape)} is not a static [1, A, B]; "
                f"set class_names and detection.layout ({describe(info)})"
            )
        return layout, names
    dims = tuple(int(d or 1) for d in shape)
    try:
        found = detect_layout(dims, len(names) if names is not None else None)
    except ModelError as exc:  # at start: name the model and show what it outputs
        raise ModelError(f"{model.name}: {exc} ({describe(info)})") from exc
    if layout not in ("auto", found):
        raise ModelError(f"{model.name}: output {list(shape)} is '{found}', not '{layout}'")
    nc = dims[1] - 4 if found == "yolov8" else dims[2] - 5
    if names is None:
        names = tuple(f"class{i}" for i in range(nc))
    return found, names


def _looks_end2end(info: ModelInfo, names: tuple[str, ...] | None) -> bool:
    """NMS-free ``[1, N, 6]``: Ultralytics says so (``end2end``, or ``nms=True`` in the
    export args), or the shape can only be read that way."""
    meta = info.metadata
    if meta.get("end2end", "").lower() == "true" or "'nms': True" in meta.get("args", ""):
        return True
    shape = info.outputs[0].shape if info.outputs else ()
    if len(shape) != 3 or shape[2] != 6 or not isinstance(shape[1], int):
        return False
    fits_v5 = names is not None and len(names) == 1  # [1, N, 5+1]: a one-class YOLOv5
    return shape[1] <= MAX_END2END and not fits_v5


def build(model: ModelConfig, info: ModelInfo, layout: str = "auto") -> DetectionPostprocessor:
    """Bind a detection postprocessor to a loaded model; refuse what cannot work."""
    names = names_of(model, info)
    input_hw = input_hw_of(model, info)
    opts = model.detection
    layout = opts.layout if opts.layout != "auto" else layout
    if layout == "auto" and _looks_end2end(info, names):
        layout = "end2end"
    idx = efficient_nms_indices(info.outputs) if layout == "efficient_nms" else None
    if layout == "efficient_nms" and idx is None:
        raise ModelError(f"{model.name}: no EfficientNMS outputs: {describe(info)}")
    if layout in ("end2end", "efficient_nms"):
        shape = info.outputs[0].shape
        if layout == "end2end" and (len(shape) != 3 or (shape[2] or 6) < 6):
            raise ModelError(f"{model.name}: end-to-end output must be [1, N, 6]: {describe(info)}")
        if names is None:
            raise ModelError(
                f"{model.name}: class names unknown for an NMS-free output; set class_names"
            )
    else:
        layout, names = _raw_head_names(model, info, names, layout)
    return DetectionPostprocessor(
        name=model.name,
        input_hw=input_hw,
        class_names=names,
        layout=layout,
        conf=opts.conf,
        iou=opts.iou,
        max_det=opts.max_det,
        nms_indices=idx,
    )
