"""The daemon end to end on the GPU path with the PLC simulator (marked ``gpu``, ``slow``).

The whole App, as in tests/integration/test_daemon_plc.py, with ``backend: torch`` and
``preprocess.device: cuda``: sim camera (1280×1024 Mono8), pipeline, and the PLC link
(client role) against the embedded PLC simulator on 127.0.0.1. 2,000 parts: the PLC
must count 0 mismatches and 0 late verdicts and answer nearly every part, and every
result must carry the device stage times (``h2d``), i.e. the GPU path really ran, with
no part rejected for an internal error. The App runs as shipped: ``app.load_recipe``
wires ``use_gpu_stage``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inspector.types import Reason
from tests.support.daemon import Record, run_against_plc_sim

pytestmark = [pytest.mark.gpu, pytest.mark.slow]

PARTS = 2000
RATE_HZ = 100
_INSPECTED = (Reason.OK, Reason.DEFECT, Reason.COUNT)  # verdicts that ran the models


def _config(model: Path) -> Any:
    from inspector.config import parse_config

    return parse_config(
        f"""
line: {{cycle_budget_ms: 30}}
trigger: {{source: plc}}
camera: {{type: sim, sim: {{width: 1280, height: 1024, pixel_format: Mono8, pool_size: 16}}}}
recipes:
  - id: 1
    name: gpu
    models:
      - path: "{model}"
        backend: torch
        torch: {{fp16: true}}
        input_size: [640, 640]
        class_names: [scratch, spot, missing_hole]
        detection: {{conf: 0.25}}
        preprocess: {{device: cuda}}
plc: {{enabled: true, role: client, port: 0, simulator: true,
      simulator_rate_hz: {RATE_HZ}, simulator_deadline_ms: 100}}
metrics: {{enabled: false}}
logging: {{per_part: false}}
"""
    )


def test_daemon_2000_parts_on_gpu_path_no_mismatch(tiny_detector: Path) -> None:
    from inspector.app import App

    record = Record()
    counts = run_against_plc_sim(App(_config(tiny_detector), extra_sinks=[record]), PARTS, RATE_HZ)
    assert counts.triggered >= PARTS, counts.summary()
    assert counts.mismatched == 0, counts.summary()
    assert counts.late == 0, counts.summary()
    assert counts.ok + counts.ng >= 0.98 * counts.triggered, counts.summary()
    results = list(record.results.values())
    errors = [r.verdict.detail for r in results if r.verdict.reason is Reason.ERROR]
    assert errors == [], errors[:3]
    inspected = [r for r in results if r.verdict.reason in _INSPECTED]
    assert len(inspected) >= 0.98 * PARTS, len(inspected)
    assert all("h2d" in r.stage_ns for r in inspected), "the GPU stage did not run"
