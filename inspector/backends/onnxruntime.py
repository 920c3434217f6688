"""ONNX Runtime on the CPU: the backend of development, CI, simulation and the demo."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from inspector.backends.base import Backend
from inspector.config import ModelConfig
from inspector.errors import BackendError
from inspector.model_info import ModelInfo, TensorSpec

_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


def _spec(arg: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else None for d in arg.shape)
    return TensorSpec(arg.name, shape, _ORT_DTYPES.get(arg.type, arg.type))


class OnnxRuntimeBackend(Backend):
    """Runs an ONNX model with ONNX Runtime's CPU execution provider."""

    name = "onnxruntime"

    def load(self) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.model.onnxruntime.threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(self.model.path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own, unrelated exception types
            raise BackendError(f"cannot load ONNX model {self.model.path}: {exc}") from exc
        meta = self._session.get_modelmeta().custom_metadata_map or {}
        self._info = ModelInfo(
            inputs=tuple(_spec(a) for a in self._session.get_inputs()),
            outputs=tuple(_spec(a) for a in self._session.get_outputs()),
            metadata=dict(meta),
        )
        self._input_name = self._info.inputs[0].name
        self._fp16 = self._info.inputs[0].dtype == "float16"

    def infer(self, tensor: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        feed = tensor.astype(np.float16) if self._fp16 else tensor
        try:
            outputs = self._session.run(None, {self._input_name: feed})
        except Exception as exc:
            raise BackendError(f"onnxruntime failed on {self.model.name}: {exc}") from exc
        return [np.asarray(o, dtype=np.float32) for o in outputs]

    def device_model(self) -> Any:
        """ONNX Runtime's CUDA execution provider on the runner's streams (IOBinding);
        needs the ``onnxruntime-gpu`` wheel (``backends/onnxruntime_cuda.py``)."""
        from inspector.backends.onnxruntime_cuda import OrtCudaDeviceModel

        return OrtCudaDeviceModel(self.model, self.info)


def open_reference(model: ModelConfig) -> OnnxRuntimeBackend:
    """``model`` loaded with ONNX Runtime: the reference a new TensorRT engine must match."""
    reference = OnnxRuntimeBackend(model)
    reference.load()
    return reference
