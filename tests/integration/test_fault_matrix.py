"""The fault matrix of issue 11, daemon side: each fault ends with every part accounted
and no OK for a part that was not inspected. (The PLC faults — killed, stalled, latency,
restart with zeroed registers, double trigger, sequence jump — are in the PLC link's
own fault tests, against a separate PLC process.)

Real components: the real ``App``, the harvesters path with the Viky GenTL producer,
ONNX Runtime models, the internal trigger.

* camera lost and back: the daemon reconnects within 5 s; parts meanwhile are NG
  no_image, never OK;
* camera frame timeout: NG no_image, never OK;
* a model that fails mid-run (NaN outputs on some frames): those parts NG error, the
  others inspected, the daemon runs on;
* a corrupt or truncated model at start: exit 78, one line, no traceback.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import genicam
import numpy as np

from inspector.app import App
from inspector.config import parse_config
from inspector.errors import EXIT_CONFIG
from inspector.types import PartResult, Reason
from tests.support.common import REPO
from tests.support.onnx_models import make_detector_onnx

VIKY = Path(genicam.__file__).resolve().parent / "viky.cti"


class Record:
    def __init__(self, want: int) -> None:
        self.want = want
        self.results: list[PartResult] = []
        self.t_ns: list[int] = []
        self.done = threading.Event()

    def publish(self, result: PartResult) -> None:
        self.results.append(result)
        self.t_ns.append(time.monotonic_ns())
        if len(self.results) >= self.want:
            self.done.set()


def _genicam_app(tmp_path: Path, record: Record, parts: int, rate: int, fps: float) -> App:
    model = make_detector_onnx(tmp_path / "m.onnx", [], imgsz=64)
    cfg = parse_config(
        f"""
line: {{cycle_budget_ms: 200}}
trigger: {{rate_hz: {rate}, max_parts: {parts}}}
camera:
  type: genicam
  genicam:
    cti: ["{VIKY}"]
    serial_number: "1"
    trigger_mode: free_run
    features: [{{Width: 128}}, {{Height: 100}}, {{PixelFormat: Mono8}},
               {{AcquisitionFrameRate: {fps}}}]
    timeout_ms: 100
    reconnect_backoff_s: 0.05
    reconnect_backoff_max_s: 0.5
