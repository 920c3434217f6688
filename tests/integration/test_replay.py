"""`inspector replay` over sim parts written to disk, scored against their labels."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from inspector.config import SimCameraConfig
from inspector.sim.camera import write_dataset
from tests.support.onnx_models import make_detector_onnx


def test_replay_writes_verdicts_and_confusion(tmp_path: Path) -> None:
    sim = SimCameraConfig(width=320, height=256, seed=5, defects={"rate": 0.5})  # type: ignore[arg-type]
    labels = write_dataset(tmp_path / "imgs", seed=5, count=12, cfg=sim)
    truth = json.loads(labels.read_text())
    n_bad = sum(1 for v in truth.values() if v)
    assert 0 < n_bad < 12
    # A model that flags every part: every defective part is caught, every good one is overkill.
    model = make_detector_onnx(tmp_path / "m.onnx", [(30, 30, 8, 8, 0, 0.9)])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f'recipes: [{{id: 1, name: t, models: [{{path: "{model}"}}]}}]\n')
    out = tmp_path / "v.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "inspector",
            "replay",
            "--config",
            str(cfg),
            "--images",
            str(tmp_path / "imgs"),
            "--labels",
            str(labels),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 12
    assert all(r["verdict"] == "NG" and r["reason"] == "defect" for r in records)
    assert sum(r["truth"] == "NG" for r in records) == n_bad
    assert "escape rate 0.00%" in proc.stderr
    assert "overkill rate 100.00%" in proc.stderr
