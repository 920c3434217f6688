"""The ledger of parts in flight: deadlines, and results published in trigger order.

Every trigger is entered here the moment it arrives. A part's entry is closed by
whichever comes first: its verdict from the worker, or its deadline. One publisher
thread hands results to the sinks (PLC, metrics, log) strictly in trigger order, so the
PLC's per-part FIFO always lines up. A verdict that arrives after the deadline is
dropped: the part was already published as NG ``timeout``.

Concurrency: one lock and one condition; the publisher waits on the condition with a
timeout equal to the head part's remaining budget, so no part ever waits for a poll.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from inspector.logging import get_logger
from inspector.types import PartResult, Reason, Trigger, Verdict, ng

log = get_logger(__name__)


class ResultSink(Protocol):
    """Receives every part's final result exactly once, in trigger order."""

    def publish(self, result: PartResult) -> None: ...


@dataclass(eq=False)
class Entry:
    """One part in flight. Fields are written under the ledger's lock only."""

    trigger: Trigger
    verdict: Verdict | None = None
    t_done_ns: int = 0
    stage_ns: dict[str, int] = field(default_factory=dict)
    frame_id: int | None = None


class Ledger:
    """Parts in flight, closed by verdict or deadline, published in order."""

    def __init__(
        self,
        sinks: Sequence[ResultSink],
        *,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self._sinks = list(sinks)
        self._clock = clock
        self._pending: deque[Entry] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self.published = 0

    def enter(self, trigger: Trigger) -> Entry:
        """Register a new part; its deadline starts counting now."""
        entry = Entry(trigger)
        with self._cond:
            self._pending.append(entry)
            self._cond.notify_all()
        return entry

    def is_closed(self, entry: Entry) -> bool:
        """True once the part has a verdict (possibly a timeout): skip further work."""
        with self._cond:
            return entry.verdict is not None

    def close(
        self,
        entry: Entry,
        verdict: Verdict,
        stage_ns: dict[str, int] | None = None,
        frame_id: int | None = None,
    ) -> bool:
        """Give the part its verdict. Returns False if the deadline had already closed it.

        A verdict that is ready only after the deadline becomes NG ``timeout``.
        """
        now = self._clock()
        with self._cond:
            if entry.verdict is not None:
                return False
            if now > entry.trigger.deadline_ns:
                late_ms = (now - entry.trigger.deadline_ns) / 1e6
                verdict = ng(Reason.TIMEOUT, f"verdict ready {late_ms:.1f} ms late")
            entry.verdict, entry.t_done_ns = verdict, now
            entry.stage_ns = stage_ns or {}
            entry.frame_id = frame_id
            self._cond.notify_all()
            return True

    def depth(self) -> int:
        with self._cond:
            return len(self._pending)

    def finish(self) -> None:
        """Ask the publisher to exit once every pending part is published."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    def _next(self) -> Entry | None:
        """Wait for the head part to close (verdict or deadline); None when finished."""
        with self._cond:
            while True:
                if not self._pending:
                    if self._closing:
                        return None
                    self._cond.wait()
                    continue
                head = self._pending[0]
                if head.verdict is None:
                    now = self._clock()
                    remaining = head.trigger.deadline_ns - now
                    if remaining > 0:
                        self._cond.wait(remaining / 1e9)
                        continue
                    head.verdict = ng(Reason.TIMEOUT, "no verdict within the cycle budget")
                    head.t_done_ns = now
                return self._pending.popleft()

    def run(self) -> None:
        """Publisher loop; returns after ``finish()`` once nothing is pending."""
        while (entry := self._next()) is not None:
            assert entry.verdict is not None
            result = PartResult(
                trigger=entry.trigger,
                verdict=entry.verdict,
                t_verdict_ns=entry.t_done_ns,
                stage_ns=entry.stage_ns,
                frame_id=entry.frame_id,
            )
            for sink in self._sinks:
                try:
                    sink.publish(result)
                except Exception as exc:  # one failing sink must not starve the others
                    log.error("sink_failed", sink=type(sink).__name__, error=repr(exc))
            self.published += 1
