"""Build planning: shapes parsing, flags per TensorRT major version, invalid requests."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from inspector.engine.options import (
    BuildRequest,
    ShapeProfile,
    parse_shapes,
    plan_build,
    profiles_for,
    trt_major,
)
from inspector.engine.progress import BuildProgress
from inspector.errors import ConfigError


def req(**kw: object) -> BuildRequest:
    return BuildRequest(onnx=Path("m.onnx"), out_dir=Path("engines"), **kw)  # type: ignore[arg-type]


def test_parse_shapes() -> None:
    p = parse_shapes("images:1x3x640x640/2x3x640x640/4x3x640x640")
    assert p == ShapeProfile("images", (1, 3, 640, 640), (2, 3, 640, 640), (4, 3, 640, 640))
    one = parse_shapes("x:1x3x64x64")
    assert one.min == one.opt == one.max == (1, 3, 64, 64)
    assert parse_shapes("ns:in:1x3").name == "ns:in"  # tensor names may contain ':'


@pytest.mark.parametrize(
    "spec",
    [
        "1x3x640x640",
        "images:1x3/1x3",
        "images:4x3/2x3/1x3",
        "images:1x3/1x3x1/1x3",
        "i:ax3",
        "i:0x3",
    ],
)
def test_bad_shapes(spec: str) -> None:
    with pytest.raises(ConfigError):
        parse_shapes(spec)


@pytest.mark.parametrize(
    ("precision", "flags", "clear"),
    [("fp32", (), ("TF32",)), ("fp16", ("FP16",), ()), ("int8", ("INT8", "FP16"), ())],
)
def test_trt10_flags(precision: str, flags: tuple[str, ...], clear: tuple[str, ...]) -> None:
    plan = plan_build(req(precision=precision, calib_images=Path("calib")), 10)
    assert not plan.strongly_typed
    assert plan.flags == flags and plan.clear_flags == clear
    assert plan.calibrate is (precision == "int8")


def test_trt10_int8_without_calibration_expects_qdq(tmp_path: Path) -> None:
    plan = plan_build(req(precision="int8"), 10)
    assert not plan.calibrate and "Q/DQ" in plan.notes[0]
    cache = tmp_path / "calib.cache"
    cache.write_bytes(b"x")
    assert plan_build(req(precision="int8", calib_cache=cache), 10).calibrate


def test_dla_gets_gpu_fallback_and_refuses_fp32() -> None:
    assert plan_build(req(precision="fp16", dla_core=0), 10).flags == ("FP16", "GPU_FALLBACK")
    with pytest.raises(ConfigError, match="DLA"):
        plan_build(req(precision="fp32", dla_core=0), 10)


def test_trt11_is_strongly_typed_without_precision_flags() -> None:
    for precision in ("fp32", "fp16", "int8"):
        plan = plan_build(req(precision=precision), 11)
        assert plan.strongly_typed and "FP16" not in plan.flags and "INT8" not in plan.flags
    assert "ModelOpt" in plan_build(req(precision="fp16"), 11).notes[0]
    with pytest.raises(ConfigError, match="no INT8 calibrators"):
        plan_build(req(precision="int8", calib_images=Path("c")), 11)


def test_unknown_precision_and_version() -> None:
    with pytest.raises(ConfigError):
        plan_build(req(precision="bf16"), 10)
    assert trt_major("10.3.0.30") == 10
    with pytest.raises(ConfigError):
        trt_major("ten")


def test_profiles_for_dynamic_inputs() -> None:
    static = [("images", (1, 3, 640, 640))]
    assert profiles_for((), static) == ()
    dyn = [("images", (None, 3, 640, 640))]
    assert profiles_for((), dyn) == (
        ShapeProfile("images", (1, 3, 640, 640), (1, 3, 640, 640), (1, 3, 640, 640)),
    )
    given = parse_shapes("images:1x3x640x640/2x3x640x640/4x3x640x640")
    assert profiles_for((given,), dyn) == (given,)
    with pytest.raises(ConfigError, match="pass --shapes"):
        profiles_for((), [("images", (1, 3, None, None))])
    with pytest.raises(ConfigError, match="unknown inputs"):
        profiles_for((parse_shapes("other:1x3"),), static)


def test_progress_prints_phases_and_steps_and_keeps_systemd_alive() -> None:
    out = io.StringIO()
    alive: list[str] = []
    progress = BuildProgress(out, keepalive=alive.append, keepalive_s=0.0, step_interval_s=0.0)
    progress.phase_start("Building engine", None, 3)
    progress.phase_start("Tactic selection", "Building engine", 100)
    assert progress.step_complete("Tactic selection", 5)
    assert progress.step_complete("Building engine", 0)
    progress.phase_finish("Tactic selection")
    progress.cancel()
    assert progress.step_complete("Building engine", 1) is False
    progress.phase_finish("Building engine")
    text = out.getvalue()
    assert "Building engine (3 steps)" in text
    assert "  Tactic selection (100 steps)" in text  # child phase indented
    assert "Building engine: 1/3" in text and "Building engine done" in text
    assert alive and alive[0].startswith("building TensorRT engine")


def test_progress_is_thread_safe() -> None:
    out = io.StringIO()
    progress = BuildProgress(out, step_interval_s=0.0)
    progress.phase_start("p", None, 4000)

    def steps(offset: int) -> None:
        for i in range(1000):
            progress.step_complete("p", offset + i)

    threads = [threading.Thread(target=steps, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = out.getvalue().splitlines()
    assert len(lines) == 4001 and all(line.count("[") == 1 for line in lines)
