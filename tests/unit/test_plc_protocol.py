"""The pure PLC logic: map and CRC (protocol.py), handshake (handshake.py), the
simulator's PLC program (plc_program.py)."""

from __future__ import annotations

import pytest

from inspector.errors import PlcProtocolError
from inspector.plc.handshake import Handshake, LinkTotals
from inspector.plc.protocol import (
    ERR_RESULT_OVERFLOW,
    ERR_UNKNOWN_RECIPE,
    RESULT_LEN,
    Command,
    PlcInputs,
    ResultBlock,
    State,
    TriggerSlot,
    block_a_len,
    crc16_bytes,
    crc16_modbus,
    split_u32,
)
from inspector.plc.results import OVERFLOW_HOLD_NS
from inspector.seq import next_seq, seq_distance, seq_of_count
from inspector.sim.plc_program import PlcModel
from inspector.types import PartResult, PlcVerdict, Reason, Trigger, Verdict, ng

MS = 1_000_000
RING = 4


def inputs(
    seq: int = 0,
    *,
    hb: int = 1,
    part_id: int = 0,
    ack: int = 0,
    clock: int = 0,
    slots: dict[int, tuple[int, int]] | None = None,
    **kw: int,
) -> PlcInputs:
    """Block A with TRIGGER_SEQ ``seq``; the ring holds ``seq`` → (``part_id``, clock)
    unless ``slots`` (seq → (part_id, t_ms)) says what it holds."""
    if slots is None:
        slots = {seq: (part_id, clock)} if seq else {}
    ring = [TriggerSlot(s, pid, t) for s, (pid, t) in slots.items()]
    ring += [TriggerSlot(0, 0, 0)] * (RING - len(ring))
    base: dict[str, object] = dict(
        plc_heartbeat=hb,
        enable=True,
        trigger_seq=seq,
        part_id=part_id,
        recipe_id=1,
        result_ack_seq=ack,
        command=0,
        command_seq=0,
        plc_clock=clock,
        ring=tuple(ring),
    )
    base.update(kw)
    return PlcInputs(**base)  # type: ignore[arg-type]


def result(
    seq: int, part_id: int, *, ok: bool = True, t: int = 0, budget: int = 30 * MS
) -> PartResult:
    trig = Trigger(seq, part_id, t_trigger_ns=t, deadline_ns=t + budget, source="plc")
    verdict = Verdict(ok=True, reason=Reason.OK) if ok else ng(Reason.DEFECT)
    return PartResult(trigger=trig, verdict=verdict, t_verdict_ns=t + 2 * MS)


def synced(seq: int = 10, *, budget_ms: int = 30, drops: list[str] | None = None) -> Handshake:
    hs = Handshake(
        result_queue=3,
        config_crc=0x1234,
        budget_ns=budget_ms * MS,
        on_drop=(drops.append if drops is not None else lambda reason: None),
    )
    step = hs.on_inputs(inputs(seq, slots={}), 0)
    assert step.resynced and not step.parts and step.unseen == 0
    return hs


# ------------------------------------------------------------------- encoding
def test_crc16_modbus_check_value_and_word_order() -> None:
    assert crc16_bytes(b"123456789") == 0x4B37
    words = [0x0102, 0xA0FF, 0x0000]
    assert crc16_modbus(words) == crc16_bytes(bytes([1, 2, 0xA0, 0xFF, 0, 0]))


def test_part_id_is_big_endian_word_order() -> None:
    assert split_u32(0x12345678) == (0x1234, 0x5678)
    inp = inputs(5, part_id=0x12345678, clock=777)
    words = inp.encode()
    assert len(words) == block_a_len(RING) and words[3:5] == [0x1234, 0x5678]
    assert words[9] == 777 and words[10:14] == [5, 0x1234, 0x5678, 777]  # clock, slot 0
    assert PlcInputs.decode(words) == inp


