"""The TensorRT backend proven on real hardware: ``make test-tensorrt``.

Every test here is marked ``tensorrt`` and needs TensorRT, cuda-python and an NVIDIA
GPU; ``make test`` deselects them (``-m "not gpu and not tensorrt"``). They are never
skipped: on a machine without TensorRT they fail, because that is a missing feature.
None of them has run in this project (no TensorRT on its machines); see
docs/tensorrt.md.

Flow: build an engine from the bundled demo ONNX with ``inspector engine build`` (golden
check included), check the backend against ONNX Runtime, refuse a tampered plan, build
on start under a fake systemd, then run the daemon for 1,000 parts.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inspector.backends.onnxruntime import OnnxRuntimeBackend
from inspector.backends.tensorrt import TensorRTBackend
from inspector.cli import main
from inspector.config import EngineConfig, ModelConfig, PreprocessConfig
from inspector.engine import golden
from inspector.engine.manifest import read_manifest
from inspector.errors import EngineError
from tests.support.common import REPO

pytestmark = pytest.mark.tensorrt

DEMO_ONNX = REPO / "engines" / "demo_detector.onnx"
PRECISION = "fp16"


def demo_onnx() -> Path:
    assert DEMO_ONNX.is_file(), f"{DEMO_ONNX} is missing: the demo model ships with the repo"
    return DEMO_ONNX


def trt_model(engine_dir: Path, **engine: object) -> ModelConfig:
    return ModelConfig(
        name="detector",
        path=demo_onnx(),
        backend="tensorrt",
        engine=EngineConfig(dir=engine_dir, precision=PRECISION, **engine),  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One engine built the way a user builds it: the CLI, golden check included."""
    out = tmp_path_factory.mktemp("engines")
    rc = main(["engine", "build", str(demo_onnx()), "--precision", PRECISION, "--out", str(out)])
    assert rc == 0
    return out


def test_build_wrote_verified_plan_and_manifest(engine_dir: Path) -> None:
    import tensorrt

    manifests = sorted(engine_dir.glob("*.plan.json"))
    assert len(manifests) == 1
    m = read_manifest(manifests[0])
    assert m.trt_version == tensorrt.__version__ and m.precision == PRECISION
    assert m.golden is not None and m.golden["ok"] is True and m.golden["verdicts_agree"]
    assert list(engine_dir.glob("*.timing")), "the timing cache was not written"
    assert main(["engine", "inspect", str(engine_dir / m.plan_file)]) == 0


def test_backend_matches_onnxruntime_plain_and_with_cuda_graph(engine_dir: Path) -> None:
    model = trt_model(engine_dir)
    ort = OnnxRuntimeBackend(model.model_copy(update={"backend": "onnxruntime"}))
    ort.load()
    trt = TensorRTBackend(model)
    trt.load()
    try:
        hw = trt.info.input_hw
        assert hw is not None and [t.name for t in trt.info.outputs] == [
            t.name for t in ort.info.outputs
        ]
        images = golden.golden_inputs(None, hw, PreprocessConfig())
        plain = golden.run_golden(images, ort.infer, trt.infer, PRECISION)
        assert plain.ok, plain.failures()
        trt.warmup(3)  # captures the CUDA graph
        graphed = golden.run_golden(images, ort.infer, trt.infer, PRECISION)
        assert graphed.ok, graphed.failures()
        outs = [trt.infer(images[2][1])[0] for _ in range(3)]
        assert all(np.array_equal(outs[0], o) for o in outs[1:])  # replay is deterministic
    finally:
        trt.close()


def test_tampered_plan_is_refused_before_deserialisation(engine_dir: Path, tmp_path: Path) -> None:
    for f in engine_dir.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    plan = next(tmp_path.glob("*.plan"))
    data = bytearray(plan.read_bytes())
    data[len(data) // 2] ^= 0x01
    plan.write_bytes(bytes(data))
    backend = TensorRTBackend(trt_model(tmp_path, build_on_start=True))
    with pytest.raises(EngineError, match="modified or damaged"):
        backend.load()


def test_build_on_start_extends_systemd_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(sock_path))
        server.settimeout(0)
        monkeypatch.setenv("NOTIFY_SOCKET", str(sock_path))
        backend = TensorRTBackend(trt_model(tmp_path / "engines", build_on_start=True))
        backend.load()
        backend.close()
        messages = []
        while True:
            try:
                messages.append(server.recv(4096).decode())
            except BlockingIOError:
                break
    assert any(m.startswith("EXTEND_TIMEOUT_USEC=") for m in messages), messages
    target_dir = tmp_path / "engines"
    assert len(list(target_dir.glob("*.plan.json"))) == 1


def test_daemon_runs_1000_parts_on_tensorrt(engine_dir: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"""
line: {{cycle_budget_ms: 100}}
trigger: {{rate_hz: 25}}
camera: {{type: sim, sim: {{width: 1280, height: 1024, pool_size: 32}}}}
recipes:
  - id: 1
    name: demo
    models:
      - path: "{demo_onnx()}"
        backend: tensorrt
        engine: {{dir: "{engine_dir}", precision: {PRECISION}}}
metrics: {{enabled: false}}
logging: {{format: json}}
"""
    )
    proc = subprocess.run(
        [sys.executable, "-m", "inspector", "run", "--config", str(cfg), "--parts", "1000"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    parts = [e for e in map(json.loads, proc.stdout.splitlines()) if e.get("event") == "part"]
    assert len(parts) == 1000
    reasons = [p["reason"] for p in parts]
    assert reasons.count("error") == 0 and reasons.count("timeout") == 0, set(reasons)
    assert {p["verdict"] for p in parts} <= {"OK", "NG"}
