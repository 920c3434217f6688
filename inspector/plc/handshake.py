"""The vision side of the PLC handshake as a pure state machine (no I/O, no clock).

Where it sits: ``link.py`` feeds it each read of block A and each finished part, and
writes back the words it returns; both Modbus roles share it, and it is tested on its
own (``tests/unit/test_plc_protocol.py``). The register map is in ``protocol.py``.

Sequence rules (docs/plc.md, "Sequences"):

* TRIGGER_SEQ and RESULT_SEQ count 1..65535 and skip 0; 0 means "nothing yet" (a
  PLC after a restart). A forward step of 1 is one part; a forward step of n > 1 is one
  part plus n-1 missed ones; a backward step, a reset to 0, a restarted or silent
  heartbeat makes the daemon adopt the current value without processing it (resync).
* A result is presented in the block only when the previous one was acknowledged
  (RESULT_ACK_SEQ == RESULT_SEQ); others wait in a bounded queue whose overflow is a
  latched fault the PLC sees (STATE=3, ERROR_CODE=302).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

from inspector.plc.protocol import (
    ERR_RESULT_OVERFLOW,
    ERR_UNKNOWN_RECIPE,
    Command,
    PlcInputs,
    ResultBlock,
    State,
)
from inspector.seq import SEQ_MOD, next_seq, seq_distance
from inspector.types import PartResult, PlcVerdict

MAX_IN_FLIGHT = 1024  # submitted, unanswered triggers remembered; the oldest go first


@dataclass(frozen=True, slots=True)
class NewPart:
    """A part the PLC announced: submit a Trigger for it."""

    trigger_seq: int
    part_id: int


@dataclass(slots=True)
class Step:
    """What one poll of block A asks the link to do."""

    parts: list[NewPart]
    recipe_changed: bool = False  # call on_recipe(recipe_id)
    clear_fault: bool = False
    resynced: bool = False


@dataclass(frozen=True, slots=True)
class Pending:
    """A result waiting for the PLC: what to write and by when."""

    trigger_seq: int
    part_id: int
    verdict: int
    defect_code: int
    cycle_time: int
    deadline_ns: int


class Handshake:
    """The vision side of the handshake, for one link; owned by one thread (the link's loop).

    Feed it block A (``on_inputs``) and finished parts (``on_result``); read back the
    words to write (``result_words``, ``status_words``). It never sees a socket or a
    clock: callers pass ``now_ns`` (``time.monotonic_ns()``).
    """

    def __init__(
        self,
        *,
        result_queue: int = 8,
        config_crc: int = 0,
        heartbeat_timeout_ns: int = 1_000_000_000,
    ) -> None:
        self.result_queue = result_queue
        self.config_crc = config_crc & 0xFFFF
        self.heartbeat_timeout_ns = heartbeat_timeout_ns
        self.synced = False
        self.enabled = False
        self.recipe_id = 0
        self.recipe_ok = True
        self.latched_error = 0  # link faults, cleared by COMMAND 1
        self.missed_triggers = 0
        self.vision_heartbeat = 0
        self._last_seq = 0
        self._trigger_ack_seq = 0
        self._plc_hb = -1  # not seen yet: the first read counts as a beat
        self._plc_hb_ns = 0
        self._command_seq = 0
        self._in_flight: dict[int, int] = {}  # trigger_seq -> part_id, submitted, unanswered
        self._queue: deque[Pending] = deque()  # unacknowledged; head is shown when presented
        self._presented = False
        self._result_seq = 0
        self._shown = ResultBlock(config_crc=self.config_crc)
        self._last_progress: int | None = None

    # ------------------------------------------------------------------ block A
    def on_inputs(self, inp: PlcInputs, now_ns: int) -> Step:
        """Digest one read of block A; return the parts to submit and hooks to call."""
        restarted = False
        if inp.plc_heartbeat != self._plc_hb:
            # A heartbeat that steps back means the PLC program restarted.
            restarted = self._plc_hb >= 0 and ((inp.plc_heartbeat - self._plc_hb) & 0xFFFF) > 0x7FFF
            self._plc_hb, self._plc_hb_ns = inp.plc_heartbeat, now_ns
        alive = self.plc_alive(now_ns)
        step = Step(parts=[])
        if inp.recipe_id != self.recipe_id:
            self.recipe_id = inp.recipe_id
            step.recipe_changed = True
        self.enabled = inp.enable
        if not self.synced or restarted or not inp.enable or not alive:
            # Adopt the PLC's sequences; stay unsynced (re-adopt at every read) while the
            # line is disabled or the PLC heartbeat is silent.
            self._resync(inp)
            step.resynced = True
            self.synced = inp.enable and alive
            return step
        if inp.command_seq != self._command_seq:
            self._command_seq = inp.command_seq
            if inp.command == Command.CLEAR_FAULT:
                step.clear_fault = True
                self.latched_error = 0
            elif inp.command == Command.RELOAD_RECIPE:
                step.recipe_changed = True
        self._take_ack(inp.result_ack_seq)
        if inp.trigger_seq != self._last_seq:
            dist = seq_distance(self._last_seq, inp.trigger_seq)
            if inp.trigger_seq == 0 or dist > SEQ_MOD // 2:
                self._resync(inp)  # backward step or PLC reset: never a part
                step.resynced = True
                return step
            self.missed_triggers += dist - 1
            self._last_seq = self._trigger_ack_seq = inp.trigger_seq
            step.parts.append(NewPart(inp.trigger_seq, inp.part_id))
            self._in_flight[inp.trigger_seq] = inp.part_id
            while len(self._in_flight) > MAX_IN_FLIGHT:
                del self._in_flight[next(iter(self._in_flight))]
        return step

    def heartbeat_age_ns(self, now_ns: int) -> int:
        """Time since PLC_HEARTBEAT last moved (the first read counts as a beat)."""
        return now_ns - self._plc_hb_ns

    def plc_alive(self, now_ns: int) -> bool:
        """False once PLC_HEARTBEAT has not moved for the heartbeat timeout."""
        return now_ns - self._plc_hb_ns <= self.heartbeat_timeout_ns

    def lost(self) -> None:
        """The link dropped or the PLC went silent: resync at the next read."""
        self.synced = False

    def _resync(self, inp: PlcInputs) -> None:
        """Adopt the PLC's current sequences; forget everything in flight (it is stale)."""
        self._last_seq = self._trigger_ack_seq = inp.trigger_seq
        self._command_seq = inp.command_seq
        self._in_flight.clear()
        self._queue.clear()
        self._presented = False
        # Show "no result" (RESULT_SEQ 0) until the next one: re-showing the last result
        # to a restarted PLC would hand it a verdict for a part it never triggered.
        self._shown = ResultBlock(config_crc=self.config_crc)
        if next_seq(self._result_seq) == inp.result_ack_seq:
            self._result_seq = next_seq(self._result_seq)  # never pre-acknowledged

    def _take_ack(self, ack_seq: int) -> None:
        if self._presented and ack_seq == self._result_seq:
            self._queue.popleft()
            self._presented = False

    # ------------------------------------------------------------------ results
    def on_result(self, result: PartResult) -> bool:
        """Queue a finished part; False when dropped (stale, foreign, or queue full)."""
        trig = result.trigger
        if self._in_flight.get(trig.trigger_seq) != trig.part_id:
            return False  # from before a resync, or never ours
        del self._in_flight[trig.trigger_seq]
        if len(self._queue) >= self.result_queue:
            self.latched_error = ERR_RESULT_OVERFLOW
            return False
        v = result.verdict
        self._queue.append(
            Pending(
                trigger_seq=trig.trigger_seq,
                part_id=trig.part_id,
                verdict=int(v.plc_verdict),
                defect_code=v.defect_code,
                cycle_time=max(0, result.cycle_ns) // 100_000,
                deadline_ns=trig.deadline_ns,
            )
        )
        return True

    @property
    def pending(self) -> int:
        return len(self._queue)

    def result_words(self, now_ns: int) -> tuple[list[int], int | None]:
        """Words for offsets 3..14, and the deadline of a newly presented result (or None).

        A result presented after its part's deadline goes out as NG_TIMEOUT: an OK the
        PLC can no longer use on time is never shown as OK.
        """
        deadline: int | None = None
        if not self._presented and self._queue:
            head = self._queue[0]
            self._result_seq = next_seq(self._result_seq)
            self._presented = True
            verdict = head.verdict
            if now_ns > head.deadline_ns and verdict == PlcVerdict.OK:
                verdict = PlcVerdict.NG_TIMEOUT
            self._shown = ResultBlock(
                result_seq=self._result_seq,
                result_trigger_seq=head.trigger_seq,
                result_part_id=head.part_id,
                verdict=verdict,
                defect_code=head.defect_code,
                cycle_time=head.cycle_time,
            )
            deadline = head.deadline_ns
        block = replace(
            self._shown,
            trigger_ack_seq=self._trigger_ack_seq,
            missed_triggers=self.missed_triggers,
            pending_results=len(self._queue),
            config_crc=self.config_crc,
        )
        return block.encode(), deadline

    # ------------------------------------------------------------------- status
    def error_code(self, app_error: int = 0) -> int:
        if not self.recipe_ok:
            return ERR_UNKNOWN_RECIPE
        return self.latched_error or app_error

    def state(self, app_state: int = State.READY) -> int:
        """STATE: a link fault wins; then offline (ENABLE=0); busy while parts are open."""
        if self.error_code() or app_state == State.FAULT:
            return State.FAULT
        if not self.enabled or app_state == State.OFFLINE:
            return State.OFFLINE
        if app_state == State.READY and (self._in_flight or self._queue):
            return State.BUSY
        return int(app_state)

    def tick_heartbeat(self, progress: int) -> int:
        """Advance VISION_HEARTBEAT if the pipeline made progress or has nothing to do.

        Called every 100 ms. A pipeline with parts in flight that finished none since
        the last tick is stuck: the heartbeat stops and the PLC alarms.
        """
        if progress != self._last_progress or not self._in_flight:
            self.vision_heartbeat = (self.vision_heartbeat + 1) & 0xFFFF
        self._last_progress = progress
        return self.vision_heartbeat

    def status_words(self, app_state: int = State.READY, app_error: int = 0) -> list[int]:
        """Words for offsets 0..2: VISION_HEARTBEAT, STATE, ERROR_CODE."""
        return [self.vision_heartbeat, self.state(app_state), self.error_code(app_error)]
