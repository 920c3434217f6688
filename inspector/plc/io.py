"""Modbus I/O for the PLC link: the two roles behind one small interface.

Where it sits: ``link.py`` runs the handshake (``protocol.py``) over one of these.

* ``ClientIo``: the daemon is a Modbus TCP client of the PLC (default). It reads block
  A with FC3 and writes block B with FC16, on the PLC's addresses.
* ``ServerIo``: the daemon serves both blocks from its own memory to a PLC that polls
  (as Cognex and Keyence sensors do); reads and writes are local, and a write by the
  PLC into block A wakes the link at once instead of waiting for the next poll.

Both are asyncio-native (pymodbus 3.16) and are used from the link's one event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Protocol

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimAction, SimData, SimDevice

from inspector import metrics
from inspector.errors import PlcError
from inspector.plc.protocol import BLOCK_A_LEN, BLOCK_B_LEN

FC_READ_HOLDING = 3
FC_WRITE_MULTIPLE = 16


class LinkIo(Protocol):
    """One role's Modbus I/O. ``open`` may fail (OSError/PlcError); the link retries."""

    async def open(self) -> None: ...
    async def read_a(self) -> list[int]: ...
    async def write(self, address: int, words: list[int], timeout_s: float) -> None: ...
    async def wait(self, wake: asyncio.Event, timeout_s: float) -> None: ...
    async def close(self) -> None: ...
    async def shutdown(self) -> None: ...


async def wait_event(wake: asyncio.Event, timeout_s: float) -> None:
    """Wait until ``wake`` is set or ``timeout_s`` passed, then clear it."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(wake.wait(), timeout_s)
    wake.clear()


async def serve_blocks(
    host: str,
    port: int,
    *,
    unit_id: int,
    in_base: int,
    out_base: int,
    action: SimAction,
) -> tuple[Any, int]:
    """Serve blocks A and B (zeroed holding registers) over Modbus TCP in the background;
    ``action`` is pymodbus' SimDevice action, awaited on every request. Return the
    server and its bound port (port 0 picks one).
    """
    size = max(in_base + BLOCK_A_LEN, out_base + BLOCK_B_LEN)
    device = SimDevice(
        id=unit_id,
        simdata=[SimData(0, count=size, values=0, datatype=DataType.REGISTERS)],
        action=action,
    )
    server: Any = ModbusTcpServer(device, address=(host, port))
    await server.serve_forever(background=True)
    return server, server.transport.sockets[0].getsockname()[1]


def _observe(op: str, t0_ns: int) -> None:
    metrics.PLC_REQUEST_SECONDS.labels(op).observe((time.monotonic_ns() - t0_ns) / 1e9)


class ClientIo:
    """The daemon as Modbus TCP client; pymodbus' own retries and reconnects are off."""

    def __init__(
        self, host: str, port: int, *, unit_id: int, in_base: int, connect_timeout_s: float
    ) -> None:
        self.host, self.port, self.unit_id, self.in_base = host, port, unit_id, in_base
        self.connect_timeout_s = connect_timeout_s
        self._client: Any = None

    async def open(self) -> None:
        # reconnect_delay=0: pymodbus does not reconnect on its own; the link's
        # supervisor does, with its own backoff, and resyncs after every connect.
        self._client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            timeout=self.connect_timeout_s,
            retries=0,
            reconnect_delay=0,
        )
        if not await self._client.connect():
            self._client.close()
            self._client = None
            raise PlcError(f"cannot connect to PLC at {self.host}:{self.port}")

    async def read_a(self) -> list[int]:
        t0 = time.monotonic_ns()
        try:
            rr = await self._client.read_holding_registers(
                self.in_base, count=BLOCK_A_LEN, device_id=self.unit_id
            )
        except ModbusException as exc:
            raise PlcError(f"read of block A failed: {exc}") from exc
        if rr.isError() or len(rr.registers) != BLOCK_A_LEN:
            raise PlcError(f"PLC refused the read of block A: {rr}")
        _observe("read", t0)
        return list(rr.registers)

    async def write(self, address: int, words: list[int], timeout_s: float) -> None:
        t0 = time.monotonic_ns()
        try:
            # No retries: a late write is worse than none (the PLC rejects the part).
            rr = await asyncio.wait_for(
                self._client.write_registers(address, words, device_id=self.unit_id),
                timeout_s,
            )
        except (ModbusException, asyncio.TimeoutError) as exc:
            raise PlcError(f"write at {address} failed: {exc!r}") from exc
        if rr.isError():
            raise PlcError(f"PLC refused the write at {address}: {rr}")
        _observe("write", t0)

    async def wait(self, wake: asyncio.Event, timeout_s: float) -> None:
        await wait_event(wake, timeout_s)

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def shutdown(self) -> None:
        await self.close()


class ServerIo:
    """The daemon as Modbus TCP server holding blocks A and B (port 0 picks a free one)."""

    def __init__(self, host: str, port: int, *, unit_id: int, in_base: int, out_base: int) -> None:
        self.host, self.port, self.unit_id = host, port, unit_id
        self.in_base, self.out_base = in_base, out_base
        self._server: Any = None
        self._wake: asyncio.Event | None = None
        self.bound_port: int | None = None

    async def _on_access(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> None:
        # A PLC write into block A (trigger, ack, command) wakes the link at once.
        touches_a = address < self.in_base + BLOCK_A_LEN and address + count > self.in_base
        if set_values is not None and touches_a and self._wake is not None:
            self._wake.set()

    async def open(self) -> None:
        if self._server is not None:
            return
        self._server, self.bound_port = await serve_blocks(
            self.host,
            self.port,
            unit_id=self.unit_id,
            in_base=self.in_base,
            out_base=self.out_base,
            action=self._on_access,
        )

    async def read_a(self) -> list[int]:
        words = await self._server.async_getValues(
            self.unit_id, FC_READ_HOLDING, self.in_base, BLOCK_A_LEN
        )
        return [int(w) for w in words]

    async def write(self, address: int, words: list[int], timeout_s: float) -> None:
        await self._server.async_setValues(self.unit_id, FC_WRITE_MULTIPLE, address, words)

    async def wait(self, wake: asyncio.Event, timeout_s: float) -> None:
        self._wake = wake
        await wait_event(wake, timeout_s)

    async def close(self) -> None:
        """Nothing to drop: the PLC reconnects to us; the link resyncs on its heartbeat."""

    async def shutdown(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
