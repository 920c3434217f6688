"""TensorRTBackend's own GPU plumbing on a real GPU, with a stand-in engine.

TensorRT is not available, so the engine and execution context here are small fakes
with ``ICudaEngine``/``IExecutionContext`` method names whose ``execute_async_v3``
enqueues a real device-to-device copy (output = input) on the stream it is given. What
runs for real is the backend's code around TensorRT: binding discovery, device and
pinned buffers, ``set_tensor_address``, copies in and out, warm-up, CUDA graph capture
and replay, and ``close``. Marked ``gpu``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inspector.config import EngineConfig, ModelConfig
from tests.support.engine import DataType, FakeEngine, TensorIOMode, make_manifest

pytestmark = pytest.mark.gpu

SHAPE = (1, 3, 16, 16)


class CopyContext:
    """``execute_async_v3`` copies the input tensor's buffer to the output's."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.addresses: dict[str, int] = {}
        self.enqueues = 0

    def set_input_shape(self, name: str, shape: Any) -> bool:
        return tuple(shape) == SHAPE

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.engine.get_tensor_shape(name)

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.addresses[name] = ptr
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        from inspector.engine import cudart

        rt = cudart.runtime()
        nbytes = int(np.prod(SHAPE)) * 4
        kind = rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        src, dst = self.addresses["images"], self.addresses["output0"]
        cudart.check(rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream_handle), "fake enqueue")
        self.enqueues += 1
        return True


class CopyEngine(FakeEngine):
    def __init__(self) -> None:
        super().__init__(
            [
                ("images", TensorIOMode.INPUT, SHAPE, DataType.FLOAT),
                ("output0", TensorIOMode.OUTPUT, SHAPE, DataType.FLOAT),
            ]
        )
        self.context: CopyContext | None = None

    def create_execution_context(self) -> CopyContext:
        self.context = CopyContext(self)
        return self.context


def test_backend_runs_plain_then_as_cuda_graph(tmp_path: Path) -> None:
    from inspector.backends.tensorrt import TensorRTBackend
    from inspector.engine import cudart

    cudart.device_properties(0)
    model = ModelConfig(
        path=tmp_path / "m.onnx", backend="tensorrt", engine=EngineConfig(warmup_runs=2)
    )
    manifest = make_manifest(tmp_path / "m.plan", onnx_outputs=["output0"], shapes={})
    engine = CopyEngine()
    backend = TensorRTBackend(model)
    backend._setup(engine, manifest)
    try:
        assert backend.info.input_hw == (16, 16)
        rng = np.random.default_rng(0)
        x = rng.random(SHAPE, np.float32)
        np.testing.assert_array_equal(backend.infer(x)[0], x)  # plain enqueue
        backend.warmup(1)  # 2 warm-up runs, then capture
        assert backend._graph is not None
        assert engine.context is not None
        enqueues = engine.context.enqueues
        for _ in range(3):
            x = rng.random(SHAPE, np.float32)
            np.testing.assert_array_equal(backend.infer(x)[0], x)  # graph replay
        assert engine.context.enqueues == enqueues  # replays do not call enqueue again
    finally:
        backend.close()
    assert backend._resources == [] and backend._graph is None
