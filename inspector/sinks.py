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
from inspector.config import LoggingConfig
from inspector.logging import RateLimitedLog, get_logger
from inspector.supervisor import Supervisor
from inspector.types import PartResult, Reason

log = get_logger("inspector.part")
_errors = RateLimitedLog(get_logger(__name__))


class ResultSink(Protocol):
    """Receives every part's final result exactly once, in trigger order; never blocks."""

    def publish(self, result: PartResult) -> None: ...


class MetricsSink:
    """Counts verdicts and reasons, observes stage and cycle times (parts/s is a rate())."""

    def publish(self, result: PartResult) -> None:
        v = result.verdict
        metrics.PARTS.labels("ok" if v.ok else "ng", v.reason.value).inc()
        metrics.CYCLE_SECONDS.observe(result.cycle_ns / 1e9)
        for stage, ns in result.stage_ns.items():
            metrics.STAGE_SECONDS.labels(stage).observe(ns / 1e9)
        if v.reason is Reason.TIMEOUT:
            metrics.DEADLINE_MISSES.inc()
        metrics.RECIPE.set(result.trigger.recipe_id)


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
    truth = result.frame.truth if result.frame is not None else None
    if truth is not None:  # the sim line (or replay with labels) knows what is on the part
        record["truth"] = "NG" if truth else "OK"
    return record


class LogSink:
    """Part log lines: every NG part (warning), OK parts as ``logging.ok_parts`` says.

    ``all``: one ``part`` line per OK part. ``sample``: one in ``ok_sample_every``
    (the first, then every n-th), marked ``sampled``. ``summary``: none. With ``sample``
    and ``summary``, a ``parts_summary`` line every ``summary_period_s`` (and at close)
    counts every part of the period by verdict and reason, with the worst cycle time.
    The fields of a ``part`` line are ``part_record``'s (findings cut to 5).
    """

    def __init__(self, cfg: LoggingConfig | None = None) -> None:
        self.cfg = cfg or LoggingConfig()
        self._ok_seen = 0
        self._period_ns = int(self.cfg.summary_period_s * 1e9)
        self._period_start_ns = time.monotonic_ns()
        self._counts: collections.Counter[str] = collections.Counter()
        self._worst_cycle_ns = 0

    def publish(self, result: PartResult) -> None:
        v = result.verdict
        if v.ok:
            self._ok_seen += 1
            mode = self.cfg.ok_parts
            if mode == "all":
                log.info("part", **self._fields(result))
            elif mode == "sample" and (self._ok_seen - 1) % self.cfg.ok_sample_every == 0:
                log.info("part", sampled=self.cfg.ok_sample_every, **self._fields(result))
        else:
            log.warning("part", **self._fields(result))
        if self.cfg.ok_parts != "all":
            self._count(result)

    @staticmethod
    def _fields(result: PartResult) -> dict[str, object]:
        fields = part_record(result)
        fields["findings"] = [f.to_record() for f in result.verdict.findings[:5]]
        return fields

    def _count(self, result: PartResult) -> None:
        v = result.verdict
        self._counts[f"{'ok' if v.ok else 'ng'}:{v.reason.value}"] += 1
        self._worst_cycle_ns = max(self._worst_cycle_ns, result.cycle_ns)
        if time.monotonic_ns() - self._period_start_ns >= self._period_ns:
            self.summarise()

    def summarise(self) -> None:
        """Log the period's ``parts_summary`` (if it had parts) and start a new period."""
        now = time.monotonic_ns()
        counts, self._counts = self._counts, collections.Counter()
        if counts:
            ng = {k[3:]: n for k, n in sorted(counts.items()) if k.startswith("ng:")}
            log.info(
                "parts_summary",
                period_s=round((now - self._period_start_ns) / 1e9, 1),
                parts=sum(counts.values()),
                ok=counts["ok:ok"],
                ng=sum(ng.values()),
                ng_reasons=ng,
                worst_cycle_ms=round(self._worst_cycle_ns / 1e6, 2),
            )
        self._period_start_ns, self._worst_cycle_ns = now, 0

    def close(self) -> None:
        """The last period's summary (``QueuedSink.close`` calls it after the drain)."""
        self.summarise()


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
