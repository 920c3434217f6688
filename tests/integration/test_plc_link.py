"""The PLC link against the PLC simulator: real pymodbus client and server on 127.0.0.1.

The 2,000-part runs start the simulator in its own process (``python -m
inspector.sim.cli``), as a real PLC is a separate device: sharing one interpreter's GIL
with the link would measure the GIL, not the link. The scenario tests drive an
in-process simulator part by part.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from inspector.config import DemoConfig, PlcConfig
from inspector.plc.protocol import ERR_RESULT_OVERFLOW, ERR_UNKNOWN_RECIPE, State
from inspector.sim.plc import PlcSimulator, start_embedded
from inspector.types import PlcVerdict
from tests.support.plc import (
    FakePipeline,
    RunningLink,
    check_accounting,
    check_verdicts,
    client_cfg,
    expected_ok,
    wait_for,
)

PARTS = 2000
RATE_HZ = 100


def inspected(running: RunningLink) -> set[int]:
    return {t.part_id for t in running.pipeline.triggers}


def run_sim_process(args: list[str]) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "inspector.sim.cli", "--json", "--deadline-ms", "300", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def finish_sim_process(proc: subprocess.Popen[str]) -> dict[str, object]:
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # never leave a simulator running after a failed test
            proc.kill()
            proc.communicate()
    summary: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    assert proc.returncode == 0, summary
    return summary


@pytest.mark.slow
def test_client_role_2000_parts_no_mismatch() -> None:
    proc = run_sim_process(["--port", "0", "--rate", str(RATE_HZ), "--parts", str(PARTS)])
    assert proc.stdout is not None
    port = int(proc.stdout.readline().split("port=")[1])
    running = RunningLink(client_cfg(port)).start()
    try:
        summary = finish_sim_process(proc)
    finally:
        running.stop()
    assert summary["mismatched"] == 0 and summary["triggered"] == PARTS
    check_accounting(summary, running.stats())
    check_verdicts([tuple(a) for a in summary["answers"]], inspected(running))


@pytest.mark.slow
def test_server_role_2000_parts_no_mismatch() -> None:
    running = RunningLink(PlcConfig(enabled=True, role="server", port=0, poll_ms=1.0)).start()
    try:
        assert running.link.serving.wait(5)
        proc = run_sim_process(
            [
                "--role",
                "server",
                "--port",
                str(running.link.port),
                "--rate",
                str(RATE_HZ),
                "--parts",
                str(PARTS),
            ]
        )
        summary = finish_sim_process(proc)
    finally:
        running.stop()
    assert summary["mismatched"] == 0 and summary["triggered"] == PARTS
    check_accounting(summary, running.stats())
    check_verdicts([tuple(a) for a in summary["answers"]], inspected(running))


# ------------------------------------------------------------------ scenarios
@pytest.fixture
def manual_sim() -> Iterator[PlcSimulator]:
    """An in-process PLC that triggers only when told (the daemon is the client)."""
    sim = PlcSimulator(triggering=False, deadline_ms=2000).start()
    yield sim
    sim.stop()


def trigger(sim: PlcSimulator, n: int = 1) -> None:
    sim.call(lambda m: m.trigger(time.monotonic_ns(), n))


def results(sim: PlcSimulator) -> int:
    return sim.counts().results


def status(sim: PlcSimulator) -> list[int]:
    """The status words (VISION_HEARTBEAT, STATE, ERROR_CODE) the PLC last received."""
    out: list[int] = sim.call(lambda m: list(m.status))
    return out


def test_trigger_jump_counts_missed_and_rejects_the_skipped_parts(
    manual_sim: PlcSimulator,
) -> None:
    running = RunningLink(client_cfg(manual_sim.bound_port or 0)).start()
    try:
        wait_for(lambda: running.link.up.is_set(), what="link up")
        trigger(manual_sim)
        wait_for(lambda: results(manual_sim) == 1)
        # TRIGGER_SEQ jumps by 4 with only the last part in the ring.
        manual_sim.call(lambda m: m.jump(time.monotonic_ns(), 4))
        wait_for(lambda: results(manual_sim) == 2)
        counts = manual_sim.counts()
        block = manual_sim.call(lambda m: m.last_block)
    finally:
        running.stop()
    assert block.missed_triggers == 3
    assert counts.missed == 3 and counts.mismatched == 0
    assert [t.trigger_seq for t in running.pipeline.triggers] == [1, 5]
    assert running.link.stats.missed == 3


def test_several_parts_in_one_scan_are_all_taken(manual_sim: PlcSimulator) -> None:
    running = RunningLink(client_cfg(manual_sim.bound_port or 0)).start()
    try:
        wait_for(lambda: running.link.up.is_set(), what="link up")
        trigger(manual_sim, 4)  # one PLC scan raises four parts, each in its ring slot
        wait_for(lambda: results(manual_sim) == 4)
        counts = manual_sim.counts()
    finally:
        running.stop()
    assert [t.trigger_seq for t in running.pipeline.triggers] == [1, 2, 3, 4]
    assert counts.missed == 0 and counts.mismatched == 0 and counts.ok + counts.ng == 4


def test_trigger_beyond_pipeline_depth_gets_ng(manual_sim: PlcSimulator) -> None:
    pipeline = FakePipeline(depth=1, work_s=0.1)
    running = RunningLink(client_cfg(manual_sim.bound_port or 0), pipeline).start()
    try:
        wait_for(lambda: running.link.up.is_set(), what="link up")
        for k in (1, 2):
            trigger(manual_sim)
            wait_for(lambda k=k: len(pipeline.triggers) == k)
        wait_for(lambda: results(manual_sim) == 2)
        answers = manual_sim.call(lambda m: dict(m.answers))
    finally:
        running.stop()
    assert expected_ok(1) and expected_ok(2)
    assert answers == {1: PlcVerdict.OK, 2: PlcVerdict.NG_ERROR}  # part 2: overrun


def test_stale_trigger_after_reconnect_is_never_processed(manual_sim: PlcSimulator) -> None:
    cfg = client_cfg(manual_sim.bound_port or 0)
    first = RunningLink(cfg).start()
    try:
        wait_for(lambda: first.link.up.is_set(), what="link up")
        trigger(manual_sim)
        wait_for(lambda: results(manual_sim) == 1)
    finally:
        first.stop()  # the link goes away ...
    trigger(manual_sim, 1)  # ... while the PLC raises two more parts
    trigger(manual_sim, 1)
    second = RunningLink(cfg).start()
    try:
        wait_for(lambda: second.link.up.is_set(), what="link up again")
        trigger(manual_sim)
        wait_for(lambda: results(manual_sim) == 2)
        counts = manual_sim.counts()
    finally:
        second.stop()
    assert [t.trigger_seq for t in second.pipeline.triggers] == [4]  # never 2 or 3
    assert counts.mismatched == 0 and counts.missed == 2


def test_result_queue_overflow_is_a_fault_the_plc_sees_and_clears_itself(
    manual_sim: PlcSimulator,
) -> None:
    cfg = client_cfg(manual_sim.bound_port or 0, result_queue=3)
    running = RunningLink(cfg, budget_ms=1500).start()
    try:
        wait_for(lambda: running.link.up.is_set(), what="link up")
        wait_for(lambda: status(manual_sim)[1] == State.READY, what="STATE ready")
        manual_sim.call(lambda m: m.pause_acks())  # PLC stops consuming
        for k in range(1, 6):
            trigger(manual_sim)
            wait_for(lambda k=k: len(running.pipeline.results) == k)
        wait_for(lambda: status(manual_sim)[1:] == [State.FAULT, ERR_RESULT_OVERFLOW], what="fault")
        manual_sim.call(lambda m: m.resume_acks(time.monotonic_ns()))  # no COMMAND 1
        wait_for(lambda: status(manual_sim)[1:] == [State.READY, 0], what="fault cleared")
        wait_for(lambda: results(manual_sim) == 3, what="queued results")
        counts = manual_sim.counts()
    finally:
        running.stop()
    # Result 1 was shown, then 2 and 3 queued (queue of 3): 4 and 5 overflowed.
    assert counts.mismatched == 0 and counts.ok + counts.ng == 3
    assert running.link.stats.dropped == {"overflow": 2}


def test_plc_killed_and_restarted_mid_run() -> None:
    sim1 = PlcSimulator(rate_hz=50, deadline_ms=1000).start()
    port = sim1.bound_port or 0
    running = RunningLink(client_cfg(port)).start()
    sim2 = None
    try:
        wait_for(lambda: results(sim1) >= 30, what="parts before the kill")
        sim1.stop()  # the PLC is switched off mid-run, parts in flight
        # ... and comes back on the same port, counting from 0 with new part ids.
        sim2 = PlcSimulator(port=port, rate_hz=50, deadline_ms=1000, first_part_id=10**6)
        sim2.start()
        wait_for(lambda: results(sim2) >= 30, what="parts after the restart")
        c1, c2 = sim1.counts(), sim2.counts()
    finally:
        running.stop()
        if sim2 is not None:
            sim2.stop()
    # No result of the first PLC's parts was ever written to the second one.
    assert c1.mismatched == 0 and c2.mismatched == 0
    old = [t for t in running.pipeline.triggers if t.part_id < 10**6]
    new = [t for t in running.pipeline.triggers if t.part_id >= 10**6]
    assert old and new and all(t.t_trigger_ns < new[0].t_trigger_ns for t in old)


def test_recipe_switch_under_load() -> None:
    sim = PlcSimulator(rate_hz=100, deadline_ms=1000).start()
    asked: list[int] = []

    def on_recipe(recipe_id: int) -> bool:
        asked.append(recipe_id)
        return recipe_id in (1, 2)

    running = RunningLink(client_cfg(sim.bound_port or 0), on_recipe=on_recipe).start()
    try:
        wait_for(lambda: results(sim) >= 40)
        sim.call(lambda m: m.select_recipe(2))
        wait_for(lambda: results(sim) >= 80)
        sim.call(lambda m: m.select_recipe(7))  # not in the config
        wait_for(lambda: sim.call(lambda m: m.status[2]) == ERR_UNKNOWN_RECIPE, what="401")
        # STATE is fault now, so the line stops (the simulator waits for ready).
        sim.call(lambda m: m.select_recipe(1))
        wait_for(lambda: sim.call(lambda m: m.status[2]) == 0, what="fault gone")
        done = results(sim)
        wait_for(lambda: results(sim) >= done + 20, what="the line running again")
        recipe_of = sim.call(lambda m: dict(m.recipe_of))
        counts = sim.counts()
    finally:
        running.stop()
        sim.stop()
    assert asked[:3] == [1, 2, 7] and asked[-1] == 1
    # Every part ran with the recipe the PLC had selected when it was triggered:
    # the switch falls between two parts, never inside one.
    triggers = running.pipeline.triggers
    assert {t.recipe_id for t in triggers} >= {1, 2}
    assert triggers[-1].recipe_id == 1
    assert all(t.recipe_id == recipe_of[t.part_id] for t in triggers)
    assert counts.mismatched == 0


def test_embedded_simulator_from_config() -> None:
    cfg = PlcConfig(enabled=True, port=0, poll_ms=1.0)
    sim, link_cfg = start_embedded(cfg, DemoConfig(plc_simulator=True, plc_rate_hz=100))
    running = RunningLink(link_cfg).start()
    try:
        wait_for(lambda: results(sim) >= 20, what="20 verdicts")
        counts = sim.counts()
    finally:
        running.stop()
        sim.stop()
    assert link_cfg.port == sim.bound_port != 0
    assert counts.mismatched == 0 and counts.ok + counts.ng >= 20


def test_heartbeat_and_state_reach_the_plc(manual_sim: PlcSimulator) -> None:
    running = RunningLink(client_cfg(manual_sim.bound_port or 0)).start()
    try:
        wait_for(lambda: status(manual_sim)[1] == State.READY, what="STATE ready")
        first = status(manual_sim)[0]
        wait_for(
            lambda: status(manual_sim)[0] >= first + 2, what="VISION_HEARTBEAT moving while idle"
        )
    finally:
        running.stop()
    assert status(manual_sim)[1] == State.OFFLINE  # an orderly stop says so


def test_server_role_plc_restarted_mid_run() -> None:
    running = RunningLink(PlcConfig(enabled=True, role="server", port=0, poll_ms=1.0)).start()
    sims: list[PlcSimulator] = []
    try:
        assert running.link.serving.wait(5)
        port = running.link.port or 0
        for first_part_id in (1, 10**6):  # the PLC program restarts, counting from 0
            sim = PlcSimulator(
                daemon_role="server",
                port=port,
                rate_hz=50,
                deadline_ms=1000,
                first_part_id=first_part_id,
            )
            sims.append(sim.start())
            wait_for(lambda sim=sim: results(sim) >= 30, what="verdicts")
            sim.stop()
    finally:
        running.stop()
        for sim in sims:
            sim.stop()
    assert [s.counts().mismatched for s in sims] == [0, 0]
    assert all(s.counts().ok + s.counts().ng >= 30 for s in sims)


_DROPPING_PEER = """
import socket, sys, time
srv = socket.create_server(("127.0.0.1", 0))
print(srv.getsockname()[1], flush=True)
while True:
    conn, _ = srv.accept()
    print(time.monotonic(), flush=True)
    conn.close()
