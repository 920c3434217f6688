"""Anomaly detection (anomalib exports): score + map → findings (step 5).

Two export styles are recognised at start (``models/identify.py``):

* **anomalib 2.x** (``v2``): outputs found by name: ``pred_score`` ``[1]``,
  ``anomaly_map`` ``[1,1,h,w]`` or ``[1,h,w]``, and ``pred_label`` / ``pred_mask``. With
  the post-processor in the graph (its ``pred_label`` or ``pred_mask`` is exported) the
  score and map are **normalised**: 0..1 with the threshold learnt at training at 0.5.
  ``pred_label`` and ``pred_mask`` are the graph's own decisions at 0.5; they are read
  only to check the export and are otherwise ignored, so the recipe's thresholds decide.
* **anomalib 1.x style** (``v1``): a raw map (and optionally a raw score) plus the
  ``metadata.json`` anomalib writes next to the model (``image_threshold``,
  ``pixel_threshold``, ``min``, ``max``). Raw values are normalised here exactly as
  anomalib does: ``clip((x - threshold) / (max - min) + 0.5, 0, 1)``.

Either way the thresholds in the recipe (``anomaly.image_threshold``,
``anomaly.pixel_threshold``, default 0.5 = the graph's own) are on the normalised
scale, so a line can move them without re-exporting. Without a score output the score
is the maximum of the normalised map over the image content (letterbox padding
excluded). Raw outputs without ``metadata.json`` are refused at start.

Findings, all of class ``anomaly`` (or the one configured class name):

* one image-level finding, box = whole frame, when score ≥ ``image_threshold``;
* one localised finding per blob of the map ≥ ``pixel_threshold`` (whatever the image
  score: a localised defect on an otherwise normal part is still a defect), with
  ``area_px`` in frame pixels.

Confidence is the normalised value (the score, or the blob's peak).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from inspector.config import ModelConfig
from inspector.errors import ModelError
from inspector.model_info import ModelInfo, TensorSpec
from inspector.models.base import input_hw_of
from inspector.models.blobs import find_blobs, valid_cells
from inspector.models.identify import describe, v1_metadata_path
from inspector.models.outputs import FloatArray, require_finite
from inspector.preprocess.geometry import Geometry
from inspector.types import Finding

_DECISIONS = ("pred_label", "pred_mask")
# Normalised values are clipped to 0..1 by anomalib; allow float rounding.
_TOL = 1e-4


@dataclass(frozen=True, slots=True)
class Normaliser:
    """anomalib's min-max normalisation: the training threshold lands on 0.5."""

    image_threshold: float
    pixel_threshold: float
    min: float
    max: float

    def __call__(self, raw: FloatArray, threshold: float) -> FloatArray:
        out: FloatArray = np.clip((raw - threshold) / (self.max - self.min) + 0.5, 0.0, 1.0)
        return out


