"""A strict test double of the part of the ``tensorrt`` Python API that inspector uses.

TensorRT cannot be installed on this project's machines. This module stands in for it
(``install(monkeypatch)`` puts it in ``sys.modules["tensorrt"]``) so that
``engine/trt_api.py``, ``backends/tensorrt.py`` and the builder run for real around it:

* **Strict about the API**: only the classes, enum members, methods and properties that
  TensorRT 10.3 and 11.x bind (``python/src/infer/pyCore.cpp``, ``pyFoundationalTypes.cpp``,
  ``parsers/pyOnnx.cpp`` at the v10.3.0 tag and at 11.1; docs/tensorrt.md lists each
  call with its source line), with the same parameter names (pybind11 accepts them as
  keywords), argument order and return types (``bool`` from ``set_tensor_address``,
  ``execute_async_v3`` and ``set_input_shape``; ``Dims`` shapes; a list of three
  ``Dims`` from ``get_tensor_profile_shape``; ``None`` from a refused plan). A wrong
  argument type raises ``TypeError`` as pybind11 does. ``version="11.1.0"`` removes
  what 11.x removed (``BuilderFlag.FP16``/``INT8``, ``IInt8EntropyCalibrator2``).
* **Real on the GPU**: an engine's ``execute_async_v3(stream_handle)`` runs a real torch
  module on that CUDA stream, reading the input from and writing the outputs to the raw
  device addresses given with ``set_tensor_address`` (zero-copy views through
  ``__cuda_array_interface__``). Each execution context allocates its temporaries from
  its own torch memory pool, as a TensorRT context owns its activation memory, so a CUDA
  graph captured around ``execute_async_v3`` stays valid.

A network is registered per ONNX path (``register``) with its I/O tensors and a torch
module factory; the builder "parses" that path and writes a plan naming it. The module
is built only when a context runs, so the builder half works on a CPU machine.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

_MAGIC = b"TRTDOUBLE1\n"
__version__ = "10.3.0"


def _type_error(fn: str, arg: str, value: object, want: str) -> TypeError:
    return TypeError(
        f"{fn}(): incompatible function arguments: {arg} must be {want}, got {type(value).__name__}"
    )


def _int(fn: str, arg: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(fn, arg, value, "int")
    return value


def _str(fn: str, arg: str, value: object) -> str:
    if not isinstance(value, str):
        raise _type_error(fn, arg, value, "str")
    return value


def _member(fn: str, arg: str, value: object, cls: type) -> Any:
    if not isinstance(value, cls):
        raise _type_error(fn, arg, value, f"tensorrt.{cls.__name__}")
    return value


# ------------------------------------------------------------------------------ enums
class TensorIOMode(enum.IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class DataType(enum.IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    FP8 = 6
    BF16 = 7
    INT64 = 8
    INT4 = 9


_NUMPY = {DataType.FLOAT: "float32", DataType.HALF: "float16", DataType.INT32: "int32"}


class MemoryPoolType(enum.IntEnum):
    WORKSPACE = 0
    DLA_MANAGED_SRAM = 1
    DLA_LOCAL_DRAM = 2
    DLA_GLOBAL_DRAM = 3
    TACTIC_DRAM = 4
    TACTIC_SHARED_MEMORY = 5


class ProfilingVerbosity(enum.IntEnum):
    LAYER_NAMES_ONLY = 0
    NONE = 1
    DETAILED = 2


class DeviceType(enum.IntEnum):
    GPU = 0
    DLA = 1


class LayerInformationFormat(enum.IntEnum):
    ONELINE = 0
    JSON = 1


class ExecutionContextAllocationStrategy(enum.IntEnum):
    STATIC = 0
    ON_PROFILE_CHANGE = 1
    USER_MANAGED = 2


class NetworkDefinitionCreationFlag(enum.IntEnum):
    EXPLICIT_BATCH = 0  # 10.x only (deprecated there)
    STRONGLY_TYPED = 1


_FLAGS_10 = [
    "FP16",
    "BF16",
    "INT8",
    "DEBUG",
    "GPU_FALLBACK",
    "REFIT",
    "DISABLE_TIMING_CACHE",
    "TF32",
    "SPARSE_WEIGHTS",
    "SAFETY_SCOPE",
    "OBEY_PRECISION_CONSTRAINTS",
    "PREFER_PRECISION_CONSTRAINTS",
    "DIRECT_IO",
    "REJECT_EMPTY_ALGORITHMS",
    "VERSION_COMPATIBLE",
    "EXCLUDE_LEAN_RUNTIME",
    "FP8",
    "ERROR_ON_TIMING_CACHE_MISS",
    "DISABLE_COMPILATION_CACHE",
    "WEIGHTLESS",
    "STRIP_PLAN",
    "REFIT_IDENTICAL",
    "WEIGHT_STREAMING",
    "INT4",
    "REFIT_INDIVIDUAL",
]
_FLAGS_11 = [
    "DEBUG",
    "GPU_FALLBACK",
    "REFIT",
    "DISABLE_TIMING_CACHE",
    "EDITABLE_TIMING_CACHE",
    "TF32",
    "SPARSE_WEIGHTS",
    "SAFETY_SCOPE",
    "DIRECT_IO",
    "VERSION_COMPATIBLE",
    "EXCLUDE_LEAN_RUNTIME",
    "ERROR_ON_TIMING_CACHE_MISS",
    "DISABLE_COMPILATION_CACHE",
    "STRIP_PLAN",
    "REFIT_IDENTICAL",
    "WEIGHT_STREAMING",
    "REFIT_INDIVIDUAL",
    "STRICT_NANS",
    "MONITOR_MEMORY",
    "DISTRIBUTIVE_INDEPENDENCE",
]

BuilderFlag: Any = enum.IntEnum("BuilderFlag", _FLAGS_10, start=0)


class Dims(tuple):  # type: ignore[type-arg]  # tensorrt.Dims: a sequence of ints
    """``tensorrt.Dims``: iterable, indexable, ``len``."""


def _dims(fn: str, arg: str, value: object) -> Dims:
    if not isinstance(value, (tuple, list)) or not all(
        isinstance(d, int) and not isinstance(d, bool) for d in value
    ):
        raise _type_error(fn, arg, value, "tensorrt.Dims, tuple or list of int")
    return Dims(value)


# -------------------------------------------------------------------- base classes
class ILogger:
    """Subclass it and call ``ILogger.__init__(self)``, as with the real bindings."""

    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    def __init__(self) -> None:
        self._initialised = True

    def log(self, severity: ILogger.Severity, msg: str) -> None:
        raise NotImplementedError


def _check_logger(fn: str, logger: object) -> ILogger:
    logger = _member(fn, "logger", logger, ILogger)
    if not getattr(logger, "_initialised", False):
        raise TypeError(f"{fn}(): the ILogger subclass did not call ILogger.__init__(self)")
    return logger


class IProgressMonitor:
    def __init__(self) -> None:
        self._initialised = True


class IInt8EntropyCalibrator2:  # TensorRT 10 only
    def __init__(self) -> None:
        self._initialised = True


class IHostMemory:
    """Serialized bytes; ``bytes(...)`` reads them (the real one is a buffer)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __bytes__(self) -> bytes:
        return self._data

    @property
    def nbytes(self) -> int:
        return len(self._data)


