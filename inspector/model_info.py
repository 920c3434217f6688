"""What a loaded model says about itself: its input and output tensors and metadata.

The floor of the flow: backends (step 4) fill a ``ModelInfo`` when they load a model;
model families (step 5) and the engine tooling read it. It lives here, not in
``backends/``, so the families never import a runtime.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """Name, shape (None or -1 for dynamic dims) and numpy dtype name of one tensor."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What a loaded model says about itself."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def input_hw(self) -> tuple[int, int] | None:
        """Static (H, W) of the first input, if known."""
        shape = self.inputs[0].shape
        h, w = (shape[2], shape[3]) if len(shape) == 4 else (None, None)
        if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
            return h, w
        return None
