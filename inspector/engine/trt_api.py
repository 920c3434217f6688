"""Every call into the ``tensorrt`` module, and nothing else (thin).

Build: ``compile_plan`` parses the ONNX, applies a ``BuildPlan`` (flags, strong typing,
DLA, workspace, profiles, timing cache, INT8 calibrator) and returns the serialized
plan. Run: ``deserialize``, ``create_context``, ``bind_address`` and ``enqueue`` are the
backend's calls (``backends/tensorrt.py``); ``engine_information`` is ``engine inspect``'s.
``bindings.py`` reads an engine's I/O tensors through the ``EngineLike`` protocol.
``CapturingLogger`` keeps TensorRT's messages so failures can be explained
(``diagnose.py``). Everything decided before the build lives in ``options.py``;
everything after it (hashes, golden check, manifest) in ``build.py``.

Targets the TensorRT 10.3+ Python API (JetPack 6) and 11.x; docs/tensorrt.md lists every
call with its source. Never executed against real TensorRT in this project: the tests
run it against a strict test double (tests/support/trt_double.py). TensorRT is imported
inside functions: importing this module never imports it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inspector.engine.manifest import atomic_write
from inspector.engine.options import BuildPlan, BuildRequest, ShapeProfile
from inspector.engine.progress import BuildProgress
from inspector.errors import EngineError

INSTALL_HINT = (
    "TensorRT is not installed in this Python environment. On a Jetson (JetPack 6) use "
    "the system Python with 'sudo apt install python3-libnvinfer' (or a venv created with "
    "--system-site-packages); on x86 'pip install \"inspector[tensorrt]\"'"
)


def import_tensorrt() -> Any:
    """The ``tensorrt`` module, or EngineError saying how to install it."""
    try:
        import tensorrt
    except ImportError as exc:
        raise EngineError(f"{INSTALL_HINT} ({exc})") from exc
    return tensorrt


def make_logger(trt: Any) -> Any:
    """A ``trt.ILogger`` that keeps every message of severity WARNING or worse."""

    class CapturingLogger(trt.ILogger):  # type: ignore[misc]  # base class is untyped
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: list[str] = []
            self._lock = threading.Lock()

        def log(self, severity: Any, msg: str) -> None:
            if int(severity) <= int(trt.ILogger.Severity.WARNING):
                with self._lock:
                    self.messages.append(str(msg))

    return CapturingLogger()


def make_progress_monitor(trt: Any, progress: BuildProgress) -> Any:
    """A ``trt.IProgressMonitor`` that forwards to ``progress``."""

    class Monitor(trt.IProgressMonitor):  # type: ignore[misc]  # base class is untyped
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            progress.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return progress.step_complete(phase_name, step)

        def phase_finish(self, phase_name: str) -> None:
            progress.phase_finish(phase_name)

    return Monitor()


def make_calibrator(trt: Any, batches: Sequence[np.ndarray[Any, Any]], cache: Path) -> Any:
    """An INT8 entropy calibrator (TensorRT 10; removed in 11) over preprocessed batches."""
    from inspector.nvidia import driver

    class Calibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc]  # untyped base
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._batches = list(batches)
            self._next = 0
            shape = tuple(int(d) for d in self._batches[0].shape) if self._batches else (1,)
            driver.make_current(0)
            self._host = driver.PinnedArray(shape, "float32")
            self._device = driver.DeviceBuffer(self._host.nbytes)
            self._stream = driver.stream_create(0)

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self._next >= len(self._batches):
                return None
            self._host.array[...] = self._batches[self._next]
            self._next += 1
            driver.copy_htod_async(
                self._device.ptr, self._host.ptr, self._host.nbytes, self._stream
            )
            driver.stream_sync(self._stream)
            return [self._device.ptr]

        def read_calibration_cache(self) -> bytes | None:
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data: Any) -> None:
            atomic_write(cache, bytes(data))

        def close(self) -> None:
            self._host.close()
            self._device.close()
            driver.stream_destroy(self._stream)

    return Calibrator()


def _config(trt: Any, builder: Any, request: BuildRequest, plan: BuildPlan) -> Any:
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, request.workspace_mib << 20)
    for name in plan.flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    for name in plan.clear_flags:
        config.clear_flag(getattr(trt.BuilderFlag, name))
    # DETAILED keeps per-layer information for 'inspector engine inspect'.
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if request.dla_core is not None:
        if builder.num_DLA_cores <= request.dla_core:
            raise EngineError(
                f"DLA core {request.dla_core} requested, device has {builder.num_DLA_cores}"
            )
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = request.dla_core
    return config


def _parse(trt: Any, builder: Any, logger: Any, onnx: Path, strongly_typed: bool) -> Any:
    flags = 0
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    # TensorRT 10 networks are always explicit-batch; EXPLICIT_BATCH is deprecated there.
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineError(f"TensorRT cannot parse {onnx}: " + "; ".join(errors))
    return network, parser


def compile_plan(
    request: BuildRequest,
    plan: BuildPlan,
    profiles: Sequence[ShapeProfile],
    progress: BuildProgress,
    calib_batches: Sequence[np.ndarray[Any, Any]] = (),
) -> bytes:
    """Build and return the serialized plan; EngineError with TensorRT's messages if not."""
    trt = import_tensorrt()
    logger = make_logger(trt)
    builder = trt.Builder(logger)
    network, _parser = _parse(trt, builder, logger, request.onnx, plan.strongly_typed)
    config = _config(trt, builder, request, plan)
    if profiles:
        profile = builder.create_optimization_profile()
        for p in profiles:
            profile.set_shape(p.name, p.min, p.opt, p.max)
        config.add_optimization_profile(profile)
    calibrator = None
    if plan.calibrate:
        cache = request.calib_cache or request.out_dir / f"{request.onnx.stem}.calib"
        calibrator = make_calibrator(trt, calib_batches, cache)
        config.int8_calibrator = calibrator
        if profiles:
            config.set_calibration_profile(profile)
    timing = None
    if request.timing_cache is not None:
        data = request.timing_cache.read_bytes() if request.timing_cache.is_file() else b""
        timing = config.create_timing_cache(data)
        config.set_timing_cache(timing, ignore_mismatch=False)
    monitor = make_progress_monitor(trt, progress)
    config.progress_monitor = monitor
    try:
        serialized = builder.build_serialized_network(network, config)
    finally:
        if calibrator is not None:
            calibrator.close()
    if serialized is None:
        raise EngineError("TensorRT build failed: " + " | ".join(logger.messages[-5:]))
    if request.timing_cache is not None:
        atomic_write(request.timing_cache, bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


def tensorrt_version() -> str:
    return str(import_tensorrt().__version__)


# ------------------------------------------------------------------------------ runtime
def deserialize(trt: Any, logger: Any, data: bytes, dla_core: int | None) -> tuple[Any, Any]:
    """``(runtime, engine)``; the engine is None when TensorRT refused the plan (the
    logger holds why). The runtime must outlive the engine."""
    runtime = trt.Runtime(logger)
    if dla_core is not None:  # a DLA plan runs on the core the runtime names
        runtime.DLA_core = dla_core
    return runtime, runtime.deserialize_cuda_engine(data)


def create_context(engine: Any) -> Any:
    """A new execution context (own activation memory); None if TensorRT could not."""
    return engine.create_execution_context()


def bind_address(context: Any, name: str, ptr: int) -> bool:
    """Point tensor ``name`` of ``context`` at device memory ``ptr``."""
    return bool(context.set_tensor_address(name, ptr))


def enqueue(context: Any, stream: int) -> bool:
    """Enqueue the engine on ``stream`` (an int CUDA stream handle); no sync."""
    return bool(context.execute_async_v3(stream))


def engine_information(trt: Any, engine: Any) -> str:
    """The engine inspector's layer information as JSON text."""
    inspector = engine.create_engine_inspector()
    return str(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
