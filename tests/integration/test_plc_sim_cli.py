"""``inspector plc-sim`` as a command: it exits non-zero when any verdict is mismatched."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from pymodbus.client import AsyncModbusTcpClient

from inspector.plc.protocol import RESULT_FIRST, ResultBlock, State
from inspector.types import PlcVerdict


async def write_rogue_verdict(port: int) -> None:
    """An OK with a valid CHECK for a part the PLC never triggered."""
    client = AsyncModbusTcpClient("127.0.0.1", port=port, retries=0, reconnect_delay=0)
    assert await client.connect()
    hello = ResultBlock().encode()  # "no result yet", as a daemon shows after connecting
    assert not (await client.write_registers(100 + RESULT_FIRST, hello, device_id=1)).isError()
    ready = [1, State.READY, 0]  # the PLC runs the line only while the vision is ready
    assert not (await client.write_registers(100, ready, device_id=1)).isError()
    rogue = ResultBlock(
        result_seq=1, result_trigger_seq=999, result_part_id=4711, verdict=PlcVerdict.OK
    )
    rr = await client.write_registers(100 + RESULT_FIRST, rogue.encode(), device_id=1)
    assert not rr.isError()
    client.close()


def test_plc_sim_command_exits_1_on_a_mismatched_verdict() -> None:
    cmd = [
        sys.executable,
        "-m",
        "inspector",
        "plc-sim",
        "--port",
        "0",
        "--rate",
        "100",
        "--parts",
        "5",
        "--deadline-ms",
        "50",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline().split("port=")[1])
    asyncio.run(write_rogue_verdict(port))
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1, out
    assert "mismatched=1" in out and "missed=5" in out
