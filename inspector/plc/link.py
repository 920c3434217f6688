"""The PLC link: a trigger source (step 1 of the flow) and a result sink (the last step).

    PLC trigger ring ─▶ PlcLink.run ─▶ submit(Trigger) ─▶ pipeline ─▶ PlcLink.publish ─▶ VERDICT

Two jobs on one socket. The trigger job reads block A and submits a ``Trigger`` for each
new part of the trigger ring; ``stop_triggers()`` ends it alone (later triggers are
counted, not taken). The result job queues what ``publish`` hands over and writes block
B; ``drain()`` waits until every result handed over was acknowledged by the PLC or is
past its deadline. The ``stop`` event given to ``run`` ends both.

Concurrency: one asyncio event loop owns all Modbus I/O. It runs inside ``run()``, in the
thread the application starts for it (``plc-link``). Other threads talk to it only
through ``loop.call_soon_threadsafe`` (``publish``, ``set_state``) or
``run_coroutine_threadsafe`` (``drain``), which never block on I/O. One loop rather than
threads because pymodbus 3.16 is asyncio-native and one owner of the socket makes "a
verdict is never written for the wrong part" a property of one object.

Per connection: every (re)connect builds a new ``Connection`` with a new ``Handshake``,
so parts in flight, queued results and the words believed written on the PLC never
survive into the next connection. What outlives it (counters the PLC reads, RESULT_SEQ,
VISION_HEARTBEAT) is ``LinkTotals``.

Supervision: a request waits up to ``plc.request_timeout_s``; a slow answer within it is
waited for (a late result is still written; the PLC ignores it), so one slow write never
ends the session. A dropped connection, a timeout or a protocol error (a bad register
value) ends the connection; the link retries after ``Backoff(backoff_s, backoff_max_s)``
with jitter, reset after every connection that got in sync, and resyncs. Nothing a PLC
sends escapes ``run`` as an exception.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from threading import Event

from inspector import metrics
from inspector.backoff import Backoff
from inspector.config import PlcConfig
from inspector.errors import PlcConnectionError, PlcError, PlcProtocolError, PlcTimeout
from inspector.logging import RateLimitedLog, get_logger
from inspector.plc.handshake import Handshake, LinkTotals, Step
from inspector.plc.io import LinkIo, ServerIo, make_io, wait_event
from inspector.plc.protocol import RESULT_FIRST, PlcInputs, State
from inspector.trigger import Submit
from inspector.types import PartResult, Trigger

log = get_logger(__name__)

HEARTBEAT_PERIOD_NS = 100_000_000
OFFLINE_WRITE_S = 0.2  # the last STATE offline write at stop: best effort
_STOP_POLL_S = 0.02  # how quickly a backoff wait notices the stop event


@dataclass
class LinkStats:
    """What the link did, for tests, the benchmark and the stop log (written by its loop).

    Every trigger the PLC raised is ``submitted``, ``missed`` (not in the ring any more),
    ``late`` (seen after its deadline), ``unseen`` (raised while the link was down or out
    of sync) or ``not_taken`` (after ``stop_triggers``); every result handed to
    ``publish`` is written or in ``dropped`` by reason.
    """

    submitted: int = 0
    missed: int = 0
    late: int = 0
    unseen: int = 0
    not_taken: int = 0
    results: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    late_ok: int = 0  # OKs written after their deadline, as NG_TIMEOUT
    reconnects: int = 0
    connections: int = 0
    up_at_ns: list[int] = field(default_factory=list)  # each time the link got in sync


@dataclass
class Connection:
    """State of one connection: built at connect, thrown away at disconnect."""

    handshake: Handshake
    written: dict[int, list[int]] = field(default_factory=dict)  # address -> words on PLC
    status_key: tuple[int, int, bool] | None = None
    next_hb_ns: int = 0
    up: bool = False
    was_up: bool = False


class PlcLink:
    """Trigger source (``run``) and result sink (``publish``) over Modbus TCP, either role.

    ``on_recipe(recipe_id) -> bool`` is called (in the link's loop; keep it quick) when
    RECIPE_ID changes and on COMMAND 2; False shows ERROR_CODE 401 (STATE fault) until
    an accepted recipe is selected. ``progress()`` is a counter the pipeline advances.
    """

    def __init__(
        self,
        cfg: PlcConfig,
        *,
        cycle_budget_ms: float,
        default_recipe: int = 1,
        config_crc: int = 0,
        on_recipe: Callable[[int], bool] | None = None,
        on_clear_fault: Callable[[], None] | None = None,
        progress: Callable[[], int] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.cfg = cfg
        self.budget_ns = int(cycle_budget_ms * 1e6)
        self.default_recipe = default_recipe
        self.config_crc = config_crc
        self.on_recipe = on_recipe
        self.on_clear_fault = on_clear_fault
        self.stats = LinkStats()
        self.progress = progress or (lambda: self.stats.results)
        self.totals = LinkTotals()
        self.io: LinkIo = make_io(cfg)
        self.serving = Event()  # set while the server listens (server role) or connected
        self.up = Event()  # set while the handshake is in sync with the PLC
        self._backoff = Backoff(cfg.backoff_s, cfg.backoff_max_s, jitter=0.2, rng=rng)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._changed: asyncio.Event | None = None
        self._conn: Connection | None = None
        self._app_state: tuple[int, int] = (int(State.BOOT), 0)
        self._recipe = default_recipe
        self._taking = True  # the trigger job runs until stop_triggers()
        self._errors = RateLimitedLog(log)

    @property
    def port(self) -> int | None:
        """The bound port in the server role (after ``serving`` is set), else None."""
        return self.io.bound_port if isinstance(self.io, ServerIo) else None

    # --------------------------------------------------------- thread-safe API
    def publish(self, result: PartResult) -> None:
        """Hand a final result to the link; never blocks (the loop writes it)."""
        loop = self._loop
        try:
            if loop is None:
                raise RuntimeError("link not running")
            loop.call_soon_threadsafe(self._on_result, result)
        except RuntimeError:  # loop not started or already stopped: the PLC rejects it
            self._count_drop("link_down")

    def stop_triggers(self) -> None:
        """End the trigger job: later triggers are counted (``not_taken``), not submitted."""
        self._taking = False

    def drain(self, timeout_s: float) -> int:
        """Stop taking triggers, then wait until every result handed to ``publish`` was
        acknowledged by the PLC or is past its deadline (the PLC has rejected that part).

        Called at stop, after the pipeline published its last part. Returns how many
        results were still owed at ``timeout_s``.
        """
        self.stop_triggers()
        loop = self._loop
        if loop is None:
            return 0
        try:
            fut = asyncio.run_coroutine_threadsafe(self._drain(timeout_s), loop)
            return fut.result(timeout_s + 1.0)
        except (RuntimeError, concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
            return 0 if self._conn is None else self._conn.handshake.pending

    def set_state(self, state: int, error_code: int = 0) -> None:
        """STATE and ERROR_CODE as the application sees them (link faults take priority)."""
        self._app_state = (int(state), int(error_code))
        self._poke()

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    # ------------------------------------------------------------ the loop
    def run(self, submit: Submit, stop: Event) -> None:
        """Own the Modbus link until ``stop`` is set (blocks; the plc-link thread)."""
        asyncio.run(self._main(submit, stop))

    async def _main(self, submit: Submit, stop: Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake, self._changed = asyncio.Event(), asyncio.Event()
        try:
            while not stop.is_set():
                if await self._connection(submit, stop):
                    self._backoff.reset()  # that one worked: the next retry is short
                if stop.is_set():
                    break
                # Also after a connect that "worked" but gave no usable data (a peer
                # that accepts and drops): never a tight reconnect loop.
                self.stats.reconnects += 1
                metrics.PLC_RECONNECTS.inc()
                await self._sleep(stop, self._backoff.next())
        finally:
            self.serving.clear()
            self.up.clear()
            await self.io.shutdown()
            self._loop = None

    async def _connection(self, submit: Submit, stop: Event) -> bool:
        """One connection; True if the handshake got in sync during it."""
        try:
            await self.io.open()
        except PlcError as exc:
            self._error("connect", exc)
            return False
        self.serving.set()
        conn = Connection(
            Handshake(
                self.totals,
                budget_ns=self.budget_ns,
                result_queue=self.cfg.result_queue,
                config_crc=self.config_crc,
                heartbeat_timeout_ns=int(self.cfg.heartbeat_timeout_s * 1e9),
                on_drop=self._count_drop,
                on_late_ok=self._count_late_ok,
            )
        )
        self._conn = conn
        self.stats.connections += 1
        try:
            await self._session(conn, submit, stop)
        except PlcError as exc:
            self._error(_error_kind(exc), exc)
        finally:
            self._conn = None
            conn.handshake.close("stopping" if stop.is_set() else "link_down")
            self._set_up(conn, False)
            metrics.PLC_PENDING_RESULTS.set(0)
            await self.io.close()
            self._notify_changed()
        return conn.was_up

    async def _sleep(self, stop: Event, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not stop.is_set() and (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(left, _STOP_POLL_S))

    async def _session(self, conn: Connection, submit: Submit, stop: Event) -> None:
        """Read block A, take triggers, write block B, until stop or a PlcError."""
        assert self._wake is not None
        poll_s = self.cfg.poll_ms / 1000
        hs = conn.handshake
        while not stop.is_set():
            t_read = time.monotonic_ns()  # ring ages count back from the request
            step = hs.on_inputs(PlcInputs.decode(await self.io.read_a()), t_read)
            if step.resynced:
                conn.written.clear()  # a restarted PLC may hold zeros: write all again
                conn.status_key = None
            self._take(conn, step, submit, t_read)
            self._set_up(conn, hs.synced)
            # Write after the wait, not before: a verdict published within the poll
            # period goes out in the same FC16 as the new TRIGGER_ACK_SEQ.
            await self.io.wait(self._wake, poll_s)
            await self._flush(conn)
        # An orderly stop: show STATE offline, or fault when the daemon stops on a fault
        # (best effort; the PLC alarms on the heartbeat anyway if this write is lost).
        app_state, app_error = self._app_state
        final = (State.FAULT, app_error) if app_state == State.FAULT else (State.OFFLINE, 0)
        words = [self.totals.vision_heartbeat, int(final[0]), final[1]]
        with contextlib.suppress(PlcError, asyncio.TimeoutError):
            await asyncio.wait_for(self.io.write(self.cfg.out_base, words), OFFLINE_WRITE_S)

    def _set_up(self, conn: Connection, up: bool) -> None:
        if up == conn.up:
            return
        conn.up = up
        conn.was_up = conn.was_up or up
        metrics.PLC_LINK_UP.set(int(up))
        if up:
            self.stats.up_at_ns.append(time.monotonic_ns())
            self.up.set()
        else:
            self.up.clear()
        log.info("plc_link_up" if up else "plc_link_waiting", role=self.cfg.role)

    # -------------------------------------------------------- the trigger job
    def _take(self, conn: Connection, step: Step, submit: Submit, t_read: int) -> None:
        """Submit the new parts of one read (or count them once the job has stopped)."""
        if step.recipe_changed:
            self._select_recipe(conn.handshake.recipe_id or self.default_recipe)
        if step.clear_fault and self.on_clear_fault is not None:
            self.on_clear_fault()
        s = self.stats
        losses = (
            ("plc_missed_trigger", step.missed),
            ("plc_late_trigger", step.late),
            ("plc_link_down", step.unseen),
        )
        for cause, n in losses:
            if n:
                metrics.PARTS_LOST.labels(cause).inc(n)
                metrics.PLC_MISSED_TRIGGERS.inc(n)
                self._errors.error("plc_link_error", kind=cause, parts=n)
        s.missed += step.missed
        s.late += step.late
        s.unseen += step.unseen
        if not self._taking:
            self._withdraw(conn, step)
            return
        for part in step.parts:
            t_trigger = t_read - part.age_ns
            submit(
                Trigger(
                    trigger_seq=part.trigger_seq,
                    part_id=part.part_id,
                    t_trigger_ns=t_trigger,
                    deadline_ns=t_trigger + self.budget_ns,
                    source="plc",
                    recipe_id=self._recipe,
                )
            )
        s.submitted += len(step.parts)

    def _withdraw(self, conn: Connection, step: Step) -> None:
        """After ``stop_triggers``: the parts of this read are counted, never inspected."""
        for part in step.parts:
            conn.handshake.withdraw(part.trigger_seq)
        if step.parts:
            self.stats.not_taken += len(step.parts)
            metrics.PARTS_LOST.labels("plc_stopping").inc(len(step.parts))
            metrics.PLC_MISSED_TRIGGERS.inc(len(step.parts))

    def _select_recipe(self, recipe_id: int) -> None:
        ok = True if self.on_recipe is None else bool(self.on_recipe(recipe_id))
        self.totals.recipe_ok = ok
        # Parts carry the PLC's choice even when it was refused: the pipeline answers
        # an unknown recipe with NG, and ERROR_CODE 401 shows the PLC why.
        self._recipe = recipe_id
        if not ok:
            self._error("unknown_recipe", None, recipe_id=recipe_id)

    # --------------------------------------------------------- the result job
    def _on_result(self, result: PartResult) -> None:
        self.stats.results += 1
        conn = self._conn
        if conn is None:
            self._count_drop("link_down")
        else:
            conn.handshake.on_result(result, time.monotonic_ns())
            metrics.PLC_PENDING_RESULTS.set(conn.handshake.pending)
        if self._wake is not None:
            self._wake.set()
        self._notify_changed()

    def _count_drop(self, reason: str) -> None:
        d = self.stats.dropped
        d[reason] = d.get(reason, 0) + 1
        metrics.PLC_RESULTS_DROPPED.labels(reason).inc()
        self._errors.error("plc_result_dropped", kind=reason)

    def _count_late_ok(self) -> None:
        self.stats.late_ok += 1
        metrics.PLC_LATE_OK.inc()

    def _notify_changed(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def _drain(self, timeout_s: float) -> int:
        """In the loop: wait until no result is owed to the PLC (or ``timeout_s``)."""
        assert self._changed is not None
        end = time.monotonic() + timeout_s
        while True:
            conn = self._conn
            left = 0 if conn is None else conn.handshake.live_results(time.monotonic_ns())
            remaining = end - time.monotonic()
            if left == 0 or remaining <= 0:
                return left
            # Woken by every write and ack; the cap notices deadlines that pass quietly.
            await wait_event(self._changed, min(remaining, 0.01))

    async def _flush(self, conn: Connection) -> None:
        """Write the result block and the status words where they changed."""
        hs, out = conn.handshake, self.cfg.out_base
        now = time.monotonic_ns()
        words = hs.result_words(now)
        if words != conn.written.get(RESULT_FIRST):
            await self.io.write(out + RESULT_FIRST, words)
            hs.result_written()
            conn.written[RESULT_FIRST] = words
            self._notify_changed()
        app_state, app_error = self._app_state
        key = (hs.error_code(app_error), app_state, hs.enabled)
        tick = now >= conn.next_hb_ns
        if tick:
            hs.tick_heartbeat(self.progress())
            conn.next_hb_ns = now + HEARTBEAT_PERIOD_NS
        if tick or key != conn.status_key:
            # STATE is refreshed with the heartbeat (busy/ready would flicker per part)
            # and at once when a fault, the application state or ENABLE changes.
            conn.status_key = key
            status = hs.status_words(app_state, app_error)
            if status != conn.written.get(0):
                await self.io.write(out, status)
                conn.written[0] = status

    def _error(self, kind: str, exc: BaseException | None, **kw: object) -> None:
        metrics.PLC_ERRORS.labels(kind).inc()
        self._errors.error("plc_link_error", kind=kind, error=str(exc) if exc else "", **kw)


_ERROR_KINDS = ((PlcTimeout, "timeout"), (PlcConnectionError, "connection"))


def _error_kind(exc: PlcError) -> str:
    kinds = (*_ERROR_KINDS, (PlcProtocolError, "protocol"))
    return next((kind for cls, kind in kinds if isinstance(exc, cls)), "io")