@pytest.mark.parametrize(
    "words",
    [[], [0] * 9, [0] * 13, [0] * 15, [0] * 13 + [70000], [-1] * 14],
    ids=["empty", "old-9-word-map", "no-slot", "half-slot", "over-16-bit", "negative"],
)
def test_block_a_that_is_not_one_is_a_protocol_error(words: list[int]) -> None:
    with pytest.raises(PlcProtocolError):
        PlcInputs.decode(words)


def test_result_block_round_trip_and_check() -> None:
    block = ResultBlock(7, 9, 7, 0xDEADBEEF, PlcVerdict.NG, 3, 123, 2, 1, 0xBEEF)
    words = block.encode()
    assert len(words) == RESULT_LEN and words[-1] == crc16_modbus(words[:-1])
    assert ResultBlock.decode(words) == block
    torn = [*words]
    torn[5] ^= 1  # a verdict changed without the CHECK: a half-updated block
    with pytest.raises(PlcProtocolError, match="CHECK"):
        ResultBlock.decode(torn)


def test_sequences_skip_zero_and_wrap() -> None:
    assert next_seq(65535) == 1 and next_seq(0) == 1 and next_seq(41) == 42
    assert seq_distance(65535, 1) == 1
    assert seq_distance(10, 13) == 3
    assert seq_distance(10, 9) > 32767


# ------------------------------------------------------------------ triggers
def test_connect_adopts_current_trigger_seq() -> None:
    hs = synced(500)  # TRIGGER_SEQ already 500: that part is stale, never processed
    assert hs.on_inputs(inputs(500), MS).parts == []
    step = hs.on_inputs(inputs(501, part_id=77), 2 * MS)
    assert [(p.trigger_seq, p.part_id) for p in step.parts] == [(501, 77)]


def test_parts_raised_while_the_link_was_away_are_counted_unseen() -> None:
    totals = LinkTotals()
    first = Handshake(totals, budget_ns=30 * MS)
    # At the first sync, a part raised 5 ms ago is live and adopted (lost to us); one
    # raised 40 ms ago was past its budget before the daemon came.
    step = first.on_inputs(inputs(8, clock=100, slots={7: (7, 60), 8: (8, 95)}), 0)
    assert step.resynced and step.parts == [] and step.unseen == 1
    first.on_inputs(inputs(9, clock=101, slots={9: (9, 101)}), MS)
    # The connection drops; the next one finds TRIGGER_SEQ 14: 10..14 went by unseen.
    second = Handshake(totals, budget_ns=30 * MS)
    step = second.on_inputs(inputs(14, clock=200, slots={14: (14, 199)}), 2 * MS)
    assert step.resynced and step.parts == [] and step.unseen == 5
    # A PLC that restarted meanwhile counts from 1: its 3 parts went by unseen.
    third = Handshake(totals, budget_ns=30 * MS)
    assert third.on_inputs(inputs(3, hb=1), 3 * MS).unseen == 3
    assert totals.missed_triggers == 1 + 5 + 3


def test_a_late_read_finds_every_part_in_the_ring() -> None:
    """Three parts raised between two reads (a busy host): all three are taken, each
    with its age on the PLC clock."""
    hs = synced(10)
    ring = {11: (111, 1000), 12: (112, 1005), 13: (113, 1012)}
    step = hs.on_inputs(inputs(13, clock=1015, slots=ring), 50 * MS)
    assert [(p.trigger_seq, p.part_id, p.age_ns) for p in step.parts] == [
        (11, 111, 15 * MS),
        (12, 112, 10 * MS),
        (13, 113, 3 * MS),
    ]
    assert step.missed == step.late == 0 and hs.totals.missed_triggers == 0
    assert ResultBlock.decode(hs.result_words(MS)).trigger_ack_seq == 13


def test_parts_no_longer_in_the_ring_are_missed_and_the_rest_taken() -> None:
    hs = synced(10)
    ring = {s: (s * 10, 0) for s in (13, 14, 15, 16)}  # 11, 12 overwritten (ring of 4)
    step = hs.on_inputs(inputs(16, slots=ring), MS)
    assert [p.trigger_seq for p in step.parts] == [13, 14, 15, 16]
    assert step.missed == 2 and hs.totals.missed_triggers == 2
    assert ResultBlock.decode(hs.result_words(MS)).missed_triggers == 2


