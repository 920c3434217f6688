"""Segmentation (U-Net style): class maps → one finding per defect blob (step 5).

Layout read (batch 1, the model's first output): ``[1, C, h, w]`` logits or
probabilities, ``h×w`` equal to the model input or smaller by a stride.

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

from inspector.config import ModelConfig
from inspector.errors import ConfigError, ModelError
from inspector.model_info import ModelInfo
from inspector.models.base import input_hw_of, names_of
from inspector.models.blobs import find_blobs
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

    def __call__(self, outputs: list[FloatArray], geometry: Geometry) -> list[Finding]:
        raw = first_output(self.name, outputs)
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


def build(model: ModelConfig, info: ModelInfo) -> SegmentationPostprocessor:
    """Bind a segmentation postprocessor to a loaded model, reading its metadata."""
    if model.mask_threshold > 1.0:
        raise ConfigError(
            f"{model.name}: mask_threshold {model.mask_threshold} is a probability for "
            "segmentation and must be within 0..1"
        )
    if len(info.outputs) >= 1 and len(info.outputs[0].shape) != 4:
        raise ModelError(
            f"{model.name}: segmentation output must be [1, C, h, w], "
            f"model declares {list(info.outputs[0].shape)}"
        )
    configured = names_of(model, info)
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
        mask_threshold=model.mask_threshold,
        max_blobs=model.max_detections,
    )
