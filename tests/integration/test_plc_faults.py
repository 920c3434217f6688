"""The PLC half of the fault matrix: a PLC in another process, real Modbus TCP on
127.0.0.1, faults injected on the PLC (killed, restarted with zeroed registers, acks
paused, double triggers, sequence jumps) and on the wire (a proxy that stalls or adds
latency).

Each test ends with the same books: 0 mismatched verdicts, no OK for a part the
pipeline never inspected, and every part the PLC triggered either a verdict it took
or a loss the link named and counted (``check_accounting``). Recovery times are
measured against the PLC's own clock of verdicts (``time.monotonic_ns`` is one clock
for every process of the host) and printed as ``RECOVERY <fault> <seconds>``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from inspector.plc.link import LinkStats
from inspector.plc.protocol import ERR_RESULT_OVERFLOW, State
from tests.support.fault_proxy import FaultProxy
from tests.support.plc import (
    FakePipeline,
    RunningLink,
    SimProcess,
    check_accounting,
    check_verdicts,
    link_cfg,
    settled,
    sim_status,
    wait_for,
)

RATE = "40"
DEADLINE = "300"
SERVED_WITHIN_S = 1.0


def served_after(sim: SimProcess, t_ns: int, timeout_s: float = 10.0) -> float:
    """Seconds from ``t_ns`` to the PLC's first on-time verdict after it."""
    end = time.monotonic() + timeout_s
    while (t := sim.command("first_result_after", t_ns=t_ns)) is None:
        assert time.monotonic() < end, "never served again"
        time.sleep(0.01)
    return (int(t) - t_ns) / 1e9


def report(fault: str, seconds: float) -> None:
    print(f"RECOVERY {fault} {seconds:.3f}")


def since(after: LinkStats, before: LinkStats, *, drop: tuple[str, ...] = ()) -> LinkStats:
    """The link's counts between two snapshots, without the named drop reasons."""
    return LinkStats(
        submitted=after.submitted - before.submitted,
        missed=after.missed - before.missed,
        late=after.late - before.late,
        unseen=after.unseen - before.unseen,
        not_taken=after.not_taken - before.not_taken,
        results=after.results - before.results,
        dropped={
            k: v - before.dropped.get(k, 0) for k, v in after.dropped.items() if k not in drop
        },
    )


def inspected(running: RunningLink) -> set[int]:
    return {t.part_id for t in running.pipeline.triggers}


@pytest.fixture
def sims() -> Iterator[list[SimProcess]]:
    """Every simulator process a test starts is killed at its end, whatever happens."""
    started: list[SimProcess] = []
    yield started
    for sim in started:
        sim.kill()


# ---------------------------------------------------------------- PLC faults
@pytest.mark.parametrize("off_s", [0.0, 3.0], ids=["back-at-once", "off-3s"])
def test_plc_killed_and_back_is_served_within_1s(sims: list[SimProcess], off_s: float) -> None:
    """Killed, then started again on the same port (its start takes ~0.7 s here) after
    ``off_s`` more: long enough, the reconnect delay has reached its cap."""
    sims.append(first := SimProcess("--rate", RATE, "--deadline-ms", DEADLINE))
    running = RunningLink(link_cfg(first.port)).start()
    try:
        first.wait_counts(lambda c: c["ok"] + c["ng"] >= 20, what="verdicts before the kill")
        first.kill()  # switched off: no FIN from a PLC program, the socket just goes
        t_kill = time.monotonic_ns()
        wait_for(lambda: not running.link.up.is_set(), what="the link notices")
        before = running.stats()
        time.sleep(off_s)  # the PLC stays off
        args = ("--rate", RATE, "--deadline-ms", DEADLINE, "--parts", "40")
        sims.append(second := SimProcess(*args, "--first-part-id", "1000000", port=first.port))
        back_s = (second.t_listen_ns - t_kill) / 1e9
        recovery = served_after(second, second.t_listen_ns)
        second.wait_counts(settled(40), what="40 parts after the restart")
        # Results of the first PLC's parts are dropped (stale or link_down): not its books.
        stats = since(running.stats(), before, drop=("stale", "link_down"))
        summary = second.quit()
    finally:
        running.stop()
    report(f"plc_killed_back_after_{back_s:.2f}s", recovery)
    assert recovery < SERVED_WITHIN_S
    check_accounting(summary, stats)
    check_verdicts([tuple(a) for a in summary["answers"]], inspected(running))
    new = [t.part_id >= 10**6 for t in running.pipeline.triggers]
    assert new == sorted(new) and sum(new) == stats.submitted  # no old part after the return


