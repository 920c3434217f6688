"""What every model family provides: a callable from raw outputs to findings (step 5),
and the readers of model metadata the families share."""

from __future__ import annotations

import ast
from typing import Protocol

import numpy as np
import numpy.typing as npt

from inspector.config import ModelConfig
from inspector.errors import ModelError
from inspector.model_info import ModelInfo
from inspector.preprocess.geometry import Geometry
from inspector.types import Finding


class Postprocessor(Protocol):
    """Turns one part's raw outputs (model order, batch 1) into findings in frame pixels.

    Raises ``ModelError`` when the outputs do not have the layout the family expects.
    """

    @property
    def input_hw(self) -> tuple[int, int]: ...

    @property
    def class_names(self) -> tuple[str, ...]: ...

    @property
    def family(self) -> str:
        """The family recognised at start (detection, segmentation, anomaly, ...)."""

    @property
    def layout(self) -> str:
        """The output layout recognised at start, e.g. 'end2end', 'instance', 'v2'."""

    def __call__(
        self, outputs: list[npt.NDArray[np.float32]], geometry: Geometry
    ) -> list[Finding]: ...


def parse_names(raw: str | None) -> tuple[str, ...] | None:
    """Read Ultralytics ``names`` metadata: a Python-repr dict ``{0: 'a', 1: 'b'}`` or list."""
    if not raw:
        return None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, dict):
        return tuple(str(value[k]) for k in sorted(value))
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return None


def parse_imgsz(raw: str | None) -> tuple[int, int] | None:
    """Read Ultralytics ``imgsz`` metadata: ``[640, 640]`` or ``640``."""
    if not raw:
        return None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    return None


def input_hw_of(model: ModelConfig, info: ModelInfo) -> tuple[int, int]:
    """Model input (H, W): config, else the model's static input, else ``imgsz`` metadata.

    A configured ``input_size`` that differs from a static model input is refused: every
    part would fail in the backend (or, worse, be resized twice).
    """
    static = info.input_hw
    if model.input_size and static and tuple(model.input_size) != static:
        raise ModelError(
            f"{model.name}: input_size {list(model.input_size)} differs from the model's "
            f"static input {list(static)}; remove input_size or re-export the model"
        )
    hw = model.input_size or static or parse_imgsz(info.metadata.get("imgsz"))
    if hw is None:
        raise ModelError(f"{model.name}: input size unknown; set model.input_size")
    return int(hw[0]), int(hw[1])


def names_of(model: ModelConfig, info: ModelInfo) -> tuple[str, ...] | None:
    """Class names from config, else Ultralytics-style ``names`` metadata, else None."""
    if model.class_names:
        return tuple(model.class_names)
    return parse_names(info.metadata.get("names"))
