"""``engine/trt_api.py`` against the strict TensorRT double, on a CPU (no GPU needed).

The builder half of the API runs for real around the double: ``compile_plan`` with
TensorRT 10.3 (FP16 flag, explicit profile, timing cache, progress monitor) and 11.x
(strongly typed, no precision flags), then ``deserialize`` and the engine's I/O read by
``bindings.discover`` as the backend reads it. The double's strictness is checked too:
a call with a wrong argument type fails as the real bindings do.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from inspector.engine import trt_api
from inspector.engine.bindings import discover
from inspector.engine.diagnose import diagnose
from inspector.engine.options import BuildRequest, ShapeProfile, plan_build
from inspector.engine.progress import BuildProgress
from tests.support import trt_double as td

SHAPE = (1, 3, 64, 96)


def _network(onnx: Path) -> None:
    td.register(
        onnx,
        td.NetworkDef(
            inputs=[td.TensorDef("images", (-1, 3, 64, 96))],
            outputs=[td.TensorDef("output0", (-1, 7, 384))],
            output_shapes=lambda shapes: [(shapes["images"][0], 7, 384)],
            module=lambda device: None,  # never run on a CPU
            default_profile={"images": ((1, 3, 64, 96),) * 3},
        ),
    )


def _build(tmp_path: Path, version: str, monkeypatch: pytest.MonkeyPatch) -> tuple[bytes, str]:
    trt = td.install(monkeypatch, version)
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"onnx")
    _network(onnx)
    request = BuildRequest(onnx=onnx, out_dir=tmp_path, timing_cache=tmp_path / "t.timing")
    plan = plan_build(request, int(version.split(".")[0]))
    profile = ShapeProfile("images", (1, 3, 64, 96), (1, 3, 64, 96), (4, 3, 64, 96))
    out = io.StringIO()
    data = trt_api.compile_plan(request, plan, [profile], BuildProgress(out))
    assert (tmp_path / "t.timing").read_bytes()  # the timing cache was serialized and kept
    assert trt.__version__ == version
    return data, out.getvalue()


@pytest.mark.parametrize("version", ["10.3.0", "11.1.0"])
def test_compile_then_deserialize_reads_the_io(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    data, progress = _build(tmp_path, version, monkeypatch)
    body = json.loads(data.split(b"\n", 1)[1])
    if version.startswith("10"):
        assert "FP16" in body["flags"] and not body["strongly_typed"]
    else:  # TensorRT 11: no precision flags, the network is strongly typed
        assert "FP16" not in body["flags"] and body["strongly_typed"]
    assert body["profiles"] == {"images": [[1, 3, 64, 96], [1, 3, 64, 96], [4, 3, 64, 96]]}
    assert "Building engine" in progress
    trt = trt_api.import_tensorrt()
    logger = trt_api.make_logger(trt)
    _runtime, engine = trt_api.deserialize(trt, logger, data, None)
    assert engine is not None, logger.messages
    tensors = discover(engine)
    assert [(t.name, t.is_input, t.shape, t.dtype) for t in tensors] == [
        ("images", True, (-1, 3, 64, 96), "float32"),
        ("output0", False, (-1, 7, 384), "float32"),
    ]
    assert tensors[0].profile == ((1, 3, 64, 96), (1, 3, 64, 96), (4, 3, 64, 96))
    layers = json.loads(trt_api.engine_information(trt, engine))["Layers"]
    assert layers and layers[0]["LayerType"]


def test_context_is_strict_about_argument_types(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, _ = _build(tmp_path, "10.3.0", monkeypatch)
    trt = trt_api.import_tensorrt()
    _runtime, engine = trt_api.deserialize(trt, trt_api.make_logger(trt), data, None)
    context = trt_api.create_context(engine)
    assert context.set_input_shape(name="images", shape=(2, 3, 64, 96)) is True
    assert tuple(context.get_tensor_shape("output0")) == (2, 7, 384)
    assert context.set_input_shape("images", (8, 3, 64, 96)) is False  # outside the profile
    assert trt_api.bind_address(context, "images", 4096) is True
    with pytest.raises(TypeError):
        context.set_tensor_address("images", 4096.0)  # memory is an int address
    with pytest.raises(TypeError):
        context.set_tensor_address(4096, "images")  # (name, memory), in that order
    with pytest.raises(TypeError):
        context.execute_async_v3(stream_handle=None)
    # Not every address set: TensorRT refuses to enqueue (False, no exception).
    assert trt_api.enqueue(context, 0) is False


def test_a_foreign_plan_is_refused_and_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, _ = _build(tmp_path, "10.3.0", monkeypatch)
    td.install(monkeypatch, "10.4.0")  # the plan was built by another TensorRT
    trt = trt_api.import_tensorrt()
    logger = trt_api.make_logger(trt)
    _runtime, engine = trt_api.deserialize(trt, logger, data, None)
    assert engine is None
    why = diagnose(logger.messages, this_trt="10.4.0")
    assert "10.3.0" in why.message, why.message


def test_trt11_has_no_int8_calibrator_or_fp16_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    trt = td.install(monkeypatch, "11.1.0")
    assert not hasattr(trt, "IInt8EntropyCalibrator2")
    assert not hasattr(trt.BuilderFlag, "FP16")