# ------------------------------------------------------------------ registered networks
@dataclass
class TensorDef:
    name: str
    shape: tuple[int, ...]  # -1 marks a dynamic dimension (inputs)
    dtype: DataType = DataType.FLOAT


@dataclass
class NetworkDef:
    """What the double's "ONNX parser" finds at a registered path."""

    inputs: list[TensorDef]
    outputs: list[TensorDef]
    #: input shapes → output shapes (for dynamic inputs)
    output_shapes: Callable[[dict[str, tuple[int, ...]]], list[tuple[int, ...]]]
    #: builds the torch module on a device ("cuda"); called when a context first runs
    module: Callable[[str], Any]
    #: profile 0 of a dynamic network when the builder sets none: name → (min, opt, max)
    default_profile: dict[str, tuple[tuple[int, ...], ...]] = field(default_factory=dict)


_networks: dict[str, NetworkDef] = {}


def register(onnx_path: os.PathLike[str] | str, network: NetworkDef) -> None:
    """Make ``onnx_path`` parse into ``network`` (and plans built from it run it)."""
    _networks[os.path.realpath(onnx_path)] = network


# ------------------------------------------------------------------------------ build
class INetworkDefinition:
    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.key: str | None = None


class ParserError:
    def __init__(self, desc: str) -> None:
        self._desc = desc

    def desc(self) -> str:
        return self._desc

    def __str__(self) -> str:
        return self._desc


