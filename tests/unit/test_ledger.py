"""The ledger: results in trigger order, deadlines enforced, late verdicts dropped."""

from __future__ import annotations

import threading
import time

from inspector.ledger import Ledger
from inspector.types import PartResult, Reason, Trigger, Verdict, ng

OK = Verdict(ok=True, reason=Reason.OK)


class Collect:
    def __init__(self) -> None:
        self.results: list[PartResult] = []
        self.event = threading.Event()
        self.want = 0

    def publish(self, result: PartResult) -> None:
        self.results.append(result)
        if len(self.results) >= self.want:
            self.event.set()


def trig(seq: int, budget_ms: float = 30.0) -> Trigger:
    now = time.monotonic_ns()
    return Trigger(seq, 1000 + seq, now, now + int(budget_ms * 1e6))


def run(ledger: Ledger) -> threading.Thread:
    t = threading.Thread(target=ledger.run)
    t.start()
    return t


def test_results_are_published_in_trigger_order() -> None:
    sink = Collect()
    sink.want = 3
    ledger = Ledger([sink])
    t = run(ledger)
    a, b, c = (ledger.enter(trig(i, 1000)) for i in (1, 2, 3))
    ledger.close(c, ng(Reason.OVERRUN))
    ledger.close(b, OK)
    assert not sink.event.wait(0.05)  # part 1 still open: nothing may overtake it
    ledger.close(a, OK)
    assert sink.event.wait(2)
    ledger.finish()
    t.join(2)
    assert [r.trigger.trigger_seq for r in sink.results] == [1, 2, 3]
    assert [r.verdict.reason for r in sink.results] == [Reason.OK, Reason.OK, Reason.OVERRUN]


def test_open_part_times_out_at_its_deadline_and_late_verdict_is_dropped() -> None:
    sink = Collect()
    sink.want = 1
    ledger = Ledger([sink])
    t = run(ledger)
    entry = ledger.enter(trig(1, budget_ms=20))
    assert sink.event.wait(2)
    r = sink.results[0]
    assert r.verdict.reason is Reason.TIMEOUT and not r.verdict.ok
    assert 15e6 <= r.cycle_ns <= 500e6
    assert ledger.close(entry, OK) is False  # the real verdict came too late
    ledger.finish()
    t.join(2)
    assert len(sink.results) == 1


def test_verdict_ready_after_deadline_becomes_timeout() -> None:
    ticks = iter([10_000_000_000])
    ledger = Ledger([], clock=lambda: next(ticks))
    entry = ledger.enter(Trigger(1, 1, 0, 5_000_000_000))
    assert ledger.close(entry, OK)
    assert entry.verdict is not None and entry.verdict.reason is Reason.TIMEOUT


def test_failing_sink_does_not_starve_others() -> None:
    class Broken:
        def publish(self, result: PartResult) -> None:
            raise RuntimeError("boom")

    sink = Collect()
    sink.want = 1
    ledger = Ledger([Broken(), sink])
    t = run(ledger)
    ledger.close(ledger.enter(trig(1, 1000)), OK)
    assert sink.event.wait(2)
    ledger.finish()
    t.join(2)
