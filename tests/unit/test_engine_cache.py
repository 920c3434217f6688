"""The engine cache: keys, the start-time decision table, verification before load."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

import pytest

from inspector.engine.cache import (
    Action,
    Target,
    build_command,
    cache_key,
    decide,
    mismatches,
    open_verified,
)
from inspector.engine.manifest import atomic_write, manifest_path, write_manifest
from inspector.errors import EngineError
from tests.support.engine import PLAN_BYTES, make_manifest

TARGET = Target(
    model_name="demo",
    onnx_path=Path("/opt/models/demo detector.onnx"),
    onnx_sha256="a" * 64,
    trt_version="10.3.0",
    gpu_name="Orin",
    compute_capability="8.7",
    precision="fp16",
)


def put_engine(engine_dir: Path, name: str = "demo.plan", **over: object) -> Path:
    plan = engine_dir / name
    atomic_write(plan, PLAN_BYTES)
    write_manifest(plan, make_manifest(plan, **over))
    return plan


def test_cache_key_differs_in_every_field_that_makes_a_plan_different() -> None:
    keys = {cache_key(TARGET)}
    for change in (
        {"onnx_sha256": "b" * 64},
        {"trt_version": "10.7.0"},
        {"compute_capability": "8.6"},
        {"precision": "int8"},
        {"dla_core": 0},
        {"model_name": "other"},
    ):
        keys.add(cache_key(dataclasses.replace(TARGET, **change)))  # type: ignore[arg-type]
    assert len(keys) == 7
    assert cache_key(TARGET) == "demo.fp16.aaaaaaaaaaaa.trt10.3.0.sm87"


def test_build_command_is_exact_and_shell_safe(tmp_path: Path) -> None:
    cmd = build_command(dataclasses.replace(TARGET, dla_core=1), tmp_path / "my engines")
    assert shlex.split(cmd) == [
        "inspector", "engine", "build", "/opt/models/demo detector.onnx",
        "--precision", "fp16", "--dla", "1", "--out", str(tmp_path / "my engines"),
    ]  # fmt: skip


def test_mismatches_name_each_difference() -> None:
    m = make_manifest(Path("x.plan"), trt_version="10.7.0", compute_capability="8.6")
    why = mismatches(m, TARGET)
    assert why == [
        "built with TensorRT 10.7.0, this is 10.3.0",
        "built for compute capability 8.6, this GPU is 8.7",
    ]
    assert mismatches(make_manifest(Path("x.plan")), TARGET) == []


@pytest.mark.parametrize("build_on_start", [False, True])
def test_matching_verified_plan_is_used(tmp_path: Path, build_on_start: bool) -> None:
    plan = put_engine(tmp_path)
    d = decide(tmp_path, TARGET, build_on_start=build_on_start)
    assert (d.action, d.plan) == (Action.USE, plan)
    assert open_verified(d, lambda data: len(data)) == len(PLAN_BYTES)


@pytest.mark.parametrize(
    ("stale", "words"),
    [
        ({"trt_version": "8.6.1"}, "TensorRT 8.6.1"),
        ({"compute_capability": "7.2", "gpu_name": "Xavier"}, "compute capability 7.2"),
        ({"onnx_sha256": "c" * 64}, "another ONNX"),
        ({"precision": "fp32"}, "precision fp32"),
        ({"dla_core": 0}, "DLA core 0"),
    ],
)
@pytest.mark.parametrize("build_on_start", [False, True])
def test_stale_engine_builds_or_fails_with_command(
    tmp_path: Path, stale: dict[str, object], words: str, build_on_start: bool
) -> None:
    put_engine(tmp_path, **stale)
    d = decide(tmp_path, TARGET, build_on_start=build_on_start)
    assert words in d.reason
    if build_on_start:
        assert d.action is Action.BUILD
        assert d.plan == tmp_path / f"{cache_key(TARGET)}.plan"
    else:
        assert d.action is Action.FAIL
        assert build_command(TARGET, tmp_path) in d.reason


def test_empty_dir(tmp_path: Path) -> None:
    assert decide(tmp_path, TARGET, build_on_start=False).action is Action.FAIL
    assert decide(tmp_path, TARGET, build_on_start=True).action is Action.BUILD


def test_missing_plan_file_is_rebuilt_or_failed(tmp_path: Path) -> None:
    put_engine(tmp_path).unlink()
    d = decide(tmp_path, TARGET, build_on_start=False)
    assert d.action is Action.FAIL and "is missing" in d.reason
    assert decide(tmp_path, TARGET, build_on_start=True).action is Action.BUILD


@pytest.mark.parametrize("build_on_start", [False, True])
def test_tampered_plan_fails_even_when_builds_are_allowed(
    tmp_path: Path, build_on_start: bool
) -> None:
    plan = put_engine(tmp_path)
    data = bytearray(PLAN_BYTES)
    data[4096] ^= 0x80
    plan.write_bytes(bytes(data))
    d = decide(tmp_path, TARGET, build_on_start=build_on_start)
    assert d.action is Action.FAIL
    assert "modified or damaged" in d.reason


def test_plan_swapped_after_decision_is_never_deserialised(tmp_path: Path) -> None:
    plan = put_engine(tmp_path)
    d = decide(tmp_path, TARGET, build_on_start=False)
    assert d.action is Action.USE
    plan.write_bytes(PLAN_BYTES[::-1])  # swapped between the decision and the load
    seen: list[bytes] = []
    with pytest.raises(EngineError, match="Refusing to deserialise"):
        open_verified(d, seen.append)
    assert seen == []


def test_unreadable_manifest_is_skipped_with_reason(tmp_path: Path) -> None:
    plan = put_engine(tmp_path, name="good.plan")
    (tmp_path / "bad.plan.json").write_text("{")
    d = decide(tmp_path, TARGET, build_on_start=False)
    assert d.action is Action.USE and d.plan == plan
    manifest_path(plan).unlink()
    d = decide(tmp_path, TARGET, build_on_start=False)
    assert d.action is Action.FAIL and "bad.plan.json" in d.reason and "not valid JSON" in d.reason


def test_newest_matching_build_wins(tmp_path: Path) -> None:
    put_engine(tmp_path, name="old.plan", built_at="2026-01-01T00:00:00Z")
    new = put_engine(tmp_path, name="new.plan", built_at="2026-06-01T00:00:00Z")
    assert decide(tmp_path, TARGET, build_on_start=False).plan == new


def test_open_verified_refuses_non_use_decisions(tmp_path: Path) -> None:
    d = decide(tmp_path, TARGET, build_on_start=True)
    with pytest.raises(EngineError, match="no plan to open"):
        open_verified(d, len)
