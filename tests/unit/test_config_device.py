"""Config of the device path: which backend/preprocess combinations are valid.

``backend: tensorrt`` with ``preprocess.device: cuda`` is the documented Jetson
configuration and must validate; every backend listed as having a device path really
overrides ``Backend.device_model``; a backend without one refuses the device path.
"""

from __future__ import annotations

import pytest

from inspector.backends import BACKENDS, backend_class
from inspector.backends.base import Backend
from inspector.config import ModelConfig, parse_config
from inspector.config.models import DEVICE_BACKENDS
from inspector.errors import ConfigError


def test_the_jetson_configuration_validates() -> None:
    cfg = parse_config(
        """
recipes:
  - id: 1
    name: jetson
    models:
      - {path: engines/demo_detector.onnx, backend: tensorrt, preprocess: {device: cuda}}
pipeline: {frames_in_flight: 2, gpu_keepalive_ms: 10}
"""
    )
    model = cfg.recipes[0].models[0]
    assert (model.backend, model.preprocess.device) == ("tensorrt", "cuda")


def test_every_device_backend_has_a_device_path() -> None:
    assert set(DEVICE_BACKENDS) <= set(BACKENDS.names())
    for name in BACKENDS.names():
        has_path = backend_class(name).device_model is not Backend.device_model
        assert has_path == (name in DEVICE_BACKENDS), name


def test_a_backend_without_device_path_refuses_it() -> None:
    class HostOnly(Backend):
        name = "host_only"

        def load(self) -> None: ...

        def infer(self, tensor):  # type: ignore[no-untyped-def]
            return []

    with pytest.raises(ConfigError, match="no device path"):
        HostOnly(ModelConfig(path="m.onnx")).device_model()  # type: ignore[arg-type]
