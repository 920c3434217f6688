"""The PLC link against a second, independent Modbus TCP stack: pyModbusTCP.

Both roles: the link's pymodbus client talks to a pyModbusTCP server, and a
pyModbusTCP client polls the link's pymodbus server. The PLC program on the far side
is the simulator's ``PlcModel`` (pure logic), driven by a plain thread, so the only
pymodbus on the wire is the daemon's own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pyModbusTCP.client import ModbusClient  # dev dependency: pyModbusTCP
from pyModbusTCP.server import ModbusServer

from inspector.config import PlcConfig
from inspector.plc.protocol import BLOCK_B_LEN, RESULT_FIRST, RESULT_LEN
from inspector.sim.plc_program import PlcModel
from tests.support.plc import RunningLink, check_accounting, expected_ok

PARTS = 400
PERIOD_S = 1 / 100


def run_plc(scan: Callable[[PlcModel, int], None], model: PlcModel, stop: threading.Event) -> None:
    """A PLC program: heartbeat at 20 Hz, one part per period, a scan every 1 ms."""
    next_part = next_beat = time.monotonic_ns()
    while not stop.is_set() and not (model.counts.triggered >= PARTS and not model.fifo):
        now = time.monotonic_ns()
        if now >= next_beat:
            model.beat()
            next_beat = now + 50_000_000
        if model.counts.triggered < PARTS and now >= next_part:
            model.trigger(now)
            next_part = max(next_part + int(PERIOD_S * 1e9), now)
        model.tick(now)
        model.expire(now)
        scan(model, now)
        stop.wait(0.001)


def check(model: PlcModel, running: RunningLink) -> None:
    c = model.counts
    assert c.triggered == PARTS and c.mismatched == 0, c.summary()
    check_accounting(c.__dict__, running.stats())  # every part: a verdict or a named loss
    assert all((v == 1) == expected_ok(pid) for pid, v in model.answers.items() if v != 3)


def test_link_client_against_pymodbustcp_server() -> None:
    server = ModbusServer(host="127.0.0.1", port=0, no_block=True)
    server.start()
    port = server._service.server_address[1]  # bound port (the API has no accessor)
    bank = server.data_bank
    model = PlcModel(deadline_ms=300)

    def scan(m: PlcModel, now: int) -> None:
        bank.set_holding_registers(0, m.inputs.encode())
        words = bank.get_holding_registers(100 + RESULT_FIRST, RESULT_LEN)
        m.status = bank.get_holding_registers(100, RESULT_FIRST)
        m.on_result_words(list(words), now)

    stop = threading.Event()
    running = RunningLink(PlcConfig(enabled=True, port=port, poll_ms=1.0)).start()
    try:
        run_plc(scan, model, stop)
    finally:
        running.stop()
        server.stop()
    check(model, running)
    assert model.status[1] in (1, 2)  # STATE ready/busy as written by the link


def test_link_server_polled_by_pymodbustcp_client() -> None:
    running = RunningLink(PlcConfig(enabled=True, role="server", port=0, poll_ms=1.0)).start()
    assert running.link.serving.wait(5)
    client = ModbusClient(host="127.0.0.1", port=running.link.port, unit_id=1, timeout=2.0)
    model = PlcModel(deadline_ms=300)

    def scan(m: PlcModel, now: int) -> None:
        assert client.write_multiple_registers(0, m.inputs.encode()), client.last_error_as_txt
        words = client.read_holding_registers(100, BLOCK_B_LEN)
        assert words is not None, client.last_error_as_txt
        m.status = words[:RESULT_FIRST]
        m.on_result_words(words[RESULT_FIRST:], time.monotonic_ns())

    try:
        run_plc(scan, model, threading.Event())
    finally:
        client.close()
        running.stop()
    check(model, running)