def test_jump_without_ring_slots_counts_missed_triggers_and_takes_the_last() -> None:
    hs = synced(10)
    step = hs.on_inputs(inputs(14, part_id=99), MS)  # only slot 14 written
    assert [p.trigger_seq for p in step.parts] == [14]
    assert step.missed == 3 and hs.totals.missed_triggers == 3
    words = hs.result_words(MS)
    assert words[8] == 3 and words[0] == 14  # MISSED_TRIGGERS, TRIGGER_ACK_SEQ


def test_a_part_seen_after_its_deadline_is_late_and_never_taken() -> None:
    hs = synced(10, budget_ms=30)
    ring = {11: (111, 100), 12: (112, 125)}
    step = hs.on_inputs(inputs(12, clock=131, slots=ring), MS)  # ages 31 ms and 6 ms
    assert [p.trigger_seq for p in step.parts] == [12]
    assert step.late == 1 and hs.totals.missed_triggers == 1


def test_ring_ages_wrap_with_the_16_bit_clock_and_never_go_negative() -> None:
    hs = synced(10, budget_ms=30)
    step = hs.on_inputs(inputs(12, clock=5, slots={11: (1, 65530), 12: (2, 7)}), MS)
    assert [(p.trigger_seq, p.age_ns) for p in step.parts] == [(11, 11 * MS), (12, 0)]


def test_a_wrong_part_in_a_slot_is_never_taken_for_its_seq() -> None:
    hs = synced(10)
    step = hs.on_inputs(inputs(12, slots={12: (5, 0), 7: (4, 0)}), MS)  # 11 not there
    assert [(p.trigger_seq, p.part_id) for p in step.parts] == [(12, 5)] and step.missed == 1


@pytest.mark.parametrize("new_seq", [9, 0, 5000 + 40000])
def test_backward_step_or_reset_resyncs_without_a_part(new_seq: int) -> None:
    hs = synced(5000)
    step = hs.on_inputs(inputs(new_seq), MS)
    assert step.resynced and step.parts == []
    assert hs.on_inputs(inputs(next_seq(new_seq), part_id=1), 2 * MS).parts


def test_restarted_heartbeat_resyncs() -> None:
    hs = synced(10)
    hs.on_inputs(inputs(10, hb=500), MS)
    step = hs.on_inputs(inputs(11, hb=3), 2 * MS)  # heartbeat went back: PLC restarted
    assert step.resynced and step.parts == []


def test_silent_heartbeat_stops_processing_until_it_moves() -> None:
    hs = synced(10)
    assert hs.on_inputs(inputs(11, hb=1, part_id=1), 500 * MS).parts
    step = hs.on_inputs(inputs(12, hb=1), 1600 * MS)  # silent > 1 s
    assert step.parts == [] and not hs.synced
    assert hs.on_inputs(inputs(13, hb=2), 1601 * MS).parts == []  # adopts 13
    assert hs.on_inputs(inputs(14, hb=2, part_id=2), 1602 * MS).parts


def test_disabled_line_is_offline_and_readopts_on_enable() -> None:
    hs = synced(10)
    assert hs.on_inputs(inputs(11, enable=False), MS).parts == []
    assert hs.state() == State.OFFLINE
    assert hs.on_inputs(inputs(12, enable=True), 2 * MS).parts == []
    assert hs.on_inputs(inputs(13, enable=True, part_id=3), 3 * MS).parts


# ------------------------------------------------------------------- results
def test_results_are_presented_one_at_a_time_until_acknowledged() -> None:
    hs = synced(10)
    hs.on_inputs(inputs(11, part_id=111), MS)
    hs.on_inputs(inputs(12, part_id=112), MS)
    assert hs.on_result(result(11, 111), 2 * MS) and hs.on_result(result(12, 112, ok=False), 2 * MS)
    first = ResultBlock.decode(hs.result_words(3 * MS))
    assert (first.result_seq, first.result_trigger_seq, first.result_part_id) == (1, 11, 111)
    assert first.verdict == PlcVerdict.OK and first.pending_results == 2
    assert first.config_crc == 0x1234
    assert ResultBlock.decode(hs.result_words(3 * MS)).result_seq == 1  # waits for the ack
    hs.on_inputs(inputs(12, ack=1), 4 * MS)
    second = ResultBlock.decode(hs.result_words(4 * MS))
    assert (second.result_seq, second.result_part_id, second.verdict) == (2, 112, PlcVerdict.NG)


