"""Tensor binding logic against a fake engine with ``ICudaEngine``'s method names.

The subject is our mapping (names, modes, dtypes, profiles, buffer sizes), not
TensorRT; the fake implements exactly the calls ``bindings.py`` makes.
"""

from __future__ import annotations

import pytest

from inspector.engine.bindings import discover, plan_bindings, resolve_input_shape
from inspector.errors import EngineError
from tests.support.engine import DYNAMIC, IN, OUT, STATIC, DataType, FakeContext, FakeEngine


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
