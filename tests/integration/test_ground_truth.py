"""End to end against the sim line's ground truth: every part accounted, 0 escapes.

The real daemon (``App``) on the sim line (1280×1024 Mono8 plates, 30 % with defects),
the bundled demo detector on ONNX Runtime, the internal trigger. Every triggered part
must come back exactly once, in trigger order, and its verdict must agree with what the
sim drew on it: a defective part is never OK (escape), and at the recipe's thresholds
the demo model rejects no good part either (overkill; docs/demo-model.md: 0 / 692).
The budget is generous so that the verdicts measure the model, not the host's load.
"""

from __future__ import annotations

import threading

from inspector.app import App
from inspector.config import parse_config
from inspector.types import PartResult, Reason
from tests.support.common import REPO

PARTS = 200


class Record:
    def __init__(self) -> None:
        self.results: list[PartResult] = []
        self.done = threading.Event()

    def publish(self, result: PartResult) -> None:
        self.results.append(result)
        if len(self.results) >= PARTS:
            self.done.set()


def test_every_part_once_in_order_with_zero_escapes_against_ground_truth() -> None:
    model = REPO / "engines" / "demo_detector.onnx"
    cfg = parse_config(
        f"""
line: {{cycle_budget_ms: 2000}}
trigger: {{rate_hz: 20, max_parts: {PARTS}}}
camera: {{type: sim, sim: {{width: 1280, height: 1024, pool_size: 64, seed: 4711,
         defects: {{rate: 0.3}}}}}}
recipes: [{{id: 1, name: demo, models: [{{path: "{model}", detection: {{conf: 0.05}}}}],
           rules: {{min_confidence: {{default: 0.5}}}}}}]
pipeline: {{queue_depth: 64}}
metrics: {{enabled: false}}
logging: {{per_part: false}}
"""
    )
    record = Record()
    app = App(cfg, extra_sinks=[record])
    app.start()
    try:
        assert record.done.wait(120), f"{len(record.results)} of {PARTS} parts came back"
    finally:
        app.stop()
    results = record.results
    assert [r.trigger.part_id for r in results] == list(range(1, PARTS + 1))
    assert all(r.verdict.reason in (Reason.OK, Reason.DEFECT, Reason.COUNT) for r in results), {
        r.verdict.reason for r in results
    }
    truth = [r.frame.truth if r.frame is not None else None for r in results]
    assert all(t is not None for t in truth)
    defective = [bool(t) for t in truth]
    assert 30 <= sum(defective) <= 100  # the sim drew defects on about 30 % of parts
    escapes = [
        r.trigger.part_id for r, bad in zip(results, defective, strict=True) if bad and r.verdict.ok
    ]
    overkill = [
        r.trigger.part_id
        for r, bad in zip(results, defective, strict=True)
        if not bad and not r.verdict.ok
    ]
    assert escapes == [], f"defective parts passed as OK: {escapes}"
    assert overkill == [], f"good parts rejected: {overkill}"
