"""``inspector engine build|inspect`` without TensorRT, and ``engine inspect`` text.

TensorRT is made unimportable in-process (``sys.modules["tensorrt"] = None``, which
makes ``import tensorrt`` raise ImportError), so these tests check the path of a machine
without TensorRT even where it is installed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from inspector.cli import main
from inspector.engine.describe import describe_engine, layer_summary
from inspector.engine.manifest import atomic_write, write_manifest
from tests.support.engine import DYNAMIC, PLAN_BYTES, make_manifest
from tests.support.onnx_models import make_detector_onnx


@pytest.fixture
def no_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)


def put_plan(tmp_path: Path) -> Path:
    plan = tmp_path / "demo.fp16.plan"
    atomic_write(plan, PLAN_BYTES)
    write_manifest(plan, make_manifest(plan))
    return plan


def test_build_without_tensorrt_says_how_to_install(
    no_tensorrt: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    onnx = make_detector_onnx(tmp_path / "m.onnx", [(30, 30, 8, 8, 0, 0.9)])
    rc = main(["engine", "build", str(onnx), "--precision", "fp16", "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert rc == 1
    assert "TensorRT is not installed" in err and "python3-libnvinfer" in err
    assert not (tmp_path / "e").exists()  # nothing half-built is left


def test_build_of_missing_onnx_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["engine", "build", str(tmp_path / "nope.onnx")]) == 78


def test_inspect_without_tensorrt_prints_manifest_and_check(
    no_tensorrt: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = put_plan(tmp_path)
    rc = main(["engine", "inspect", str(plan)])
    out, err = capsys.readouterr()
    assert rc == 1
    assert "matches manifest" in out and "tensorrt     10.3.0" in out
    assert "compute 8.7, L4T R36.3.0" in out and "profile      images" in out
    assert "cannot list tensors, profiles and layers" in err
    assert "TensorRT is not installed" in err


def test_inspect_tampered_plan_reports_and_refuses(
    no_tensorrt: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = put_plan(tmp_path)
    data = bytearray(PLAN_BYTES)
    data[7] ^= 0xFF
    plan.write_bytes(bytes(data))
    rc = main(["engine", "inspect", str(plan)])
    out, err = capsys.readouterr()
    assert rc == 1
    assert "DOES NOT MATCH manifest" in out and "not deserialising" in err


def test_inspect_without_manifest_needs_unverified(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "foreign.plan"
    plan.write_bytes(b"x")
    assert main(["engine", "inspect", str(plan)]) == 1
    assert "no manifest" in capsys.readouterr().err


def test_describe_engine_and_layers() -> None:
    lines = describe_engine(DYNAMIC)
    assert lines[0] == "profiles     1"
    assert (
        "input        images: float32 [-1, 3, 640, 640] (profile 0: min [1, 3, 640, 640]"
        in (lines[1])
    )
    assert lines[2] == "output       output0: float32 [-1, 7, 8400]"
    info = {"Layers": [{"LayerType": "CaskConvolution"}] * 3 + [{"LayerType": "Reformat"}]}
    assert layer_summary(json.dumps(info)) == [
        "layers       4",
        "      3  CaskConvolution",
        "      1  Reformat",
    ]
    assert layer_summary(json.dumps({"Layers": ["conv1", "conv2"]}))[0] == "layers       2"
    assert layer_summary("not json") == ["layers       (engine information unreadable)"]


def test_tensorrt_backend_without_tensorrt_fails_closed_with_install_hint(
    no_tensorrt: None, tmp_path: Path
) -> None:
    from inspector.backends import create_backend
    from inspector.config import ModelConfig
    from inspector.errors import BackendError

    onnx = make_detector_onnx(tmp_path / "m.onnx", [(30, 30, 8, 8, 0, 0.9)])
    with pytest.raises(BackendError, match="TensorRT is not installed"):
        create_backend(ModelConfig(path=onnx, backend="tensorrt"))
