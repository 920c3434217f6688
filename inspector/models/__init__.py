"""Postprocessing: raw model outputs → findings (step 5 of the flow).

One module per model family, registered in ``FAMILIES`` (``inspector.registry``:
imported only when used). ``build_postprocessor`` first recognises the model
(``identify.py``: Ultralytics ``task`` metadata, anomalib output names, output shapes;
``model.family`` only confirms), then binds the family's postprocessor to the model's
outputs with every check that can be made before the first part. Each family module
exposes ``build(model_cfg, info, layout) -> Postprocessor``.
"""

from __future__ import annotations

from inspector.config import ModelConfig
from inspector.errors import ModelError
from inspector.model_info import ModelInfo
from inspector.models.base import Postprocessor
from inspector.models.identify import describe, identify
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
    """Recognise the model and return its family's postprocessor bound to its outputs.

    Raises ``ModelError`` at start for anything that would fail every part: a family or
    layout the model does not have, class names that do not fit, an input size that
    conflicts with a static input, a static batch other than 1, a multi-channel anomaly
    map, pose/OBB models.
    """
    batch = info.inputs[0].shape[0] if info.inputs and info.inputs[0].shape else None
    if isinstance(batch, int) and batch != 1:
        raise ModelError(
            f"{model.name}: the model's input has a static batch of {batch}; the daemon runs "
            f"one part at a time: export with batch 1 or a dynamic batch ({describe(info)})"
        )
    found = identify(model, info)
    post: Postprocessor = FAMILIES.load(found.family)(model, info, found.layout)
    return post
