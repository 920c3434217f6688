"""Postprocessing: raw model outputs → findings (step 5 of the flow).

One module per model family. Each exposes ``build(model_cfg, info) -> Postprocessor``;
``build_postprocessor`` picks it by ``model.family`` from ``FAMILIES``
(``inspector.registry``: imported only when used).
"""

from __future__ import annotations

from inspector.config import ModelConfig
from inspector.model_info import ModelInfo
from inspector.models.base import Postprocessor
from inspector.registry import Registry

FAMILIES = Registry(
    "model family",
    {
        "detection": "inspector.models.detection:build",
        "segmentation": "inspector.models.segmentation:build",
        "anomaly": "inspector.models.anomaly:build",
        "classification": "inspector.models.classification:build",
    },
)


def build_postprocessor(model: ModelConfig, info: ModelInfo) -> Postprocessor:
    """Return the postprocessor of ``model.family`` bound to this model's outputs."""
    post: Postprocessor = FAMILIES.load(model.family)(model, info)
    return post
