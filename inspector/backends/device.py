"""The device path every GPU backend offers (step 4 of the flow, on the device).

One small protocol, so the device runner (``gpu/runner.py``) drives torch, TensorRT and
ONNX Runtime's CUDA provider the same way:

- ``DeviceModel.open_lane(stream)`` gives one instance of the model bound to one CUDA
  stream (a *lane*): its input binding in device memory, which the preprocessing kernel
  writes, and ``enqueue()``, which puts the model on that stream and returns the
  device outputs without waiting. Lanes are independent (TensorRT: one execution
  context each; torch: one input tensor and one graph memory pool each), so lanes on
  different streams may run at the same time: that is how frames stay in flight.
- ``lane.capture(body)`` captures ``body`` (which calls ``enqueue`` and whatever reads
  its outputs on the same stream) into a CUDA graph replayed by ``launch()``. A backend
  that cannot be captured raises ``BackendError``; the runner then enqueues instead.

Pointers are plain ints and dtypes numpy names, so nothing here imports CUDA or torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True, slots=True)
class DeviceTensor:
    """A contiguous tensor in device memory."""

    ptr: int
    shape: tuple[int, ...]
    dtype: str  # numpy name: "float16", "float32", ...

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize


class DeviceGraph(Protocol):
    """Captured work, replayed on the stream it was captured on."""

    def launch(self) -> None: ...
    def close(self) -> None: ...


class DeviceLane(Protocol):
    """One model instance on one CUDA stream."""

    stream: int
    input: DeviceTensor

    def enqueue(self) -> list[DeviceTensor]:
        """Run the model on ``input``, on ``stream``; return the outputs (no sync).

        The outputs stay valid until the next ``enqueue`` on this lane (in stream order).
        """
        ...

    def capture(self, body: Callable[[], None]) -> DeviceGraph:
        """Capture ``body`` (which calls ``enqueue``) into a graph; BackendError if the
        backend cannot be captured."""
        ...

    def close(self) -> None: ...


class DeviceModel(Protocol):
    """A loaded model's device path (``Backend.device_model()``)."""

    def open_lane(self, stream: int) -> DeviceLane:
        """A new lane on ``stream``, warmed up (no lazy initialisation left for the
        first part or for a capture)."""
        ...
