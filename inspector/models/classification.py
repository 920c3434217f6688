"""Image classification: class scores → at most one finding for the whole part (step 5).

Layout read (batch 1, the model's first output): ``[1, nc]`` logits or probabilities.
Values outside 0..1, or a row that does not sum to 1, are logits and get a softmax
(torchvision-style exports); Ultralytics ``-cls`` exports already give probabilities.

The top-1 class decides. A class named in ``classification.ok_classes`` (case-insensitive) is a
good part: no finding. Any other top-1 class is one Finding with its probability and
box = the whole frame; the rules (``min_confidence``) then decide. On a tie between a
good and a defect class the defect wins, so a tie never passes a part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inspector.config import ModelConfig
from inspector.errors import ModelError
from inspector.model_info import ModelInfo
from inspector.models.base import input_hw_of, names_of
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


@dataclass(frozen=True)
class ClassificationPostprocessor:
    """Callable postprocessor for one classifier (see models/base.Postprocessor)."""

    name: str
    input_hw: tuple[int, int]
    class_names: tuple[str, ...]
    ok_ids: frozenset[int]
    layout: str = "scores"
    family: str = "classification"

    def top1(self, probs: FloatArray) -> int:
        """Index of the best class; among equal best scores a defect class is chosen."""
        tied = np.flatnonzero(probs >= probs.max())
        defects = [int(i) for i in tied if int(i) not in self.ok_ids]
        return defects[0] if defects else int(tied[0])

    def __call__(self, outputs: list[FloatArray], geometry: Geometry) -> list[Finding]:
        raw = first_output(self.name, outputs)
        nc = len(self.class_names)
        if raw.shape != (1, nc):
            raise ModelError(
                f"{self.name}: classification output must be [1, {nc}] for classes "
                f"{list(self.class_names)}, got {list(raw.shape)}"
            )
        require_finite(self.name, "classification output", raw)
        probs = to_probabilities(raw[0], axis=0)
        top = self.top1(probs)
        if top in self.ok_ids:
            return []
        frame = (0.0, 0.0, float(geometry.src_w), float(geometry.src_h))
        conf = float(min(1.0, max(0.0, probs[top])))
        return [Finding(self.class_names[top], top, conf, frame, model=self.name)]


def build(model: ModelConfig, info: ModelInfo, layout: str = "auto") -> ClassificationPostprocessor:
    """Bind a classification postprocessor to a loaded model, reading its metadata."""
    if info.outputs and len(info.outputs[0].shape) != 2:
        raise ModelError(
            f"{model.name}: classification output must be [1, nc], "
            f"model declares {list(info.outputs[0].shape)}: {describe(info)}"
        )
    names = names_of(model, info)
    nc = static_dim(info, 0, 1)
    if names is None:
        if nc is None:
            raise ModelError(f"{model.name}: class names unknown; set model.class_names")
        names = tuple(f"class{i}" for i in range(nc))
    if nc is not None and nc != len(names):
        raise ModelError(
            f"{model.name}: model outputs {nc} classes but has {len(names)} class names "
            f"{list(names)}"
        )
    if len(names) < 2:
        raise ModelError(f"{model.name}: a classifier needs at least 2 classes, has {list(names)}")
    ok = {c.casefold() for c in model.classification.ok_classes}
    ok_ids = frozenset(i for i, n in enumerate(names) if n.casefold() in ok)
    if not ok_ids:
        # Every part would be NG: almost surely a naming mismatch, so refuse to start.
        raise ModelError(
            f"{model.name}: none of the classes {list(names)} is a good-part class "
            f"{list(model.classification.ok_classes)}; set classification.ok_classes"
        )
    return ClassificationPostprocessor(
        name=model.name,
        input_hw=input_hw_of(model, info),
        class_names=names,
        ok_ids=ok_ids,
    )
