"""Server role: block B belongs to the daemon, and clients can be limited by address.

The daemon serves both blocks; the PLC (``inspector plc-sim --role server``, another
process) polls it. A forger on the same network writes OK verdicts into block B with an
independent Modbus stack (pyModbusTCP): every such write is refused with a Modbus
exception (illegal data address) and counted, and the PLC never sees a forged verdict.
"""

from __future__ import annotations

from pyModbusTCP.client import ModbusClient  # dev dependency: pyModbusTCP

from inspector import metrics
from inspector.config import PlcConfig
from inspector.plc.protocol import RESULT_FIRST, B, ResultBlock, State
from inspector.types import PlcVerdict
from tests.support.plc import (
    RunningLink,
    SimProcess,
    check_accounting,
    check_verdicts,
    settled,
    wait_for,
)

ILLEGAL_DATA_ADDRESS = 2


def refused(reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "inspector_plc_refused_requests_total", {"reason": reason}
    )
    return value or 0.0


def forge(client: ModbusClient, part_id: int) -> list[bool]:
    """Three ways to slip an OK into block B; each answer (True: the server took it)."""
    block = ResultBlock(
        result_seq=900 + part_id % 100,
        result_trigger_seq=part_id,
        result_part_id=part_id,
        verdict=PlcVerdict.OK,
    ).encode()
    took = [
        client.write_multiple_registers(100 + RESULT_FIRST, block),  # FC16, the whole block
        client.write_single_register(100 + B.VERDICT, int(PlcVerdict.OK)),  # FC6
        client.write_multiple_registers(100, [1, State.READY, 0]),  # the status words
    ]
    assert client.last_except == ILLEGAL_DATA_ADDRESS
    return took


def test_forged_writes_to_block_b_are_refused_and_counted() -> None:
    running = RunningLink(PlcConfig(enabled=True, role="server", port=0, poll_ms=1.0)).start()
    sim = None
    forger = None
    try:
        assert running.link.serving.wait(5)
        port = running.link.port or 0
        args = ("--role", "server", "--rate", "40", "--deadline-ms", "300", "--parts", "80")
        sim = SimProcess(*args, port=port)
        forger = ModbusClient(host="127.0.0.1", port=port, unit_id=1, timeout=2.0)
        before = refused("write_block_b")
        sim.wait_counts(lambda c: c["triggered"] >= 10, what="the line running")
        answers = [forge(forger, part_id) for part_id in range(10, 30)]  # live part ids
        assert forger.read_holding_registers(100, 15) is not None  # reading stays allowed
        sim.wait_counts(settled(80), what="80 parts")
        stats = running.stats()
        summary = sim.quit()
    finally:
        if forger is not None:
            forger.close()
        if sim is not None:
            sim.kill()
        running.stop()
    assert all(took == [False, False, False] for took in answers)
    assert refused("write_block_b") - before == 60
    assert summary["mismatched"] == 0
    check_accounting(summary, stats)
    check_verdicts(
        [tuple(a) for a in summary["answers"]], {t.part_id for t in running.pipeline.triggers}
    )


def test_allow_list_refuses_other_client_addresses() -> None:
    for allowed, served in ((["192.0.2.0/24"], False), (["127.0.0.1/32", "::1"], True)):
        cfg = PlcConfig(enabled=True, role="server", port=0, allowed_clients=allowed)
        running = RunningLink(cfg).start()
        client = None
        try:
            assert running.link.serving.wait(5)
            before = refused("client_not_allowed")
            client = ModbusClient(host="127.0.0.1", port=running.link.port, timeout=1.0)
            words = client.read_holding_registers(0, 10)
            if not served:
                wait_for(lambda b=before: refused("client_not_allowed") == b + 1)
        finally:
            if client is not None:
                client.close()
            running.stop()
        assert (words is not None) == served, (allowed, client.last_error_as_txt)
        if served:
            assert refused("client_not_allowed") == before
