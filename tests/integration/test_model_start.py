"""Models proven at start: `inspector run` in a subprocess, real ONNX Runtime models.

A model whose outputs its family cannot read, or a model file that does not match the
``sha256`` its recipe pins, must stop the start with exit 78 (systemd does not
restart-loop) and one clear line on stderr, never a traceback and never READY. Once
running, parts that fail to inspect ``pipeline.fault_after_errors`` times in a row put
the station in STATE fault, and it is ready again after a good part.
"""

from __future__ import annotations

import hashlib
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from inspector import metrics
from inspector.app import App
from inspector.backends import create_backend
from inspector.config import ModelConfig, parse_config
from inspector.errors import EXIT_CONFIG, ModelFileError
from inspector.trigger import Submit
from inspector.types import PartResult, Reason, Trigger
from tests.support.common import REPO
from tests.support.onnx_models import make_detector_onnx

NAN = float("nan")


def _config(tmp_path: Path, model_line: str, parts: int = 3) -> Path:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"""
trigger: {{source: internal, rate_hz: 20, max_parts: {parts}}}
camera: {{type: sim, sim: {{width: 320, height: 256, pool_size: 2}}}}
recipes: [{{id: 1, name: t, models: [{model_line}]}}]
metrics: {{enabled: false}}
logging: {{format: json, per_part: false}}
"""
    )
    return cfg


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inspector", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def _one_clear_line(stderr: str, starts: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith(starts), lines[0]
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize(
    ("kind", "model", "starts", "says"),
    [
        # Every output NaN: the family refuses it (main: READY, then NG_ERROR for every part).
        (
            "nan",
            {"detections": [(NAN, 10, 4, 4, 0, 0.9)]},
            "cannot start: ModelError: recipe 1 model 'm'",
            "warm-up part (320x256 Mono8 frame)",
        ),
        # Five class names for a three-class output: no layout fits, seen from the model's
        # declared outputs before any part runs.
        (
            "names",
            {"detections": [], "names": dict(enumerate("abcde"))},
            "cannot start: ModelError: m: detection output [1, 7, 16] fits neither",
            "outputs: output0 float32 [1,7,16]",
        ),
    ],
)
def test_unreadable_outputs_stop_the_start_with_78(
    tmp_path: Path, kind: str, model: dict[str, object], starts: str, says: str
) -> None:
    path = make_detector_onnx(tmp_path / f"{kind}.onnx", **model)  # type: ignore[arg-type]
    cfg = _config(tmp_path, f'{{name: m, path: "{path}"}}')
    proc = _run("run", "-c", str(cfg))
    assert proc.returncode == EXIT_CONFIG, proc.stderr
    line = _one_clear_line(proc.stderr, starts)
    assert says in line
    assert '"event": "ready"' not in proc.stdout


def test_wrong_sha256_refuses_to_start_and_the_right_one_runs(tmp_path: Path) -> None:
    path = make_detector_onnx(tmp_path / "m.onnx", [])
    right = hashlib.sha256(path.read_bytes()).hexdigest()
    wrong = hashlib.sha256(b"another model").hexdigest()
    bad = _config(tmp_path, f'{{name: m, path: "{path}", sha256: "{wrong}"}}')
    proc = _run("run", "-c", str(bad))
    assert proc.returncode == EXIT_CONFIG, proc.stderr
    line = _one_clear_line(proc.stderr, "cannot start: ModelFileError: model 'm'")
    assert f"has sha256 {right}, not the {wrong}" in line
    assert '"event": "ready"' not in proc.stdout
    # check-config runs the same check.
    proc = _run("check-config", str(bad))
    assert proc.returncode == EXIT_CONFIG and "ModelFileError" not in proc.stdout
    assert f"has sha256 {right}" in proc.stderr and "Traceback" not in proc.stderr
    # Upper case is accepted (sha256sum prints lower, some tools upper); the file matches.
    good = _config(tmp_path, f'{{name: m, path: "{path}", sha256: "{right.upper()}"}}')
    proc = _run("run", "-c", str(good))
    assert proc.returncode == 0, proc.stderr
    assert '"event": "ready"' in proc.stdout and proc.stderr == ""


def test_pinned_torchscript_is_checked_before_torch_reads_it(tmp_path: Path) -> None:
    """The pin is checked before the backend is even imported: a mismatching ``.pt`` is
    refused the same way whether or not torch is installed, so ``torch.jit.load`` never
    sees it."""
    pt = tmp_path / "m.pt"
    shutil.copyfile(REPO / "engines" / "demo_detector.ts", pt)
    wrong = "0" * 64
    model = ModelConfig(name="ts", path=pt, backend="torch", sha256=wrong)
    with pytest.raises(ModelFileError, match=r"model 'ts': .*m\.pt has sha256 [0-9a-f]{64}, not"):
        create_backend(model)


def _gauge(name: str) -> int:
    return int(metrics.REGISTRY.get_sample_value(name) or 0)


class StepTrigger:
    """A trigger source the test drives: one part per ``send(recipe_id)``."""

    def __init__(self) -> None:
        self.recipes: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.seq = 0

    def send(self, recipe_id: int) -> None:
        self.recipes.put(recipe_id)

    def run(self, submit: Submit, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                recipe_id = self.recipes.get(timeout=0.05)
            except queue.Empty:
                continue
            self.seq += 1
            now = time.monotonic_ns()
            submit(Trigger(self.seq, self.seq, now, now + 2_000_000_000, recipe_id=recipe_id))


class Results:
    def __init__(self) -> None:
        self.items: list[PartResult] = []
        self.cond = threading.Condition()

    def publish(self, result: PartResult) -> None:
        with self.cond:
            self.items.append(result)
            self.cond.notify_all()

    def wait_for(self, n: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.items) >= n, timeout=10), len(self.items)


def test_error_parts_in_a_row_fault_the_station_and_a_good_part_clears_it(
    tmp_path: Path,
) -> None:
    model = make_detector_onnx(tmp_path / "m.onnx", [])
    cfg = parse_config(
        f"""
camera: {{type: sim, sim: {{width: 320, height: 256, pool_size: 2}}}}
recipes: [{{id: 1, name: t, models: [{{path: "{model}"}}]}}]
pipeline: {{fault_after_errors: 3}}
metrics: {{enabled: false}}
logging: {{per_part: false}}
"""
    )
    trigger, results = StepTrigger(), Results()
    app = App(cfg, trigger=trigger, extra_sinks=[results])
    app.start()
    states = []
    try:
        for n, recipe_id in enumerate([9, 9, 1, 9, 9, 9, 9, 1], start=1):
            trigger.send(recipe_id)  # recipe 9 is unknown: the part is NG error
            results.wait_for(n)
            app.wait(timeout_s=0.01)  # one health pass, as the main loop does
            states.append((_gauge("inspector_state"), _gauge("inspector_error_parts_in_a_row")))
    finally:
        app.stop()
    reasons = [r.verdict.reason for r in results.items]
    assert reasons == [Reason.ERROR] * 2 + [Reason.OK] + [Reason.ERROR] * 4 + [Reason.OK]
    assert states == [(1, 1), (1, 2), (1, 0), (1, 1), (1, 2), (3, 3), (3, 4), (1, 0)]
