"""TensorRT on the GPU: the production backend on the Jetson (step 4 of the flow).

``load()`` asks the engine cache (``engine/cache.py``) for the plan that matches this
ONNX, this TensorRT and this GPU; builds one first if ``engine.build_on_start`` allows
it (telling systemd to extend the start timeout); verifies the plan's SHA-256 and only
then deserialises it, explaining a refusal (other GPU, other TensorRT, corrupt plan).
I/O tensors are found by name and mode and returned in the ONNX model's output order.

Per part: host tensor → pinned input → ``execute_async_v3`` on our stream → pinned
outputs → numpy. After warm-up the whole sequence is captured as a CUDA graph and
replayed; if capture fails the backend keeps plain enqueue. One part at a time: the
pipeline calls ``infer`` from its single inference thread.

Never executed in this project (no TensorRT here); see docs/tensorrt.md. TensorRT and
cuda-python are imported inside methods, so importing this module imports neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from inspector.backends.base import Backend
from inspector.config import ModelConfig
from inspector.engine import cache
from inspector.engine.bindings import BindingPlan, plan_bindings
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
    from inspector.engine import cudart, trt_build
    from inspector.engine.build import Toolchain

    version = trt_build.tensorrt_version()
    name, cc = cudart.device_properties(0)
    return Toolchain(
        version, name, cc, trt_build.compile_plan, TensorRTBackend.from_plan, open_reference
    )


class TensorRTBackend(Backend):
    """Runs a verified TensorRT plan built from ``model.path`` (an ONNX file)."""

    name = "tensorrt"

    def __init__(self, model: ModelConfig) -> None:
        super().__init__(model)
        self._resources: list[Any] = []
        self._graph: Any = None
        self._engine: Any = None
        self._context: Any = None

    # ------------------------------------------------------------------ load
    def load(self) -> None:
        from inspector.engine import cudart, trt_build

        trt = trt_build.import_tensorrt()
        gpu_name, cc = cudart.device_properties(0)
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
        from inspector.engine import cudart, trt_build

        trt = trt_build.import_tensorrt()
        _, cc = cudart.device_properties(0)
        backend = cls(model)
        try:
            backend._setup(backend._deserialize(trt, data, cc, manifest.dla_core), manifest)
        except BaseException:
            backend.close()
            raise
        return backend

    def _deserialize(self, trt: Any, data: bytes, cc: str, dla_core: int | None) -> Any:
        from inspector.engine import trt_build

        self._logger = trt_build.make_logger(trt)
        self._runtime = trt.Runtime(self._logger)
        if dla_core is not None:  # a DLA plan runs on the core the runtime names
            self._runtime.DLA_core = dla_core
        engine = self._runtime.deserialize_cuda_engine(data)
        if engine is None:
            why = diagnose(self._logger.messages, this_trt=str(trt.__version__), this_cc=cc)
            raise EngineError(f"{self.model.path.name}: {why.message}")
        return engine

    def _setup(self, engine: Any, manifest: Manifest) -> None:
        from inspector.engine import cudart

        self._engine = engine
        self._context = engine.create_execution_context()
        if self._context is None:
            raise EngineError("TensorRT could not create an execution context (out of memory?)")
        # A static engine keeps its own input shape; a dynamic one gets batch 1 at the
        # configured size, else the profile's opt size.
        hw = self.model.input_size or _opt_hw(manifest)
        shapes = {manifest.onnx_inputs[0]: (1, 3, *hw)} if hw else {}
        plan = plan_bindings(
            engine, self._context, manifest.onnx_inputs, manifest.onnx_outputs, shapes
        )
        self._stream = cudart.Stream()
        self._resources.append(self._stream)
        self._bind(plan)
        self._info = ModelInfo(
            inputs=tuple(TensorSpec(b.name, b.shape, b.dtype) for b in plan.inputs),
            outputs=tuple(TensorSpec(b.name, b.shape, b.dtype) for b in plan.outputs),
            metadata=dict(manifest.onnx_metadata),
        )

    def _bind(self, plan: BindingPlan) -> None:
        """One device buffer per tensor, pinned host buffers for input and outputs."""
        from inspector.engine import cudart

        self._inputs: list[tuple[Any, Any]] = []
        self._outputs: list[tuple[Any, Any]] = []
        for binding in (*plan.inputs, *plan.outputs):
            device = cudart.DeviceBuffer(binding.nbytes)
            host = cudart.PinnedBuffer(binding.shape, binding.dtype)
            self._resources += [device, host]
            if not self._context.set_tensor_address(binding.name, device.ptr):
                raise EngineError(f"TensorRT refused the address of tensor {binding.name!r}")
            (self._inputs if binding.is_input else self._outputs).append((host, device))

    # ------------------------------------------------------------------ run
    def _enqueue(self) -> None:
        from inspector.engine import cudart

        for host, device in self._inputs:
            cudart.copy_htod_async(device.ptr, host.ptr, host.nbytes, self._stream)
        if not self._context.execute_async_v3(self._stream.handle):
            raise BackendError(f"TensorRT execute_async_v3 failed on {self.model.name}")
        for host, device in self._outputs:
            cudart.copy_dtoh_async(host.ptr, device.ptr, host.nbytes, self._stream)

    def infer(self, tensor: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        host_in = self._inputs[0][0].array
        if tensor.shape != host_in.shape:
            raise BackendError(f"input shape {tensor.shape}, engine expects {host_in.shape}")
        host_in[...] = tensor  # casts to the engine's input type (fp16 for typed models)
        if self._graph is not None:
            self._graph.launch(self._stream)
        else:
            self._enqueue()
        self._stream.sync()
        return [np.array(host.array, dtype=np.float32) for host, _ in self._outputs]

    def warmup(self, runs: int = 3) -> None:
        """Run ``max(runs, engine.warmup_runs)`` times, then capture the CUDA graph.

        TensorRT finishes deferred work on the first enqueues after a shape is set, so
        capture comes after warm-up; a failed capture is logged and plain enqueue stays.
        """
        super().warmup(max(runs, self.model.engine.warmup_runs))
        if self.model.engine.cuda_graph and self._graph is None:
            from inspector.engine import cudart

            try:
                self._graph = cudart.capture_graph(self._stream, self._enqueue)
            except BackendError as exc:
                log.warning("cuda_graph_unavailable", model=self.model.name, error=str(exc))
                return
            super().warmup(1)  # the graph's first replay, checked like any run
            log.info("cuda_graph_captured", model=self.model.name)

    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None
        # Context before engine before buffers: TensorRT objects hold the addresses.
        self._context = None
        self._engine = None
        for resource in reversed(self._resources):
            resource.close()
        self._resources.clear()


def _opt_hw(manifest: Manifest) -> tuple[int, int] | None:
    shapes = next(iter(manifest.shapes.values()), None)
    if shapes and len(shapes[1]) == 4:
        return shapes[1][2], shapes[1][3]
    return None


__all__ = ["TensorRTBackend"]
