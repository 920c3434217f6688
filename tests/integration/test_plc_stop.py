"""Stop in the right order: the link's trigger job stops first, every verdict handed
to it reaches the PLC (acknowledged, or dropped and counted once past its deadline),
and only then is STATE offline written. The PLC is another process."""

from __future__ import annotations

import time

from inspector.plc.protocol import State
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


def test_drain_writes_every_verdict_before_state_offline() -> None:
    sim = SimProcess("--rate", "40", "--deadline-ms", "1000")
    # 5 ms each way: a verdict and its ack take ~20 ms, so verdicts are still owed to the
    # PLC when the pipeline hands over its last one.
    proxy = FaultProxy(sim.port, latency_s=0.005).start()
    pipeline = FakePipeline(depth=8, work_s=0.02)  # a part or two in flight at any moment
    running = RunningLink(link_cfg(proxy.port), pipeline, budget_ms=800).start()
    try:
        sim.wait_counts(lambda c: c["ok"] + c["ng"] >= 20, what="the line running")
        # The application's stop order (app.py): no new parts, in-flight ones finished
        # and published, the link drained, then STATE offline.
        running.link.stop_triggers()
        pipeline.stop()  # returns once the worker published its last part to the link
        t0 = time.monotonic()
        left = running.link.drain(2.0)
        drain_s = time.monotonic() - t0
        at_drain = sim.counts()  # what the PLC had judged when STATE offline was decided
        stats = running.stats()
        running.link.set_state(State.OFFLINE)
        wait_for(lambda: sim_status(sim)[1] == State.OFFLINE, what="STATE offline at the PLC")
        sim.command("triggering", on=False)
        sim.wait_counts(settled(0), what="every part judged")
        summary = sim.quit()
    finally:
        running.stop()
        proxy.stop()
        sim.kill()
    print(f"drain took {drain_s:.3f} s; link {stats}")
    assert left == 0 and stats.dropped == {}  # nothing past its deadline, nothing lost
    assert stats.results == len(pipeline.results) == stats.submitted
    # Every verdict the pipeline published was consumed by the PLC before STATE offline.
    assert at_drain["ok"] + at_drain["ng"] + at_drain["late"] == stats.results
    final = running.stats()
    assert final.submitted == stats.submitted  # no part taken after stop_triggers
    check_accounting(summary, final)
    check_verdicts([tuple(a) for a in summary["answers"]], {t.part_id for t in pipeline.triggers})
