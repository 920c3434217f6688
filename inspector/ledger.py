"""The ledger of parts in flight: deadlines, and results published in trigger order.

Every trigger is entered here the moment it arrives. A part's entry is closed by
whichever comes first: its verdict from the worker, or its deadline. Results reach the
sinks (PLC, metrics, log) strictly in trigger order, so the PLC's per-part FIFO always
lines up. A verdict that arrives after the deadline is dropped: the part was already
published as NG ``timeout``.

Who publishes: the thread that closes the oldest part in flight (normally the worker)
publishes it, and every closed part queued behind it, at once. The publisher thread
handles deadlines (it waits on the condition with a timeout equal to the head part's
remaining budget, and is woken early whenever a part's deadline comes before its next
wake, so no part ever waits for a poll) and parts closed by the trigger source. One
lock serialises publishing, so order holds whoever publishes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from inspector.logging import get_logger
from inspector.sinks import ResultSink
from inspector.types import Frame, PartResult, Reason, Trigger, Verdict, ng

log = get_logger(__name__)


@dataclass(eq=False)
class Entry:
    """One part in flight. Fields are written under the ledger's lock only."""

    trigger: Trigger
    verdict: Verdict | None = None
    t_done_ns: int = 0
    stage_ns: dict[str, int] = field(default_factory=dict)
    frame: Frame | None = None


class Ledger:
    """Parts in flight, closed by verdict or deadline, published in order."""

    def __init__(
        self,
        sinks: Sequence[ResultSink],
        *,
        clock: Callable[[], int] = time.monotonic_ns,
        idle_wake_s: float = 0.01,
    ) -> None:
        self._sinks = list(sinks)
        self._clock = clock
        # With nothing in flight the publisher still wakes every ``idle_wake_s``, so a
        # new part whose deadline lies beyond that wake needs no notification: entering
        # a part does not wake a thread at the very moment the part starts its run.
        self._idle_wake_ns = int(idle_wake_s * 1e9)
        self._wake_at_ns = 0  # when the publisher's current wait ends at the latest
        self._pending: deque[Entry] = deque()
        self._cond = threading.Condition()
        # Held while popping closed head parts and handing them to the sinks: whoever
        # holds it publishes, in order, every closed part at the head.
        self._publishing = threading.Lock()
        self._closing = False
        self.published = 0

    def enter(self, trigger: Trigger) -> Entry:
        """Register a new part; its deadline starts counting now."""
        entry = Entry(trigger)
        with self._cond:
            self._pending.append(entry)
            self._kick(trigger.deadline_ns)
        return entry

    def _kick(self, deadline_ns: int) -> None:
        """Wake the publisher if it would sleep past ``deadline_ns`` (lock held)."""
        if deadline_ns < self._wake_at_ns:
            self._cond.notify_all()

    def is_closed(self, entry: Entry) -> bool:
        """True once the part has a verdict (possibly a timeout): skip further work."""
        with self._cond:
            return entry.verdict is not None

    def close(
        self,
        entry: Entry,
        verdict: Verdict,
        stage_ns: dict[str, int] | None = None,
        frame: Frame | None = None,
        *,
        publish_here: bool = True,
    ) -> bool:
        """Give the part its verdict. Returns False if the deadline had already closed it.

        A verdict that is ready only after the deadline becomes NG ``timeout``. When the
        part is the oldest in flight it is published at once, in the calling thread
        (sparing a thread wake-up on every part's path to the PLC), unless
        ``publish_here`` is False: then the publisher thread does it (the trigger
        source's ``submit`` must never wait for the sinks).
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
            entry.frame = frame
            at_head = self._pending[0] is entry
            if at_head and not publish_here:
                self._cond.notify_all()
        if at_head and publish_here:
            self._drain()
        return True

    def depth(self) -> int:
        with self._cond:
            return len(self._pending)

    def finish(self) -> None:
        """Ask the publisher to exit once every pending part is published."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    def _drain(self) -> None:
        """Publish every closed part at the head of the ledger, in trigger order."""
        with self._publishing:
            while True:
                with self._cond:
                    if not self._pending or self._pending[0].verdict is None:
                        if self._pending:  # the publisher may be timing an older head
                            self._kick(self._pending[0].trigger.deadline_ns)
                        return
                    entry = self._pending.popleft()
                self._publish(entry)

    def _publish(self, entry: Entry) -> None:
        assert entry.verdict is not None
        result = PartResult(
            trigger=entry.trigger,
            verdict=entry.verdict,
            t_verdict_ns=entry.t_done_ns,
            stage_ns=entry.stage_ns,
            frame_id=entry.frame.frame_id if entry.frame is not None else None,
            frame=entry.frame,
        )
        for sink in self._sinks:
            try:
                sink.publish(result)
            except Exception as exc:  # one failing sink must not starve the others
                log.error("sink_failed", sink=type(sink).__name__, error=repr(exc))
        self.published += 1

    def _wait_for_head(self) -> bool:
        """Block until the head part is closed (verdict or deadline); False when finished."""
        with self._cond:
            while True:
                now = self._clock()
                if not self._pending:
                    if self._closing:
                        return False
                    self._wait(now, now + self._idle_wake_ns)
                    continue
                head = self._pending[0]
                if head.verdict is None:
                    if head.trigger.deadline_ns > now:
                        self._wait(now, head.trigger.deadline_ns)
                        continue
                    head.verdict = ng(Reason.TIMEOUT, "no verdict within the cycle budget")
                    head.t_done_ns = now
                return True

    def _wait(self, now: int, until_ns: int) -> None:
        """Sleep on the condition until ``until_ns`` at the latest (lock held)."""
        self._wake_at_ns = until_ns
        self._cond.wait((until_ns - now) / 1e9)
        self._wake_at_ns = 0  # awake: nobody needs to kick

    def run(self) -> None:
        """Publisher loop: deadlines, and parts not published where they were closed.

        Returns after ``finish()`` once nothing is pending.
        """
        while self._wait_for_head():
            self._drain()
