"""TensorRT on the GPU: the production backend on the Jetson (step 4 of the flow).

``load()`` asks the engine cache (``engine/cache.py``) for the plan that matches this
ONNX, this TensorRT and this GPU; builds one first if ``engine.build_on_start`` allows
it (telling systemd to extend the start timeout); verifies the plan's SHA-256 and only
then deserialises it, explaining a refusal (other GPU, other TensorRT, corrupt plan).
I/O tensors are found by name and mode and returned in the ONNX model's output order.

Two ways to run it:

- the device path (``device_model()``, ``preprocess.device: cuda``, the Jetson
  configuration): one execution context per lane, its tensors bound once with
  ``set_tensor_address`` to device buffers the preprocessing kernel writes and the
  detector kernels read, ``execute_async_v3`` on the runner's stream, the whole part
  captured into a CUDA graph by the runner;
- the host path (``infer``): host tensor → pinned input → H2D → ``execute_async_v3`` →
  D2H → numpy, captured as a CUDA graph after warm-up (plain enqueue if capture fails).

Every TensorRT call goes through ``engine/trt_api.py`` and every CUDA call through
``nvidia/driver.py``, both imported inside methods: importing this module imports neither.
Real TensorRT never ran in this project; the GPU tests run this module against a strict
test double of the API (docs/tensorrt.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from inspector.backends.base import Backend
from inspector.backends.device import DeviceTensor
from inspector.config import ModelConfig
from inspector.engine import cache
from inspector.engine.bindings import plan_bindings
from inspector.engine.diagnose import diagnose
from inspector.engine.manifest import Manifest, model_sha256
from inspector.errors import BackendError, EngineError
from inspector.logging import get_logger
from inspector.model_info import ModelInfo, TensorSpec

if TYPE_CHECKING:
    from inspector.engine.build import Toolchain

log = get_logger(__name__)


def toolchain() -> Toolchain:
    """The real engine-build toolchain: TensorRT (EngineError if missing) on CUDA device 0,
    this backend on the new plan, ONNX Runtime as the reference."""
    from inspector.backends.onnxruntime import open_reference
    from inspector.engine import trt_api
    from inspector.engine.build import Toolchain
    from inspector.nvidia import driver

    version = trt_api.tensorrt_version()
    name, cc = driver.device_properties(0)
    return Toolchain(
        version, name, cc, trt_api.compile_plan, TensorRTBackend.from_plan, open_reference
    )


class TensorRTBackend(Backend):
    """Runs a verified TensorRT plan built from ``model.path`` (an ONNX file)."""

    name = "tensorrt"

    def __init__(self, model: ModelConfig) -> None:
        super().__init__(model)
        self._engine: Any = None
        self._manifest: Manifest | None = None
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._host: _HostPath | None = None

    # ------------------------------------------------------------------ load
    def load(self) -> None:
        from inspector.engine import trt_api
        from inspector.nvidia import driver

        trt = trt_api.import_tensorrt()
        gpu_name, cc = driver.device_properties(0)
        ecfg = self.model.engine
        target = cache.Target(
            self.model.path.stem, self.model.path, model_sha256(self.model.path),
            str(trt.__version__), gpu_name, cc, ecfg.precision, ecfg.dla_core,
        )  # fmt: skip
        decision = cache.decide(ecfg.dir, target, build_on_start=ecfg.build_on_start)
        if decision.action is cache.Action.BUILD:
            log.warning("engine_build_on_start", reason=decision.reason)
            self._build_on_start()
            decision = cache.decide(ecfg.dir, target, build_on_start=False)
        if decision.action is not cache.Action.USE or decision.manifest is None:
            raise EngineError(decision.reason)
        log.info("engine_selected", plan=str(decision.plan), trt=target.trt_version, gpu=gpu_name)
        try:
            engine = cache.open_verified(
                decision, lambda data: self._deserialize(trt, data, cc, ecfg.dla_core)
            )
            self._setup(engine, decision.manifest)
        except BaseException:
            self.close()
            raise

    def _build_on_start(self) -> None:
        from inspector.camera.folder import read_folder
        from inspector.engine.build import build_engine, systemd_keepalive
        from inspector.engine.options import BuildRequest

        ecfg = self.model.engine
        tools = toolchain()
        timing = cache.timing_cache_path(ecfg.dir, tools.trt_version, tools.compute_capability)
        request = BuildRequest(
            onnx=self.model.path, out_dir=ecfg.dir, precision=ecfg.precision,
            dla_core=ecfg.dla_core, workspace_mib=ecfg.workspace_mib, timing_cache=timing,
        )  # fmt: skip
        systemd_keepalive("building TensorRT engine")
        build_engine(
            request, tools, model=self.model, golden_dir=ecfg.dir / "golden",
            run_golden_check=ecfg.golden_check, keepalive=systemd_keepalive,
            read_folder=read_folder,
        )  # fmt: skip

    @classmethod
    def from_plan(cls, model: ModelConfig, data: bytes, manifest: Manifest) -> TensorRTBackend:
        """A backend on plan bytes that were just built (the golden check's runner)."""
        from inspector.engine import trt_api
        from inspector.nvidia import driver

        trt = trt_api.import_tensorrt()
        _, cc = driver.device_properties(0)
        backend = cls(model)
        try:
            backend._setup(backend._deserialize(trt, data, cc, manifest.dla_core), manifest)
        except BaseException:
            backend.close()
            raise
        return backend

    def _deserialize(self, trt: Any, data: bytes, cc: str, dla_core: int | None) -> Any:
        from inspector.engine import trt_api

        self._logger = trt_api.make_logger(trt)
        self._runtime, engine = trt_api.deserialize(trt, self._logger, data, dla_core)
        if engine is None:
            why = diagnose(self._logger.messages, this_trt=str(trt.__version__), this_cc=cc)
            raise EngineError(f"{self.model.path.name}: {why.message}")
        return engine

    def _setup(self, engine: Any, manifest: Manifest) -> None:
        """Keep the engine, fix the input shapes, and open the host path's context."""
        self._engine, self._manifest = engine, manifest
        # A static engine keeps its own input shape; a dynamic one gets batch 1 at the
        # configured size, else the profile's opt size.
        hw = self.model.input_size or _opt_hw(manifest)
        self._shapes = {manifest.onnx_inputs[0]: (1, 3, *hw)} if hw else {}
        self._host = _HostPath(TensorRTLane(self, _new_stream(), warmup_runs=0))
        lane = self._host.lane
        self._info = ModelInfo(
            inputs=tuple(
                TensorSpec(name, t.shape, t.dtype)
                for name, t in zip(manifest.onnx_inputs, lane.inputs, strict=True)
            ),
            outputs=tuple(
                TensorSpec(name, o.shape, o.dtype)
                for name, o in zip(manifest.onnx_outputs, lane.outputs, strict=True)
            ),
            metadata=dict(manifest.onnx_metadata),
        )

    # ------------------------------------------------------------- host path
    def infer(self, tensor: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        if self._host is None:
            raise BackendError("tensorrt backend used before load()")
        return self._host.run(tensor, self.model.name)

    def warmup(self, runs: int = 3) -> None:
        """Run ``max(runs, engine.warmup_runs)`` times, then capture the CUDA graph.

        TensorRT finishes deferred work on the first enqueues after a shape is set, so
        capture comes after warm-up; a failed capture is logged and plain enqueue stays.
        """
        super().warmup(max(runs, self.model.engine.warmup_runs))
        host = self._host
        if host is None or not self.model.engine.cuda_graph or host.graph is not None:
            return
        from inspector.nvidia import driver

        try:
            host.graph = driver.capture(host.lane.stream, host.enqueue)
        except BackendError as exc:
            log.warning("cuda_graph_unavailable", model=self.model.name, error=str(exc))
            return
        super().warmup(1)  # the graph's first replay, checked like any run
        log.info("cuda_graph_captured", model=self.model.name)

    # ----------------------------------------------------------- device path
    def device_model(self) -> TensorRTDeviceModel:
        if self._engine is None:
            raise BackendError("tensorrt backend used before load()")
        return TensorRTDeviceModel(self)

    def close(self) -> None:
        if self._host is not None:
            host, self._host = self._host, None
            host.close()
        # Contexts (closed above) before the engine before the runtime.
        self._engine = None


class TensorRTDeviceModel:
    """The TensorRT backend's ``DeviceModel``: one execution context per lane."""

    def __init__(self, backend: TensorRTBackend) -> None:
        self.backend = backend

    def open_lane(self, stream: int) -> TensorRTLane:
        return TensorRTLane(self.backend, stream)


class TensorRTLane:
    """One execution context on one stream, its I/O tensors bound once to device buffers.

    ``set_tensor_address`` is called once per tensor here, never per part, so a CUDA
    graph captured around ``execute_async_v3`` stays valid.
    """

    def __init__(self, backend: TensorRTBackend, stream: int, warmup_runs: int = -1) -> None:
        from inspector.engine import trt_api
        from inspector.nvidia import driver

        manifest = backend._manifest
        assert manifest is not None  # _setup ran
        self.stream = stream
        self._cuda_graph = backend.model.engine.cuda_graph
        self._name = backend.model.name
        self._buffers: list[driver.DeviceBuffer] = []
        self._context = trt_api.create_context(backend._engine)
        if self._context is None:
            raise EngineError("TensorRT could not create an execution context (out of memory?)")
        try:
            plan = plan_bindings(
                backend._engine,
                self._context,
                manifest.onnx_inputs,
                manifest.onnx_outputs,
                backend._shapes,
            )
            tensors = []
            for binding in (*plan.inputs, *plan.outputs):
                buf = driver.DeviceBuffer(binding.nbytes)
                self._buffers.append(buf)
                if not trt_api.bind_address(self._context, binding.name, buf.ptr):
                    raise EngineError(f"TensorRT refused the address of tensor {binding.name!r}")
                tensors.append(DeviceTensor(buf.ptr, binding.shape, binding.dtype))
            self.inputs = tensors[: len(plan.inputs)]
            self.outputs = tensors[len(plan.inputs) :]
            self.input = self.inputs[0]
            runs = max(3, backend.model.engine.warmup_runs) if warmup_runs < 0 else warmup_runs
            for _ in range(runs):  # deferred work after set_input_shape, before capture
                self.enqueue()
            driver.stream_sync(stream)
        except BaseException:
            self.close()
            raise

    def enqueue(self) -> list[DeviceTensor]:
        from inspector.engine import trt_api

        if not trt_api.enqueue(self._context, self.stream):
            raise BackendError(f"TensorRT execute_async_v3 failed on {self._name}")
        return self.outputs

    def capture(self, body: Callable[[], None]) -> Any:
        from inspector.nvidia import driver

        if not self._cuda_graph:
            raise BackendError("engine.cuda_graph is off")
        return driver.capture(self.stream, body)

    def close(self) -> None:
        self._context = None  # before the buffers it points at
        buffers, self._buffers = self._buffers, []
        for buf in buffers:
            buf.close()


class _HostPath:
    """``infer``: pinned input → H2D → engine → D2H → pinned outputs, on its own lane."""

    def __init__(self, lane: TensorRTLane) -> None:
        from inspector.nvidia import driver

        self.lane = lane
        self.graph: Any = None
        self.host_in = driver.PinnedArray(lane.input.shape, lane.input.dtype)
        self.host_out = [driver.PinnedArray(o.shape, o.dtype) for o in lane.outputs]

    def enqueue(self) -> None:
        from inspector.nvidia import driver

        stream = self.lane.stream
        driver.copy_htod_async(self.lane.input.ptr, self.host_in.ptr, self.host_in.nbytes, stream)
        self.lane.enqueue()
        for host, dev in zip(self.host_out, self.lane.outputs, strict=True):
            driver.copy_dtoh_async(host.ptr, dev.ptr, host.nbytes, stream)

    def run(self, tensor: npt.NDArray[np.float32], name: str) -> list[npt.NDArray[np.float32]]:
        from inspector.nvidia import driver

        driver.make_current(0)  # the calling thread (the worker) may not have bound it yet
        if tensor.shape != self.host_in.array.shape:
            raise BackendError(
                f"input shape {tensor.shape}, engine {name} expects {self.host_in.array.shape}"
            )
        self.host_in.array[...] = tensor  # casts to the engine's input type (fp16 models)
        if self.graph is not None:
            self.graph.launch()
        else:
            self.enqueue()
        driver.stream_sync(self.lane.stream)
        return [np.array(h.array, dtype=np.float32) for h in self.host_out]

    def close(self) -> None:
        from inspector.nvidia import driver

        if self.graph is not None:
            self.graph.close()
            self.graph = None
        self.lane.close()
        for buf in (self.host_in, *self.host_out):
            buf.close()
        driver.stream_destroy(self.lane.stream)


def _new_stream() -> int:
    from inspector.nvidia import driver

    return driver.stream_create(0)


def _opt_hw(manifest: Manifest) -> tuple[int, int] | None:
    shapes = next(iter(manifest.shapes.values()), None)
    if shapes and len(shapes[1]) == 4:
        return shapes[1][2], shapes[1][3]
    return None


__all__ = ["TensorRTBackend", "TensorRTDeviceModel", "TensorRTLane"]
