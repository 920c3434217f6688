"""Tensor bindings: map an engine's I/O tensors to the model's inputs and outputs.

Works on any object with the method names of ``tensorrt.ICudaEngine`` (and of
``IExecutionContext`` for shapes), so the mapping logic is tested without TensorRT.
The backend allocates one device buffer per ``Binding`` and returns outputs in
``BindingPlan.outputs`` order, which is the ONNX model's output order: the
postprocessor sees the same list as it gets from ONNX Runtime.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from inspector.engine.options import Shape
from inspector.errors import EngineError

#: TensorRT ``DataType`` member names → numpy dtype names (host buffers).
NUMPY_DTYPES: dict[str, str] = {
    "FLOAT": "float32",
    "HALF": "float16",
    "INT8": "int8",
    "UINT8": "uint8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
}


class EngineLike(Protocol):
    """The part of ``tensorrt.ICudaEngine`` the mapping reads."""

    @property
    def num_io_tensors(self) -> int: ...
    @property
    def num_optimization_profiles(self) -> int: ...
    def get_tensor_name(self, index: int) -> str: ...
    def get_tensor_mode(self, name: str) -> Any: ...
    def get_tensor_shape(self, name: str) -> Any: ...
    def get_tensor_dtype(self, name: str) -> Any: ...
    def get_tensor_profile_shape(self, name: str, profile_index: int) -> Any: ...


class ContextLike(Protocol):
    """The part of ``tensorrt.IExecutionContext`` the mapping uses."""

    def set_input_shape(self, name: str, shape: Any) -> bool: ...
    def get_tensor_shape(self, name: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class IoTensor:
    """One I/O tensor as the engine declares it (-1 marks a dynamic dimension)."""

    name: str
    is_input: bool
    shape: Shape
    dtype: str
    profile: tuple[Shape, Shape, Shape] | None = None  # min, opt, max of profile 0


@dataclass(frozen=True, slots=True)
class Binding:
    """One tensor with its concrete shape and the bytes its buffer needs."""

    name: str
    is_input: bool
    shape: Shape
    dtype: str

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True, slots=True)
class BindingPlan:
    inputs: tuple[Binding, ...]
    outputs: tuple[Binding, ...]


def _enum_name(value: Any) -> str:
    name = getattr(value, "name", None)
    return str(name if name is not None else value).rsplit(".", 1)[-1]


def _shape(dims: Iterable[int]) -> Shape:
    return tuple(int(d) for d in dims)


def discover(engine: EngineLike) -> list[IoTensor]:
    """Every I/O tensor of ``engine``, by name and mode, in engine order."""
    found = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        mode = _enum_name(engine.get_tensor_mode(name))
        if mode not in ("INPUT", "OUTPUT"):
            continue
        trt_dtype = _enum_name(engine.get_tensor_dtype(name))
        if trt_dtype not in NUMPY_DTYPES:
            raise EngineError(f"tensor {name!r} has type {trt_dtype}, which has no host type")
        shape = _shape(engine.get_tensor_shape(name))
        profile = None
        if mode == "INPUT" and -1 in shape and engine.num_optimization_profiles > 0:
            lo, opt, hi = engine.get_tensor_profile_shape(name, 0)
            profile = (_shape(lo), _shape(opt), _shape(hi))
        found.append(IoTensor(name, mode == "INPUT", shape, NUMPY_DTYPES[trt_dtype], profile))
    return found


def resolve_input_shape(tensor: IoTensor, wanted: Sequence[int]) -> Shape:
    """The concrete shape to set for ``tensor``: ``wanted``, checked against the engine."""
    want = _shape(wanted)
    if len(want) != len(tensor.shape):
        raise EngineError(f"input {tensor.name!r}: engine has rank {len(tensor.shape)}, got {want}")
    for axis, (have, w) in enumerate(zip(tensor.shape, want, strict=True)):
        if have != -1 and have != w:
            raise EngineError(
                f"input {tensor.name!r}: axis {axis} is fixed at {have} in the engine, got {w}"
            )
    if -1 in tensor.shape:
        if tensor.profile is None:
            raise EngineError(f"input {tensor.name!r} is dynamic but the engine has no profile")
        lo, _, hi = tensor.profile
        if any(not lo_d <= w <= hi_d for lo_d, w, hi_d in zip(lo, want, hi, strict=True)):
            raise EngineError(
                f"input {tensor.name!r}: shape {want} is outside the engine's profile "
                f"(min {lo}, max {hi}); rebuild with --shapes covering it"
            )
    return want


def _check_names(kind: str, engine_names: Sequence[str], model_names: Sequence[str]) -> None:
    if sorted(engine_names) != sorted(model_names):
        raise EngineError(
            f"engine {kind} {sorted(engine_names)} do not match the model's {sorted(model_names)}"
            "; the plan was built from another model"
        )


def plan_bindings(
    engine: EngineLike,
    context: ContextLike,
    model_inputs: Sequence[str],
    model_outputs: Sequence[str],
    input_shapes: Mapping[str, Sequence[int]],
) -> BindingPlan:
    """Set input shapes on ``context`` and size every buffer, in the model's order.

    ``input_shapes`` gives the shape of each input the daemon feeds; an input left out
    must be static in the engine.
    """
    tensors = {t.name: t for t in discover(engine)}
    _check_names("inputs", [t.name for t in tensors.values() if t.is_input], model_inputs)
    _check_names("outputs", [t.name for t in tensors.values() if not t.is_input], model_outputs)
    inputs = []
    for name in model_inputs:
        tensor = tensors[name]
        wanted = input_shapes.get(name, tensor.shape)
        shape = resolve_input_shape(tensor, wanted)
        if -1 in tensor.shape and not context.set_input_shape(name, shape):
            raise EngineError(f"TensorRT refused shape {shape} for input {name!r}")
        inputs.append(Binding(name, True, shape, tensor.dtype))
    outputs = []
    for name in model_outputs:
        shape = _shape(context.get_tensor_shape(name))
        if any(d < 0 for d in shape):
            raise EngineError(f"output {name!r} has a data-dependent shape {shape}; not supported")
        outputs.append(Binding(name, False, shape, tensors[name].dtype))
    return BindingPlan(tuple(inputs), tuple(outputs))
