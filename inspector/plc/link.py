"""The PLC link: a trigger source (step 1 of the flow) and a result sink (the last step).

    PLC TRIGGER_SEQ ─▶ PlcLink.run ─▶ submit(Trigger) ─▶ pipeline ─▶ PlcLink.publish ─▶ VERDICT

Concurrency: one asyncio event loop owns all Modbus I/O and the ``Handshake`` state.
It runs inside ``run()``, i.e. in the trigger thread the application starts for every
trigger source, so the link adds no thread of its own. Other threads talk to it only
through ``loop.call_soon_threadsafe`` (``publish``, ``set_state``), which never blocks:
the pipeline thread hands a result over in microseconds, and the loop writes it with
a timeout equal to the part's remaining budget, without retries. One loop rather than
threads because pymodbus 3.16 is asyncio-native and one owner of the socket makes
"a verdict is never written for the wrong part" a property of one object.

Supervision: on a failed connect, read or write the link closes the socket and retries
with a delay doubling from ``backoff_s`` up to ``backoff_max_s``. After every
(re)connect, and whenever PLC_HEARTBEAT stops or restarts, the handshake adopts the
PLC's current TRIGGER_SEQ, so a stale trigger is never processed, and drops results of
parts from before (the PLC's FIFO has rejected those already).

VISION_HEARTBEAT (+1 every 100 ms) moves while ``progress()`` moves or while no part is
in flight; a part in flight with no progress for 100 ms stops it and the PLC alarms.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from threading import Event
from typing import Any

import structlog

from inspector import metrics
from inspector.config import PlcConfig
from inspector.errors import PlcError
from inspector.plc.handshake import Handshake, Step
from inspector.plc.io import ClientIo, LinkIo, ServerIo
from inspector.plc.protocol import RESULT_FIRST, PlcInputs, State
from inspector.trigger import Submit
from inspector.types import PartResult, Trigger

log = structlog.get_logger(__name__)

HEARTBEAT_PERIOD_NS = 100_000_000
MIN_WRITE_NS = 5_000_000  # floor of a write timeout (event-loop jitter, busy hosts)
_STOP_POLL_S = 0.05  # how quickly a backoff wait notices the stop event


class _RateLimited:
    """Log an error kind at most once per ``period_s``; count what was suppressed."""

    def __init__(self, period_s: float = 5.0) -> None:
        self.period_ns = int(period_s * 1e9)
        self._last: dict[str, int] = {}
        self._suppressed: dict[str, int] = {}

    def error(self, kind: str, **kw: Any) -> None:
        metrics.PLC_ERRORS.labels(kind).inc()
        now = time.monotonic_ns()
        if now - self._last.get(kind, -self.period_ns) >= self.period_ns:
            log.error("plc_link_error", kind=kind, suppressed=self._suppressed.pop(kind, 0), **kw)
            self._last[kind] = now
        else:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1


class PlcLink:
    """TriggerSource (``run``) and result sink (``publish``) over Modbus TCP, either role.

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
    ) -> None:
        self.cfg = cfg
        self.budget_ns = int(cycle_budget_ms * 1e6)
        self.default_recipe = default_recipe
        self.on_recipe = on_recipe
        self.on_clear_fault = on_clear_fault
        self._published = 0
        self._handed = 0  # results handed over by publish(); _published once the loop has them
        self.progress = progress or (lambda: self._published)
        self.handshake = Handshake(
            result_queue=cfg.result_queue,
            config_crc=config_crc,
            heartbeat_timeout_ns=int(cfg.heartbeat_timeout_s * 1e9),
        )
        self.io: LinkIo = self._make_io()
        self.serving = Event()  # set while the server listens (server role) or connected
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._app_state: tuple[int, int] = (int(State.BOOT), 0)
        self._recipe = default_recipe
        self._errors = _RateLimited()
        self._written: dict[int, list[int]] = {}
        self._missed_seen = 0
        self._next_hb_ns = 0
        self._status_key: tuple[int, int, bool] | None = None
        self._was_up = False

    def _make_io(self) -> LinkIo:
        c = self.cfg
        if c.role == "server":
            return ServerIo(
                c.host, c.port, unit_id=c.unit_id, in_base=c.in_base, out_base=c.out_base
            )
        timeout = max(self.budget_ns / 1e9, 0.05)
        return ClientIo(
            c.host, c.port, unit_id=c.unit_id, in_base=c.in_base, connect_timeout_s=timeout
        )

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
            self._handed += 1
        except RuntimeError:  # loop not started or already stopped: the PLC rejects it
            self._errors.error("result_link_stopped", trigger_seq=result.trigger.trigger_seq)

    def drain(self, timeout_s: float) -> int:
        """Wait until every result handed to ``publish`` is written and acknowledged.

        Called at stop, after the pipeline published its last part and before the link
        stops. Returns how many results were still unacknowledged at ``timeout_s``.
        """
        end = time.monotonic() + timeout_s
        while True:
            left = self._handed - self._published + self.handshake.pending
            if left == 0 or self._loop is None or time.monotonic() >= end:
                return left
            time.sleep(0.005)

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
        """Own the Modbus link until ``stop`` is set (blocks; the trigger thread)."""
        asyncio.run(self._main(submit, stop))

    async def _main(self, submit: Submit, stop: Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        backoff = self.cfg.backoff_s
        try:
            while not stop.is_set():
                if await self._connect_and_serve(submit, stop):
                    backoff = self.cfg.backoff_s  # the last session worked: start over
                if stop.is_set():
                    break
                # Also after a connect that "worked" but gave no usable data (a peer
                # that accepts and drops): never a tight reconnect loop.
                metrics.PLC_RECONNECTS.inc()
                await self._sleep(stop, backoff)
                backoff = min(backoff * 2, self.cfg.backoff_max_s)
        finally:
            self.serving.clear()
            await self.io.shutdown()
            self._loop = None

    async def _connect_and_serve(self, submit: Submit, stop: Event) -> bool:
        """One connection; True if the handshake got in sync during it."""
        try:
            await self.io.open()
        except (OSError, PlcError) as exc:
            self._errors.error("connect", error=str(exc))
            return False
        self.serving.set()
        self._was_up = False
        try:
            await self._session(submit, stop)
        except PlcError as exc:
            self._errors.error("io", error=str(exc))
        finally:
            self.handshake.lost()
            self._written.clear()
            self._status_key = None
            metrics.PLC_LINK_UP.set(0)
            await self.io.close()
        return self._was_up

    async def _sleep(self, stop: Event, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not stop.is_set() and (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(left, _STOP_POLL_S))

    async def _session(self, submit: Submit, stop: Event) -> None:
        """Poll block A, submit parts, write block B, until stop or an I/O error."""
        assert self._wake is not None
        poll_s = self.cfg.poll_ms / 1000
        up = False
        while not stop.is_set():
            words = await self.io.read_a()
            now = time.monotonic_ns()
            step = self.handshake.on_inputs(PlcInputs.decode(words), now)
            self._apply(step, submit, now)
            if up != self.handshake.synced:
                up = self.handshake.synced
                self._was_up = self._was_up or up
                metrics.PLC_LINK_UP.set(int(up))
                log.info("plc_link_up" if up else "plc_link_waiting", role=self.cfg.role)
            # Write after the wait, not before: a verdict published within the poll
            # period goes out in the same FC16 as the new TRIGGER_ACK_SEQ, so the ack
            # (at most one poll period late) never delays a verdict.
            await self.io.wait(self._wake, poll_s)
            await self._flush()
        # An orderly stop: show STATE offline, or fault when the daemon stops on a fault
        # (best effort; the PLC alarms on the heartbeat anyway if this write is lost).
        with contextlib.suppress(PlcError):
            app_state, app_error = self._app_state
            final = (
                (int(State.FAULT), app_error) if app_state == State.FAULT else (State.OFFLINE, 0)
            )
            words = [self.handshake.vision_heartbeat, int(final[0]), final[1]]
            await self.io.write(self.cfg.out_base, words, MIN_WRITE_NS / 1e9 * 10)

    def _apply(self, step: Step, submit: Submit, now: int) -> None:
        hs = self.handshake
        if step.recipe_changed:
            self._select_recipe(hs.recipe_id or self.default_recipe)
        if step.clear_fault and self.on_clear_fault is not None:
            self.on_clear_fault()
        if hs.missed_triggers != self._missed_seen:
            metrics.PLC_MISSED_TRIGGERS.inc(hs.missed_triggers - self._missed_seen)
            self._missed_seen = hs.missed_triggers
        for part in step.parts:
            submit(
                Trigger(
                    trigger_seq=part.trigger_seq,
                    part_id=part.part_id,
                    t_trigger_ns=now,
                    deadline_ns=now + self.budget_ns,
                    source="plc",
                    recipe_id=self._recipe,
                )
            )

    def _select_recipe(self, recipe_id: int) -> None:
        ok = True if self.on_recipe is None else bool(self.on_recipe(recipe_id))
        self.handshake.recipe_ok = ok
        # Parts carry the PLC's choice even when it was refused: the pipeline answers
        # an unknown recipe with NG, and ERROR_CODE 401 shows the PLC why.
        self._recipe = recipe_id
        if not ok:
            self._errors.error("unknown_recipe", recipe_id=recipe_id)

    def _on_result(self, result: PartResult) -> None:
        self._published += 1
        if not self.handshake.on_result(result):
            self._errors.error("result_dropped", trigger_seq=result.trigger.trigger_seq)
        metrics.PLC_PENDING_RESULTS.set(self.handshake.pending)
        if self._wake is not None:
            self._wake.set()

    async def _flush(self) -> None:
        """Write the result block and the status words where they changed."""
        hs, out = self.handshake, self.cfg.out_base
        now = time.monotonic_ns()
        words, deadline = hs.result_words(now)
        if words != self._written.get(RESULT_FIRST):
            # Timeout: the part's remaining budget, floored so that a result presented
            # at its very deadline still has a chance; one already past it goes out as
            # NG_TIMEOUT, and a write without a new result (trigger ack) gets one budget.
            left = (deadline - now) if deadline is not None else self.budget_ns
            await self.io.write(out + RESULT_FIRST, words, max(left, MIN_WRITE_NS) / 1e9)
            self._written[RESULT_FIRST] = words
        app_state, app_error = self._app_state
        key = (hs.error_code(app_error), app_state, hs.enabled)
        tick = now >= self._next_hb_ns
        if tick:
            hs.tick_heartbeat(self.progress())
            self._next_hb_ns = now + HEARTBEAT_PERIOD_NS
        if tick or key != self._status_key:
            # STATE is refreshed with the heartbeat (busy/ready would flicker per part)
            # and at once when a fault, the application state or ENABLE changes.
            self._status_key = key
            status = hs.status_words(app_state, app_error)
            if status != self._written.get(0):
                await self.io.write(out, status, max(self.budget_ns, MIN_WRITE_NS) / 1e9)
                self._written[0] = status