def test_result_for_an_unknown_or_stale_part_is_never_written() -> None:
    drops: list[str] = []
    hs = synced(10, drops=drops)
    hs.on_inputs(inputs(11, part_id=111), MS)
    assert not hs.on_result(result(11, 999), MS)  # wrong part id
    hs.on_inputs(inputs(3), 2 * MS)  # PLC reset: resync
    assert not hs.on_result(result(11, 111), MS)  # from before the resync
    assert ResultBlock.decode(hs.result_words(3 * MS)).result_seq == 0
    assert drops == ["stale", "stale"]


def test_a_result_past_its_deadline_is_skipped_not_shown() -> None:
    """Waiting behind an unacknowledged one, result 12 passes its deadline: the PLC has
    rejected that part already, so the next live result (13) is shown in its place."""
    drops: list[str] = []
    hs = synced(10, drops=drops)
    for seq in (11, 12, 13):
        hs.on_inputs(inputs(seq, part_id=seq), 0)
    hs.on_result(result(11, 11, t=0), MS)
    hs.on_result(result(12, 12, t=0, budget=30 * MS), MS)
    hs.on_result(result(13, 13, t=0, budget=90 * MS), MS)
    assert ResultBlock.decode(hs.result_words(MS)).result_trigger_seq == 11
    hs.on_inputs(inputs(13, ack=1), 40 * MS)  # acknowledged only after 12's deadline
    shown = ResultBlock.decode(hs.result_words(40 * MS))
    assert (shown.result_seq, shown.result_trigger_seq) == (2, 13)
    assert drops == ["late"] and hs.live_results(40 * MS) == 1


def test_a_late_result_with_nothing_on_time_behind_it_goes_out_late_an_ok_as_timeout() -> None:
    late_oks: list[None] = []
    hs = Handshake(budget_ns=30 * MS, on_late_ok=lambda: late_oks.append(None))
    hs.on_inputs(inputs(10, slots={}), 0)
    hs.on_inputs(inputs(11, part_id=5), 0)
    hs.on_result(result(11, 5, t=0, budget=30 * MS), MS)
    block = ResultBlock.decode(hs.result_words(31 * MS))
    assert (block.result_seq, block.verdict) == (1, PlcVerdict.NG_TIMEOUT)
    assert len(late_oks) == 1


def test_a_shown_result_stays_until_acknowledged_even_past_its_deadline() -> None:
    hs = synced(10)
    hs.on_inputs(inputs(11, part_id=5), 0)
    hs.on_result(result(11, 5, t=0, budget=30 * MS), MS)
    assert ResultBlock.decode(hs.result_words(2 * MS)).verdict == PlcVerdict.OK
    block = ResultBlock.decode(hs.result_words(31 * MS))  # the PLC judges the deadline
    assert (block.result_seq, block.verdict) == (1, PlcVerdict.OK)
    assert hs.live_results(31 * MS) == 0  # nothing owed: drain need not wait for it


def test_overflow_is_a_visible_fault_that_clears_itself_once_the_backlog_drains() -> None:
    drops: list[str] = []
    hs = synced(10, budget_ms=1000, drops=drops)
    for i in range(4):
        hs.on_inputs(inputs(11 + i, part_id=i), MS)
    assert all(hs.on_result(result(11 + i, i, budget=1000 * MS), MS) for i in range(3))
    assert not hs.on_result(result(14, 3, budget=1000 * MS), MS)  # queue of 3 is full
    assert drops == ["overflow"]
    assert hs.state() == State.FAULT and hs.error_code() == ERR_RESULT_OVERFLOW
    assert hs.status_words()[1:] == [State.FAULT, ERR_RESULT_OVERFLOW]
    now = 2 * MS
    for ack in (1, 2, 3):  # the PLC consumes the backlog; no COMMAND 1
        assert ResultBlock.decode(hs.result_words(now)).result_seq == ack
        assert hs.error_code() == ERR_RESULT_OVERFLOW  # still draining
        hs.on_inputs(inputs(14, ack=ack), now)
        now += MS
    assert hs.pending == 0 and hs.error_code() == ERR_RESULT_OVERFLOW  # shown long enough
    hs.on_inputs(inputs(14, ack=3), MS + OVERFLOW_HOLD_NS)
    assert hs.error_code() == 0 and hs.state() == State.READY