class OnnxParser:
    def __init__(self, network: INetworkDefinition, logger: ILogger) -> None:
        self._network = _member("OnnxParser", "network", network, INetworkDefinition)
        _check_logger("OnnxParser", logger)
        self._errors: list[ParserError] = []

    def parse_from_file(self, model: str) -> bool:
        key = os.path.realpath(_str("parse_from_file", "model", model))
        if key not in _networks:
            self._errors.append(ParserError(f"no network registered with the double: {model}"))
            return False
        self._network.key = key
        return True

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int) -> ParserError:
        return self._errors[_int("get_error", "index", index)]


class IOptimizationProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

    def set_shape(self, input: str, min: Any, opt: Any, max: Any) -> None:
        fn = "set_shape"
        lo, mid, hi = (_dims(fn, n, v) for n, v in (("min", min), ("opt", opt), ("max", max)))
        self.shapes[_str(fn, "input", input)] = (tuple(lo), tuple(mid), tuple(hi))


class ITimingCache:
    def __init__(self, data: bytes) -> None:
        self._data = data or b"timing-cache-double"

    def serialize(self) -> IHostMemory:
        return IHostMemory(self._data)


class IBuilderConfig:
    def __init__(self, builder: Builder) -> None:
        self._builder = builder
        self.flags: set[str] = set()
        self.pools: dict[str, int] = {}
        self.profiles: list[IOptimizationProfile] = []
        self._verbosity = ProfilingVerbosity.LAYER_NAMES_ONLY
        self._device_type = DeviceType.GPU
        self._dla_core = -1
        self._calibrator: Any = None
        self._monitor: Any = None
        self._timing: ITimingCache | None = None

    def set_memory_pool_limit(self, pool: MemoryPoolType, pool_size: int) -> None:
        _member("set_memory_pool_limit", "pool", pool, MemoryPoolType)
        self.pools[pool.name] = _int("set_memory_pool_limit", "pool_size", pool_size)

    def set_flag(self, flag: Any) -> None:
        self.flags.add(_member("set_flag", "flag", flag, BuilderFlag).name)

    def clear_flag(self, flag: Any) -> None:
        self.flags.discard(_member("clear_flag", "flag", flag, BuilderFlag).name)

    @property
    def profiling_verbosity(self) -> ProfilingVerbosity:
        return self._verbosity

    @profiling_verbosity.setter
    def profiling_verbosity(self, value: ProfilingVerbosity) -> None:
        self._verbosity = _member("profiling_verbosity", "value", value, ProfilingVerbosity)

    @property
    def default_device_type(self) -> DeviceType:
        return self._device_type

    @default_device_type.setter
    def default_device_type(self, value: DeviceType) -> None:
        self._device_type = _member("default_device_type", "value", value, DeviceType)

    @property
    def DLA_core(self) -> int:
        return self._dla_core

    @DLA_core.setter
    def DLA_core(self, value: int) -> None:
        self._dla_core = _int("DLA_core", "value", value)

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        self.profiles.append(_member("add_optimization_profile", "profile", profile,
                                     IOptimizationProfile))  # fmt: skip
        return len(self.profiles) - 1

    def set_calibration_profile(self, profile: IOptimizationProfile) -> bool:
        _member("set_calibration_profile", "profile", profile, IOptimizationProfile)
        return True

    @property
    def int8_calibrator(self) -> Any:
        return self._calibrator

    @int8_calibrator.setter
    def int8_calibrator(self, value: Any) -> None:
        if not hasattr(sys.modules[__name__], "IInt8EntropyCalibrator2"):
            raise AttributeError("int8_calibrator: removed in TensorRT 11")
        self._calibrator = _member("int8_calibrator", "value", value, IInt8EntropyCalibrator2)

    def create_timing_cache(self, serialized_timing_cache: bytes) -> ITimingCache:
        if not isinstance(serialized_timing_cache, (bytes, bytearray, memoryview)):
            raise _type_error("create_timing_cache", "serialized_timing_cache",
                              serialized_timing_cache, "buffer")  # fmt: skip
        return ITimingCache(bytes(serialized_timing_cache))

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        self._timing = _member("set_timing_cache", "cache", cache, ITimingCache)
        if not isinstance(ignore_mismatch, bool):
            raise _type_error("set_timing_cache", "ignore_mismatch", ignore_mismatch, "bool")
        return True

    def get_timing_cache(self) -> ITimingCache | None:
        return self._timing

    @property
    def progress_monitor(self) -> Any:
        return self._monitor

    @progress_monitor.setter
    def progress_monitor(self, value: Any) -> None:
        self._monitor = _member("progress_monitor", "value", value, IProgressMonitor)


