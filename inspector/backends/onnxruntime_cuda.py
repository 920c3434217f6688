"""ONNX Runtime's CUDA provider as a device path (``backend: onnxruntime`` with
``preprocess.device: cuda``; optional, NOT RUN HERE).

For users with ``onnxruntime-gpu`` and neither TensorRT nor torch. Each lane is one
session created with ``user_compute_stream`` set to the lane's CUDA stream, its input
and outputs bound to device buffers with IOBinding, so the fused preprocessing kernel
writes the input binding and ORT reads it on the same stream without a host round
trip. ORT runs are not captured into the runner's CUDA graph (ORT manages its own
graphs); ``capture`` refuses, and the runner enqueues instead and says so in the log.

Status: written against the documented API (provider options ``has_user_compute_stream``
and ``user_compute_stream``, ``IOBinding.bind_input(name, device_type, device_id,
element_type, shape, buffer_ptr)``, ``run_with_iobinding``), never executed in this
project: the onnxruntime-gpu wheel is too large to carry to the GPU machines we test on
(docs/gpu.md). Add a ``tests/gpu`` case on a machine that has it before relying on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from inspector.backends.device import DeviceGraph, DeviceTensor
from inspector.config import ModelConfig
from inspector.errors import BackendError
from inspector.model_info import ModelInfo
from inspector.nvidia import driver as cu


class OrtCudaDeviceModel:
    """Lanes of ORT CUDA-provider sessions (``backends/device.py``)."""

    def __init__(self, model: ModelConfig, info: ModelInfo, device: int = 0) -> None:
        self.model, self.info, self.device = model, info, device
        shapes = [t.shape for t in (*info.inputs, *info.outputs)]
        if any(not all(isinstance(d, int) and d > 0 for d in s) for s in shapes):
            raise BackendError("onnxruntime on CUDA needs static input and output shapes")

    def open_lane(self, stream: int) -> OrtCudaLane:
        return OrtCudaLane(self, stream)


class OrtCudaLane:
    """One CUDA-provider session on one stream, inputs and outputs bound to device memory."""

    def __init__(self, owner: OrtCudaDeviceModel, stream: int) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendError(f"onnxruntime on CUDA needs onnxruntime-gpu: {exc}") from exc
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise BackendError("onnxruntime here has no CUDAExecutionProvider (onnxruntime-gpu)")
        cu.make_current(owner.device)
        self.stream = stream
        self._buffers: list[cu.DeviceBuffer] = []
        provider = (
            "CUDAExecutionProvider",
            {
                "device_id": owner.device,
                "has_user_compute_stream": "1",
                "user_compute_stream": str(stream),
            },
        )
        try:
            self._session = ort.InferenceSession(str(owner.model.path), providers=[provider])
        except Exception as exc:  # ORT raises its own exception types
            raise BackendError(f"cannot load {owner.model.path} on CUDA: {exc}") from exc
        self._binding = self._session.io_binding()
        bound = [
            self._bind(spec, self._binding.bind_input, owner.device) for spec in owner.info.inputs
        ]
        self.outputs = [
            self._bind(spec, self._binding.bind_output, owner.device) for spec in owner.info.outputs
        ]
        self.input = bound[0]

    def _bind(self, spec: Any, bind: Any, device: int) -> DeviceTensor:
        shape = tuple(int(d) for d in spec.shape)
        tensor = DeviceTensor(0, shape, spec.dtype)
        buf = cu.DeviceBuffer(tensor.nbytes)
        self._buffers.append(buf)
        bind(spec.name, "cuda", device, np.dtype(spec.dtype).type, list(shape), buf.ptr)
        return DeviceTensor(buf.ptr, shape, spec.dtype)

    def enqueue(self) -> list[DeviceTensor]:
        try:
            self._session.run_with_iobinding(self._binding)
        except Exception as exc:
            raise BackendError(f"onnxruntime CUDA run failed: {exc}") from exc
        return self.outputs

    def capture(self, body: Callable[[], None]) -> DeviceGraph:
        raise BackendError("onnxruntime runs are not captured into the runner's graph")

    def close(self) -> None:
        buffers, self._buffers = self._buffers, []
        for buf in buffers:
            buf.close()
