"""The ledger: results in trigger order, deadlines enforced, late verdicts dropped."""

from __future__ import annotations

import random
import threading
import time

from inspector.ledger import Ledger
from inspector.types import PartResult, Reason, Trigger, Verdict, ng
from tests.support.sinks import Collect

OK = Verdict(ok=True, reason=Reason.OK)


def trig(seq: int, budget_ms: float = 30.0) -> Trigger:
    now = time.monotonic_ns()
    return Trigger(seq, 1000 + seq, now, now + int(budget_ms * 1e6))


def run(ledger: Ledger) -> threading.Thread:
    t = threading.Thread(target=ledger.run, daemon=True)  # a failed test must not hang exit
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
    assert not sink.done.wait(0.05)  # part 1 still open: nothing may overtake it
    ledger.close(a, OK)
    assert sink.done.wait(2)
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
    assert sink.done.wait(2)
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
    assert sink.done.wait(2)
    ledger.finish()
    t.join(2)


def test_worker_publishes_in_its_own_thread_and_queued_parts_follow_in_order() -> None:
    """Closing the oldest part publishes it (and closed parts behind it) right there,
    without waiting for the publisher thread; closing a later part publishes nothing."""
    seen: list[tuple[int, str]] = []

    class Record:
        def publish(self, result: PartResult) -> None:
            seen.append((result.trigger.trigger_seq, threading.current_thread().name))

    ledger = Ledger([Record()])  # no publisher thread running at all
    a, b, c = (ledger.enter(trig(i, 1000)) for i in (1, 2, 3))
    ledger.close(b, OK)
    ledger.close(c, OK)
    assert seen == []  # part 1 is still open
    ledger.close(a, OK)
    me = threading.current_thread().name
    assert seen == [(1, me), (2, me), (3, me)]
    assert ledger.depth() == 0 and ledger.published == 3


def test_parts_closed_by_the_trigger_side_go_to_the_publisher_thread() -> None:
    sink = Collect()
    sink.want = 1
    ledger = Ledger([sink])
    entry = ledger.enter(trig(1, 1000))
    ledger.close(entry, ng(Reason.OVERRUN), publish_here=False)
    assert sink.results == []  # not published in the caller
    t = run(ledger)
    assert sink.done.wait(2)
    assert sink.results[0].verdict.reason is Reason.OVERRUN
    ledger.finish()
    t.join(2)
    assert not t.is_alive()


def test_many_closers_in_any_order_still_publish_every_part_once_in_order() -> None:
    sink = Collect()
    n = 400
    sink.want = n
    ledger = Ledger([sink])
    t = run(ledger)
    entries = [ledger.enter(trig(i, 5000)) for i in range(n)]
    order = list(range(n))
    random.Random(3).shuffle(order)

    def closer(idx: list[int], here: bool) -> None:
        for i in idx:
            ledger.close(entries[i], OK, publish_here=here)

    threads = [threading.Thread(target=closer, args=(order[k::4], k % 2 == 0)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(5)
    assert sink.done.wait(5)
    ledger.finish()
    t.join(2)
    assert [r.trigger.trigger_seq for r in sink.results] == list(range(n))


def test_a_deadline_before_the_publishers_next_wake_wakes_it() -> None:
    """The idle publisher sleeps up to idle_wake_s; a part due sooner must wake it, also
    when it arrives behind a part with a later deadline that the worker then publishes."""
    sink = Collect()
    sink.want = 1
    ledger = Ledger([sink], idle_wake_s=30.0)
    t = run(ledger)
    time.sleep(0.05)  # the publisher is now in its long idle sleep
    t0 = time.monotonic()
    ledger.enter(trig(1, budget_ms=20))
    assert sink.done.wait(10)
    assert sink.results[0].verdict.reason is Reason.TIMEOUT
    assert time.monotonic() - t0 < 5  # woken for the deadline, not after the 30 s sleep

    sink.want = 3
    sink.done.clear()
    slow = ledger.enter(trig(2, budget_ms=20_000))  # the publisher times this head...
    ledger.enter(trig(3, budget_ms=20))  # ...while this one is due much sooner
    time.sleep(0.01)
    ledger.close(slow, OK)  # the worker publishes part 2; part 3 is the new head
    assert sink.done.wait(10)
    assert [r.verdict.reason for r in sink.results[1:]] == [Reason.OK, Reason.TIMEOUT]
    assert time.monotonic() - t0 < 8
    ledger.finish()
    t.join(2)
    assert not t.is_alive()


def test_timeouts_are_published_at_their_deadline_not_later() -> None:
    """An open part is published NG timeout at its deadline: the median lateness over
    ten parts stays within a few ms (a timeout published 50 ms late fails this)."""
    sink = Collect(10)
    ledger = Ledger([sink])
    t = run(ledger)
    for seq in range(1, 11):
        ledger.enter(trig(seq, budget_ms=20))
        time.sleep(0.025)  # each part alone at the head when its deadline comes
    assert sink.done.wait(5)
    ledger.finish()
    t.join(2)
    late_ms = sorted((r.t_verdict_ns - r.trigger.deadline_ns) / 1e6 for r in sink.results)
    assert all(r.verdict.reason is Reason.TIMEOUT for r in sink.results)
    assert late_ms[0] >= 0.0
    assert late_ms[len(late_ms) // 2] < 10.0, late_ms