"""


def test_reconnect_backoff_doubles_against_a_peer_that_drops_every_connection() -> None:
    """A 'PLC' that accepts and closes at once must not cause a tight reconnect loop.

    The peer runs in its own process with a blocking accept, so its timestamps are the
    link's connection times: in this process it shared the GIL and the CPU with the link
    under test, and a stalled accept once took two queued connections back to back (a
    0 ms "gap" on CI). CLOCK_MONOTONIC is the same clock in both processes."""
    peer = subprocess.Popen(
        [sys.executable, "-c", _DROPPING_PEER], stdout=subprocess.PIPE, text=True
    )
    assert peer.stdout is not None
    out = peer.stdout
    accepts: list[float] = []

    def read() -> None:
        for line in out:  # ends when the peer is killed
            accepts.append(float(line))

    reader = threading.Thread(target=read, name="dropping-peer-reader")
    try:
        port = int(out.readline())
        reader.start()
        cfg = client_cfg(port, backoff_s=0.02, backoff_max_s=0.16, request_timeout_s=0.05)
        running = RunningLink(cfg, budget_ms=50).start()
        try:
            wait_for(lambda: len(accepts) >= 7, what="seven connection attempts")
        finally:
            running.stop()
    finally:
        peer.kill()
        peer.wait(5)
        if reader.ident is not None:
            reader.join(5)
        out.close()
    # Each gap is the backoff (±20 % jitter), plus at most the request timeout.
    gaps = [b - a for a, b in itertools.pairwise(accepts)]
    assert all(g >= 0.015 for g in gaps)  # never a tight loop
    assert max(gaps[3:]) >= gaps[0] + 0.1  # 0.02 s doubled up to the 0.16 s cap
    assert max(gaps) < 0.16 * 1.2 + 0.05 + 0.15  # capped
    assert not running.link.up.is_set()


def test_silent_plc_heartbeat_stops_processing_until_it_beats_again() -> None:
    sim = PlcSimulator(rate_hz=50, deadline_ms=1000).start()
    running = RunningLink(client_cfg(sim.bound_port or 0, heartbeat_timeout_s=0.2)).start()
    try:
        wait_for(lambda: results(sim) >= 10, what="parts while beating")
        sim.call(lambda m: setattr(m, "beating", False))
        wait_for(lambda: not running.link.up.is_set(), what="link notices the silence")
        seen = len(running.pipeline.triggers)
        raised = sim.counts().triggered
        wait_for(lambda: sim.counts().triggered >= raised + 10, what="PLC raising parts")
        assert len(running.pipeline.triggers) == seen  # none processed while silent
        sim.call(lambda m: setattr(m, "beating", True))
        wait_for(lambda: running.link.up.is_set(), what="resync")
        done = results(sim)
        wait_for(lambda: results(sim) >= done + 10, what="parts after the resync")
        counts = sim.counts()
    finally:
        running.stop()
        sim.stop()
    assert counts.mismatched == 0 and counts.missed >= 10
