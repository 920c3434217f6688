"""ONNX Runtime's CUDA execution provider on the pipeline's stream (optional; NOT RUN HERE).

For users with ``onnxruntime-gpu`` and neither TensorRT nor torch. The session is created
with ``user_compute_stream`` set to the pipeline's CUDA stream, and inputs/outputs are
bound to device memory with IOBinding, so the fused preprocessing kernel writes the
input binding and ORT reads it on the same stream, without a host round trip.

Status: written against the documented API (provider option ``user_compute_stream``,
``IOBinding.bind_input(..., device_type='cuda', buffer_ptr=...)``), but never executed
in this project: the onnxruntime-gpu wheel is too large to carry to the GPU machines we
test on (docs/gpu.md). It is not registered in ``BACKENDS``; treat it as a starting
point, and add a ``tests/gpu`` case on a machine that has onnxruntime-gpu before use.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from inspector.backends.base import Backend
from inspector.backends.onnxruntime import _ORT_DTYPES, _spec
from inspector.config import ModelConfig
from inspector.errors import BackendError
from inspector.model_info import ModelInfo
from inspector.nvidia import driver as cu


class OnnxRuntimeCudaBackend(Backend):
    """ONNX model on ORT's CUDA provider, bound to one stream and device buffers."""

    name = "onnxruntime_cuda"

    def __init__(self, model: ModelConfig, *, stream: int = 0, device: int = 0) -> None:
        super().__init__(model)
        self._stream = stream
        self._device = device
        self._buffers: list[int] = []

    def load(self) -> None:
        """Create the session on the stream and allocate device input/output buffers."""
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendError(f"onnxruntime_cuda needs onnxruntime-gpu: {exc}") from exc
        cu.make_current(self._device)
        provider = (
            "CUDAExecutionProvider",
            {
                "device_id": self._device,
                "has_user_compute_stream": "1",
                "user_compute_stream": str(self._stream),
            },
        )
        try:
            self._session = ort.InferenceSession(str(self.model.path), providers=[provider])
        except Exception as exc:  # ORT raises its own exception types
            raise BackendError(f"cannot load {self.model.path} on CUDA: {exc}") from exc
        ins, outs = self._session.get_inputs(), self._session.get_outputs()
        if any(not all(isinstance(d, int) for d in a.shape) for a in (*ins, *outs)):
            raise BackendError("onnxruntime_cuda needs static input and output shapes")
        self._info = ModelInfo(
            inputs=tuple(_spec(a) for a in ins), outputs=tuple(_spec(a) for a in outs)
        )
        self._binding = self._session.io_binding()
        self._out_host: list[npt.NDArray[Any]] = []
        for arg, bind in ((a, self._binding.bind_input) for a in ins):
            self.input_ptr = self._bind(arg, bind)
        for arg in outs:
            self._bind(arg, self._binding.bind_output)
            self._out_host.append(np.empty(arg.shape, _ORT_DTYPES[arg.type]))

    def _bind(self, arg: Any, bind: Any) -> int:
        np_dtype = np.dtype(_ORT_DTYPES[arg.type])
        nbytes = int(np.prod(arg.shape)) * np_dtype.itemsize
        ptr = cu.mem_alloc(nbytes)
        self._buffers.append(ptr)
        bind(arg.name, "cuda", self._device, np_dtype.type, list(arg.shape), ptr)
        return ptr

    @property
    def input_fp16(self) -> bool:
        return self.info.inputs[0].dtype == "float16"

    def run_on_stream(self) -> None:
        """Run with the bound device buffers (the preprocessing kernel filled the input)."""
        try:
            self._session.run_with_iobinding(self._binding)
        except Exception as exc:
            raise BackendError(f"onnxruntime CUDA run failed: {exc}") from exc

    def infer(self, tensor: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        """Host path: upload, run, download (synchronous; for checks, not the hot loop)."""
        drv, _ = cu.bindings()
        feed = np.ascontiguousarray(tensor, np.float16 if self.input_fp16 else np.float32)
        cu.check(drv.cuMemcpyHtoD(self.input_ptr, feed.ctypes.data, feed.nbytes), "cuMemcpyHtoD")
        self.run_on_stream()
        cu.stream_sync(self._stream)
        result = []
        for ptr, host in zip(self._buffers[len(self.info.inputs) :], self._out_host, strict=True):
            cu.check(drv.cuMemcpyDtoH(host.ctypes.data, ptr, host.nbytes), "cuMemcpyDtoH")
            result.append(host.astype(np.float32))
        return result

    def close(self) -> None:
        buffers, self._buffers = self._buffers, []
        for ptr in buffers:
            cu.mem_free(ptr)
