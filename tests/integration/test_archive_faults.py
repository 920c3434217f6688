"""The NG archive on a directory that cannot be written: verdicts keep flowing.

The daemon runs with the sim camera and a real ONNX model that finds a defect on every
part, so every part is NG and has an image to archive. The archive's directory is
either a file (it cannot be created) or a directory on a "full disk" (the daemon runs
in a subprocess whose file-size limit, RLIMIT_FSIZE, makes every image write fail
part-way, as ENOSPC does). Every part must still get its verdict, every image must be
counted exactly once as failed (or dropped), and no file may be left behind.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
from pathlib import Path

from inspector import metrics
from inspector.app import App
from inspector.config import parse_config
from inspector.types import PartResult, Reason
from tests.support.common import REPO
from tests.support.onnx_models import make_detector_onnx

PARTS = 20


class Collect:
    def __init__(self, want: int) -> None:
        self.want = want
        self.results: list[PartResult] = []
        self.done = threading.Event()

    def publish(self, result: PartResult) -> None:
        self.results.append(result)
        if len(self.results) >= self.want:
            self.done.set()


def _counts() -> dict[str, float]:
    sample = metrics.REGISTRY.get_sample_value
    out = {
        o: sample("inspector_archive_images_total", {"outcome": o}) or 0.0
        for o in ("written", "dropped", "failed")
    }
    out["sink_dropped"] = sample("inspector_sink_dropped_total", {"sink": "archive"}) or 0.0
    return out


def _yaml(model: Path, archive: Path, *, per_part: bool) -> str:
    return f"""
line: {{cycle_budget_ms: 1000}}
trigger: {{source: internal, rate_hz: 40, max_parts: {PARTS}}}
camera: {{type: sim, sim: {{width: 320, height: 256, pool_size: 4}}}}
recipes: [{{id: 1, name: t, models: [{{path: "{model}"}}]}}]
archive: {{enabled: true, dir: "{archive}", retry_s: 0.2}}
metrics: {{enabled: false}}
logging: {{format: json, per_part: {str(per_part).lower()}}}
"""


def test_archive_dir_that_cannot_be_created_does_not_stop_start_or_verdicts(
    tmp_path: Path,
) -> None:
    model = make_detector_onnx(tmp_path / "m.onnx", [(30, 30, 8, 8, 1, 0.9)])
    where = tmp_path / "archive"
    where.write_text("a file where the archive directory should be")
    cfg = parse_config(_yaml(model, where, per_part=False))
    sink = Collect(PARTS)
    before = _counts()
    app = App(cfg, extra_sinks=[sink])
    app.start()  # on main: FileExistsError (later a ConfigError from preflight), no start
    try:
        assert sink.done.wait(20), f"only {len(sink.results)} of {PARTS} verdicts"
    finally:
        app.stop()
    assert [r.trigger.part_id for r in sink.results] == list(range(1, PARTS + 1))
    assert all(r.verdict.reason in (Reason.DEFECT, Reason.TIMEOUT) for r in sink.results)
    archived = sum(r.frame is not None for r in sink.results)  # NG parts with an image
    delta = {k: v - before[k] for k, v in _counts().items()}
    assert delta["written"] == 0
    assert delta["failed"] + delta["dropped"] == archived
    assert delta["dropped"] == delta["sink_dropped"]
    up = metrics.REGISTRY.get_sample_value("inspector_archive_up", {"dir": str(where)})
    assert up == 0
    assert where.read_text().startswith("a file")


def _full_disk() -> None:
    """In the daemon's process: any file larger than 16 KiB fails to write (EFBIG)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))


def test_full_disk_counts_every_image_and_leaves_no_orphans(tmp_path: Path) -> None:
    model = make_detector_onnx(tmp_path / "m.onnx", [(30, 30, 8, 8, 1, 0.9)])
    archive = tmp_path / "archive"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(_yaml(model, archive, per_part=True))
    proc = subprocess.run(
        [sys.executable, "-m", "inspector", "run", "-c", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_full_disk,
        env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    parts = [e for e in events if e["event"] == "part"]
    assert [p["part_id"] for p in parts] == list(range(1, PARTS + 1))
    assert all(p["verdict"] == "NG" for p in parts)
    with_image = sum(p["reason"] == "defect" for p in parts)  # timeouts carry no frame
    (summary,) = [e for e in events if e["event"] == "archive_summary"]
    assert summary["written"] == 0
    assert summary["failed"] + summary["dropped"] == with_image
    # The first failure is logged; while the archive is off, failures are only counted,
    # and the retries within this short run fall inside the log's rate limit.
    failures = [e for e in events if e["event"] == "archive_write_failed"]
    assert len(failures) == 1 and failures[0]["level"] == "error"
    assert "File too large" in failures[0]["error"]
    assert list(archive.iterdir()) == []  # no image, no sidecar, no temporary file


def test_check_config_warns_and_run_starts_with_an_unwritable_archive(tmp_path: Path) -> None:
    model = make_detector_onnx(tmp_path / "m.onnx", [(30, 30, 8, 8, 1, 0.9)])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(_yaml(model, Path("/proc/version/archive"), per_part=True))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    check = subprocess.run(
        [sys.executable, "-m", "inspector", "check-config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert check.returncode == 0, check.stderr
    assert check.stderr.startswith("warning: archive.dir: /proc/version is not a directory")
    run = subprocess.run(
        [sys.executable, "-m", "inspector", "run", "-c", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    parts = [e for e in events if e["event"] == "part"]
    assert [p["part_id"] for p in parts] == list(range(1, PARTS + 1))
    (off,) = [e for e in events if e["event"] == "archive_unavailable"]
    assert off["level"] == "error" and "Not a directory" in off["error"]
    (summary,) = [e for e in events if e["event"] == "archive_summary"]
    with_image = sum(p["reason"] == "defect" for p in parts)
    assert summary["written"] == 0 and summary["failed"] + summary["dropped"] == with_image