def test_overflow_can_still_be_cleared_by_command() -> None:
    hs = synced(10, budget_ms=1000)
    for i in range(4):
        hs.on_inputs(inputs(11 + i, part_id=i), MS)
        hs.on_result(result(11 + i, i, budget=1000 * MS), MS)
    assert hs.error_code() == ERR_RESULT_OVERFLOW
    step = hs.on_inputs(inputs(14, command=Command.CLEAR_FAULT, command_seq=1), 2 * MS)
    assert step.clear_fault and hs.error_code() == 0


def test_result_seq_wraps_and_skips_zero() -> None:
    hs = synced(10)
    hs.totals.results.last = 65535
    hs.on_inputs(inputs(11, part_id=1), MS)
    hs.on_result(result(11, 1), MS)
    assert ResultBlock.decode(hs.result_words(MS)).result_seq == 1


@pytest.mark.parametrize("consumed", [True, False])
def test_a_result_whose_write_got_no_answer_is_settled_by_the_next_connection(
    consumed: bool,
) -> None:
    totals = LinkTotals()
    drops: list[str] = []
    old = Handshake(totals, budget_ns=30 * MS, on_drop=drops.append)
    old.on_inputs(inputs(10), 0)
    old.on_inputs(inputs(11, part_id=111), MS)
    old.on_result(result(11, 111), MS)
    assert ResultBlock.decode(old.result_words(MS)).result_seq == 1  # its FC16 timed out
    old.close("link_down")
    assert drops == [] and totals.results.unconfirmed == 1
    new = Handshake(totals, budget_ns=30 * MS, on_drop=drops.append)
    new.on_inputs(inputs(11, ack=1 if consumed else 0), 2 * MS)
    assert drops == ([] if consumed else ["link_down"]) and totals.results.unconfirmed == 0


def test_withdrawn_part_is_counted_and_never_answered() -> None:
    hs = synced(10)
    hs.on_inputs(inputs(11, part_id=1), MS)
    hs.withdraw(11)
    assert hs.in_flight == 0 and hs.totals.missed_triggers == 1
    assert not hs.on_result(result(11, 1), MS)


# -------------------------------------------------------------- recipe, status
def test_recipe_change_and_reload_command_call_the_hook() -> None:
    hs = synced(10)
    assert hs.on_inputs(inputs(10, recipe_id=2), MS).recipe_changed
    assert not hs.on_inputs(inputs(10, recipe_id=2), MS).recipe_changed
    step = hs.on_inputs(inputs(10, recipe_id=2, command=Command.RELOAD_RECIPE, command_seq=1), MS)
    assert step.recipe_changed
    hs.totals.recipe_ok = False
    assert hs.error_code() == ERR_UNKNOWN_RECIPE and hs.state() == State.FAULT


def test_busy_while_parts_are_open() -> None:
    hs = synced(10)
    assert hs.state(State.READY) == State.READY
    hs.on_inputs(inputs(11, part_id=1), MS)
    assert hs.state(State.READY) == State.BUSY
    assert hs.state(State.BOOT) == State.BOOT


def test_vision_heartbeat_stops_when_a_part_makes_no_progress() -> None:
    hs = synced(10)
    assert [hs.tick_heartbeat(0) for _ in range(2)] == [1, 2]  # idle and healthy
    hs.on_inputs(inputs(11, part_id=1), MS)
    assert hs.tick_heartbeat(0) == 2  # a part in flight, no progress: stuck
    assert hs.tick_heartbeat(1) == 3  # progress again