def test_plc_stalled_then_released_is_served_within_1s(sims: list[SimProcess]) -> None:
    sims.append(sim := SimProcess("--rate", RATE, "--deadline-ms", DEADLINE))
    proxy = FaultProxy(sim.port).start()
    running = RunningLink(link_cfg(proxy.port)).start()
    try:
        sim.wait_counts(lambda c: c["ok"] + c["ng"] >= 20, what="verdicts before the stall")
        proxy.stall()  # the switch stops passing frames; both ends stay up
        time.sleep(1.5)  # the fault itself lasts this long
        t_release = time.monotonic_ns()
        proxy.release()
        recovery = served_after(sim, t_release)
        sim.command("triggering", on=False)
        sim.wait_counts(settled(0), what="every part judged")
        stats = running.stats()  # before the PLC goes away at the end
        summary = sim.quit()
    finally:
        running.stop()
        proxy.stop()
    report("plc_stalled_1.5s", recovery)
    assert recovery < SERVED_WITHIN_S
    assert stats.unseen > 0 and stats.reconnects >= 1  # the stall cost parts, counted
    check_accounting(summary, stats)
    check_verdicts([tuple(a) for a in summary["answers"]], inspected(running))


def test_latency_on_the_link_loses_no_trigger_and_no_session(sims: list[SimProcess]) -> None:
    """3 ms each way for the whole run (a read and a write cost 12 ms, so a verdict
    waits for the ack of the one before), then a spike of 150 ms each way for 0.4 s:
    requests slower than the 200 ms budget never end the session; what they cost is
    counted."""
    sims.append(sim := SimProcess("--rate", RATE, "--deadline-ms", DEADLINE, "--parts", "200"))
    proxy = FaultProxy(sim.port, latency_s=0.003).start()
    running = RunningLink(link_cfg(proxy.port), budget_ms=200).start()
    try:
        sim.wait_counts(lambda c: c["triggered"] >= 80, what="parts under latency")
        steady = running.stats()
        proxy.latency_s = 0.15  # a 300 ms round trip: past the budget, within the 0.5 s timeout
        time.sleep(0.4)
        proxy.latency_s = 0.003
        t_spike_end = time.monotonic_ns()
        recovery = served_after(sim, t_spike_end)
        sim.wait_counts(settled(200), what="200 parts")
        stats = running.stats()  # before the PLC goes away at the end
        summary = sim.quit()
    finally:
        running.stop()
        proxy.stop()
    report("latency_spike_0.15s_each_way", recovery)
    print(f"latency: steady {steady}, after the spike {stats}")
    assert stats.connections == 1 and stats.reconnects == 0  # the session never ended
    assert steady.missed == steady.unseen == steady.late == 0  # 3 ms each way costs nothing
    assert recovery < SERVED_WITHIN_S
    check_accounting(summary, stats)
    check_verdicts([tuple(a) for a in summary["answers"]], inspected(running))