class Builder:
    def __init__(self, logger: ILogger) -> None:
        self.logger = _check_logger("Builder", logger)

    @property
    def num_DLA_cores(self) -> int:
        return 0

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        return INetworkDefinition(_int("create_network", "flags", flags))

    def create_optimization_profile(self) -> IOptimizationProfile:
        return IOptimizationProfile()

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig(self)

    def build_serialized_network(
        self, network: INetworkDefinition, config: IBuilderConfig
    ) -> IHostMemory | None:
        _member("build_serialized_network", "network", network, INetworkDefinition)
        _member("build_serialized_network", "config", config, IBuilderConfig)
        if network.key is None:
            self.logger.log(ILogger.Severity.ERROR, "network has no layers (not parsed)")
            return None
        monitor = config.progress_monitor
        if monitor is not None:
            monitor.phase_start("Building engine (double)", None, 1)
            monitor.step_complete("Building engine (double)", 0)
            monitor.phase_finish("Building engine (double)")
        profiles = {k: [list(s) for s in v] for p in config.profiles for k, v in p.shapes.items()}
        body = {
            "network": network.key,
            "version": __version__,
            "flags": sorted(config.flags),
            "strongly_typed": bool(
                network.flags & (1 << NetworkDefinitionCreationFlag.STRONGLY_TYPED.value)
            ),
            "profiles": profiles,
        }
        return IHostMemory(_MAGIC + json.dumps(body).encode())


# ------------------------------------------------------------------------------- run
class EngineInspector:
    def __init__(self, engine: ICudaEngine) -> None:
        self._engine = engine

    def get_engine_information(self, format: LayerInformationFormat) -> str:
        _member("get_engine_information", "format", format, LayerInformationFormat)
        layers = [{"Name": "double_module", "LayerType": "TorchModule"}]
        return json.dumps({"Layers": layers})


class ICudaEngine:
    def __init__(self, network: NetworkDef, plan: dict[str, Any]) -> None:
        self._net = network
        self._plan = plan
        self._tensors = {t.name: (t, TensorIOMode.INPUT) for t in network.inputs}
        self._tensors.update({t.name: (t, TensorIOMode.OUTPUT) for t in network.outputs})
        self._order = [*self._tensors]
        profiles = {k: tuple(tuple(s) for s in v) for k, v in plan["profiles"].items()}
        self._profile = profiles or network.default_profile
        self._module: Any = None
        self._lock = threading.Lock()

    @property
    def num_io_tensors(self) -> int:
        return len(self._order)

    @property
    def num_optimization_profiles(self) -> int:
        return 1 if self._profile else 0

    def _tensor(self, fn: str, name: object) -> tuple[TensorDef, TensorIOMode]:
        key = _str(fn, "name", name)
        if key not in self._tensors:
            raise RuntimeError(f"{fn}: no tensor named {key!r}")  # TRT logs and returns junk
        return self._tensors[key]

    def get_tensor_name(self, index: int) -> str:
        return self._order[_int("get_tensor_name", "index", index)]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return self._tensor("get_tensor_mode", name)[1]

    def get_tensor_shape(self, name: str) -> Dims:
        tensor, mode = self._tensor("get_tensor_shape", name)
        if mode is TensorIOMode.INPUT:
            return Dims(tensor.shape)
        index = [t.name for t in self._net.outputs].index(tensor.name)
        if not self._profile:  # static network
            static = {t.name: t.shape for t in self._net.inputs}
            return Dims(self._net.output_shapes(static)[index])
        lo = self._net.output_shapes({k: v[0] for k, v in self._profile.items()})[index]
        hi = self._net.output_shapes({k: v[2] for k, v in self._profile.items()})[index]
        return Dims(a if a == b else -1 for a, b in zip(lo, hi, strict=True))

    def get_tensor_dtype(self, name: str) -> DataType:
        return self._tensor("get_tensor_dtype", name)[0].dtype

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[Dims]:
        self._tensor("get_tensor_profile_shape", name)
        if _int("get_tensor_profile_shape", "profile_index", profile_index) != 0:
            raise RuntimeError("profile index out of range")
        return [Dims(s) for s in self._profile[name]]

    def create_execution_context(
        self,
        strategy: ExecutionContextAllocationStrategy = ExecutionContextAllocationStrategy.STATIC,
    ) -> IExecutionContext:
        _member("create_execution_context", "strategy", strategy,
                ExecutionContextAllocationStrategy)  # fmt: skip
        return IExecutionContext(self)

    def create_engine_inspector(self) -> EngineInspector:
        return EngineInspector(self)

    def module(self) -> Any:
        """The torch module, built once on first use (shared by the contexts: weights)."""
        with self._lock:
            if self._module is None:
                import torch

                module = self._net.module("cuda").eval()
                self._module = module.half() if "FP16" in self._plan["flags"] else module
                self._torch = torch
            return self._module


