"""The results owed to the PLC on one connection: the result side of the handshake (pure).

Where it sits: the last step of the flow, ``publish ─▶ VERDICT``. ``handshake.py`` owns one
``ResultQueue`` per connection; it queues each finished part of that connection, shows
them in block B one at a time (the next only once the PLC acknowledged the last), and
says what happened to every one it did not show. No I/O, no clock: callers pass
``now_ns``.

* A result whose deadline passed while it waited is skipped when a result still on time
  waits behind it (the PLC has rejected its part already); otherwise it is shown late,
  an OK as NG_TIMEOUT (``on_late_ok``).
* A full queue drops the new result (``overflow``) and raises the overflow fault (STATE
  3 / ERROR_CODE 302), which clears by itself once the queue has drained and at least
  ``OVERFLOW_HOLD_NS`` after the overflow, so the PLC sees it and needs no command.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from inspector.plc.protocol import ResultBlock
from inspector.seq import next_seq
from inspector.types import PlcVerdict

#: The overflow fault is shown at least this long, so that the PLC sees it.
OVERFLOW_HOLD_NS = 200_000_000


@dataclass(frozen=True, slots=True)
class Pending:
    """A result waiting for the PLC: what to write and by when."""

    trigger_seq: int
    part_id: int
    verdict: int
    defect_code: int
    cycle_time: int
    deadline_ns: int


@dataclass(slots=True)
class ResultSeq:
    """RESULT_SEQ across connections: the last shown, and one whose write a dropped
    connection left unanswered (settled by the next connection's first read)."""

    last: int = 0
    unconfirmed: int = 0


class ResultQueue:
    """Results of one connection, shown one at a time; every one not shown is reported
    once to ``on_drop(reason)``."""

    def __init__(
        self,
        seq: ResultSeq,
        *,
        capacity: int,
        on_drop: Callable[[str], None],
        on_late_ok: Callable[[], None],
    ) -> None:
        self.seq = seq
        self.capacity = capacity
        self.on_drop = on_drop
        self.on_late_ok = on_late_ok
        self.overflowed = False  # ERROR_CODE 302 shown until the queue drained
        self._overflow_until_ns = 0
        self._queue: deque[Pending] = deque()  # unacknowledged; head is shown when presented
        self._presented = False  # the head is shown (RESULT_SEQ = seq.last)
        self._written = False  # ... and the FC16 that shows it was answered
        self.shown = ResultBlock()  # the result part of block B (counters filled by caller)

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, p: Pending, now_ns: int) -> bool:
        """Queue a result; False (dropped, ``overflow``) when the queue is full."""
        if len(self._queue) >= self.capacity:
            self._skip_late(now_ns, all_late=True)
        if len(self._queue) >= self.capacity:
            self.on_drop("overflow")
            self.overflowed = True
            self._overflow_until_ns = now_ns + OVERFLOW_HOLD_NS
            return False
        self._queue.append(p)
        return True

    def take_ack(self, ack_seq: int, now_ns: int) -> None:
        """The PLC's RESULT_ACK_SEQ: the shown result is consumed when it matches."""
        if self._presented and ack_seq == self.seq.last:
            self._queue.popleft()
            self._presented = self._written = False
        self.refresh(now_ns)

    def refresh(self, now_ns: int) -> None:
        """The overflow fault clears itself once the backlog has drained (and was shown
        for at least OVERFLOW_HOLD_NS): the station recovers without a command."""
        if self.overflowed and not self._queue and now_ns >= self._overflow_until_ns:
            self.overflowed = False

    def present(self, now_ns: int) -> None:
        """Show the next result in ``shown`` if none is waiting for its acknowledgement."""
        if not self._presented:
            self._skip_late(now_ns, all_late=False)
        if self._presented or not self._queue:
            return
        head = self._queue[0]
        self.seq.last = next_seq(self.seq.last)
        self._presented, self._written = True, False
        verdict = head.verdict
        if now_ns > head.deadline_ns and verdict == PlcVerdict.OK:
            verdict = PlcVerdict.NG_TIMEOUT  # never an OK after the budget
            self.on_late_ok()
        self.shown = ResultBlock(
            result_seq=self.seq.last,
            result_trigger_seq=head.trigger_seq,
            result_part_id=head.part_id,
            verdict=verdict,
            defect_code=head.defect_code,
            cycle_time=head.cycle_time,
        )

    def written(self) -> None:
        """The FC16 that shows the presented result was answered: it reached the PLC."""
        self._written = self._presented

    def live(self, now_ns: int) -> int:
        """Results still owed to the PLC: queued and not yet past their deadline."""
        return sum(1 for p in self._queue if p.deadline_ns >= now_ns)

    def forget(self, ack_seq: int) -> None:
        """A resync: drop every result (``stale``) but one the PLC just acknowledged, and
        show "no result" (RESULT_SEQ 0): re-showing the last result to a restarted PLC
        would hand it a verdict for a part it never triggered."""
        if self._presented and ack_seq == self.seq.last:
            self._queue.popleft()  # consumed just before: not a loss
        for _ in range(len(self._queue)):
            self.on_drop("stale")
        self._queue.clear()
        self._presented = self._written = False
        self.shown = ResultBlock()

    def close(self, reason: str) -> int:
        """The connection ended: drop the queued results (``on_drop(reason)``); return how
        many. A result shown and written reached the PLC; one whose write got no answer
        is settled at the next connection (``ResultSeq.unconfirmed``)."""
        if self._presented:
            self._queue.popleft()
            if not self._written:
                self.seq.unconfirmed = self.seq.last
        dropped = len(self._queue)
        for _ in range(dropped):
            self.on_drop(reason)
        self._queue.clear()
        self._presented = self._written = False
        return dropped

    def settle_unconfirmed(self, ack_seq: int) -> None:
        """At a new connection: a result whose write got no answer before the last one
        dropped was consumed if the PLC acknowledged it, otherwise it is lost."""
        unconfirmed, self.seq.unconfirmed = self.seq.unconfirmed, 0
        if unconfirmed and ack_seq != unconfirmed:
            self.on_drop("link_down")

    def _skip_late(self, now_ns: int, *, all_late: bool) -> None:
        """Drop queued results whose deadline passed before they could be shown: those
        ahead of a result still on time (so a late one never delays it), or, with
        ``all_late`` (the queue is full), every one. The shown result stays."""
        keep = 1 if self._presented else 0
        waiting = list(self._queue)[keep:]
        last_live = max((i for i, p in enumerate(waiting) if p.deadline_ns >= now_ns), default=-1)
        for i, p in enumerate(waiting):
            if p.deadline_ns < now_ns and (all_late or i < last_live):
                self._queue.remove(p)
                self.on_drop("late")
