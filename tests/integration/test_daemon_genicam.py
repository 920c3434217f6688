"""The daemon end to end on a real GenTL camera: the harvesters path with the Viky
producer of the genicam wheel, the demo model, and verdicts reaching the embedded PLC
simulator over Modbus TCP on 127.0.0.1.

Viky has no TriggerMode, so the camera runs free: each PLC trigger takes the next
frame (``trigger_mode: free_run``); the trigger itself comes from the PLC. Viky's
frames (a bouncing ball) are no plates, so the verdicts are whatever the demo model
says; the subject is the path. The budget is a slow line's 100 ms: on this 2-core host
a free-run grab plus the demo model on a Viky frame takes about 30 ms.
"""

from __future__ import annotations

from pathlib import Path

import genicam
import pytest

from inspector.app import App
from inspector.config import parse_config
from tests.support.common import REPO
from tests.support.daemon import Record, explained_losses, run_against_plc_sim

VIKY = Path(genicam.__file__).resolve().parent / "viky.cti"
PARTS = 80
RATE_HZ = 10


@pytest.mark.camera
def test_daemon_on_viky_camera_reaches_the_plc_simulator() -> None:
    model = REPO / "engines" / "demo_detector.onnx"
    cfg = parse_config(
        f"""
line: {{cycle_budget_ms: 100}}
trigger: {{source: plc}}
camera:
  type: genicam
  genicam:
    cti: ["{VIKY}"]
    serial_number: "1"
    trigger_mode: free_run
    timeout_ms: 60
    features:
      - {{Width: 640}}
      - {{Height: 512}}
      - {{PixelFormat: Mono8}}
      - {{AcquisitionFrameRate: 200.0}}
# Viky's frames are 99.9 % saturated white: the image-quality gate rightly rejects them
# (NG image_quality); this test is about the camera path, so the gate is off here.
recipes: [{{id: 1, name: demo, models: [{{path: "{model}"}}], quality: {{enabled: false}}}}]
plc: {{enabled: true, role: client, port: 0}}
demo: {{plc_simulator: true, plc_rate_hz: {RATE_HZ}, plc_deadline_ms: 300}}
metrics: {{enabled: false}}
logging: {{per_part: false}}
"""
    )
    record = Record()
    explained_before = explained_losses()
    counts = run_against_plc_sim(App(cfg, extra_sinks=[record], demo=True), PARTS, RATE_HZ)
    explained = explained_losses() - explained_before
    assert counts.triggered >= PARTS, counts.summary()
    assert counts.mismatched == 0, counts.summary()
    # Exact accounting, as in test_daemon_plc: a verdict for every part, or a named loss.
    assert counts.ok + counts.ng + counts.missed + counts.late == counts.triggered, counts.summary()
    assert counts.missed + counts.late == explained, (counts.summary(), explained)
    assert counts.verdicts.get(3, 0) <= 0.25 * counts.triggered, counts.summary()  # timeouts
    inspected = [r for r in record.results.values() if "infer" in r.stage_ns]
    assert len(inspected) >= 0.6 * PARTS  # real Viky frames went through the model
    assert all(r.frame_id is not None for r in inspected)