class _CudaArray:
    """A raw device pointer seen through ``__cuda_array_interface__`` (no copy, no sync)."""

    _TYPESTR: ClassVar[dict[str, str]] = {"float32": "<f4", "float16": "<f2", "int32": "<i4"}

    def __init__(self, ptr: int, shape: tuple[int, ...], dtype: str) -> None:
        self.__cuda_array_interface__ = {
            "shape": shape,
            "typestr": self._TYPESTR[dtype],
            "data": (ptr, False),
            "version": 3,
            "strides": None,
            "stream": None,
        }


class IExecutionContext:
    """Runs the engine's torch module on the stream given to ``execute_async_v3``."""

    def __init__(self, engine: ICudaEngine) -> None:
        self._engine = engine
        self._shapes: dict[str, tuple[int, ...]] = {
            t.name: t.shape for t in engine._net.inputs if -1 not in t.shape
        }
        self._addresses: dict[str, int] = {}
        self._views: dict[str, Any] = {}
        self._pool: Any = None
        self.executions = 0

    def set_input_shape(self, name: str, shape: Any) -> bool:
        tensor, mode = self._engine._tensor("set_input_shape", name)
        dims = tuple(_dims("set_input_shape", "shape", shape))
        if mode is not TensorIOMode.INPUT or len(dims) != len(tensor.shape):
            return False
        if any(s != -1 and s != d for s, d in zip(tensor.shape, dims, strict=True)):
            return False
        lo, _, hi = self._engine._profile.get(name, (dims, dims, dims))
        if any(not a <= d <= b for a, d, b in zip(lo, dims, hi, strict=True)):
            return False
        self._shapes[name] = dims
        self._views.clear()
        return True

    def get_tensor_shape(self, name: str) -> Dims:
        tensor, mode = self._engine._tensor("get_tensor_shape", name)
        if mode is TensorIOMode.INPUT:
            return Dims(self._shapes.get(name, tensor.shape))
        if len(self._shapes) < len(self._engine._net.inputs):
            return Dims(-1 for _ in tensor.shape)  # input shapes not all specified yet
        outs = self._engine._net.output_shapes(self._shapes)
        names = [t.name for t in self._engine._net.outputs]
        return Dims(outs[names.index(name)])

    def set_tensor_address(self, name: str, memory: int) -> bool:
        self._engine._tensor("set_tensor_address", name)
        self._addresses[name] = _int("set_tensor_address", "memory", memory)
        self._views.pop(name, None)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        _int("execute_async_v3", "stream_handle", stream_handle)
        engine = self._engine
        names = [t.name for t in (*engine._net.inputs, *engine._net.outputs)]
        if any(n not in self._addresses for n in names):
            return False  # TensorRT: "address is not set" and enqueue fails
        if len(self._shapes) < len(engine._net.inputs):
            return False
        module = engine.module()
        torch = engine._torch
        if self._pool is None and hasattr(torch.cuda, "MemPool"):
            self._pool = torch.cuda.MemPool()
        use_pool = (
            torch.cuda.use_mem_pool(self._pool)
            if self._pool is not None
            else contextlib.nullcontext()
        )
        stream = torch.cuda.ExternalStream(stream_handle)
        with torch.cuda.stream(stream), torch.inference_mode(), use_pool:
            inputs = [self._view(t) for t in engine._net.inputs]
            param = next(module.parameters())
            out = module(*(x.to(param.dtype) for x in inputs))
            outs = out if isinstance(out, (list, tuple)) else [out]
            for tensor, value in zip(engine._net.outputs, outs, strict=True):
                self._view(tensor).copy_(value)
        self.executions += 1
        return True

    def _view(self, tensor: TensorDef) -> Any:
        view = self._views.get(tensor.name)
        if view is None:
            torch = self._engine._torch
            shape = tuple(self.get_tensor_shape(tensor.name))
            raw = _CudaArray(self._addresses[tensor.name], shape, _NUMPY[tensor.dtype])
            view = torch.as_tensor(raw, device="cuda")
            self._views[tensor.name] = view
        return view


