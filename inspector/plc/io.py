"""Modbus I/O for the PLC link: the two roles behind one small interface.

Where it sits: ``link.py`` runs the handshake (``handshake.py``) over one of these.

* ``ClientIo``: the daemon is a Modbus TCP client of the PLC (default). It reads block
  A with FC3 and writes block B with FC16, on the PLC's addresses. A request waits up
  to ``timeout_s`` (a slow answer is waited for, not abandoned); a dropped connection
  fails the request at once instead of at the timeout.
* ``ServerIo``: the daemon serves both blocks from its own memory to a PLC that polls
  (as Cognex and Keyence sensors do); reads and writes are local, and a write by the
  PLC into block A wakes the link at once instead of waiting for the next poll. Clients
  may write block A only: any other write is refused with a Modbus exception (illegal
  data address) and counted, and an optional allow-list refuses other client addresses.

Errors raised: ``PlcConnectionError`` (cannot connect, connection dropped),
``PlcTimeout`` (no answer in time), ``PlcProtocolError`` (an exception response, a
wrong register count). Both classes are asyncio-native (pymodbus 3.16) and are used from
the link's one event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimAction, SimData, SimDevice

from inspector import metrics
from inspector.config import PlcConfig
from inspector.errors import PlcConnectionError, PlcProtocolError, PlcTimeout
from inspector.plc.protocol import BLOCK_B_LEN, block_a_len

FC_READ_HOLDING = 3
FC_WRITE_MULTIPLE = 16

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class LinkIo(Protocol):
    """One role's Modbus I/O. ``open`` may fail (PlcError); the link retries."""

    async def open(self) -> None: ...
    async def read_a(self) -> list[int]: ...
    async def write(self, address: int, words: list[int]) -> None: ...
    async def wait(self, wake: asyncio.Event, timeout_s: float) -> None: ...
    async def close(self) -> None: ...
    async def shutdown(self) -> None: ...


async def wait_event(wake: asyncio.Event, timeout_s: float) -> None:
    """Wait until ``wake`` is set or ``timeout_s`` passed, then clear it."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(wake.wait(), timeout_s)
    wake.clear()


def parse_networks(items: Sequence[str]) -> list[Network]:
    """``plc.allowed_clients`` as networks (validated already by the config)."""
    return [ipaddress.ip_network(item, strict=False) for item in items]


def _peer_allowed(peer: Any, allowed: Sequence[Network]) -> bool:
    try:
        addr = ipaddress.ip_address(peer[0])
    except (TypeError, ValueError, IndexError):
        return False
    return any(addr in net for net in allowed)


async def serve_blocks(
    host: str,
    port: int,
    *,
    unit_id: int,
    size: int,
    action: SimAction,
    allowed: Sequence[Network] = (),
    on_refused: Callable[[str], None] | None = None,
) -> tuple[Any, int]:
    """Serve ``size`` zeroed holding registers over Modbus TCP in the background.

    ``action`` is pymodbus' SimDevice action, awaited on every request (an ExcCodes it
    returns refuses the request). A non-empty ``allowed`` closes every connection from
    another address at once (``on_refused("client_not_allowed")``). Return the server
    and its bound port (port 0 picks one).
    """
    device = SimDevice(
        id=unit_id,
        simdata=[SimData(0, count=size, values=0, datatype=DataType.REGISTERS)],
        action=action,
    )
    server: Any = _GuardedServer(device, address=(host, port))
    server.allowed, server.on_refused = list(allowed), on_refused
    await server.serve_forever(background=True)
    return server, server.transport.sockets[0].getsockname()[1]


class _GuardedHandler(ServerRequestHandler):
    """One client connection; closed at once when its address is not allowed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        server = self.server
        peer = transport.get_extra_info("peername")
        if server.allowed and not _peer_allowed(peer, server.allowed):
            if server.on_refused is not None:
                server.on_refused("client_not_allowed")
            if isinstance(transport, asyncio.Transport):
                transport.abort()  # a reset, before a single request is read
            else:
                transport.close()


class _GuardedServer(ModbusTcpServer):
    allowed: list[Network]
    on_refused: Callable[[str], None] | None

    def callback_new_connection(self) -> ServerRequestHandler:
        # pymodbus' handler __init__ has no annotations; the arguments are its own.
        return _GuardedHandler(  # type: ignore[no-untyped-call]
            self, self.trace_packet, self.trace_pdu, self.trace_connect
        )


def _observe(op: str, t0_ns: int) -> None:
    metrics.PLC_REQUEST_SECONDS.labels(op).observe((time.monotonic_ns() - t0_ns) / 1e9)


