"""The station web page as the app runs it: one sink, two supervised threads, one socket.

    ledger ─▶ Hmi.sink (latest slot) ┄▶ hmi-encoder thread ─▶ Hub ┄▶ hmi-server thread ─▶ browsers

Why aiohttp: one well-kept asyncio package (client and server, typed, maintained by
aio-libs since 2014) that gives exactly what the page needs and nothing more: streamed
responses for Server-Sent Events, request-size and header limits that answer malformed
requests with a clean 400, an idle-connection timeout, and an ``AppRunner`` we can run
in our own thread on a socket we bound ourselves. Its own HTTP client drives the tests.
Starlette + uvicorn would add two packages (and an ASGI server whose process model we
would have to switch off) for the same result. It is the ``hmi`` extra: a daemon
without the page never imports it.

Threads (both started through the app's ``Supervisor``, both catch everything and
restart themselves with ``Backoff``, so a crash of the page is logged, counted in
``inspector_hmi_restarts_total`` and never faults the daemon):

| thread | owns | stops when |
|---|---|---|
| inspector-hmi-server | the asyncio loop: HTTP, live streams, archive files | ``close`` |
| inspector-hmi-encoder | JPEG + message encoding, ≤ max_fps, only while watched | ``close`` |

The listening socket is bound in ``start`` (a port in use is a ``ConfigError``, exit
78) and kept across server restarts, so the page comes back on the same port. At most
``max_connections`` connections are open at once; one more is answered 503 and closed.
With per-write timeouts (``routes.send_chunks``) and a small send buffer on live streams,
that bounds what slow or hostile clients can hold: about 200 KiB per connection.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import traceback
from collections.abc import Callable
from functools import partial

from aiohttp import web

from inspector import metrics
from inspector.backoff import Backoff
from inspector.config import Config
from inspector.errors import ConfigError
from inspector.hmi.gallery import Gallery
from inspector.hmi.live import HmiSink, Stats
from inspector.hmi.routes import STOPPING, WAKE, build_app
from inspector.hmi.stream import Hub, run_encoder
from inspector.logging import get_logger
from inspector.supervisor import Supervisor

log = get_logger(__name__)

_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_POLL_S = 0.05
#: A component that ran this long without crashing starts its backoff from the beginning.
_HEALTHY_S = 30.0


class _Busy(asyncio.Protocol):
    """Answers a connection beyond ``max_connections`` with 503 and closes it."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(_BUSY)
        transport.close()


def listen(host: str, port: int) -> socket.socket:
    """Bind the page's listening socket now, so a bad address fails the start (exit 78)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        raise ConfigError(f"hmi: cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.setblocking(False)
    return sock


def run_restarting(component: str, body: Callable[[], None], stop: threading.Event) -> None:
    """Run ``body`` until ``stop``; a crash is logged and counted, then ``body`` runs
    again after a backoff. The daemon is never faulted by the page."""
    backoff = Backoff(0.2, 10.0)
    while not stop.is_set():
        started = time.monotonic()
        try:
            body()
        except Exception as exc:  # the page may crash; the line must not notice
            metrics.HMI_RESTARTS.labels(component).inc()
            log.error(
                "hmi_crashed", component=component, error=repr(exc), tb=traceback.format_exc()
            )
            if time.monotonic() - started > _HEALTHY_S:
                backoff.reset()
            stop.wait(backoff.next())


class Hmi:
    """The station web page: a result sink plus its server; see the module docstring."""

    def __init__(self, cfg: Config, *, model_hash: str = "", config_hash: str = "") -> None:
        from inspector import __version__

        self.cfg = cfg
        self.sink = HmiSink(cfg.hmi.chart_parts)
        self.hub = Hub()
        build = {"version": __version__, "model_hash": model_hash, "config_hash": config_hash}
        self.stats = Stats(cfg, self.sink, build)
        self.gallery = Gallery(cfg.archive.dir) if cfg.archive.enabled else None
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        # aiohttp logs every malformed request with a traceback: any client could fill
        # the journal. Bad requests get their 400; handler errors are logged by
        # ``routes.harden``, rate-limited.
        logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)

    @property
    def port(self) -> int:
        assert self._sock is not None, "start() first"
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        host = self.cfg.hmi.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"

    def start(self, supervisor: Supervisor) -> None:
        """Bind the socket (ConfigError if it cannot), then start both threads."""
        self._sock = listen(self.cfg.hmi.host, self.cfg.hmi.port)
        encoder = partial(run_encoder, self.sink, self.hub, self.stats, self.cfg, self._stop)
        for name, body in (("encoder", encoder), ("server", self._serve_once)):
            target = partial(run_restarting, name, body, self._stop)
            self._threads.append(supervisor.spawn(f"hmi-{name}", target, stops_with=self._stop))
        log.info("hmi_serving", url=self.url, auth=self._auth_kind())

    def _auth_kind(self) -> str:
        h = self.cfg.hmi
        kinds = [k for k, v in (("token", h.token), ("basic", h.basic_auth)) if v is not None]
        return "+".join(kinds) or "none (loopback)"

    def close(self, timeout_s: float = 1.0) -> None:
        """Stop both threads (open streams are closed) and release the socket."""
        self._stop.set()
        self.sink.fresh.set()
        self.hub.watched.set()
        end = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.error("hmi_stop_incomplete", alive=alive)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # ---------------------------------------------------------------- server
    def _serve_once(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        """Serve until ``close``; any exception ends this run (and ``run_restarting``
        starts the next one on the same socket)."""
        assert self._sock is not None
        h = self.cfg.hmi
        loop = asyncio.get_running_loop()
        app = build_app(self.cfg, self.hub, self.stats, self.gallery)
        wake = app[WAKE]
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            keepalive_timeout=15,
            max_line_size=4096,
            max_field_size=4096,
            max_headers=64,
            lingering_time=1.0,
            shutdown_timeout=0.1,
        )
        await runner.setup()
        http = runner.server
        assert http is not None

        def factory() -> asyncio.BaseProtocol:
            if len(http.connections) >= h.max_connections:
                metrics.HMI_CLIENTS_DROPPED.labels("too_many").inc()
                return _Busy()
            return http()

        server = await loop.create_server(factory, sock=self._sock.dup())

        def notify() -> None:  # from the encoder thread
            loop.call_soon_threadsafe(wake.notify)

        self.hub.attach(notify)
        try:
            while not self._stop.is_set():
                await asyncio.sleep(_POLL_S)
        finally:
            self.hub.attach(None)
            app[STOPPING].set()
            wake.notify()
            server.close()
            await runner.cleanup()