recipes: [{{id: 1, name: r, models: [{{path: "{model}"}}], quality: {{enabled: false}}}}]
metrics: {{enabled: false}}
logging: {{per_part: false}}
"""
    )
    return App(cfg, extra_sinks=[record])


def test_camera_lost_and_back_reconnects_within_5s_and_never_passes_a_part(
    tmp_path: Path,
) -> None:
    parts = 120
    record = Record(parts)
    app = _genicam_app(tmp_path, record, parts, rate=20, fps=200.0)
    app.start()
    try:
        while len(record.results) < 20:
            assert not record.done.is_set()
            time.sleep(0.02)
        lost_ns = time.monotonic_ns()
        app.camera._acquirer.destroy()  # type: ignore[attr-defined]  # what a pulled cable does
        assert record.done.wait(60), f"{len(record.results)} of {parts} parts came back"
    finally:
        app.stop()
    results = record.results
    assert [r.trigger.part_id for r in results] == list(range(1, parts + 1))
    after = [(t, r) for t, r in zip(record.t_ns, results, strict=True) if t > lost_ns]
    assert any(r.verdict.reason is Reason.NO_IMAGE for _, r in after), "the loss was not seen"
    back = next((t for t, r in after if r.verdict.ok), None)
    assert back is not None, "no part was inspected after the camera came back"
    reconnect_s = (back - lost_ns) / 1e9
    print(f"camera lost → first inspected part after {reconnect_s:.2f} s")
    assert reconnect_s < 5.0, f"back after {reconnect_s:.2f} s"
    # Every OK part was really inspected: it has a frame and a model time.
    for r in results:
        if r.verdict.ok:
            assert r.frame is not None and "infer" in r.stage_ns
    assert {r.verdict.reason for r in results} <= {Reason.OK, Reason.NO_IMAGE}


def test_camera_frame_timeout_is_no_image_never_ok(tmp_path: Path) -> None:
    # The camera delivers 2 frames/s; the line triggers 10 parts/s: most grabs time out.
    parts = 20
    record = Record(parts)
    app = _genicam_app(tmp_path, record, parts, rate=10, fps=2.0)
    app.start()
    try:
        assert record.done.wait(60)
    finally:
        app.stop()
    reasons = [r.verdict.reason for r in record.results]
    assert len(reasons) == parts
    assert reasons.count(Reason.NO_IMAGE) >= parts // 2
    assert all(
        r.verdict.ok == (r.frame is not None and "infer" in r.stage_ns)
        for r in record.results
        if r.verdict.ok
    )
    assert set(reasons) <= {Reason.OK, Reason.NO_IMAGE, Reason.TIMEOUT}


def _nan_on_dark_frames(path: Path, threshold: float) -> Path:
    """A real ONNX detector with no detections whose outputs turn NaN when the frame's
    mean (0..1 after scaling) is below ``threshold``: a model that fails mid-run."""
    import onnx
    from onnx import TensorProto, helper

    n, nc = 16, 3
    const = np.zeros((1, 4 + nc, n), np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
            helper.make_node("Sub", ["m", "thr"], ["d"]),
            helper.make_node("Sqrt", ["d"], ["r"]),  # NaN below the threshold
            helper.make_node("Mul", ["r", "zero"], ["z"]),  # 0, or NaN
            helper.make_node("Add", ["det", "z"], ["output0"]),
        ],
        "nan_when_dark",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(const.shape))],
        initializer=[
            helper.make_tensor("det", TensorProto.FLOAT, const.shape, const.flatten().tolist()),
            helper.make_tensor("thr", TensorProto.FLOAT, [], [threshold]),
            helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = "names", repr({i: f"defect{i}" for i in range(nc)})
    onnx.save(model, str(path))
    return path


def test_a_model_failing_mid_run_gives_ng_error_for_those_parts_and_runs_on(
    tmp_path: Path,
) -> None:
    import cv2

    from inspector.camera.folder import FolderCamera  # noqa: F401  (the camera used below)

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(11)
    dark = set(range(2, 40, 3))
    for i in range(40):
        level = 70 if i in dark else 170  # mean 0.27 vs 0.67 after scaling
        img = rng.integers(level - 40, level + 40, size=(240, 320), dtype=np.uint8)
        cv2.imwrite(str(images / f"{i:03d}.png"), img)
    model = _nan_on_dark_frames(tmp_path / "m.onnx", threshold=0.45)
    parts = 40
    record = Record(parts)
    cfg = parse_config(
        f"""
line: {{cycle_budget_ms: 500}}
trigger: {{rate_hz: 40, max_parts: {parts}}}
camera: {{type: folder, folder: {{path: "{images}", pixel_format: Mono8}}}}
recipes: [{{id: 1, name: r, models: [{{path: "{model}", input_size: [64, 64]}}]}}]
pipeline: {{fault_after_errors: 1000}}
metrics: {{enabled: false}}
logging: {{per_part: false}}
"""
    )
    app = App(cfg, extra_sinks=[record])
    app.start()
    try:
        assert record.done.wait(60)
        assert app.supervisor.faulted is None  # a failing part is NG, not a daemon fault
    finally:
        app.stop()
    by_index = {r.trigger.part_id - 1: r for r in record.results}
    assert sorted(by_index) == list(range(parts))
    for i, r in by_index.items():
        if i in dark:
            assert r.verdict.reason is Reason.ERROR and not r.verdict.ok, (i, r.verdict)
        else:
            assert r.verdict.ok, (i, r.verdict)


def test_a_truncated_model_at_start_exits_78_without_traceback(tmp_path: Path) -> None:
    data = (REPO / "engines" / "demo_detector.onnx").read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"""
camera: {{type: sim, sim: {{width: 640, height: 512, pool_size: 4}}}}
recipes: [{{id: 1, name: r, models: [{{path: "{truncated}"}}]}}]
metrics: {{enabled: false}}
"""
    )
    for command in (["check-config", str(cfg)], ["run", "--config", str(cfg)]):
        done = subprocess.run(
            [sys.executable, "-m", "inspector", *command],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
        assert done.returncode == EXIT_CONFIG, (command, done.stderr)
        assert "truncated.onnx" in done.stderr
        assert "Traceback" not in done.stderr + done.stdout
