"""The daemon end to end on the GPU path with the PLC simulator (marked ``gpu``, ``slow``).

The whole App, as in tests/integration/test_daemon_plc.py, with the trained demo model on
``backend: torch`` (FP16) and ``preprocess.device: cuda``, ``pipeline.frames_in_flight:
2``: sim camera (1280×1024 Mono8, its pool in pinned memory), the worker keeping two
parts on the GPU, and the PLC link (client role) against the embedded PLC simulator on
127.0.0.1. 2,000 parts: the PLC must count 0 mismatches and 0 late verdicts and answer
nearly every part; results must be published in trigger order, each carrying the device
runner's stage times (``device``), with no part rejected for an internal error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inspector.types import Reason
from tests.support.daemon import Record, run_against_plc_sim
from tests.support.gpu_models import DEMO_TS

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
pipeline: {{frames_in_flight: 2}}
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
plc: {{enabled: true, role: client, port: 0}}
demo: {{plc_simulator: true, plc_rate_hz: {RATE_HZ}, plc_deadline_ms: 100}}
metrics: {{enabled: false}}
logging: {{per_part: false}}
"""
    )


def test_daemon_2000_parts_two_in_flight_no_mismatch() -> None:
    from inspector.app import App

    record = Record()
    app = App(_config(DEMO_TS), extra_sinks=[record], demo=True)
    counts = run_against_plc_sim(app, PARTS, RATE_HZ)
    assert counts.triggered >= PARTS, counts.summary()
    assert counts.mismatched == 0, counts.summary()
    slowest = sorted(record.results.values(), key=lambda r: -r.cycle_ns)[:3]
    slow = [(r.trigger.part_id, r.cycle_ns / 1e6, r.stage_ns) for r in slowest]
    assert counts.late == 0, (counts.summary(), slow)
    assert counts.ok + counts.ng >= 0.98 * counts.triggered, counts.summary()
    results = list(record.results.values())  # in publication order
    seqs = [r.trigger.trigger_seq for r in results]
    assert seqs == sorted(seqs), "results were not published in trigger order"
    errors = [r.verdict.detail for r in results if r.verdict.reason is Reason.ERROR]
    assert errors == [], errors[:3]
    inspected = [r for r in results if r.verdict.reason in _INSPECTED]
    assert len(inspected) >= 0.98 * PARTS, len(inspected)
    assert all("device" in r.stage_ns for r in inspected), "the device runner did not run"
