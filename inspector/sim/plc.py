"""The PLC simulator: a PLC program on 127.0.0.1 that the daemon (or a test) talks to.

Where it sits: it stands in for the line's PLC at both ends of the flow. It raises
TRIGGER_SEQ with a PART_ID at line rate, keeps the per-part FIFO a real PLC keeps,
checks every result (CHECK, echoes, deadline), acknowledges it, and counts
OK / NG / missed / late / mismatched. ``inspector plc-sim`` runs it from the command
line; ``demo.plc_simulator`` starts it embedded; tests drive it in-process.

* daemon role ``client`` (default): the simulator is a pymodbus TCP server holding both
  blocks; the daemon's FC16 into block B is checked as it arrives.
* daemon role ``server``: the simulator is a polling Modbus client, like a PLC reading a
  Cognex/Keyence sensor: each scan it writes block A and reads block B.

``PlcModel`` (``plc_program.py``) is the PLC program; ``PlcSimulator`` runs it in its
own thread with one asyncio loop, like the link, so tests can start, drive, kill and
restart it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from inspector.config import DemoConfig, PlcConfig
from inspector.plc.protocol import BLOCK_B_LEN, DEFAULT_RING, RESULT_FIRST, State, block_a_len
from inspector.sim.plc_program import Counts, PlcModel

DaemonRole = Literal["client", "server"]
HEARTBEAT_NS = 50_000_000  # the PLC's heartbeat: 20 Hz
SCAN_S = 0.001  # the PLC scan, cut short by a result to judge or a ``call``


class PlcSimulator:
    """Runs a ``PlcModel`` on 127.0.0.1 at line rate, in a thread (``start``/``stop``)
    or in the caller's thread (``run``). ``daemon_role`` is the role of the daemon.

    Parts are triggered only while the vision's STATE is ready or busy (``wait_ready``),
    as a line does not run without its vision. ``parts`` None triggers forever;
    otherwise ``done`` is set once every part was triggered and answered or expired.
    ``call(fn)`` runs ``fn(model)`` in the simulator's loop (tests use it to jump, pause
    acks, switch recipes, send commands).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        daemon_role: DaemonRole = "client",
        unit_id: int = 1,
        in_base: int = 0,
        out_base: int = 100,
        rate_hz: float = 10.0,
        parts: int | None = None,
        deadline_ms: float = 100.0,
        first_part_id: int = 1,
        recipe_id: int = 1,
        triggering: bool = True,
        wait_ready: bool = True,
        ring: int = DEFAULT_RING,
    ) -> None:
        self.host, self.port, self.daemon_role, self.unit_id = host, port, daemon_role, unit_id
        self.in_base, self.out_base = in_base, out_base
        self.period_ns = int(1e9 / rate_hz)
        self.parts = parts
        self.triggering = triggering
        self.wait_ready = wait_ready
        self.model = PlcModel(
            deadline_ms=deadline_ms, first_part_id=first_part_id, recipe_id=recipe_id, ring=ring
        )
        self.in_len = block_a_len(ring)
        self.ready = threading.Event()
        self.done = threading.Event()
        self.bound_port: int | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._next_trigger_ns = 0
        self._next_beat_ns = 0
        self._server: Any = None
        self._local_write = False  # the simulator writes its own registers (restart)

    # ---------------------------------------------------------------- control
    def start(self, timeout_s: float = 5.0) -> PlcSimulator:
        """Start in a thread; return once it listens (or is connected, server role)."""
        self._thread = threading.Thread(target=self.run, name="plc-sim", daemon=True)
        self._thread.start()
        if not self.ready.wait(timeout_s) or self.error is not None:
            self.stop()
            raise RuntimeError(f"PLC simulator did not start: {self.error!r}")
        return self

    def stop(self) -> None:
        """Stop and join: closes the socket like a PLC that is switched off."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def call(self, fn: Callable[[PlcModel], Any], timeout_s: float = 5.0) -> Any:
        """Run ``fn(model)`` in the simulator's loop and return its result."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("simulator not running")

        async def job() -> Any:
            out = fn(self.model)
            if self._wake is not None:
                self._wake.set()
            return out

        return asyncio.run_coroutine_threadsafe(job(), loop).result(timeout_s)

    def restart_program(self) -> None:
        """Restart the PLC program in place: registers zeroed (block B too, in the client
        role), the FIFO lost; the TCP connection stays up."""

        async def job() -> None:
            self.model.restart()
            if self._server is not None:
                self._local_write = True
                try:
                    await self._server.async_setValues(
                        self.unit_id, 16, self.out_base, [0] * BLOCK_B_LEN
                    )
                finally:
                    self._local_write = False

        if self._loop is None:
            raise RuntimeError("simulator not running")
        asyncio.run_coroutine_threadsafe(job(), self._loop).result(5.0)

    def counts(self) -> Counts:
        """A copy of the counts (safe from any thread while running)."""
        if self._loop is None:
            return dataclasses.replace(self.model.counts)
        snapshot: Counts = self.call(
            lambda m: dataclasses.replace(m.counts, verdicts=dict(m.counts.verdicts))
        )
        return snapshot

    def run(self) -> Counts:
        """Run in this thread until ``stop()`` or, with ``parts``, until done."""
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
            self.ready.set()
            raise
        return self.model.counts

    # ------------------------------------------------------------------- loop
    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        try:
            if self.daemon_role == "client":
                await self._serve()
            else:
                await self._poll()
        finally:
            self._loop = None

    def _scan(self, now: int) -> None:
        """One PLC scan: heartbeat, line-rate triggers, deadlines."""
        m = self.model
        m.tick(now)
        if now >= self._next_beat_ns:
            m.beat()
            self._next_beat_ns = now + HEARTBEAT_NS
        m.apply_recipe()
        # Like a real line, run parts only while the vision reports ready or busy.
        vision_ok = not self.wait_ready or m.status[1] in (State.READY, State.BUSY)
        more = self.parts is None or m.counts.triggered < self.parts
        if self.triggering and more and vision_ok:
            if self._next_trigger_ns == 0:
                self._next_trigger_ns = now
            if now >= self._next_trigger_ns:
                m.trigger(now)
                self._next_trigger_ns = max(self._next_trigger_ns + self.period_ns, now)
        m.expire(now)
        if self.parts is not None and m.counts.triggered >= self.parts and not m.fifo:
            self.done.set()

    def _finished(self) -> bool:
        return self._stop.is_set() or (self.done.is_set() and self._thread is None)

    # ---------------------------------------------- daemon is client: we serve
    async def _on_access(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> None:
        if set_values is None or self._local_write:
            return
        first, now = self.out_base + RESULT_FIRST, time.monotonic_ns()
        if address == first and count == BLOCK_B_LEN - RESULT_FIRST:
            # Judge the result after the Modbus response is sent, as a PLC does in its
            # scan, so that checking does not slow the daemon's write (and the benchmark).
            words = [int(v) for v in set_values]
            asyncio.get_running_loop().call_soon(self._judge, words, now)
        elif address == self.out_base and count == RESULT_FIRST:
            self.model.status = [int(v) for v in set_values]
        elif address < first + BLOCK_B_LEN - RESULT_FIRST and address + count > first:
            self.model.counts.mismatched += 1  # the result block must be one FC16

    def _judge(self, words: list[int], now: int) -> None:
        self.model.on_result_words(words, now)
        if self._wake is not None:
            self._wake.set()  # write the ack now, not at the next scan

    async def _serve(self) -> None:
        from inspector.plc.io import FC_WRITE_MULTIPLE, serve_blocks, wait_event

        assert self._wake is not None
        server, self.bound_port = await serve_blocks(
            self.host,
            self.port,
            unit_id=self.unit_id,
            size=max(self.in_base + self.in_len, self.out_base + BLOCK_B_LEN),
            action=self._on_access,
        )
        self._server = server
        try:
            self.ready.set()
            written: list[int] | None = None
            while not self._finished():
                self._scan(time.monotonic_ns())
                words = self.model.inputs.encode()
                if words != written:
                    await server.async_setValues(
                        self.unit_id, FC_WRITE_MULTIPLE, self.in_base, words
                    )
                    written = words
                await wait_event(self._wake, SCAN_S)
        finally:
            self._server = None
            await server.shutdown()

    # --------------------------------------------- daemon is server: we poll
    async def _poll(self) -> None:
        from pymodbus.client import AsyncModbusTcpClient
        from pymodbus.exceptions import ModbusException

        self.bound_port = self.port
        while not self._finished():
            client = AsyncModbusTcpClient(
                self.host, port=self.port, timeout=1.0, retries=0, reconnect_delay=0
            )
            try:
                if not await client.connect():
                    await asyncio.sleep(0.05)
                    continue
                self.ready.set()
                await self._poll_session(client)
            except ModbusException:
                await asyncio.sleep(0.05)
            finally:
                client.close()

    async def _poll_session(self, client: Any) -> None:
        from inspector.plc.io import wait_event

        assert self._wake is not None
        written: list[int] | None = None
        while not self._finished():
            self._scan(time.monotonic_ns())
            words = self.model.inputs.encode()
            if words != written:
                rr = await client.write_registers(self.in_base, words, device_id=self.unit_id)
                if rr.isError():
                    raise RuntimeError(f"daemon refused block A: {rr}")
                written = words
            rr = await client.read_holding_registers(
                self.out_base, count=BLOCK_B_LEN, device_id=self.unit_id
            )
            if rr.isError():
                raise RuntimeError(f"daemon refused block B: {rr}")
            self.model.status = list(rr.registers[:RESULT_FIRST])
            self.model.on_result_words(list(rr.registers[RESULT_FIRST:]), time.monotonic_ns())
            await wait_event(self._wake, SCAN_S)


def start_embedded(cfg: PlcConfig, demo: DemoConfig) -> tuple[PlcSimulator, PlcConfig]:
    """Start the simulator for ``demo.plc_simulator`` (``make run``); return it and the
    PLC config the link must use (its port set to the simulator's when it was 0).

    Daemon role client: the simulator serves on host:port. Daemon role server: the link
    must be serving first; call this with the link's bound port in ``cfg.port``.
    """
    sim = PlcSimulator(
        host=cfg.host,
        port=cfg.port,
        daemon_role=cfg.role,
        unit_id=cfg.unit_id,
        in_base=cfg.in_base,
        out_base=cfg.out_base,
        rate_hz=demo.plc_rate_hz,
        deadline_ms=demo.plc_deadline_ms,
        ring=cfg.trigger_ring,
    )
    sim.start()
    port = sim.bound_port if sim.bound_port is not None else cfg.port
    return sim, cfg.model_copy(update={"port": port})
