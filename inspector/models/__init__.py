"""Postprocessing: raw model outputs → findings (step 5 of the flow).

One module per model family. Each exposes ``build(model_cfg, info) -> Postprocessor``;
``build_postprocessor`` picks it by ``model.family``.
"""

from __future__ import annotations

import importlib

from inspector.backends.base import ModelInfo
from inspector.config import ModelConfig
from inspector.models.base import Postprocessor

FAMILIES: dict[str, str] = {
    "detection": "inspector.models.detection",
    "segmentation": "inspector.models.segmentation",
    "anomaly": "inspector.models.anomaly",
    "classification": "inspector.models.classification",
}


def build_postprocessor(model: ModelConfig, info: ModelInfo) -> Postprocessor:
    """Return the postprocessor of ``model.family`` bound to this model's outputs."""
    module = importlib.import_module(FAMILIES[model.family])
    post: Postprocessor = module.build(model, info)
    return post
