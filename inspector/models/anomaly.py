"""Anomaly detection (PatchCore/PaDiM style, anomalib exports): map + score → findings
(step 5).

Outputs read (batch 1), found by name first, else by shape:

* the anomaly map: a name containing ``anomaly_map``, else the one output of rank ≥ 3;
  ``[1, 1, h, w]`` or ``[1, h, w]``, at the input resolution or below;
* the image score: a name containing ``score``, else the one output with a single
  value; ``[]``, ``[1]`` or ``[1, 1]``. Without it the score is the maximum of the map
  over the image content (letterbox padding excluded).

Other outputs (``pred_label``, ``pred_mask``) are ignored: the thresholds here decide.

Findings, all of class ``anomaly`` (or the one configured class name):

* one image-level finding, box = whole frame, when score ≥ ``model.anomaly_threshold``;
* one localised finding per blob of the map ≥ ``model.mask_threshold`` (whatever the
  image score: a localised defect on an otherwise normal part is still a defect), with
  ``area_px`` in frame pixels.

Thresholds are in the model's units (0.5 for normalised anomalib exports). Confidence
is ``value / (2 * threshold)`` clipped to 0..1: identity for normalised exports, and
for raw scores it puts the threshold at 0.5, the rules' default ``min_confidence``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inspector.config import ModelConfig
from inspector.errors import ModelError
from inspector.model_info import ModelInfo, TensorSpec
from inspector.models.base import input_hw_of
from inspector.models.blobs import find_blobs, valid_cells
from inspector.models.outputs import FloatArray, require_finite
from inspector.preprocess.geometry import Geometry
from inspector.types import Finding

_IGNORED_NAMES = ("label", "mask")


def _is_spatial(spec: TensorSpec) -> bool:
    return len(spec.shape) >= 3


def _is_single(spec: TensorSpec) -> bool:
    return len(spec.shape) <= 2 and all(d in (1, None) for d in spec.shape)


def _pick(model: str, what: str, candidates: list[int]) -> int | None:
    if len(candidates) > 1:
        raise ModelError(
            f"{model}: cannot tell which of outputs {candidates} is the {what}; export it "
            f"with a name containing {'anomaly_map' if what == 'map' else 'score'!r}"
        )
    return candidates[0] if candidates else None


def locate_outputs(model: str, outputs: tuple[TensorSpec, ...]) -> tuple[int | None, int | None]:
    """Indices of the anomaly map and the image score (None when the model lacks one)."""
    names = [o.name.lower() for o in outputs]
    by_name_map = [i for i, n in enumerate(names) if "anomaly_map" in n]
    by_name_score = [i for i, n in enumerate(names) if "score" in n]
    rest = [
        i
        for i, n in enumerate(names)
        if i not in by_name_map + by_name_score and not any(x in n for x in _IGNORED_NAMES)
    ]
    map_idx = _pick(model, "map", by_name_map or [i for i in rest if _is_spatial(outputs[i])])
    score_idx = _pick(model, "score", by_name_score or [i for i in rest if _is_single(outputs[i])])
    if map_idx is None and score_idx is None:
        shapes = {o.name: list(o.shape) for o in outputs}
        raise ModelError(f"{model}: no anomaly map or score among outputs {shapes}")
    return map_idx, score_idx


def confidence(value: float, threshold: float) -> float:
    """Map a value in model units to 0..1 so that ``threshold`` reads as 0.5."""
    return float(min(1.0, max(0.0, value / (2.0 * threshold))))


@dataclass(frozen=True)
class AnomalyPostprocessor:
    """Callable postprocessor for one anomaly model (see models/base.Postprocessor)."""

    name: str
    input_hw: tuple[int, int]
    class_names: tuple[str, ...]
    map_index: int | None
    score_index: int | None
    anomaly_threshold: float
    mask_threshold: float
    max_blobs: int

    def _map(self, outputs: list[FloatArray]) -> FloatArray | None:
        if self.map_index is None:
            return None
        raw = np.asarray(outputs[self.map_index], np.float32)
        if raw.ndim not in (3, 4) or raw.shape[0] != 1 or (raw.ndim == 4 and raw.shape[1] != 1):
            raise ModelError(
                f"{self.name}: anomaly map must be [1, 1, h, w] or [1, h, w], got {list(raw.shape)}"
            )
        if raw.shape[-1] < 1 or raw.shape[-2] < 1:
            raise ModelError(f"{self.name}: anomaly map is empty: {list(raw.shape)}")
        require_finite(self.name, "anomaly map", raw)
        return raw.reshape(raw.shape[-2], raw.shape[-1])

    def _score(
        self, outputs: list[FloatArray], amap: FloatArray | None, geometry: Geometry
    ) -> float:
        if self.score_index is not None:
            raw = np.asarray(outputs[self.score_index], np.float32)
            if raw.size != 1 or raw.ndim > 2:
                raise ModelError(
                    f"{self.name}: anomaly score must be one value, got {list(raw.shape)}"
                )
            require_finite(self.name, "anomaly score", raw)
            return float(raw.reshape(()))
        if amap is None:  # locate_outputs never allows this; fail closed if it ever does
            raise ModelError(f"{self.name}: anomaly model has neither score nor map")
        content = amap[valid_cells(amap.shape, geometry)]
        if content.size == 0:
            raise ModelError(f"{self.name}: anomaly map {list(amap.shape)} has no image content")
        return float(content.max())

    def __call__(self, outputs: list[FloatArray], geometry: Geometry) -> list[Finding]:
        needed = max(i for i in (self.map_index, self.score_index) if i is not None) + 1
        if len(outputs) < needed:
            raise ModelError(f"{self.name}: model returned {len(outputs)} outputs, needs {needed}")
        amap = self._map(outputs)
        score = self._score(outputs, amap, geometry)
        cls = self.class_names[0]
        findings: list[Finding] = []
        if score >= self.anomaly_threshold:
            frame = (0.0, 0.0, float(geometry.src_w), float(geometry.src_h))
            conf = confidence(score, self.anomaly_threshold)
            findings.append(Finding(cls, 0, conf, frame, model=self.name))
        if amap is not None:
            for blob in find_blobs(
                amap, self.mask_threshold, geometry, reduce="max", max_blobs=self.max_blobs
            ):
                conf = confidence(blob.value, self.mask_threshold)
                findings.append(Finding(cls, 0, conf, blob.box, self.name, blob.area_px))
        return findings


def build(model: ModelConfig, info: ModelInfo) -> AnomalyPostprocessor:
    """Bind an anomaly postprocessor to a loaded model, locating its map and score."""
    names = tuple(model.class_names) if model.class_names else ("anomaly",)
    if len(names) != 1:
        raise ModelError(f"{model.name}: an anomaly model has one class; got names {list(names)}")
    map_index, score_index = locate_outputs(model.name, info.outputs)
    return AnomalyPostprocessor(
        name=model.name,
        input_hw=input_hw_of(model, info),
        class_names=names,
        map_index=map_index,
        score_index=score_index,
        anomaly_threshold=model.anomaly_threshold,
        mask_threshold=model.mask_threshold,
        max_blobs=model.max_detections,
    )
