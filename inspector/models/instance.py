"""Instance segmentation (Ultralytics YOLO-seg): boxes + mask coefficients + prototypes →
one finding per instance with its mask area (step 5).

Outputs read (batch 1), told apart by rank:

* detections, one of
  * ``[1, 4+nc+nm, N]`` (YOLOv8/v11-seg, YOLO26-seg plain head): rows cx, cy, w, h, nc
    class scores, nm mask coefficients; class-aware NMS here;
  * ``[1, N, 6+nm]`` (YOLO26-seg end-to-end, any ``nms=True`` export): x1, y1, x2, y2,
    score, class id, nm mask coefficients; no NMS;
* prototypes ``[1, nm, mh, mw]`` (a quarter of the input resolution).

Each kept instance's mask is Ultralytics' ``process_mask``: coefficients · prototypes,
bilinearly upsampled to the model input, a pixel belongs to the mask where its
probability exceeds ``segmentation.mask_threshold`` (0.5 is Ultralytics' ``> 0`` on the
logit), cut to the box. ``area_px`` counts mask pixels inside the image content (not
the letterbox padding), in frame pixels. Findings carry the box, class and score of the
detection. Unlike Ultralytics, an instance whose mask came out empty is kept (with
``area_px`` 0): the detector saw something, and ``min_area_px`` is the rule that decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from inspector.config import ModelConfig
from inspector.errors import ModelError
from inspector.model_info import ModelInfo
from inspector.models.base import input_hw_of, names_of
from inspector.models.detection import box_findings, decode, decode_end2end, nms
from inspector.models.identify import describe
from inspector.models.outputs import FloatArray, require_finite
from inspector.preprocess.geometry import Geometry
from inspector.types import Finding


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p)) if p < 1.0 else math.inf


def mask_areas(
    protos: FloatArray,
    coeffs: FloatArray,
    boxes: FloatArray,
    geometry: Geometry,
    threshold: float,
) -> list[float]:
    """Frame-pixel area of each instance mask, as Ultralytics' ``process_mask``
    (upsample=True): mask logits upsampled bilinearly to the model input, thresholded,
    then cut to the box; only pixels of the image content count."""
    nm, mh, mw = protos.shape
    ih, iw = geometry.dst_h, geometry.dst_w
    logits = (coeffs @ protos.reshape(nm, mh * mw)).reshape(-1, mh, mw)
    content_w, content_h = geometry.content_wh
    x0, y0 = int(geometry.pad_x), int(geometry.pad_y)
    cut = _logit(threshold)
    per_px = 1.0 / (geometry.scale_x * geometry.scale_y)
    cols = np.arange(iw, dtype=np.float32)[None, :]
    rows = np.arange(ih, dtype=np.float32)[:, None]
    areas = []
    for logit, (x1, y1, x2, y2) in zip(logits, boxes, strict=True):
        up = cv2.resize(logit, (iw, ih), interpolation=cv2.INTER_LINEAR) > cut
        up &= (cols >= x1) & (cols < x2) & (rows >= y1) & (rows < y2)
        region = up[y0 : y0 + content_h, x0 : x0 + content_w]
        areas.append(float(np.count_nonzero(region)) * per_px)
    return areas


@dataclass(frozen=True)
class InstancePostprocessor:
    """Callable postprocessor for one YOLO-seg model (see models/base.Postprocessor)."""

    name: str
    input_hw: tuple[int, int]
    class_names: tuple[str, ...]
    head: str  # "yolov8" (raw head, NMS here) or "end2end" (NMS-free)
    det_index: int
    proto_index: int
    num_masks: int
    conf: float
    iou: float
    max_det: int
    mask_threshold: float
    family: str = "segmentation"
    layout: str = "instance"

    def _split(self, outputs: list[FloatArray]) -> tuple[FloatArray, FloatArray]:
        if len(outputs) <= max(self.det_index, self.proto_index):
            raise ModelError(f"{self.name}: model returned {len(outputs)} outputs, needs 2")
        det = np.asarray(outputs[self.det_index], np.float32)
        protos = np.asarray(outputs[self.proto_index], np.float32)
        if protos.ndim != 4 or protos.shape[:2] != (1, self.num_masks):
            raise ModelError(
                f"{self.name}: prototypes must be [1, {self.num_masks}, h, w], "
                f"got {list(protos.shape)}"
            )
        require_finite(self.name, "detections", det)
        require_finite(self.name, "prototypes", protos)
        return det, protos[0]

    def _instances(
        self, det: FloatArray
    ) -> tuple[FloatArray, FloatArray, npt.NDArray[np.intp], FloatArray]:
        nc, nm = len(self.class_names), self.num_masks
        if self.head == "end2end":
            if det.ndim != 3 or det.shape[2] != 6 + nm:
                raise ModelError(
                    f"{self.name}: output must be [1, N, {6 + nm}], got {list(det.shape)}"
                )
            boxes, scores, ids = decode_end2end(self.name, det, self.conf, nc)
            coeffs = det[0][det[0][:, 4] >= self.conf][:, 6:]
            order = np.argsort(-scores, kind="stable")[: self.max_det]
            return boxes[order], scores[order], ids[order], coeffs[order]
        if det.ndim != 3 or det.shape[:2] != (1, 4 + nc + nm):
            raise ModelError(
                f"{self.name}: output must be [1, {4 + nc + nm}, N], got {list(det.shape)}"
            )
        body = det[:, : 4 + nc]
        boxes, scores, ids = decode(np.ascontiguousarray(body), "yolov8", self.conf)
        if len(scores) == 0:
            return boxes, scores, ids, np.zeros((0, nm), np.float32)
        best = body[0, 4:].max(axis=0)
        cand = np.flatnonzero(best >= self.conf)
        coeffs = det[0][4 + nc :, cand].T  # [k, nm], in decode's candidate order
        kept = nms(boxes, scores, ids, self.iou, self.max_det)
        return boxes[kept], scores[kept], ids[kept], np.ascontiguousarray(coeffs[kept])

    def __call__(self, outputs: list[FloatArray], geometry: Geometry) -> list[Finding]:
        det, protos = self._split(outputs)
        boxes, scores, ids, coeffs = self._instances(det)
        if len(scores) == 0:
            return []
        areas = mask_areas(protos, coeffs, boxes, geometry, self.mask_threshold)
        return box_findings(self.class_names, self.name, boxes, scores, ids, geometry, areas)


def build(model: ModelConfig, info: ModelInfo) -> InstancePostprocessor:
    """Bind a YOLO-seg postprocessor; refuse outputs that cannot be instance masks."""
    ranks = [len(o.shape) for o in info.outputs]
    if sorted(ranks) != [3, 4]:
        raise ModelError(
            f"{model.name}: instance segmentation needs a detection output and prototypes "
            f"[1, nm, h, w]: {describe(info)}"
        )
    det_i, proto_i = ranks.index(3), ranks.index(4)
    det, proto = info.outputs[det_i].shape, info.outputs[proto_i].shape
    nm = proto[1]
    if not isinstance(nm, int) or not isinstance(det[1], int) or not isinstance(det[2], int):
        raise ModelError(f"{model.name}: instance outputs need static sizes: {describe(info)}")
    names = names_of(model, info)
    end2end = info.metadata.get("end2end", "").lower() == "true" or det[2] == 6 + nm
    if end2end and det[1] == det[2]:  # cannot happen for real exports, but never guess
        end2end = info.metadata.get("end2end", "").lower() == "true"
    nc = None if end2end else det[1] - 4 - nm
    if names is None:
        if nc is None:
            raise ModelError(f"{model.name}: class names unknown; set class_names")
        names = tuple(f"class{i}" for i in range(nc))
    if nc is not None and nc != len(names):
        raise ModelError(
            f"{model.name}: output {list(det)} holds {nc} classes with {nm} mask "
            f"coefficients but there are {len(names)} class names {list(names)}"
        )
    opts = model.segmentation
    return InstancePostprocessor(
        name=model.name,
        input_hw=input_hw_of(model, info),
        class_names=names,
        head="end2end" if end2end else "yolov8",
        det_index=det_i,
        proto_index=proto_i,
        num_masks=nm,
        conf=opts.conf,
        iou=opts.iou,
        max_det=opts.max_det,
        mask_threshold=opts.mask_threshold,
    )
