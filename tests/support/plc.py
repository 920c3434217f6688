"""Helpers for the PLC link tests: a stand-in pipeline and a running link.

The subject of these tests is the link, so the "pipeline" here answers each trigger
with a verdict derived from its part id (every 7th part NG), in trigger order, with an
optional work time, and NG ``overrun`` for a trigger beyond its depth, as the real
pipeline does. The full-daemon end-to-end test lives with the pipeline.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from inspector.config import PlcConfig
from inspector.plc.link import PlcLink
from inspector.plc.protocol import State
from inspector.types import PartResult, Reason, Trigger, Verdict, ng


def expected_ok(part_id: int) -> bool:
    return part_id % 7 != 0


@dataclass
class FakePipeline:
    """Answers triggers in order from one worker thread; ``depth`` parts at most in flight."""

    depth: int = 4
    work_s: float = 0.0
    triggers: list[Trigger] = field(default_factory=list)
    results: list[PartResult] = field(default_factory=list)
    progress: int = 0

    def __post_init__(self) -> None:
        self._q: queue.Queue[tuple[Trigger, bool] | None] = queue.Queue()
        self._open = 0
        self._lock = threading.Lock()
        self.sink: Callable[[PartResult], None] | None = None
        self._thread = threading.Thread(target=self._work, name="fake-pipeline")

    def submit(self, trigger: Trigger) -> None:
        with self._lock:
            overrun = self._open >= self.depth
            self._open += 1
            self.triggers.append(trigger)
        self._q.put((trigger, overrun))

    def _work(self) -> None:
        while (item := self._q.get()) is not None:
            trigger, overrun = item
            if overrun:
                verdict = ng(Reason.OVERRUN, "pipeline full")
            else:
                if self.work_s:
                    time.sleep(self.work_s)  # stands in for inference time
                ok = expected_ok(trigger.part_id)
                verdict = (
                    Verdict(ok=True, reason=Reason.OK)
                    if ok
                    else Verdict(ok=False, reason=Reason.DEFECT, defect_code=3)
                )
            now = time.monotonic_ns()
            if now > trigger.deadline_ns and verdict.ok:
                verdict = ng(Reason.TIMEOUT)
            result = PartResult(trigger=trigger, verdict=verdict, t_verdict_ns=now)
            with self._lock:
                self._open -= 1
                self.progress += 1
                self.results.append(result)
            assert self.sink is not None
            self.sink(result)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._q.put(None)
        self._thread.join(5.0)


class RunningLink:
    """A PlcLink running in its trigger thread, fed to a FakePipeline; stop() joins all."""

    def __init__(
        self,
        cfg: PlcConfig,
        pipeline: FakePipeline | None = None,
        *,
        budget_ms: float = 200.0,
        on_recipe: Callable[[int], bool] | None = None,
    ) -> None:
        self.pipeline = pipeline or FakePipeline()
        self.link = PlcLink(
            cfg,
            cycle_budget_ms=budget_ms,
            config_crc=0xBEEF,
            on_recipe=on_recipe,
            progress=lambda: self.pipeline.progress,
        )
        self.pipeline.sink = self.link.publish
        self.stop_event = threading.Event()
        self.thread = threading.Thread(
            target=self.link.run, args=(self.pipeline.submit, self.stop_event), name="plc-link"
        )

    def start(self) -> RunningLink:
        self.pipeline.start()
        self.link.set_state(State.READY)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(5.0)
        self.pipeline.stop()
        assert not self.thread.is_alive()


def wait_for(cond: Callable[[], bool], timeout_s: float = 10.0, what: str = "") -> None:
    """Poll a condition that has no event to await (state read over Modbus)."""
    end = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what or cond}")
        time.sleep(0.005)
