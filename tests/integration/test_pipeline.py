"""The per-part loop end to end: sim camera → real ONNX model → rules → sinks.

The model is a small real ONNX graph with fixed detections (tests/support/onnx_models.py), run by
ONNX Runtime exactly as the demo model is; the subject here is the pipeline's
ordering, deadlines, overruns and fail-closed paths.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from inspector.app import App
from inspector.config import Config, parse_config
from inspector.sim.camera import SimCamera
from inspector.types import Frame, PartResult, Reason, Trigger
from tests.support.onnx_models import make_detector_onnx
from tests.support.sinks import Collect


def config(
    model: Path, *, parts: int, rate: float = 200, budget: float = 30, depth: int = 4
) -> Config:
    return parse_config(
        f"""
line: {{cycle_budget_ms: {budget}}}
trigger: {{source: internal, rate_hz: {rate}, max_parts: {parts}}}
camera: {{type: sim, sim: {{width: 320, height: 256, pool_size: 4, seed: 7}}}}
recipes:
  - id: 1
    name: t
    models: [{{path: "{model}", detection: {{conf: 0.25}}}}]
pipeline: {{queue_depth: {depth}}}
metrics: {{enabled: false}}
logging: {{per_part: false}}
"""
    )


def run_app(cfg: Config, want: int, camera: object | None = None) -> list[PartResult]:
    sink = Collect(want)
    app = App(cfg, extra_sinks=[sink], camera=camera)  # type: ignore[arg-type]
    app.start()
    try:
        assert sink.done.wait(20), f"only {len(sink.results)} of {want} results"
    finally:
        app.stop()
    return sink.results


def test_every_part_gets_one_verdict_in_order(tmp_path: Path) -> None:
    model = make_detector_onnx(tmp_path / "m.onnx", [(20, 20, 10, 10, 1, 0.9)])
    # A generous budget: the subject is order and completeness, not speed (a starved
    # CI host must not turn this into a timing test).
    results = run_app(config(model, parts=60, budget=500), 60)
    assert [r.trigger.part_id for r in results] == list(range(1, 61))
    assert all(r.verdict.reason is Reason.DEFECT for r in results)
    assert all(r.verdict.findings[0].class_name == "defect1" for r in results)
    assert all(r.cycle_ns < 500e6 for r in results)
    assert {"preprocess", "infer", "postprocess", "decide"} <= set(results[0].stage_ns)


def test_clean_parts_are_ok(tmp_path: Path) -> None:
    model = make_detector_onnx(tmp_path / "m.onnx", [(20, 20, 10, 10, 1, 0.3)])  # below 0.5
    results = run_app(config(model, parts=20, budget=500), 20)
    assert all(r.verdict.ok for r in results)


class GatedCamera(SimCamera):
    """The sim camera, except that chosen parts wait on a gate (a stuck grab)."""

    def __init__(self, cfg: Config, stuck: set[int], gate: threading.Event) -> None:
        super().__init__(cfg.camera.sim)
        self.stuck, self.gate = stuck, gate

    def grab(self, trigger: Trigger) -> Frame:
        if trigger.part_id in self.stuck:
            self.gate.wait(5)
        return super().grab(trigger)


def test_stuck_part_times_out_on_time_and_later_parts_overrun(tmp_path: Path) -> None:
    model = make_detector_onnx(tmp_path / "m.onnx", [])
    cfg = config(model, parts=8, rate=100, budget=30, depth=1)
    gate = threading.Event()
    cam = GatedCamera(cfg, {2}, gate)
    sink = Collect(8)
    app = App(cfg, extra_sinks=[sink], camera=cam)
    app.start()
    try:
        # Part 2 blocks the grab; parts behind it overflow the depth-1 queue.
        assert sink.done.wait(10) or len(sink.results) >= 2
        gate.set()
        assert sink.done.wait(10)
    finally:
        gate.set()
        app.stop()
    by_part = {r.trigger.part_id: r for r in sink.results}
    assert by_part[1].verdict.reason in (Reason.OK, Reason.TIMEOUT)  # timeout: starved host
    stuck = by_part[2]
    assert stuck.verdict.reason is Reason.TIMEOUT
    assert 29e6 <= stuck.cycle_ns <= 250e6, stuck.cycle_ns  # at its deadline, not later
    reasons = {r.verdict.reason for r in sink.results}
    assert Reason.OVERRUN in reasons
    assert not any(r.verdict.ok for r in sink.results if r.verdict.reason is not Reason.OK)


class BrokenFrameCamera(SimCamera):
    def grab(self, trigger: Trigger) -> Frame:
        frame = super().grab(trigger)
        if trigger.part_id % 2:
            bad = frame.image.astype(np.uint16)  # a deep frame nobody converted
            return Frame(bad, frame.pixel_format, frame.frame_id, frame.t_grab_ns)
        return frame


def test_bad_frames_are_no_image_and_never_ok(tmp_path: Path) -> None:
    model = make_detector_onnx(tmp_path / "m.onnx", [])
    cfg = config(model, parts=10, budget=500)
    results = run_app(cfg, 10, BrokenFrameCamera(cfg.camera.sim))
    for r in results:
        if r.trigger.part_id % 2:
            assert r.verdict.reason is Reason.NO_IMAGE and not r.verdict.ok
        else:
            assert r.verdict.ok


def test_unknown_recipe_is_error(tmp_path: Path) -> None:
    from inspector.trigger import InternalTrigger

    model = make_detector_onnx(tmp_path / "m.onnx", [])
    cfg = config(model, parts=3)
    sink = Collect(3)
    trig = InternalTrigger(200, 30, max_parts=3, recipe_id=lambda: 9)
    app = App(cfg, extra_sinks=[sink], trigger=trig)
    app.start()
    try:
        assert sink.done.wait(10)
    finally:
        app.stop()
    assert all(r.verdict.reason is Reason.ERROR for r in sink.results)


def test_broken_model_file_fails_start_cleanly(tmp_path: Path) -> None:
    from inspector.errors import BackendError

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    app = App(config(bad, parts=1))
    with pytest.raises(BackendError, match="cannot load ONNX model"):
        app.start()


def test_pipeline_threads_run_on_the_pinned_cpu(tmp_path: Path) -> None:
    import os

    before = os.sched_getaffinity(0)
    cpu = max(before)
    model = make_detector_onnx(tmp_path / "m.onnx", [])
    cfg = config(model, parts=5, budget=500)
    cfg = cfg.model_copy(update={"pipeline": cfg.pipeline.model_copy(update={"cpus": (cpu,)})})
    seen: list[set[int]] = []

    class WhereAmI(Collect):
        def publish(self, result: PartResult) -> None:  # worker or publisher thread
            seen.append(os.sched_getaffinity(0))
            super().publish(result)

    sink = WhereAmI(5)
    app = App(cfg, extra_sinks=[sink])
    app.start()
    try:
        assert sink.done.wait(20)
        assert app.pipeline is not None
        for t in app.pipeline._threads:  # Linux thread ids: each thread's own affinity
            assert t.native_id is not None
            assert os.sched_getaffinity(t.native_id) == {cpu}, t.name
    finally:
        app.stop()
    assert seen and all(s == {cpu} for s in seen)
    assert os.sched_getaffinity(0) == before  # the caller's thread was not pinned


def test_cpus_the_machine_lacks_fail_start_as_config_error(tmp_path: Path) -> None:
    from inspector.errors import ConfigError

    model = make_detector_onnx(tmp_path / "m.onnx", [])
    cfg = config(model, parts=1)
    cfg = cfg.model_copy(update={"pipeline": cfg.pipeline.model_copy(update={"cpus": (4095,)})})
    with pytest.raises(ConfigError, match=r"pipeline.cpus: CPU\(s\) \[4095\] not available"):
        App(cfg).start()
