"""Frames in flight in the worker (``inflight.py`` + ``Pipeline._work``), on a CPU.

A runner whose parts finish asynchronously, in any order and after seeded random delays
(as GPU lanes do), drives the real pipeline: the worker must keep up to
``frames_in_flight`` parts submitted, never more, collect them oldest first, and the
ledger must publish every verdict in trigger order. A runner that is done at submit
(the host path) must never hold a part back. Runner failures at submit and at collect
become NG 'error' for that part only.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import numpy as np
import pytest

from inspector.config import ModelConfig, QualityConfig, RecipeConfig
from inspector.errors import BackendError
from inspector.inspect import LoadedModel, LoadedRecipe
from inspector.pipeline import Pipeline
from inspector.types import Frame, PartResult, Reason, Trigger


class AsyncRunner:
    """Parts complete on timer threads after 0-3 ms, in whatever order the timers fire."""

    keepalive_s: float | None = 0.002
    overlaps = True

    def __init__(self, seed: int, *, done_at_submit: bool = False) -> None:
        self.rng = random.Random(seed)
        self.done_at_submit = done_at_submit
        self.consecutive_failures = 0
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.idles = 0
        self.fail_submit: set[int] = set()
        self.fail_collect: set[int] = set()

    def submit(self, frame: Frame) -> tuple[int, threading.Event]:
        if frame.frame_id in self.fail_submit:
            raise BackendError("CUDA_ERROR_LAUNCH_FAILED in cuGraphLaunch")
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        done = threading.Event()
        if self.done_at_submit:
            done.set()
        else:
            threading.Timer(self.rng.uniform(0, 0.003), done.set).start()
        return frame.frame_id, done

    def ready(self, ticket: tuple[int, threading.Event]) -> bool:
        return ticket[1].is_set()

    def collect(self, ticket: tuple[int, threading.Event]) -> tuple[list[Any], dict[str, int]]:
        ticket[1].wait()
        with self.lock:
            self.in_flight -= 1
        if ticket[0] in self.fail_collect:
            raise BackendError("CUDA_ERROR_ILLEGAL_ADDRESS in cuEventSynchronize")
        return [], {"device": 1}

    def idle(self) -> None:
        self.idles += 1

    def close(self) -> None:
        pass


class Camera:
    name = "fake"

    def open(self) -> None:
        pass

    def grab(self, trigger: Trigger) -> Frame:
        return Frame(np.zeros((4, 4), np.uint8), "Mono8", trigger.part_id, time.monotonic_ns())

    def close(self) -> None:
        pass


class Sink:
    def __init__(self) -> None:
        self.results: list[PartResult] = []
        self.cond = threading.Condition()

    def publish(self, result: PartResult) -> None:
        with self.cond:
            self.results.append(result)
            self.cond.notify_all()


def _run(runner: AsyncRunner, parts: int, in_flight: int) -> list[PartResult]:
    cfg = ModelConfig(path="m.onnx")  # type: ignore[arg-type]
    model = LoadedModel(cfg, None, None, runner)  # type: ignore[arg-type]
    quality = QualityConfig(enabled=False)  # the fake frames are black: not the subject
    recipe = LoadedRecipe(RecipeConfig(id=1, name="t", models=[cfg], quality=quality), [model])
    sink = Sink()
    pipeline = Pipeline(Camera(), {1: recipe}, [sink], queue_depth=8, frames_in_flight=in_flight)
    pipeline.start()
    try:
        for i in range(1, parts + 1):
            with sink.cond:  # stay below the queues' depth: overruns are not the subject
                assert sink.cond.wait_for(lambda i=i: i - len(sink.results) <= 6, timeout=10)
            now = time.monotonic_ns()
            pipeline.submit(Trigger(i, i, now, now + 10_000_000_000))
        with sink.cond:
            assert sink.cond.wait_for(lambda: len(sink.results) == parts, timeout=10)
    finally:
        pipeline.stop()
    return sink.results


@pytest.mark.parametrize("in_flight", [1, 2, 3])
def test_up_to_n_parts_in_flight_published_in_trigger_order(in_flight: int) -> None:
    runner = AsyncRunner(seed=in_flight)
    results = _run(runner, 300, in_flight)
    assert [r.trigger.part_id for r in results] == list(range(1, 301))
    assert all(r.verdict.reason is Reason.OK for r in results)
    assert runner.max_in_flight == in_flight  # the window was used, and never exceeded
    assert all(r.stage_ns["device"] == 1 and "grab" in r.stage_ns for r in results)


def test_a_runner_done_at_submit_never_holds_a_part_back() -> None:
    runner = AsyncRunner(seed=5, done_at_submit=True)
    results = _run(runner, 100, 3)
    assert [r.trigger.part_id for r in results] == list(range(1, 101))
    assert runner.max_in_flight == 1


def test_device_failures_fail_only_their_part_and_idle_ticks_run() -> None:
    runner = AsyncRunner(seed=9)
    runner.fail_submit, runner.fail_collect = {10}, {20}
    results = _run(runner, 40, 2)
    errors = {
        r.trigger.part_id: r.verdict.detail for r in results if r.verdict.reason is Reason.ERROR
    }
    assert set(errors) == {10, 20}
    assert "LAUNCH_FAILED" in errors[10] and "ILLEGAL_ADDRESS" in errors[20]
    assert runner.idles > 0, "the worker called idle() while nothing was waiting"


@pytest.mark.parametrize("overlaps", [True, False])
def test_the_quality_gate_runs_while_the_device_works_and_still_decides(overlaps: bool) -> None:
    """A black frame is NG image_quality on both orders. With a runner that only enqueues
    (a device runner) the part was submitted first and its ticket collected (the lane
    freed); with a host runner the gate comes first and no model runs."""
    from inspector.inspect import inspect_part

    runner = AsyncRunner(seed=3)
    runner.overlaps = overlaps
    cfg = ModelConfig(path="m.onnx")  # type: ignore[arg-type]
    model = LoadedModel(cfg, None, None, runner)  # type: ignore[arg-type]
    recipe = LoadedRecipe(RecipeConfig(id=1, name="t", models=[cfg]), [model])
    black = Frame(np.zeros((64, 64), np.uint8), "Mono8", 1, 0)
    verdict, stage_ns = inspect_part(black, recipe)
    assert verdict.reason is Reason.IMAGE_QUALITY
    assert "quality" in stage_ns
    assert runner.in_flight == 0, "every submitted ticket was collected"
    assert ("device" in stage_ns) is overlaps  # the model ran only when overlapping
    assert runner.max_in_flight == (1 if overlaps else 0)
