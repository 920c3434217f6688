"""A loopback TCP proxy that injects network faults between the PLC link and the PLC.

Where it sits: test support for the PLC fault matrix
(``tests/integration/test_plc_faults.py``). The link connects to the proxy, the proxy
to the PLC simulator (another process). It can:

* ``stall()`` / ``release()``: stop forwarding in both directions, holding every byte,
  then forward what was held, like a switch that stops passing frames and comes back;
  a connection whose far end closed meanwhile loses what was held (a closed socket is
  not retransmitted);
* ``latency_s``: delay every chunk by this long, each way.

It runs one asyncio loop in its own thread; ``stop()`` closes every socket and joins.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque


class FaultProxy:
    def __init__(self, upstream_port: int, *, latency_s: float = 0.0) -> None:
        self.upstream_port = upstream_port
        self.latency_s = latency_s
        self.port = 0
        self.connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flowing: asyncio.Event | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="fault-proxy")
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> FaultProxy:
        self._thread.start()
        if not self._ready.wait(5.0):
            raise RuntimeError("proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5.0)

    def stall(self) -> None:
        self._call(lambda: self._flowing.clear() if self._flowing else None)

    def release(self) -> None:
        self._call(lambda: self._flowing.set() if self._flowing else None)

    def _call(self, fn: object) -> None:
        assert self._loop is not None and callable(fn)
        self._loop.call_soon_threadsafe(fn)

    # ------------------------------------------------------------------ loop
    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._flowing, self._stop = asyncio.Event(), asyncio.Event()
        self._flowing.set()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        tasks: set[asyncio.Task[None]] = set()
        self._tasks = tasks
        try:
            await self._stop.wait()
        finally:
            server.close()
            for w in list(self._writers):
                w.close()
            for t in list(tasks):
                t.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*tasks, return_exceptions=True)
            await server.wait_closed()

    async def _handle(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            u_reader, u_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            c_writer.close()
            return
        self._writers |= {c_writer, u_writer}
        closed = asyncio.Event()
        pumps = [
            asyncio.create_task(self._pump(c_reader, u_writer, closed)),
            asyncio.create_task(self._pump(u_reader, c_writer, closed)),
        ]
        self._tasks.update(pumps)
        await closed.wait()
        for t in pumps:
            t.cancel()
        for w in (c_writer, u_writer):
            w.close()
            self._writers.discard(w)
        self._tasks.difference_update(pumps)

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, closed: asyncio.Event
    ) -> None:
        """Read continuously (so a close is seen even while stalled); forward when flowing."""
        assert self._flowing is not None
        loop = asyncio.get_running_loop()
        held: deque[tuple[float, bytes]] = deque()
        more = asyncio.Event()

        async def forward() -> None:
            assert self._flowing is not None
            while True:
                await more.wait()
                while held:
                    due, data = held[0]
                    if (delay := due - loop.time()) > 0:
                        await asyncio.sleep(delay)
                    await self._flowing.wait()
                    held.popleft()
                    dst.write(data)
                    with contextlib.suppress(ConnectionError):
                        await dst.drain()
                more.clear()

        sender = asyncio.create_task(forward())
        try:
            while data := await src.read(65536):
                held.append((loop.time() + self.latency_s, data))
                more.set()
        except ConnectionError:
            pass
        finally:
            sender.cancel()
            held.clear()  # the far end closed: what was held is never delivered
            closed.set()