def test_plc_restarted_with_zeroed_registers(sims: list[SimProcess]) -> None:
    """The PLC program restarts in place (TCP stays up) while the daemon holds verdicts
    of the old program's parts (the PLC had stopped acknowledging them): none of them
    may be shown to the new program."""
    sims.append(sim := SimProcess("--rate", RATE, "--deadline-ms", DEADLINE))
    running = RunningLink(link_cfg(sim.port)).start()
    try:
        sim.wait_counts(lambda c: c["ok"] + c["ng"] >= 20, what="verdicts before the restart")
        sim.command("pause_acks")
        held = running.stats().results
        wait_for(lambda: running.link.stats.results >= held + 4, what="verdicts held back")
        t_restart = time.monotonic_ns()
        sim.command("restart")  # registers zeroed, FIFO lost; then it consumes again
        sim.command("resume_acks")
        recovery = served_after(sim, t_restart)
        sim.wait_counts(lambda c: c["ok"] + c["ng"] >= 50, what="verdicts after it")
        sim.command("triggering", on=False)
        sim.wait_counts(settled(0), what="every part judged")
        stats = running.stats()
        summary = sim.quit()
    finally:
        running.stop()
    report("plc_restarted_zeroed", recovery)
    assert recovery < SERVED_WITHIN_S
    assert summary["mismatched"] == 0  # no verdict of the old program shown to the new one
    assert stats.dropped.get("stale", 0) >= 3  # the held verdicts, dropped and counted
    check_accounting(summary, stats)
    check_verdicts([tuple(a) for a in summary["answers"]], inspected(running))


def test_double_trigger_sequence_jump_and_trigger_while_busy(sims: list[SimProcess]) -> None:
    sims.append(sim := SimProcess("--rate", "4", "--deadline-ms", "1000", "--parts", "6"))
    pipeline = FakePipeline(depth=1, work_s=0.1)  # one part at a time, 100 ms each
    running = RunningLink(link_cfg(sim.port), pipeline, budget_ms=900).start()
    try:
        sim.wait_counts(settled(6), what="the line's own parts")
        sim.command("double")  # two parts in one scan: the second one finds the pipeline busy
        sim.wait_counts(settled(8), what="the double trigger")
        sim.command("jump", n=4)  # TRIGGER_SEQ +4, only the last part in the ring
        sim.wait_counts(settled(12), what="the jump")
        stats = running.stats()
        summary = sim.quit()
    finally:
        running.stop()
    assert stats.missed == 3  # the jump: 3 parts never shown to the vision, counted
    overrun = [r for r in pipeline.results if r.verdict.reason.value == "overrun"]
    assert len(overrun) == 1  # the double trigger's second part: NG overrun, in order
    assert summary["verdicts"].get("5") == 1
    check_accounting(summary, stats)
    check_verdicts([tuple(a) for a in summary["answers"]], inspected(running))


# -------------------------------------------------------------- the result queue
def test_ack_stall_overflows_the_queue_and_the_line_recovers_by_itself(
    sims: list[SimProcess],
) -> None:
    sims.append(sim := SimProcess("--rate", "100", "--deadline-ms", "1500"))
    cfg = link_cfg(sim.port, result_queue=4)
    running = RunningLink(cfg, budget_ms=1200).start()
    try:
        sim.wait_counts(lambda c: c["ok"] + c["ng"] >= 20, what="verdicts before the stall")
        sim.command("pause_acks")  # the PLC stops consuming results
        wait_for(
            lambda: running.link.stats.dropped.get("overflow", 0) > 0, what="the queue overflows"
        )
        fault = [State.FAULT, ERR_RESULT_OVERFLOW]
        wait_for(lambda: sim_status(sim)[1:] == fault, what="STATE fault 302 at the PLC")
        t_resume = time.monotonic_ns()
        sim.command("resume_acks")  # no COMMAND 1: the station must recover by itself
        wait_for(lambda: sim_status(sim)[1] in (State.READY, State.BUSY), what="ready again")
        recovery = (time.monotonic_ns() - t_resume) / 1e9
        triggered = sim.counts()["triggered"]
        sim.wait_counts(lambda c: c["triggered"] >= triggered + 50, what="the line runs again")
        sim.command("triggering", on=False)
        sim.wait_counts(settled(0), what="every part judged")
        stats = running.stats()
        summary = sim.quit()
    finally:
        running.stop()
    report("ack_stall_overflow_to_ready", recovery)
    assert recovery < SERVED_WITHIN_S
    assert stats.dropped["overflow"] > 0
    check_accounting(summary, stats)
    check_verdicts([tuple(a) for a in summary["answers"]], inspected(running))
