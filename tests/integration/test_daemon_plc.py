"""The whole daemon against the embedded PLC simulator, in both Modbus roles.

Real components end to end: the sim line, the bundled demo detector on ONNX Runtime,
the pipeline, and the PLC link talking Modbus TCP on 127.0.0.1 to the simulator, which
plays the PLC: it raises TRIGGER_SEQ at line rate, keeps the FIFO of pending parts,
checks CHECK, the echoes and the deadlines, and counts anything it cannot trust.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from inspector.app import App
from inspector.config import parse_config
from tests.support.common import REPO
from tests.support.daemon import Record, run_against_plc_sim

PARTS = 2000
RATE_HZ = 40


@pytest.mark.slow
@pytest.mark.parametrize("role", ["client", "server"])
def test_daemon_runs_2000_parts_against_the_plc_simulator(role: str, tmp_path: Path) -> None:
    model = REPO / "engines" / "demo_detector.onnx"
    cfg = parse_config(
        f"""
line: {{cycle_budget_ms: 30}}
trigger: {{source: plc}}
camera: {{type: sim, sim: {{width: 1280, height: 1024, pool_size: 16, seed: 77}}}}
recipes: [{{id: 1, name: demo, models: [{{path: "{model}"}}]}}]
plc: {{enabled: true, role: {role}, port: 0, simulator: true,
      simulator_rate_hz: {RATE_HZ}, simulator_deadline_ms: 300}}
metrics: {{enabled: false}}
logging: {{per_part: false}}
"""
    )
    record = Record()
    counts = run_against_plc_sim(App(cfg, extra_sinks=[record]), PARTS, RATE_HZ)
    assert counts.triggered >= PARTS, counts.summary()
    assert counts.mismatched == 0, counts.summary()
    # A verdict after the PLC's deadline is rejected by the PLC (safe); only a starved
    # host produces one.
    assert counts.late <= 0.005 * counts.triggered, counts.summary()
    # Parts the PLC got no verdict for are rejected by it (safe). An idle 2-core host
    # answers all of them; a starved one (CPU steal, GIL contention between the link's
    # poll loop and the worker) misses some, so this bound is loose on purpose: the
    # hard invariants are the ones above, no mismatch and no escape.
    assert counts.ok + counts.ng >= 0.75 * counts.triggered, counts.summary()
    # No escape: every defective sim part the daemon saw is NG, and the PLC never
    # counted more OKs than the daemon gave.
    daemon_ok = [r for r in record.results.values() if r.verdict.ok]
    assert counts.ok <= len(daemon_ok)
    assert counts.ng > 0 and counts.ok > 0
    assert all(r.trigger.source == "plc" for r in record.results.values())
