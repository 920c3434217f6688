"""The PLC program of the simulator: block A, the per-part FIFO, the checks.

Where it sits: it stands in for the line's PLC at both ends of the flow (it raises the
trigger and judges the verdict). Pure logic with the clock passed in, so the same
program runs inside ``sim.PlcSimulator`` (pymodbus), inside the tests against
pyModbusTCP, and in unit tests. It does what docs/plc.md asks of a real PLC program:
a part passes only on an on-time, matching OK with a valid CHECK.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from inspector.errors import PlcProtocolError
from inspector.plc.protocol import DEFAULT_RING, PlcInputs, ResultBlock, TriggerSlot
from inspector.seq import next_seq
from inspector.types import PlcVerdict


@dataclass
class Counts:
    """What the PLC saw. ``mismatched`` is any verdict it could not trust (wrong part,
    bad CHECK, unknown sequence, invalid verdict): the one count that must stay 0."""

    triggered: int = 0
    ok: int = 0
    ng: int = 0
    missed: int = 0  # no verdict by the deadline: rejected by the PLC
    late: int = 0  # a verdict that came after the deadline: rejected by the PLC
    mismatched: int = 0
    results: int = 0
    bad_check: int = 0  # reads whose CHECK did not match: ignored, read again
    forgotten: int = 0  # parts in the FIFO when the program restarted (rejected)
    verdicts: dict[int, int] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"triggered={self.triggered} ok={self.ok} ng={self.ng} missed={self.missed} "
            f"late={self.late} mismatched={self.mismatched}"
        )


def clock_ms(now_ns: int) -> int:
    """The PLC's free-running millisecond clock (PLC_CLOCK, T_MS): 16 bits, wrapping."""
    return (now_ns // 1_000_000) & 0xFFFF


class PlcModel:
    """The PLC's side of the handshake: block A, the FIFO of pending parts, the checks."""

    def __init__(
        self,
        *,
        deadline_ms: float,
        first_part_id: int = 1,
        recipe_id: int = 1,
        ring: int = DEFAULT_RING,
    ) -> None:
        self.deadline_ns = int(deadline_ms * 1e6)
        self.ring_len = ring
        self.inputs = self._zeroed(recipe_id)
        self.next_part_id = first_part_id
        self.ack_results = True  # False: stop consuming results (the queue fills up)
        self.shown_words: list[int] | None = None  # block B offsets 3..14 as last seen
        self.beating = True  # False: PLC_HEARTBEAT freezes (a stalled PLC program)
        self.counts = Counts()
        self.fifo: OrderedDict[int, tuple[int, int]] = OrderedDict()  # seq -> (part_id, t_ns)
        self.expired: OrderedDict[int, int] = OrderedDict()  # seq -> part_id, for "late"
        self.last_result_seq = 0
        self.adopted = False  # the first valid block read is adopted, never acted on
        self.last_block: ResultBlock | None = None
        self.status: list[int] = [0, 0, 0]
        self.answers: OrderedDict[int, int] = OrderedDict()  # part_id -> verdict on time
        self.recipe_of: OrderedDict[int, int] = OrderedDict()  # part_id -> RECIPE_ID then
        self.pending_recipe: int | None = None
        self.result_times: deque[int] = deque(maxlen=100_000)  # on-time verdicts (ns)

    def _zeroed(self, recipe_id: int) -> PlcInputs:
        empty = TriggerSlot(0, 0, 0)
        return PlcInputs(
            plc_heartbeat=0,
            enable=True,
            trigger_seq=0,
            part_id=0,
            recipe_id=recipe_id,
            result_ack_seq=0,
            command=0,
            command_seq=0,
            plc_clock=0,
            ring=(empty,) * self.ring_len,
        )

    def _set(self, **kw: Any) -> None:
        self.inputs = dataclasses.replace(self.inputs, **kw)

    def tick(self, now_ns: int) -> None:
        """Every scan: PLC_CLOCK follows the PLC's millisecond clock."""
        self._set(plc_clock=clock_ms(now_ns))

    def beat(self) -> None:
        if self.beating:
            self._set(plc_heartbeat=(self.inputs.plc_heartbeat + 1) & 0xFFFF)

    def trigger(self, now_ns: int, n: int = 1) -> None:
        """Raise ``n`` parts in one scan (n = 2: a double trigger); each gets its slot."""
        for _ in range(n):
            self._raise(now_ns, in_ring=True)

    def jump(self, now_ns: int, n: int) -> None:
        """TRIGGER_SEQ jumps by ``n``: parts on the line whose slots the vision never sees
        (a PLC program that skips ring writes); only the last one is in the ring."""
        for k in range(n):
            self._raise(now_ns, in_ring=k == n - 1)

    def _raise(self, now_ns: int, *, in_ring: bool) -> None:
        seq = next_seq(self.inputs.trigger_seq)
        part_id = self.next_part_id & 0xFFFFFFFF
        self.fifo[seq] = (part_id, now_ns)
        self.recipe_of[part_id] = self.inputs.recipe_id
        if len(self.recipe_of) > 100_000:
            self.recipe_of.popitem(last=False)
        self.counts.triggered += 1
        self.next_part_id += 1
        ring = self.inputs.ring
        if in_ring:
            slot = (seq - 1) % self.ring_len  # any ring order works: the slot names its SEQ
            ring = (*ring[:slot], TriggerSlot(seq, part_id, clock_ms(now_ns)), *ring[slot + 1 :])
        self._set(trigger_seq=seq, part_id=part_id, ring=ring, plc_clock=clock_ms(now_ns))

    def restart(self) -> None:
        """The PLC program restarts: registers zeroed, its FIFO of pending parts lost
        (those parts are rejected), the next block B adopted unread (docs/plc.md)."""
        self.counts.forgotten += len(self.fifo)
        self.fifo.clear()
        self.expired.clear()
        self.inputs = self._zeroed(self.inputs.recipe_id)
        self.last_result_seq = 0
        self.adopted = False
        self.last_block = None
        self.shown_words = None  # its block B was zeroed
        self.status = [0, 0, 0]

    def command(self, code: int) -> None:
        self._set(command=code, command_seq=next_seq(self.inputs.command_seq))

    def pause_acks(self) -> None:
        """Stop consuming results (a stalled PLC program: neither acted on nor
        acknowledged): the vision's result queue fills up."""
        self.ack_results = False

    def resume_acks(self, now_ns: int) -> None:
        """Consume results again, starting with the one shown now."""
        self.ack_results = True
        if self.shown_words is not None:
            self.on_result_words(self.shown_words, now_ns)

    def select_recipe(self, recipe_id: int) -> None:
        """Ask for a recipe switch; it is written by ``apply_recipe`` between two parts."""
        self.pending_recipe = recipe_id

    def apply_recipe(self) -> None:
        """Write a pending RECIPE_ID once the vision has echoed the last trigger
        (TRIGGER_ACK_SEQ == TRIGGER_SEQ), so that no part already raised can be
        inspected with the new recipe (docs/plc.md, "Recipes")."""
        if self.pending_recipe is None:
            return
        acked = self.last_block.trigger_ack_seq if self.last_block is not None else 0
        if self.inputs.trigger_seq in (0, acked):
            self._set(recipe_id=self.pending_recipe)
            self.pending_recipe = None

    def expire(self, now_ns: int) -> None:
        """Parts past their deadline leave the FIFO unanswered: rejected (missed)."""
        while self.fifo:
            seq, (part_id, t) = next(iter(self.fifo.items()))
            if now_ns - t <= self.deadline_ns:
                break
            del self.fifo[seq]
            self._expire_one(seq, part_id)

    def _expire_one(self, seq: int, part_id: int) -> None:
        self.counts.missed += 1
        self.expired[seq] = part_id
        while len(self.expired) > 4096:
            self.expired.popitem(last=False)

    def on_result_words(self, words: list[int], now_ns: int) -> None:
        """Check one read (or write) of block B offsets 3..14 and match it to a part."""
        self.shown_words = words
        if not self.ack_results:
            return  # paused: the result stays shown, unread
        try:
            block = ResultBlock.decode(words)
        except PlcProtocolError:
            # Half-updated, corrupt, or not written yet (all zeros): ignore this read and
            # read again next scan, as the PLC program must (docs/plc.md).
            self.counts.bad_check += 1
            return
        self.last_block = block
        if not self.adopted:
            # PLC start: whatever result the vision shows now belongs to before us
            # (a daemon serving since before this PLC program ran). Consume it unread.
            self.adopted = True
            self.last_result_seq = block.result_seq
            self._set(result_ack_seq=block.result_seq)
            return
        if block.result_seq in (0, self.last_result_seq):
            return  # nothing new (trigger ack or counters only)
        self.last_result_seq = block.result_seq
        self._set(result_ack_seq=block.result_seq)
        self.counts.results += 1
        self._match(block, now_ns)

    def _match(self, block: ResultBlock, now_ns: int) -> None:
        seq, part_id, verdict = block.result_trigger_seq, block.result_part_id, block.verdict
        if verdict not in (1, 2, 3, 4, 5):
            self.counts.mismatched += 1
            return
        if seq in self.fifo:
            # Parts ahead of this one in the FIFO will never get a verdict: reject them.
            while (head := next(iter(self.fifo))) != seq:
                self._expire_one(head, self.fifo.pop(head)[0])
            want, t = self.fifo.pop(seq)
            if want != part_id:
                self.counts.mismatched += 1
            elif now_ns - t > self.deadline_ns:
                self.counts.late += 1
            else:
                self.counts.verdicts[verdict] = self.counts.verdicts.get(verdict, 0) + 1
                self.answers[part_id] = verdict
                self.result_times.append(now_ns)
                if len(self.answers) > 100_000:
                    self.answers.popitem(last=False)
                if verdict == PlcVerdict.OK:
                    self.counts.ok += 1
                else:
                    self.counts.ng += 1
        elif self.expired.get(seq) == part_id:
            del self.expired[seq]
            self.counts.missed -= 1
            self.counts.late += 1
        else:
            self.counts.mismatched += 1  # a verdict for a part this PLC never triggered