class Runtime:
    def __init__(self, logger: ILogger) -> None:
        self.logger = _check_logger("Runtime", logger)
        self._dla_core = -1

    @property
    def DLA_core(self) -> int:
        return self._dla_core

    @DLA_core.setter
    def DLA_core(self, value: int) -> None:
        self._dla_core = _int("DLA_core", "value", value)

    @property
    def num_DLA_cores(self) -> int:
        return 0

    def deserialize_cuda_engine(self, serialized_engine: bytes) -> ICudaEngine | None:
        if not isinstance(serialized_engine, (bytes, bytearray, memoryview)):
            raise _type_error("deserialize_cuda_engine", "serialized_engine",
                              serialized_engine, "buffer")  # fmt: skip
        data = bytes(serialized_engine)
        error = ILogger.Severity.ERROR
        if not data.startswith(_MAGIC):
            self.logger.log(error, "1: [stdArchiveReader.cpp::StdArchiveReaderInitCommon::46] "
                            "Error Code 1: Serialization (Serialization assertion "
                            "stdVersionRead == kSERIALIZATION_VERSION failed.Version tag "
                            "does not match. Note: Current Version: 239, Serialized Engine "
                            "Version: 0)")  # fmt: skip
            return None
        plan = json.loads(data[len(_MAGIC) :])
        if plan["version"] != __version__:
            self.logger.log(error, "1: [runtime.cpp::parsePlan::314] Error Code 1: "
                            "Serialization (Serialization assertion plan->header.magicTag "
                            "== rt::kPLAN_MAGIC_TAG failed.) The engine plan file is not "
                            f"compatible with this version of TensorRT, expecting library "
                            f"version {__version__} got {plan['version']}")  # fmt: skip
            return None
        network = _networks.get(plan["network"])
        if network is None:
            self.logger.log(error, f"plan names an unregistered network {plan['network']}")
            return None
        return ICudaEngine(network, plan)


# ------------------------------------------------------------------------- installing
def install(monkeypatch: pytest.MonkeyPatch, version: str = "10.3.0") -> Any:
    """Put this double in ``sys.modules["tensorrt"]`` (for one test), as ``version``."""
    module = sys.modules[__name__]
    monkeypatch.setattr(module, "__version__", version)
    major = int(version.split(".")[0])
    flags = _FLAGS_10 if major < 11 else _FLAGS_11
    monkeypatch.setattr(module, "BuilderFlag", enum.IntEnum("BuilderFlag", flags, start=0))
    if major >= 11:  # removed in 11: implicit INT8 calibration (pyCore.cpp at 11.1)
        monkeypatch.delattr(module, "IInt8EntropyCalibrator2")
        monkeypatch.delattr(IBuilderConfig, "set_calibration_profile")
        monkeypatch.delattr(IBuilderConfig, "int8_calibrator")
        monkeypatch.setattr(
            module,
            "NetworkDefinitionCreationFlag",
            enum.IntEnum("NetworkDefinitionCreationFlag", {"STRONGLY_TYPED": 1}),
        )
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    return module


def static_network(
    inputs: Sequence[TensorDef], outputs: Sequence[TensorDef], module: Callable[[str], Any]
) -> NetworkDef:
    """A network whose output shapes do not depend on the input shapes."""
    shapes = [t.shape for t in outputs]
    return NetworkDef(list(inputs), list(outputs), lambda _: shapes, module)
