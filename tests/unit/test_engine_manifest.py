"""Manifests: write/read, validation, plan verification, L4T release parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inspector.engine.manifest import (
    atomic_write,
    manifest_path,
    parse_l4t_release,
    read_l4t_release,
    read_manifest,
    read_verified_plan,
    write_manifest,
)
from inspector.errors import EngineError
from tests.support.engine import PLAN_BYTES, make_manifest


def write_plan(tmp_path: Path, name: str = "demo.plan", data: bytes = PLAN_BYTES) -> Path:
    plan = tmp_path / name
    atomic_write(plan, data)
    return plan


def test_manifest_round_trips(tmp_path: Path) -> None:
    plan = write_plan(tmp_path)
    m = make_manifest(plan)
    path = write_manifest(plan, m)
    assert path == tmp_path / "demo.plan.json"
    assert read_manifest(path) == m
    assert manifest_path(plan) == path


def test_verified_plan_returns_the_hashed_bytes(tmp_path: Path) -> None:
    plan = write_plan(tmp_path)
    assert read_verified_plan(plan, make_manifest(plan)) == PLAN_BYTES


@pytest.mark.parametrize("offset", [0, 1000, len(PLAN_BYTES) - 1])
def test_flipped_byte_is_refused(tmp_path: Path, offset: int) -> None:
    plan = write_plan(tmp_path)
    m = make_manifest(plan)
    data = bytearray(plan.read_bytes())
    data[offset] ^= 0x01
    plan.write_bytes(bytes(data))
    with pytest.raises(EngineError, match="does not match its manifest"):
        read_verified_plan(plan, m)


def test_truncated_and_missing_plans_are_refused(tmp_path: Path) -> None:
    plan = write_plan(tmp_path)
    m = make_manifest(plan)
    plan.write_bytes(PLAN_BYTES[:-1])
    with pytest.raises(EngineError, match="does not match"):
        read_verified_plan(plan, m)
    plan.unlink()
    with pytest.raises(EngineError, match="cannot read plan"):
        read_verified_plan(plan, m)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(extra_key=1), "invalid"),
        (lambda d: d.update(plan_sha256="xyz"), "plan_sha256"),
        (lambda d: d.pop("trt_version"), "trt_version"),
        (lambda d: d.update(schema_version=99), "schema 99"),
        (lambda d: d.update(plan_file="../evil.plan"), "bare file name"),
    ],
)
def test_invalid_manifests_are_refused(tmp_path: Path, mutate: object, message: str) -> None:
    plan = write_plan(tmp_path)
    data = make_manifest(plan).model_dump(mode="json")
    mutate(data)  # type: ignore[operator]
    path = manifest_path(plan)
    path.write_text(json.dumps(data))
    with pytest.raises(EngineError, match=message):
        read_manifest(path)


def test_manifest_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "x.plan.json"
    path.write_text("{not json")
    with pytest.raises(EngineError, match="not valid JSON"):
        read_manifest(path)


def test_atomic_write_replaces_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.bin"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]


def test_l4t_release() -> None:
    text = (
        "# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic, EABI: aarch64, "
        "DATE: Mon May  6 17:34:21 UTC 2024\n"
    )
    assert parse_l4t_release(text) == "R36.3.0"
    assert parse_l4t_release("# R35 (release), REVISION: 4.1, GCID: 1") == "R35.4.1"
    assert parse_l4t_release("Ubuntu 22.04") is None


def test_l4t_release_missing_file_is_none(tmp_path: Path) -> None:
    assert read_l4t_release(tmp_path / "nv_tegra_release") is None
    f = tmp_path / "nv_tegra_release"
    f.write_text("# R36 (release), REVISION: 4.0, GCID: 1\n")
    assert read_l4t_release(f) == "R36.4.0"
