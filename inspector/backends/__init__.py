"""Inference backends (step 4 of the flow).

``BACKENDS`` maps a config name to ``"module:Class"``; ``create_backend`` imports the
module only when that backend is configured, so a CPU machine never imports TensorRT,
CUDA or torch.
"""

from __future__ import annotations

import importlib

from inspector.backends.base import Backend
from inspector.config import ModelConfig
from inspector.errors import BackendError

BACKENDS: dict[str, str] = {
    "onnxruntime": "inspector.backends.onnxruntime:OnnxRuntimeBackend",
    "tensorrt": "inspector.backends.tensorrt:TensorRTBackend",
    "torch": "inspector.backends.torch:TorchBackend",
}


def backend_class(name: str) -> type[Backend]:
    """Import and return the backend class registered under ``name``."""
    try:
        target = BACKENDS[name]
    except KeyError:
        raise BackendError(f"unknown backend {name!r}; known: {sorted(BACKENDS)}") from None
    module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendError(f"backend {name!r} is not available here: {exc}") from exc
    cls: type[Backend] = getattr(module, cls_name)
    return cls


def create_backend(model: ModelConfig) -> Backend:
    """Build and load the backend for one model."""
    backend = backend_class(model.backend)(model)
    backend.load()
    return backend
