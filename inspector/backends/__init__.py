"""Inference backends (step 4 of the flow).

``BACKENDS`` maps a config name to ``"module:Class"`` (``inspector.registry``); the
module is imported only when that backend is configured, so a CPU machine never imports
TensorRT, CUDA or torch.
"""

from __future__ import annotations

from inspector.backends.base import Backend
from inspector.config import ModelConfig
from inspector.registry import Registry

BACKENDS = Registry(
    "backend",
    {
        "onnxruntime": "inspector.backends.onnxruntime:OnnxRuntimeBackend",
        "tensorrt": "inspector.backends.tensorrt:TensorRTBackend",
        "torch": "inspector.backends.torch:TorchBackend",
    },
)


def backend_class(name: str) -> type[Backend]:
    """Import and return the backend class registered under ``name``."""
    cls: type[Backend] = BACKENDS.load(name)
    return cls


def create_backend(model: ModelConfig) -> Backend:
    """Build and load the backend for one model."""
    backend = backend_class(model.backend)(model)
    backend.load()
    return backend
