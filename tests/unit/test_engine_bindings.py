"""Tensor binding logic against a fake engine with ``ICudaEngine``'s method names.

The subject is our mapping (names, modes, dtypes, profiles, buffer sizes), not
TensorRT; the fake implements exactly the calls ``bindings.py`` makes.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import pytest

from inspector.engine.bindings import discover, plan_bindings, resolve_input_shape
from inspector.errors import EngineError


class TensorIOMode(enum.Enum):  # same member names as tensorrt.TensorIOMode
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class DataType(enum.Enum):  # same member names as tensorrt.DataType
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BF16 = 7


Tensor = tuple[str, TensorIOMode, tuple[int, ...], DataType]
Profile = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


class FakeEngine:
    def __init__(self, tensors: Sequence[Tensor], profiles: dict[str, Profile] | None = None):
        self.tensors = list(tensors)
        self.profiles = profiles or {}

    @property
    def num_io_tensors(self) -> int:
        return len(self.tensors)

    @property
    def num_optimization_profiles(self) -> int:
        return 1 if self.profiles else 0

    def _get(self, name: str) -> Tensor:
        return next(t for t in self.tensors if t[0] == name)

    def get_tensor_name(self, index: int) -> str:
        return self.tensors[index][0]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return self._get(name)[1]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self._get(name)[2]

    def get_tensor_dtype(self, name: str) -> DataType:
        return self._get(name)[3]

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> Profile:
        assert profile_index == 0
        return self.profiles[name]


class FakeContext:
    """Output shapes follow the batch of input ``images``, as a YOLO engine's do."""

    def __init__(self, engine: FakeEngine, refuse: bool = False) -> None:
        self.engine = engine
        self.inputs: dict[str, tuple[int, ...]] = {}
        self.refuse = refuse

    def set_input_shape(self, name: str, shape: Sequence[int]) -> bool:
        if self.refuse:
            return False
        self.inputs[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        shape = self.engine.get_tensor_shape(name)
        if self.engine.get_tensor_mode(name) is TensorIOMode.INPUT:
            return self.inputs.get(name, shape)
        batch = self.inputs.get("images", (1,))[0]
        return tuple(batch if d == -1 else d for d in shape)


IN, OUT = TensorIOMode.INPUT, TensorIOMode.OUTPUT
STATIC = FakeEngine(
    [
        ("output1", OUT, (1, 32, 160, 160), DataType.HALF),
        ("images", IN, (1, 3, 640, 640), DataType.FLOAT),
        ("output0", OUT, (1, 39, 8400), DataType.FLOAT),
    ]
)
DYNAMIC = FakeEngine(
    [
        ("images", IN, (-1, 3, 640, 640), DataType.FLOAT),
        ("output0", OUT, (-1, 7, 8400), DataType.FLOAT),
    ],
    profiles={"images": ((1, 3, 640, 640), (1, 3, 640, 640), (4, 3, 640, 640))},
)


def test_discover_reads_names_modes_dtypes_and_profiles() -> None:
    found = {t.name: t for t in discover(DYNAMIC)}
    assert found["images"].is_input and not found["output0"].is_input
    assert found["images"].profile == ((1, 3, 640, 640), (1, 3, 640, 640), (4, 3, 640, 640))
    assert found["output0"].profile is None
    assert {t.dtype for t in discover(STATIC)} == {"float16", "float32"}


def test_static_engine_outputs_follow_model_order_with_sizes() -> None:
    plan = plan_bindings(STATIC, FakeContext(STATIC), ["images"], ["output0", "output1"], {})
    assert [b.name for b in plan.outputs] == ["output0", "output1"]
    assert plan.inputs[0].nbytes == 3 * 640 * 640 * 4
    assert plan.outputs[0].nbytes == 39 * 8400 * 4
    assert plan.outputs[1].nbytes == 32 * 160 * 160 * 2  # fp16 output: 2 bytes


def test_dynamic_input_shape_is_set_and_outputs_resolved() -> None:
    ctx = FakeContext(DYNAMIC)
    plan = plan_bindings(DYNAMIC, ctx, ["images"], ["output0"], {"images": (2, 3, 640, 640)})
    assert ctx.inputs == {"images": (2, 3, 640, 640)}
    assert plan.outputs[0].shape == (2, 7, 8400)
    assert plan.outputs[0].nbytes == 2 * 7 * 8400 * 4


@pytest.mark.parametrize(
    ("shape", "words"),
    [
        ((8, 3, 640, 640), "outside the engine's profile"),
        ((0, 3, 640, 640), "outside the engine's profile"),
        ((1, 3, 320, 320), "fixed at 640"),
        ((1, 3, 640), "rank 4"),
    ],
)
def test_bad_input_shapes_are_refused(shape: tuple[int, ...], words: str) -> None:
    with pytest.raises(EngineError, match=words):
        plan_bindings(DYNAMIC, FakeContext(DYNAMIC), ["images"], ["output0"], {"images": shape})


def test_tensorrt_refusing_a_shape_is_an_error() -> None:
    with pytest.raises(EngineError, match="refused shape"):
        plan_bindings(
            DYNAMIC, FakeContext(DYNAMIC, refuse=True), ["images"], ["output0"],
            {"images": (1, 3, 640, 640)},
        )  # fmt: skip


@pytest.mark.parametrize(
    ("inputs", "outputs"),
    [(["input"], ["output0"]), (["images"], ["output0", "extra"]), (["images"], ["out"])],
)
def test_engine_from_another_model_is_refused(inputs: list[str], outputs: list[str]) -> None:
    with pytest.raises(EngineError, match="built from another model"):
        plan_bindings(DYNAMIC, FakeContext(DYNAMIC), inputs, outputs, {})


def test_dynamic_without_profile_and_unknown_dtype() -> None:
    no_profile = FakeEngine([("images", IN, (-1, 3, 64, 64), DataType.FLOAT)])
    with pytest.raises(EngineError, match="no profile"):
        resolve_input_shape(discover(no_profile)[0], (1, 3, 64, 64))
    bf16 = FakeEngine([("images", IN, (1, 3, 64, 64), DataType.BF16)])
    with pytest.raises(EngineError, match="BF16"):
        discover(bf16)


def test_data_dependent_output_shape_is_refused() -> None:
    nms = FakeEngine(
        [("images", IN, (1, 3, 64, 64), DataType.FLOAT), ("boxes", OUT, (-1, 4), DataType.FLOAT)]
    )

    class NmsContext(FakeContext):
        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return (-1, 4) if name == "boxes" else (1, 3, 64, 64)

    with pytest.raises(EngineError, match="data-dependent"):
        plan_bindings(nms, NmsContext(nms), ["images"], ["boxes"], {})
