"""The TensorRT backend's whole GPU path against the strict TensorRT double (``gpu``).

TensorRT cannot be installed here, so ``tests/support/trt_double.py`` stands in for the
``tensorrt`` module: strict about the API (names, argument order, return types of
TensorRT 10.3 and 11.x), and real on the GPU, where each execution context runs a torch
module on the stream given to ``execute_async_v3``, reading and writing the raw device
addresses bound with ``set_tensor_address``. What runs for real here is everything of
ours: the plan built by ``trt_api.compile_plan``, the engine cache and manifest check,
``deserialize``, bindings with a dynamic batch dimension set to 1, device buffers, the
host path and its CUDA graph, and the device path (``backend: tensorrt`` with
``preprocess.device: cuda``, the Jetson configuration): one execution context per lane,
``execute_async_v3`` on the lane's stream captured into the lane's CUDA graph with the
preprocessing and detector kernels, and the whole daemon on that configuration.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inspector.config import EngineConfig, ModelConfig
from inspector.types import Frame
from tests.support import trt_double as td

pytestmark = pytest.mark.gpu

INPUT_HW = (64, 96)
NAMES = ["scratch", "spot", "hole"]


def _register(onnx: Path) -> None:
    from tests.support.gpu_models import tiny_detector

    onnx.write_bytes(b"stand-in ONNX: the double parses the registered network")
    td.register(
        onnx,
        td.NetworkDef(
            inputs=[td.TensorDef("images", (-1, 3, *INPUT_HW))],
            outputs=[td.TensorDef("output0", (-1, 7, 384))],
            output_shapes=lambda shapes: [(shapes["images"][0], 7, 384)],
            module=lambda device: tiny_detector(0, device=device),
        ),
    )


def _plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, bytes, Any]:
    """Build a plan with the double's builder and write it with its manifest, as
    ``inspector engine build`` does (the golden check is the CPU tests' subject)."""
    from inspector.engine import trt_api
    from inspector.engine.manifest import (
        Manifest,
        atomic_write,
        model_sha256,
        sha256_bytes,
        write_manifest,
    )
    from inspector.engine.options import BuildRequest, ShapeProfile, plan_build
    from inspector.engine.progress import BuildProgress
    from inspector.nvidia import driver

    td.install(monkeypatch, "10.3.0")
    onnx = tmp_path / "tiny.onnx"
    _register(onnx)
    request = BuildRequest(onnx=onnx, out_dir=tmp_path, precision="fp32")
    profile = ShapeProfile("images", (1, 3, *INPUT_HW), (1, 3, *INPUT_HW), (4, 3, *INPUT_HW))
    build = plan_build(request, 10)
    data = trt_api.compile_plan(request, build, [profile], BuildProgress(io.StringIO()))
    name, cc = driver.device_properties(0)
    plan = tmp_path / "tiny.fp32.trt10.3.0.plan"
    atomic_write(plan, data)
    manifest = Manifest(
        model_name="tiny",
        onnx_sha256=model_sha256(onnx),
        plan_file=plan.name,
        plan_sha256=sha256_bytes(data),
        trt_version="10.3.0",
        gpu_name=name,
        compute_capability=cc,
        precision="fp32",
        flags=list(build.flags),
        shapes={"images": [list(profile.min), list(profile.opt), list(profile.max)]},
        onnx_inputs=["images"],
        onnx_outputs=["output0"],
        built_at="2026-11-30T00:00:00Z",
    )
    write_manifest(plan, manifest)
    return onnx, data, manifest


def _cfg(onnx: Path, tmp_path: Path, **kw: Any) -> ModelConfig:
    return ModelConfig(
        name="tiny",
        path=onnx,
        backend="tensorrt",
        input_size=INPUT_HW,
        detection={"conf": 0.5, "iou": 0.5, "max_det": 100},
        class_names=NAMES,
        engine=EngineConfig(dir=tmp_path, precision="fp32", warmup_runs=2),
        **kw,
    )


def _reference(x: np.ndarray) -> np.ndarray:
    import torch

    from tests.support.gpu_models import tiny_detector

    with torch.inference_mode():
        out: np.ndarray = tiny_detector(0)(torch.from_numpy(x).cuda()).cpu().numpy()
    return out


def test_host_path_plain_and_as_cuda_graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from inspector.backends.tensorrt import TensorRTBackend

    onnx, data, manifest = _plan(tmp_path, monkeypatch)
    backend = TensorRTBackend.from_plan(_cfg(onnx, tmp_path), data, manifest)
    try:
        assert backend.info.inputs[0].shape == (1, 3, *INPUT_HW)  # dynamic batch set to 1
        assert backend.info.outputs[0].shape == (1, 7, 384)
        rng = np.random.default_rng(21)
        x = rng.random((1, 3, *INPUT_HW), np.float32)
        np.testing.assert_allclose(backend.infer(x)[0], _reference(x), rtol=1e-3, atol=1e-3)
        backend.warmup(1)
        host = backend._host
        assert host is not None and host.graph is not None, "host path graph captured"
        context = host.lane._context
        before = context.executions
        for seed in (22, 23):
            x = np.random.default_rng(seed).random((1, 3, *INPUT_HW), np.float32)
            np.testing.assert_allclose(backend.infer(x)[0], _reference(x), rtol=1e-3, atol=1e-3)
        assert context.executions == before, "graph replays, not execute_async_v3 calls"
    finally:
        backend.close()


def test_device_path_lanes_graphs_and_findings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """backend: tensorrt + preprocess.device: cuda: the runner's lanes are execution
    contexts, each captured with the kernels into one graph; findings equal the host
    postprocessor on the same model input."""
    from inspector.backends.tensorrt import TensorRTBackend
    from inspector.gpu.runner import DeviceRunner
    from inspector.models import build_postprocessor
    from inspector.preprocess.cuda import preprocess_once

    onnx, data, manifest = _plan(tmp_path, monkeypatch)
    cfg = _cfg(onnx, tmp_path, preprocess={"device": "cuda"})
    backend = TensorRTBackend.from_plan(cfg, data, manifest)
    post = build_postprocessor(cfg, backend.info)
    runner = DeviceRunner(cfg, backend, post, frames_in_flight=2, keepalive_ms=0)
    try:
        assert runner.graphs == 2, "execute_async_v3 captured in each lane's graph"
        contexts = [lane.model._context for lane in runner._lanes]
        assert len({id(c) for c in contexts}) == 2, "one execution context per lane"
        counts = [c.executions for c in contexts]
        rng = np.random.default_rng(24)
        frames = [
            Frame(rng.integers(0, 256, (150, 220), dtype=np.uint8), "Mono8", i, 0) for i in range(4)
        ]
        tickets = [runner.submit(frames[0]), runner.submit(frames[1])]
        results = [runner.collect(t) for t in tickets]
        tickets = [runner.submit(frames[2]), runner.submit(frames[3])]
        results += [runner.collect(t) for t in tickets]
        assert [c.executions for c in contexts] == counts, "parts replay the graphs"
        for frame, (found, _) in zip(frames, results, strict=True):
            tensor, geo = preprocess_once(frame.image, "Mono8", INPUT_HW, cfg.preprocess)
            want = post(backend.infer(tensor), geo)
            assert want and [f.class_id for f in found] == [f.class_id for f in want]
            for g, w in zip(found, want, strict=True):
                assert (
                    np.allclose(g.box, w.box, atol=1e-2) and abs(g.confidence - w.confidence) < 1e-3
                )
    finally:
        runner.close()
        backend.close()


def test_daemon_on_the_jetson_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The App as shipped with backend tensorrt + preprocess.device cuda: the engine cache
    finds the plan by its manifest, verifies it, deserialises it with the double, and the
    pipeline keeps two parts in flight; every part is inspected on the device."""
    from inspector.app import App
    from inspector.config import parse_config
    from inspector.types import Reason
    from tests.support.daemon import Record

    onnx, _, _ = _plan(tmp_path, monkeypatch)
    cfg = parse_config(
        f"""
trigger: {{source: internal, rate_hz: 200, max_parts: 300}}
camera: {{type: sim, sim: {{width: 640, height: 512, pixel_format: Mono8, pool_size: 8}}}}
recipes:
  - id: 1
    name: jetson
    models:
      - path: "{onnx}"
        backend: tensorrt
        input_size: [64, 96]
        class_names: [scratch, spot, hole]
        detection: {{conf: 0.5, iou: 0.5, max_det: 100}}
        preprocess: {{device: cuda}}
        engine: {{dir: "{tmp_path}", precision: fp32, warmup_runs: 2}}
line: {{cycle_budget_ms: 200}}
pipeline: {{frames_in_flight: 2}}
metrics: {{enabled: false}}
logging: {{per_part: false}}
"""
    )
    record = Record()
    app = App(cfg, extra_sinks=[record])
    app.start()
    try:
        assert app.wait(timeout_s=60), "the 300 parts did not finish"
    finally:
        app.stop()
    results = list(record.results.values())
    assert len(results) == 300
    seqs = [r.trigger.trigger_seq for r in results]
    assert seqs == sorted(seqs), "published in trigger order"
    assert all(r.verdict.reason in (Reason.OK, Reason.DEFECT, Reason.COUNT) for r in results), {
        r.verdict.reason for r in results
    }
    assert all("device" in r.stage_ns for r in results), "every part ran on the device"
