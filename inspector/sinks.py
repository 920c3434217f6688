"""Result sinks of the last step: everything that receives a finished part.

    ledger ─▶ [PLC link] ─▶ MetricsSink ─▶ QueuedSink(LogSink) ─▶ QueuedSink(Archive) ─▶ …

Each sink gets every part's final ``PartResult`` once, in trigger order, from the
ledger (``ledger.py``), in the worker or the publisher thread. The PLC link's sink
(``plc/``) and ``MetricsSink`` are fast and in memory, and run inline: a PLC verdict is
never dropped. Anything that can be slow (stdout, a disk, a browser, a broker) runs
behind a ``QueuedSink``: a bounded queue and one writer thread, drop-and-count when
full, so a stalled log reader or a full disk never delays a verdict or a deadline.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Protocol

from inspector import metrics
from inspector.logging import RateLimitedLog, get_logger
from inspector.supervisor import Supervisor
from inspector.types import PartResult, Reason

log = get_logger("inspector.part")
_errors = RateLimitedLog(get_logger(__name__))

_FPS_WINDOW_NS = 5_000_000_000


class ResultSink(Protocol):
    """Receives every part's final result exactly once, in trigger order; never blocks."""

    def publish(self, result: PartResult) -> None: ...


class MetricsSink:
    """Counts verdicts and reasons, observes stage and cycle times, tracks parts/s."""

    def __init__(self) -> None:
        self._recent: collections.deque[int] = collections.deque()

    def publish(self, result: PartResult) -> None:
        v = result.verdict
        metrics.PARTS.labels("ok" if v.ok else "ng", v.reason.value).inc()
        metrics.CYCLE_SECONDS.observe(result.cycle_ns / 1e9)
        for stage, ns in result.stage_ns.items():
            metrics.STAGE_SECONDS.labels(stage).observe(ns / 1e9)
        if v.reason is Reason.TIMEOUT:
            metrics.DEADLINE_MISSES.inc()
        metrics.RECIPE.set(result.trigger.recipe_id)
        now = time.monotonic_ns()
        self._recent.append(now)
        while self._recent and now - self._recent[0] > _FPS_WINDOW_NS:
            self._recent.popleft()
        span_s = max((now - self._recent[0]) / 1e9, 1e-9)
        metrics.FPS.set((len(self._recent) - 1) / span_s if len(self._recent) > 1 else 0.0)


class ErrorStreak:
    """Counts parts in a row, in trigger order, whose verdict is reason ``error``.

    ``error`` (VERDICT NG_ERROR) means the inspection itself failed: the backend, the
    model's outputs, an unknown recipe or a bug. A run of them means the station cannot
    inspect; the app reads ``count`` and reports STATE fault past its threshold. Inline
    and in memory: the ledger calls it from one thread at a time.
    """

    def __init__(self) -> None:
        self.count = 0

    def publish(self, result: PartResult) -> None:
        self.count = self.count + 1 if result.verdict.reason is Reason.ERROR else 0
        metrics.ERROR_PARTS_IN_A_ROW.set(self.count)


def part_record(result: PartResult) -> dict[str, object]:
    """The one JSON shape of a finished part (log line, archive sidecar, MQTT, web page)."""
    v, t = result.verdict, result.trigger
    record: dict[str, object] = {
        "part_id": t.part_id,
        "trigger_seq": t.trigger_seq,
        "recipe_id": t.recipe_id,
        "verdict": "OK" if v.ok else "NG",
        "reason": v.reason.value,
        "cycle_ms": round(result.cycle_ns / 1e6, 2),
        "stages_ms": {k: round(ns / 1e6, 3) for k, ns in result.stage_ns.items()},
        "findings": [f.to_record() for f in v.findings],
    }
    if v.detail:
        record["detail"] = v.detail
    return record


class LogSink:
    """One structured log line per part: part_id, verdict, reason, latency, findings."""

    def publish(self, result: PartResult) -> None:
        fields = part_record(result)
        fields["findings"] = [f.to_record() for f in result.verdict.findings[:5]]
        if result.verdict.ok:
            log.info("part", **fields)
        else:
            log.warning("part", **fields)


class QueuedSink:
    """Runs a slow sink in its own thread behind a bounded queue; drops and counts when full.

    ``publish`` never blocks: it appends to a deque under a lock and wakes the writer.
    The writer hands parts to the inner sink in order; an exception in the inner sink is
    counted and logged (rate-limited) and the next part goes on. ``close`` lets the
    writer drain what is queued, up to ``drain_s``.
    """

    def __init__(
        self,
        inner: ResultSink,
        name: str,
        *,
        maxsize: int = 256,
        wants: Callable[[PartResult], bool] | None = None,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.inner = inner
        self.name = name
        self.maxsize = maxsize
        #: Parts the inner sink has no use for never take a place in the queue.
        self._wants = wants
        #: Told how many wanted parts were dropped (so the inner sink's counts agree).
        self._on_drop = on_drop
        self._q: collections.deque[PartResult] = collections.deque()
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._dropped = metrics.SINK_DROPPED.labels(name)
        self._depth = metrics.SINK_QUEUE_DEPTH.labels(name)
        self.dropped = 0

    def start(self, supervisor: Supervisor) -> None:
        self._thread = supervisor.spawn(f"sink-{self.name}", self._run, stops_with=self._closing)

    def publish(self, result: PartResult) -> None:
        if self._wants is not None and not self._wants(result):
            return
        with self._cond:
            if len(self._q) >= self.maxsize:
                self._count_dropped(1)
                return
            self._q.append(result)
            self._cond.notify()

    def close(self, drain_s: float = 1.0) -> None:
        """Stop after the queue is drained (or ``drain_s`` passed); drops what is left."""
        with self._cond:
            self._closing.set()
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(drain_s)
        with self._cond:
            left = len(self._q)
            self._q.clear()
        if left:
            self._count_dropped(left)
        close_inner = getattr(self.inner, "close", None)
        if callable(close_inner):
            close_inner()

    def _count_dropped(self, n: int) -> None:
        self.dropped += n
        self._dropped.inc(n)
        if self._on_drop is not None:
            self._on_drop(n)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._q and not self._closing.is_set():
                    self._cond.wait(0.5)
                if not self._q:
                    return  # closing, and nothing left
                result = self._q.popleft()
                self._depth.set(len(self._q))
            try:
                self.inner.publish(result)
            except Exception as exc:  # a failing sink never stops the others or the line
                metrics.SINK_ERRORS.labels(self.name).inc()
                _errors.error("sink_failed", sink=self.name, error=repr(exc))
