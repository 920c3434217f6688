"""Semantic segmentation (U-Net, torchvision, YOLO26 semantic): maps → one finding per
defect blob (step 5). Instance masks (YOLO-seg) are ``models/instance.py``.

Layouts read (batch 1, the model's first output), ``h×w`` equal to the model input or
smaller by a stride:

* ``[1, C, h, w]`` float logits or probabilities (see below);
* ``[1, h, w]`` (or ``[1, 1, h, w]``) integer class map, as YOLO26 semantic exports give
  (``uint8``, argmax baked into the graph): value ``v`` is class ``v`` and class 0 (the
  first name) is the background, never reported; with one class, value 1 is that
  class. There are no probabilities, so each blob's confidence is 1.0 and
  ``mask_threshold`` does not apply. Values that are not whole class ids are an error,
  never OK.

* ``C == 1``: a binary defect map; logits get a sigmoid. The one class name is the
  defect's name (default ``defect``).
* ``C > 1``: channel 0 is the background and is never reported; logits get a softmax
  over the channels. Class names list all ``C`` channels, or only the ``C-1`` defect
  channels (then ``background`` is put in front). ``class_id`` is the channel index.

For every defect channel, pixels with probability ≥ ``model.mask_threshold`` form a
mask; each connected blob of it (outside the letterbox padding) becomes a Finding with
confidence = mean probability inside the blob, its box and ``area_px`` in frame pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inspector.config import ModelConfig
from inspector.errors import ModelError
from inspector.model_info import ModelInfo
from inspector.models import instance
from inspector.models.base import Postprocessor, input_hw_of, names_of
from inspector.models.blobs import find_blobs
from inspector.models.identify import describe
from inspector.models.outputs import (
    FloatArray,
    first_output,
    require_finite,
    static_dim,
    to_probabilities,
)
from inspector.preprocess.geometry import Geometry
from inspector.types import Finding


def channel_names(model: str, names: tuple[str, ...] | None, channels: int) -> tuple[str, ...]:
    """One name per output channel (channel 0 is the background when ``channels > 1``)."""
    if names is None:
        if channels == 1:
            return ("defect",)
        return ("background", *(f"class{c}" for c in range(1, channels)))
    if len(names) == channels:
        return names
    if channels > 1 and len(names) == channels - 1:
        return ("background", *names)
    raise ModelError(
        f"{model}: segmentation output has {channels} channel(s) but {len(names)} class "
        f"name(s) {list(names)}; give {channels} names"
        + (f" (background first) or {channels - 1} defect names" if channels > 1 else "")
    )


@dataclass(frozen=True)
class SegmentationPostprocessor:
    """Callable postprocessor for one segmentation model (see models/base.Postprocessor)."""

    name: str
    input_hw: tuple[int, int]
    class_names: tuple[str, ...]
    configured_names: tuple[str, ...] | None
    mask_threshold: float
    max_blobs: int
    layout: str = "semantic"  # or "class_map"
    family: str = "segmentation"

    def _class_map(self, raw: FloatArray, geometry: Geometry) -> list[Finding]:
        cmap = raw.reshape(raw.shape[-2], raw.shape[-1]) if raw.ndim == 4 else raw[0]
        require_finite(self.name, "class map", cmap)
        top = max(1, len(self.class_names) - 1)
        if cmap.size and (cmap.min() < 0 or cmap.max() > top or (cmap != np.round(cmap)).any()):
            raise ModelError(f"{self.name}: class map values must be whole ids 0..{top}")
        findings: list[Finding] = []
        for value in (int(v) for v in np.unique(cmap) if v > 0):
            c = value if len(self.class_names) > 1 else 0
            if len(self.class_names) > 1 and value >= len(self.class_names):
                raise ModelError(f"{self.name}: class map value {value} has no class name")
            mask = (cmap == value).astype(np.float32)
            for blob in find_blobs(mask, 0.5, geometry, reduce="mean", max_blobs=self.max_blobs):
                findings.append(
                    Finding(self.class_names[c], c, 1.0, blob.box, self.name, blob.area_px)
                )
        return findings

    def __call__(self, outputs: list[FloatArray], geometry: Geometry) -> list[Finding]:
        raw = first_output(self.name, outputs)
        if self.layout == "class_map":
            if raw.ndim not in (3, 4) or raw.shape[0] != 1 or (raw.ndim == 4 and raw.shape[1] != 1):
                raise ModelError(f"{self.name}: class map must be [1, h, w], got {list(raw.shape)}")
            return self._class_map(raw, geometry)
        if raw.ndim != 4 or raw.shape[0] != 1 or min(raw.shape) < 1:
            raise ModelError(
                f"{self.name}: segmentation output must be [1, C, h, w], got {list(raw.shape)}"
            )
        require_finite(self.name, "segmentation output", raw)
        channels = raw.shape[1]
        names = channel_names(self.name, self.configured_names, channels)
        probs = to_probabilities(raw[0], axis=0)
        findings: list[Finding] = []
        for c in range(channels) if channels == 1 else range(1, channels):
            for blob in find_blobs(
                probs[c], self.mask_threshold, geometry, reduce="mean", max_blobs=self.max_blobs
            ):
                findings.append(
                    Finding(
                        class_name=names[c],
                        class_id=c,
                        confidence=min(1.0, blob.value),
                        box=blob.box,
                        model=self.name,
                        area_px=blob.area_px,
                    )
                )
        return findings


_INTEGER = ("uint8", "int8", "int32", "int64", "bool")


def build(model: ModelConfig, info: ModelInfo, layout: str = "auto") -> Postprocessor:
    """Bind a segmentation postprocessor; refuse what cannot work at start.

    ``layout`` 'instance' (YOLO-seg) goes to ``models/instance.py``; anything else is a
    semantic map or class map, read here.
    """
    if layout == "instance":
        return instance.build(model, info)
    if not info.outputs:
        raise ModelError(f"{model.name}: model has no outputs")
    out = info.outputs[0]
    configured = names_of(model, info)
    opts = model.segmentation
    is_map = out.dtype in _INTEGER or out.dtype.startswith("tensor(int")
    if is_map and (len(out.shape) == 3 or (len(out.shape) == 4 and out.shape[1] == 1)):
        if configured is None:
            raise ModelError(f"{model.name}: class map without class names; set class_names")
        return SegmentationPostprocessor(
            name=model.name,
            input_hw=input_hw_of(model, info),
            class_names=configured,
            configured_names=configured,
            mask_threshold=opts.mask_threshold,
            max_blobs=opts.max_det,
            layout="class_map",
        )
    if len(out.shape) != 4:
        raise ModelError(
            f"{model.name}: semantic segmentation output must be [1, C, h, w] or an integer "
            f"[1, h, w] class map: {describe(info)}"
        )
    channels = static_dim(info, 0, 1)
    if channels is not None:
        names = channel_names(model.name, configured, channels)
    elif configured is not None:
        names = configured
    else:
        raise ModelError(
            f"{model.name}: class names unknown and the channel count is dynamic; "
            "set model.class_names"
        )
    return SegmentationPostprocessor(
        name=model.name,
        input_hw=input_hw_of(model, info),
        class_names=names,
        configured_names=configured,
        mask_threshold=opts.mask_threshold,
        max_blobs=opts.max_det,
    )