def read_metadata(model: ModelConfig) -> Normaliser:
    """The v1 ``metadata.json``; ModelError (refused at start) if missing or incomplete."""
    path = v1_metadata_path(model)
    if path is None:
        raise ModelError(
            f"{model.name}: raw anomaly outputs need anomalib's metadata.json (thresholds, "
            "min, max) next to the model or at anomaly.metadata"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        norm = Normaliser(
            float(data["image_threshold"]),
            float(data["pixel_threshold"]),
            float(data["min"]),
            float(data["max"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(
            f"{model.name}: {path} must hold numbers image_threshold, pixel_threshold, min "
            f"and max: {exc!r}"
        ) from exc
    values = (norm.image_threshold, norm.pixel_threshold, norm.min, norm.max)
    if not all(np.isfinite(values)) or norm.max <= norm.min:
        raise ModelError(f"{model.name}: {path}: min must be below max, all finite")
    return norm


def _index(outputs: tuple[TensorSpec, ...], *keys: str) -> int | None:
    names = [o.name.lower() for o in outputs]
    hits = [i for i, n in enumerate(names) if any(k in n for k in keys)]
    if len(hits) > 1:
        raise ModelError(f"several outputs match {keys}: {[outputs[i].name for i in hits]}")
    return hits[0] if hits else None


def locate_outputs(model: ModelConfig, info: ModelInfo) -> tuple[int | None, int | None]:
    """Indices of the anomaly map and the image score (None when the model lacks one)."""
    outs = info.outputs
    try:
        map_idx = _index(outs, "anomaly_map")
        score_idx = _index(outs, "pred_score", "score")
    except ModelError as exc:
        raise ModelError(f"{model.name}: {exc}; {describe(info)}") from exc
    rest = [
        i
        for i, o in enumerate(outs)
        if i not in (map_idx, score_idx) and not any(d in o.name.lower() for d in _DECISIONS)
    ]
    if map_idx is None:
        spatial = [i for i in rest if len(outs[i].shape) >= 3]
        map_idx = spatial[0] if len(spatial) == 1 else None
    if score_idx is None:
        single = [i for i in rest if i != map_idx and _is_single(outs[i])]
        score_idx = single[0] if len(single) == 1 else None
    if map_idx is None and score_idx is None:
        raise ModelError(f"{model.name}: no anomaly map or score among outputs: {describe(info)}")
    return map_idx, score_idx


def _is_single(spec: TensorSpec) -> bool:
    return len(spec.shape) <= 2 and all(d in (1, None) for d in spec.shape)


@dataclass(frozen=True)
class AnomalyPostprocessor:
    """Callable postprocessor for one anomaly model (see models/base.Postprocessor)."""

    name: str
    input_hw: tuple[int, int]
    class_names: tuple[str, ...]
    layout: str  # "v2" (normalised in the graph) or "v1" (raw + metadata.json)
    map_index: int | None
    score_index: int | None
    image_threshold: float
    pixel_threshold: float
    max_blobs: int
    normaliser: Normaliser | None = None
    family: str = "anomaly"

    def _normalised(self, raw: FloatArray, what: str, pixel: bool) -> FloatArray:
        require_finite(self.name, what, raw)
        if self.normaliser is None:
            if raw.size and (raw.min() < -_TOL or raw.max() > 1.0 + _TOL):
                raise ModelError(f"{self.name}: {what} is not normalised to 0..1")
            return raw
        norm = self.normaliser
        return norm(raw, norm.pixel_threshold if pixel else norm.image_threshold)

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
        flat = raw.reshape(raw.shape[-2], raw.shape[-1])
        return self._normalised(flat, "anomaly map", pixel=True)

    def _score(
        self, outputs: list[FloatArray], amap: FloatArray | None, geometry: Geometry
    ) -> float:
        if self.score_index is not None:
            raw = np.asarray(outputs[self.score_index], np.float32)
            if raw.size != 1 or raw.ndim > 2:
                raise ModelError(
                    f"{self.name}: anomaly score must be one value, got {list(raw.shape)}"
                )
            return float(self._normalised(raw, "anomaly score", pixel=False).reshape(()))
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
        if score >= self.image_threshold:
            frame = (0.0, 0.0, float(geometry.src_w), float(geometry.src_h))
            findings.append(Finding(cls, 0, min(1.0, score), frame, model=self.name))
        if amap is not None:
            for blob in find_blobs(
                amap, self.pixel_threshold, geometry, reduce="max", max_blobs=self.max_blobs
            ):
                conf = min(1.0, blob.value)
                findings.append(Finding(cls, 0, conf, blob.box, self.name, blob.area_px))
        return findings


def _check_map_channels(model: ModelConfig, info: ModelInfo, map_index: int | None) -> None:
    if map_index is None:
        return
    shape = info.outputs[map_index].shape
    channels = shape[1] if len(shape) == 4 else 1
    if len(shape) not in (3, 4) or (isinstance(channels, int) and channels != 1):
        raise ModelError(
            f"{model.name}: the anomaly map must have one channel ([1, 1, h, w] or [1, h, w]), "
            f"model declares {list(shape)}: {describe(info)}. A multi-channel map is a "
            "segmentation output: set family: segmentation"
        )


def build(model: ModelConfig, info: ModelInfo, layout: str = "auto") -> AnomalyPostprocessor:
    """Bind an anomaly postprocessor to a loaded model, locating its map and score.

    ``layout`` ('v1', 'v2' or 'auto') is what identification saw; the outputs decide: the
    graph's decisions exported mean normalised values, otherwise metadata.json is read.
    """
    names = tuple(model.class_names) if model.class_names else ("anomaly",)
    if len(names) != 1:
        raise ModelError(f"{model.name}: an anomaly model has one class; got names {list(names)}")
    map_index, score_index = locate_outputs(model, info)
    _check_map_channels(model, info, map_index)
    in_graph = any(any(d in o.name.lower() for d in _DECISIONS) for o in info.outputs)
    normaliser = None if in_graph else read_metadata(model)
    return AnomalyPostprocessor(
        name=model.name,
        input_hw=input_hw_of(model, info),
        class_names=names,
        layout="v2" if in_graph else "v1",
        map_index=map_index,
        score_index=score_index,
        image_threshold=model.anomaly.image_threshold,
        pixel_threshold=model.anomaly.pixel_threshold,
        max_blobs=model.anomaly.max_det,
        normaliser=normaliser,
    )
