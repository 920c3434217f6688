"""What every model family provides: a callable from raw outputs to findings."""

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

    input_hw: tuple[int, int]
    class_names: tuple[str, ...]

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
    """Model input (H, W): config, else the model's static input, else ``imgsz`` metadata."""
    hw = model.input_size or info.input_hw or parse_imgsz(info.metadata.get("imgsz"))
    if hw is None:
        raise ModelError(f"{model.name}: input size unknown; set model.input_size")
    return int(hw[0]), int(hw[1])


def names_of(model: ModelConfig, info: ModelInfo) -> tuple[str, ...] | None:
    """Class names from config, else Ultralytics-style ``names`` metadata, else None."""
    if model.class_names:
        return tuple(model.class_names)
    return parse_names(info.metadata.get("names"))
