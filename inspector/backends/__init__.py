"""Inference backends (step 4 of the flow).

``BACKENDS`` maps a config name to ``"module:Class"``; ``create_backend`` imports the
module only when that backend is configured, so a CPU machine never imports TensorRT,
CUDA or torch. A model pinned by ``sha256`` in its recipe is hashed before its backend
is even built: no runtime (``torch.jit.load`` included) ever reads a file that does
not match.
"""

from __future__ import annotations

import hashlib

from inspector.backends.base import Backend
from inspector.config import ModelConfig
from inspector.errors import ModelFileError
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


def verify_pin(model: ModelConfig) -> None:
    """Raise ModelFileError unless the model file matches the recipe's ``sha256`` (if any).

    Hashed afresh from the file (never a cached digest), right before the backend loads
    it.
    """
    if model.sha256 is None:
        return
    h = hashlib.sha256()
    try:
        with model.path.open("rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    except OSError as exc:
        raise ModelFileError(f"model {model.name!r}: cannot read {model.path}: {exc}") from exc
    if h.hexdigest() != model.sha256:
        raise ModelFileError(
            f"model {model.name!r}: {model.path} has sha256 {h.hexdigest()}, not the "
            f"{model.sha256} its recipe pins; refusing to load it"
        )


def create_backend(model: ModelConfig) -> Backend:
    """Check the model file's pin, then build and load the backend for one model."""
    verify_pin(model)
    backend = backend_class(model.backend)(model)
    backend.load()
    return backend