def test_a_new_connection_inherits_no_part_and_no_result() -> None:
    """The link builds one Handshake per connection; only LinkTotals carry over."""
    totals = LinkTotals()
    old = Handshake(totals, budget_ns=30 * MS)
    old.on_inputs(inputs(10), 0)
    old.on_inputs(inputs(11, part_id=111), MS)
    old.on_result(result(11, 111), MS)
    assert ResultBlock.decode(old.result_words(MS)).result_seq == 1
    old.result_written()
    # The link dropped; the PLC restarted with TRIGGER_SEQ 0 and (from a former life)
    # RESULT_ACK_SEQ 2.
    old.close("link_down")  # the write of result 1 was answered: it reached the PLC
    assert totals.results.unconfirmed == 0
    new = Handshake(totals, budget_ns=30 * MS)
    assert not new.on_result(result(11, 111), 2 * MS)  # a part of the old connection
    new.on_inputs(inputs(0, hb=1, ack=2), 2 * MS)
    block = ResultBlock.decode(new.result_words(2 * MS))
    assert (block.result_seq, block.result_part_id, block.verdict) == (0, 0, PlcVerdict.NONE)
    new.on_inputs(inputs(1, hb=2, part_id=5, ack=2), 3 * MS)
    new.on_result(result(1, 5), 3 * MS)
    assert ResultBlock.decode(new.result_words(3 * MS)).result_seq == 3  # not 2: pre-acked


# ------------------------------------------------- the simulator's PLC program
def test_sim_plc_fifo_classifies_every_verdict() -> None:
    plc = PlcModel(deadline_ms=30, first_part_id=100)
    stale = ResultBlock(result_seq=9, result_trigger_seq=77, result_part_id=5, verdict=1)
    plc.on_result_words(stale.encode(), 0)  # shown before this PLC started: adopted
    assert plc.inputs.result_ack_seq == 9 and plc.counts.results == 0
    plc.trigger(0, 3)  # parts 100, 101, 102 (seq 1..3) in one scan, each in its slot
    assert [(s.seq, s.part_id) for s in plc.inputs.ring[:3]] == [(1, 100), (2, 101), (3, 102)]

    def show(seq: int, trig: int, part: int, verdict: int, t: int) -> None:
        block = ResultBlock(
            result_seq=seq, result_trigger_seq=trig, result_part_id=part, verdict=verdict
        )
        plc.on_result_words(block.encode(), t)

    show(10, 2, 101, 1, 5 * MS)  # part 100 ahead of it got nothing: missed
    show(11, 3, 999, 1, 6 * MS)  # wrong part id: mismatched
    plc.trigger(10 * MS)
    show(12, 4, 103, 1, 50 * MS)  # after its deadline: late
    torn = ResultBlock(result_seq=13).encode()
    torn[2] ^= 1
    plc.on_result_words(torn, 51 * MS)  # bad CHECK: ignored, read again
    c = plc.counts
    assert (c.ok, c.missed, c.mismatched, c.late, c.bad_check) == (1, 1, 1, 1, 1)
    assert plc.answers == {101: 1} and plc.inputs.result_ack_seq == 12


def test_seq_of_count_wraps_like_next_seq() -> None:
    """The internal trigger and replay count with the same ring as the PLC: 0 never occurs."""
    seq = 0
    for n in range(1, 3 * 65535 + 5):
        seq = next_seq(seq)
        assert seq_of_count(n) == seq
    assert seq_of_count(65535) == 65535 and seq_of_count(65536) == 1


def test_backoff_first_retry_short_doubles_capped_with_jitter() -> None:
    import random

    from inspector.backoff import Backoff

    b = Backoff(0.05, 1.0, jitter=0.2, rng=random.Random(7))
    delays = [b.next() for _ in range(8)]
    bases = [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    for d, base in zip(delays, bases, strict=True):
        assert base * 0.8 <= d <= base * 1.2
    assert len(set(delays)) == len(delays)  # jittered, not lock-step
    b.reset()
    assert 0.04 <= b.next() <= 0.06
