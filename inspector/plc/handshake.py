"""The vision side of the PLC handshake as a pure state machine (no I/O, no clock).

Where it sits: ``link.py`` feeds it each read of block A and each finished part, and
writes back the words it returns; both Modbus roles share it, and it is tested on its
own (``tests/unit/test_plc_protocol.py``). The register map is in ``protocol.py``.

One ``Handshake`` lives for one connection: a reconnect builds a new one, so nothing
of the old connection (parts in flight, queued results, the words believed written)
can leak into the new one. What must outlive a connection (the counters the PLC reads,
the RESULT_SEQ sequence, the vision heartbeat) is in ``LinkTotals``, owned by the link.

Sequence rules (docs/plc.md, "Sequences"):

* TRIGGER_SEQ and RESULT_SEQ count 1..65535 and skip 0; 0 means "nothing yet" (a
  PLC after a restart). Every step of TRIGGER_SEQ is looked up in the trigger ring, so
  a read that comes late still finds every part of the last N triggers. A part that is
  not in the ring (overwritten, or a jump) is missed; one whose PLC-clock age is past
  the cycle budget is late; both are counted, never inspected.
* A backward step, a reset to 0, a restarted or silent heartbeat makes the daemon adopt
  the current value without processing it (resync).
* A result is presented only when the previous one was acknowledged (RESULT_ACK_SEQ ==
  RESULT_SEQ); the queue, late results and the self-clearing overflow fault are in
  ``results.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from inspector.plc.protocol import (
    ERR_RESULT_OVERFLOW,
    ERR_UNKNOWN_RECIPE,
    Command,
    PlcInputs,
    State,
    TriggerSlot,
)
from inspector.plc.results import Pending, ResultQueue, ResultSeq
from inspector.seq import SEQ_MOD, next_seq, seq_distance, seq_of_count
from inspector.types import PartResult

MAX_IN_FLIGHT = 1024  # submitted, unanswered triggers remembered; the oldest go first
#: A gap between two reads longer than this makes ring ages ambiguous (the PLC clock is
#: 16-bit milliseconds): adopt the PLC's sequences instead of reading the ring.
MAX_READ_GAP_NS = 30_000_000_000
_HALF_CLOCK_MS = 0x8000


@dataclass(frozen=True, slots=True)
class NewPart:
    """A part the PLC announced: submit a Trigger for it."""

    trigger_seq: int
    part_id: int
    age_ns: int  # how long before this read the PLC triggered it (PLC clock)


@dataclass(slots=True)
class Step:
    """What one read of block A asks the link to do."""

    parts: list[NewPart]
    missed: int = 0  # triggers not in the ring any more (overwritten) or never written
    late: int = 0  # triggers found only after their deadline: not inspected
    unseen: int = 0  # triggers raised while the link was down or out of sync (adopted)
    recipe_changed: bool = False  # call on_recipe(recipe_id)
    clear_fault: bool = False
    resynced: bool = False


@dataclass(slots=True)
class LinkTotals:
    """What outlives a connection: the counters the PLC reads, RESULT_SEQ, heartbeat."""

    missed_triggers: int = 0  # MISSED_TRIGGERS: parts never inspected
    results: ResultSeq = field(default_factory=ResultSeq)
    vision_heartbeat: int = 0
    last_progress: int | None = None
    recipe_ok: bool = True  # False: the selected recipe was refused (ERROR_CODE 401)
    last_trigger_seq: int | None = None  # the last TRIGGER_SEQ taken or adopted


def _no_drop(reason: str) -> None:
    """Default drop hook: nothing to count."""


def _nothing() -> None:
    """Default hook: nothing to count."""


class Handshake:
    """The vision side of the handshake for one connection; owned by the link's loop.

    Feed it block A (``on_inputs``) and finished parts (``on_result``); read back the
    words to write (``result_words``, ``status_words``). It never sees a socket or a
    clock: callers pass ``now_ns`` (``time.monotonic_ns()``). Every result it does not
    write is reported once to ``on_drop(reason)``: ``stale`` (not a part of this
    connection), ``overflow`` (queue full), ``late`` (its deadline passed before it
    could be shown), ``link_down`` or, from ``close``, the reason given there. An OK
    shown after its deadline goes out as NG_TIMEOUT and is reported to ``on_late_ok()``.
    """

    def __init__(
        self,
        totals: LinkTotals | None = None,
        *,
        budget_ns: int = 30_000_000,
        result_queue: int = 8,
        config_crc: int = 0,
        heartbeat_timeout_ns: int = 1_000_000_000,
        on_drop: Callable[[str], None] = _no_drop,
        on_late_ok: Callable[[], None] = _nothing,
    ) -> None:
        self.totals = totals or LinkTotals()
        self.budget_ns = budget_ns
        self.config_crc = config_crc & 0xFFFF
        self.heartbeat_timeout_ns = heartbeat_timeout_ns
        self.on_drop = on_drop
        self.results = ResultQueue(
            self.totals.results, capacity=result_queue, on_drop=on_drop, on_late_ok=on_late_ok
        )
        self.synced = False
        self.enabled = False
        self.recipe_id = 0
        self._last_seq = 0
        self._trigger_ack_seq = 0
        self._plc_hb = -1  # not seen yet: the first read counts as a beat
        self._plc_hb_ns = 0
        self._last_read_ns: int | None = None
        self._command_seq = 0
        self._in_flight: dict[int, int] = {}  # trigger_seq -> part_id, submitted, unanswered

    # ------------------------------------------------------------------ block A
    def on_inputs(self, inp: PlcInputs, now_ns: int) -> Step:
        """Digest one read of block A; return the parts to submit and hooks to call."""
        restarted = False
        if inp.plc_heartbeat != self._plc_hb:
            # A heartbeat that steps back means the PLC program restarted.
            restarted = self._plc_hb >= 0 and ((inp.plc_heartbeat - self._plc_hb) & 0xFFFF) > 0x7FFF
            self._plc_hb, self._plc_hb_ns = inp.plc_heartbeat, now_ns
        gap = self._last_read_ns is not None and now_ns - self._last_read_ns > MAX_READ_GAP_NS
        self._last_read_ns = now_ns
        alive = self.plc_alive(now_ns)
        step = Step(parts=[])
        if inp.recipe_id != self.recipe_id:
            self.recipe_id = inp.recipe_id
            step.recipe_changed = True
        self.enabled = inp.enable
        if not self.synced or restarted or gap or not inp.enable or not alive:
            # Adopt the PLC's sequences; stay unsynced (re-adopt at every read) while the
            # line is disabled or the PLC heartbeat is silent.
            self._resync(inp, step, restarted=restarted)
            self.synced = inp.enable and alive
            return step
        if inp.command_seq != self._command_seq:
            self._command_seq = inp.command_seq
            if inp.command == Command.CLEAR_FAULT:
                step.clear_fault = True
                self.results.overflowed = False
            elif inp.command == Command.RELOAD_RECIPE:
                step.recipe_changed = True
        self.results.take_ack(inp.result_ack_seq, now_ns)
        if inp.trigger_seq != self._last_seq:
            dist = seq_distance(self._last_seq, inp.trigger_seq)
            if inp.trigger_seq == 0 or dist > SEQ_MOD // 2:
                # Backward step or PLC reset: never a part.
                self._resync(inp, step, restarted=True)
                return step
            self._take_triggers(inp, dist, step)
        return step

    def _take_triggers(self, inp: PlcInputs, dist: int, step: Step) -> None:
        """The ``dist`` new triggers up to TRIGGER_SEQ, each looked up in the ring."""
        slots = {slot.seq: slot for slot in inp.ring if slot.seq}
        window = min(dist, len(inp.ring))
        step.missed += dist - window  # older than the ring holds
        for back in range(window - 1, -1, -1):
            seq = seq_of_count(inp.trigger_seq - back + SEQ_MOD)
            slot = slots.get(seq)
            if slot is None:
                step.missed += 1
                continue
            age_ns = _age_ns(inp, slot)
            if age_ns >= self.budget_ns:
                step.late += 1
                continue
            step.parts.append(NewPart(seq, slot.part_id, age_ns))
            self._in_flight[seq] = slot.part_id
        while len(self._in_flight) > MAX_IN_FLIGHT:
            del self._in_flight[next(iter(self._in_flight))]
        self.totals.missed_triggers += step.missed + step.late
        self._last_seq = self._trigger_ack_seq = inp.trigger_seq
        self.totals.last_trigger_seq = inp.trigger_seq

    def withdraw(self, trigger_seq: int) -> None:
        """A part announced by ``on_inputs`` that will not be inspected (the daemon is
        stopping): forget it, and count it in MISSED_TRIGGERS."""
        if self._in_flight.pop(trigger_seq, None) is not None:
            self.totals.missed_triggers += 1

    def plc_alive(self, now_ns: int) -> bool:
        """False once PLC_HEARTBEAT has not moved for the heartbeat timeout."""
        return now_ns - self._plc_hb_ns <= self.heartbeat_timeout_ns

    def _resync(self, inp: PlcInputs, step: Step, *, restarted: bool) -> None:
        """Adopt the PLC's current sequences; forget everything in flight (it is stale).

        The parts the PLC raised since the link last saw it are counted (``unseen``);
        so is a result it was shown but did not acknowledge (``stale``).
        """
        step.resynced = True
        step.unseen += self._unseen(inp, restarted=restarted)
        self.totals.missed_triggers += step.unseen
        self.totals.last_trigger_seq = inp.trigger_seq
        self.results.settle_unconfirmed(inp.result_ack_seq)
        self.results.forget(inp.result_ack_seq)
        self._last_seq = self._trigger_ack_seq = inp.trigger_seq
        self._command_seq = inp.command_seq
        self._in_flight.clear()
        seq = self.totals.results
        if next_seq(seq.last) == inp.result_ack_seq:
            seq.last = next_seq(seq.last)  # never pre-acknowledged

    def _unseen(self, inp: PlcInputs, *, restarted: bool) -> int:
        """Parts the PLC raised that this resync adopts without inspecting."""
        last = self.totals.last_trigger_seq
        if last is None:
            # The link's first sync: only the parts still within their budget are lost to
            # it; older ones were rejected before the daemon ran.
            return sum(1 for s in inp.ring if s.seq and _age_ns(inp, s) < self.budget_ns)
        if inp.trigger_seq == last:
            return 0
        dist = seq_distance(last, inp.trigger_seq)
        if restarted or inp.trigger_seq == 0 or dist > SEQ_MOD // 2:
            return inp.trigger_seq  # a restarted PLC counts its parts from 1
        return dist

    # ------------------------------------------------------------------ results
    def on_result(self, result: PartResult, now_ns: int) -> bool:
        """Queue a finished part; False when dropped (stale, foreign, or queue full)."""
        trig = result.trigger
        if self._in_flight.get(trig.trigger_seq) != trig.part_id:
            self.on_drop("stale")  # from before a resync, or never ours
            return False
        del self._in_flight[trig.trigger_seq]
        v = result.verdict
        return self.results.add(
            Pending(
                trigger_seq=trig.trigger_seq,
                part_id=trig.part_id,
                verdict=int(v.plc_verdict),
                defect_code=v.defect_code,
                cycle_time=max(0, result.cycle_ns) // 100_000,
                deadline_ns=trig.deadline_ns,
            ),
            now_ns,
        )

    @property
    def pending(self) -> int:
        return len(self.results)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def live_results(self, now_ns: int) -> int:
        """Results still owed to the PLC: queued and not yet past their deadline."""
        return self.results.live(now_ns)

    def result_written(self) -> None:
        """The FC16 that shows the presented result was answered: it reached the PLC."""
        self.results.written()

    def close(self, reason: str) -> int:
        """The connection ended: drop the queued results; return how many."""
        return self.results.close(reason)

    def result_words(self, now_ns: int) -> list[int]:
        """Words for offsets 3..14; presents the next queued result if the last was acked."""
        self.results.present(now_ns)
        self.results.refresh(now_ns)
        block = replace(
            self.results.shown,
            trigger_ack_seq=self._trigger_ack_seq,
            missed_triggers=self.totals.missed_triggers,
            pending_results=len(self.results),
            config_crc=self.config_crc,
        )
        return block.encode()

    # ------------------------------------------------------------------- status
    def error_code(self, app_error: int = 0) -> int:
        if not self.totals.recipe_ok:
            return ERR_UNKNOWN_RECIPE
        if self.results.overflowed:
            return ERR_RESULT_OVERFLOW
        return app_error

    def state(self, app_state: int = State.READY) -> int:
        """STATE: a link fault wins; then offline (ENABLE=0); busy while parts are open."""
        if self.error_code() or app_state == State.FAULT:
            return State.FAULT
        if not self.enabled or app_state == State.OFFLINE:
            return State.OFFLINE
        if app_state == State.READY and (self._in_flight or len(self.results)):
            return State.BUSY
        return int(app_state)

    def tick_heartbeat(self, progress: int) -> int:
        """Advance VISION_HEARTBEAT if the pipeline made progress or has nothing to do.

        Called every 100 ms. A pipeline with parts in flight that finished none since
        the last tick is stuck: the heartbeat stops and the PLC alarms.
        """
        t = self.totals
        if progress != t.last_progress or not self._in_flight:
            t.vision_heartbeat = (t.vision_heartbeat + 1) & 0xFFFF
        t.last_progress = progress
        return t.vision_heartbeat

    def status_words(self, app_state: int = State.READY, app_error: int = 0) -> list[int]:
        """Words for offsets 0..2: VISION_HEARTBEAT, STATE, ERROR_CODE."""
        return [self.totals.vision_heartbeat, self.state(app_state), self.error_code(app_error)]


def _age_ns(inp: PlcInputs, slot: TriggerSlot) -> int:
    """How long before this read the PLC raised the part in ``slot`` (PLC clock).

    An age in the upper half of the 16-bit clock can only be skew (the link resyncs
    after a read gap that long): it counts as 0.
    """
    age_ms = (inp.plc_clock - slot.t_ms) & 0xFFFF
    return 0 if age_ms >= _HALF_CLOCK_MS else age_ms * 1_000_000
