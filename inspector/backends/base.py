"""The small base every inference backend implements.

A backend loads one model, describes its input and outputs, and runs it. The host path
(``infer``) takes a float32 NCHW numpy tensor and returns numpy outputs in the model's
output order. Backends that run on an NVIDIA GPU also offer the device path
(``device_model()``, protocol in ``backends/device.py``), which the device runner uses
when the model has ``preprocess.device: cuda``.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from inspector.config import ModelConfig
from inspector.errors import ConfigError
from inspector.model_info import ModelInfo, TensorSpec

if TYPE_CHECKING:
    from inspector.backends.device import DeviceModel

__all__ = ["Backend", "ModelInfo", "TensorSpec"]


class Backend(abc.ABC):
    """Runs one model. Subclasses must not import heavy runtimes at module import."""

    name: str = "base"

    def __init__(self, model: ModelConfig) -> None:
        self.model = model
        self._info: ModelInfo | None = None

    @property
    def info(self) -> ModelInfo:
        if self._info is None:
            raise RuntimeError(f"{self.name} backend used before load()")
        return self._info

    @abc.abstractmethod
    def load(self) -> None:
        """Load the model and fill ``self._info``; raise BackendError on failure."""

    @abc.abstractmethod
    def infer(self, tensor: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        """Run on one host input tensor; return outputs in model order."""

    def warmup(self, runs: int = 3) -> None:
        """Run a few zero inputs so the first part does not pay for lazy init."""
        hw = self.info.input_hw or (self.model.input_size or (640, 640))
        zeros = np.zeros((1, 3, *hw), np.float32)
        for _ in range(runs):
            self.infer(zeros)

    def device_model(self) -> DeviceModel:
        """The device path (``preprocess.device: cuda``); backends without one refuse."""
        raise ConfigError(
            f"model {self.model.name!r}: backend {self.name!r} has no device path for "
            "preprocess.device 'cuda'"
        )

    def close(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Release resources."""
