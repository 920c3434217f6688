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
from tests.support.daemon import Record, explained_losses, late_ok, run_against_plc_sim

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
plc: {{enabled: true, role: {role}, port: 0}}
demo: {{plc_simulator: true, plc_rate_hz: {RATE_HZ}, plc_deadline_ms: 300}}
metrics: {{enabled: false}}
logging: {{per_part: false}}
"""
    )
    record = Record()
    explained_before, late_oks_before = explained_losses(), late_ok()
    counts = run_against_plc_sim(App(cfg, extra_sinks=[record], demo=True), PARTS, RATE_HZ)
    explained = explained_losses() - explained_before
    late_oks = late_ok() - late_oks_before
    assert counts.triggered >= PARTS, counts.summary()
    assert counts.mismatched == 0, counts.summary()
    # Exact accounting: every part the PLC triggered got a verdict, or its loss is one
    # the daemon named and counted (a missed trigger, a result the link could not
    # deliver). Nothing vanishes unexplained.
    assert counts.ok + counts.ng + counts.missed + counts.late == counts.triggered, counts.summary()
    assert counts.missed + counts.late == explained, (counts.summary(), explained)
    # Every OK the PLC took is one the daemon gave; every daemon OK the PLC did not take
    # is a named link event: shown after its deadline (as NG_TIMEOUT) or a dropped result.
    results = list(record.results.values())
    daemon_ok = sum(r.verdict.ok for r in results)
    assert counts.ok <= daemon_ok, (counts.summary(), daemon_ok)
    assert daemon_ok - counts.ok <= late_oks + explained, (counts.summary(), daemon_ok, late_oks)
    assert counts.ng > 0 and counts.ok > 0
    assert all(r.trigger.source == "plc" for r in results)
    # Ground truth: no defective sim part ever got OK (0 escapes).
    judged = [r for r in results if r.frame is not None and r.frame.truth is not None]
    assert judged, "no part was inspected"
    # An OK is only ever given to a part that was inspected (timeouts carry no frame).
    assert all(r.frame is not None for r in results if r.verdict.ok)
    escapes = [r.trigger.part_id for r in judged if r.verdict.ok and r.frame.truth]  # type: ignore[union-attr]
    assert escapes == [], escapes