class ClientIo:
    """The daemon as Modbus TCP client; pymodbus' own retries and reconnects are off."""

    def __init__(
        self, host: str, port: int, *, unit_id: int, in_base: int, in_len: int, timeout_s: float
    ) -> None:
        self.host, self.port, self.unit_id = host, port, unit_id
        self.in_base, self.in_len = in_base, in_len
        self.timeout_s = timeout_s
        self._client: Any = None
        self._lost = asyncio.Event()

    def _on_connect(self, up: bool) -> None:
        if not up:
            self._lost.set()

    async def open(self) -> None:
        # reconnect_delay=0: pymodbus does not reconnect on its own; the link's
        # supervisor does, with its own backoff, and resyncs after every connect.
        self._lost = asyncio.Event()
        client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            timeout=self.timeout_s,
            retries=0,
            reconnect_delay=0,
            trace_connect=self._on_connect,
        )
        try:
            up = await client.connect()
        except (OSError, ModbusException) as exc:
            client.close()
            raise PlcConnectionError(f"cannot connect to PLC at {self.host}:{self.port}") from exc
        if not up:
            client.close()
            raise PlcConnectionError(f"cannot connect to PLC at {self.host}:{self.port}")
        self._client = client

    async def _call(self, what: str, request: Callable[[Any], Awaitable[Any]]) -> Any:
        """One request: its response, or the PlcError subclass of what went wrong."""
        if self._client is None or self._lost.is_set():
            raise PlcConnectionError(f"{what}: not connected")
        try:
            task = asyncio.ensure_future(request(self._client))
        except ConnectionException as exc:  # pymodbus raises before the first await
            raise PlcConnectionError(f"{what}: {exc}") from exc
        except ModbusException as exc:
            raise PlcProtocolError(f"{what}: {exc}") from exc
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            # pymodbus times the request out itself; the margin only guards against it not.
            await asyncio.wait(
                {task, lost}, timeout=self.timeout_s * 2, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            lost.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ModbusException):
                await task
            if self._lost.is_set():
                raise PlcConnectionError(f"{what}: connection dropped")
            raise PlcTimeout(f"{what}: no answer within {self.timeout_s} s")
        try:
            rr = task.result()
        except ConnectionException as exc:
            raise PlcConnectionError(f"{what}: {exc}") from exc
        except ModbusIOException as exc:
            if self._lost.is_set():
                raise PlcConnectionError(f"{what}: connection dropped") from exc
            raise PlcTimeout(f"{what}: {exc}") from exc
        except ModbusException as exc:
            raise PlcProtocolError(f"{what}: {exc}") from exc
        if rr.isError():
            raise PlcProtocolError(f"{what}: the PLC answered {rr}")
        return rr

    async def read_a(self) -> list[int]:
        t0 = time.monotonic_ns()
        rr = await self._call(
            "read of block A",
            lambda c: c.read_holding_registers(
                self.in_base, count=self.in_len, device_id=self.unit_id
            ),
        )
        if len(rr.registers) != self.in_len:
            raise PlcProtocolError(f"block A: {len(rr.registers)} registers, not {self.in_len}")
        _observe("read", t0)
        return list(rr.registers)

    async def write(self, address: int, words: list[int]) -> None:
        t0 = time.monotonic_ns()
        # No retry: a result that could not be written is re-presented by the handshake
        # on the next connection only if the PLC has not moved on.
        await self._call(
            f"write at {address}",
            lambda c: c.write_registers(address, words, device_id=self.unit_id),
        )
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

    def __init__(
        self,
        host: str,
        port: int,
        *,
        unit_id: int,
        in_base: int,
        in_len: int,
        out_base: int,
        allowed: Sequence[Network] = (),
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self.host, self.port, self.unit_id = host, port, unit_id
        self.in_base, self.in_len, self.out_base = in_base, in_len, out_base
        self.allowed = list(allowed)
        self.on_refused = on_refused
        self._server: Any = None
        self._wake: asyncio.Event | None = None
        self._local_write = False  # our own write of block B is in progress
        self.bound_port: int | None = None

    def _count_refused(self, reason: str) -> None:
        metrics.PLC_REFUSED_REQUESTS.labels(reason).inc()
        if self.on_refused is not None:
            self.on_refused(reason)

    async def _on_access(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if set_values is None or self._local_write:
            return None  # a read, or our own write of block B
        if self.in_base <= address and address + count <= self.in_base + self.in_len:
            # A PLC write into block A (trigger, ack, command) wakes the link at once.
            if self._wake is not None:
                self._wake.set()
            return None
        touches_b = address < self.out_base + BLOCK_B_LEN and address + count > self.out_base
        # Only the daemon writes block B (the verdict): a client that tries is refused.
        self._count_refused("write_block_b" if touches_b else "write_unmapped")
        return ExcCodes.ILLEGAL_ADDRESS

    async def open(self) -> None:
        if self._server is not None:
            return
        self._server, self.bound_port = await serve_blocks(
            self.host,
            self.port,
            unit_id=self.unit_id,
            size=max(self.in_base + self.in_len, self.out_base + BLOCK_B_LEN),
            action=self._on_access,
            allowed=self.allowed,
            on_refused=self._count_refused,
        )

    async def read_a(self) -> list[int]:
        words = await self._server.async_getValues(
            self.unit_id, FC_READ_HOLDING, self.in_base, self.in_len
        )
        return [int(w) for w in words]

    async def write(self, address: int, words: list[int]) -> None:
        self._local_write = True
        try:
            await self._server.async_setValues(self.unit_id, FC_WRITE_MULTIPLE, address, words)
        finally:
            self._local_write = False

    async def wait(self, wake: asyncio.Event, timeout_s: float) -> None:
        self._wake = wake
        await wait_event(wake, timeout_s)

    async def close(self) -> None:
        """Nothing to drop: the PLC reconnects to us; the link resyncs on its heartbeat."""

    async def shutdown(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None


def make_io(cfg: PlcConfig) -> LinkIo:
    """The I/O of ``cfg.role``, with block A sized for ``cfg.trigger_ring``."""
    in_len = block_a_len(cfg.trigger_ring)
    if cfg.role == "server":
        return ServerIo(
            cfg.host,
            cfg.port,
            unit_id=cfg.unit_id,
            in_base=cfg.in_base,
            in_len=in_len,
            out_base=cfg.out_base,
            allowed=parse_networks(cfg.allowed_clients),
        )
    return ClientIo(
        cfg.host,
        cfg.port,
        unit_id=cfg.unit_id,
        in_base=cfg.in_base,
        in_len=in_len,
        timeout_s=cfg.request_timeout_s,
    )
