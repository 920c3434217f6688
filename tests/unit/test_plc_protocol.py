"""The pure PLC logic: map and CRC (protocol.py), handshake (handshake.py), the
simulator's PLC program (plc_program.py)."""

from __future__ import annotations

import pytest

from inspector.plc.handshake import Handshake
from inspector.plc.protocol import (
    BLOCK_A_LEN,
    ERR_RESULT_OVERFLOW,
    ERR_UNKNOWN_RECIPE,
    RESULT_LEN,
    Command,
    PlcInputs,
    ResultBlock,
    State,
    crc16_bytes,
    crc16_modbus,
    split_u32,
)
from inspector.seq import next_seq, seq_distance, seq_of_count
from inspector.sim.plc_program import PlcModel
from inspector.types import PartResult, PlcVerdict, Reason, Trigger, Verdict, ng

MS = 1_000_000


def inputs(seq: int = 0, *, hb: int = 1, part_id: int = 0, ack: int = 0, **kw: int) -> PlcInputs:
    base: dict[str, int | bool] = dict(
        plc_heartbeat=hb,
        enable=True,
        trigger_seq=seq,
        part_id=part_id,
        recipe_id=1,
        result_ack_seq=ack,
        command=0,
        command_seq=0,
    )
    base.update(kw)
    return PlcInputs(**base)


def result(
    seq: int, part_id: int, *, ok: bool = True, t: int = 0, budget: int = 30 * MS
) -> PartResult:
    trig = Trigger(seq, part_id, t_trigger_ns=t, deadline_ns=t + budget, source="plc")
    verdict = Verdict(ok=True, reason=Reason.OK) if ok else ng(Reason.DEFECT)
    return PartResult(trigger=trig, verdict=verdict, t_verdict_ns=t + 2 * MS)


def synced(seq: int = 10) -> Handshake:
    hs = Handshake(result_queue=3, config_crc=0x1234)
    step = hs.on_inputs(inputs(seq), 0)
    assert step.resynced and not step.parts
    return hs


# ------------------------------------------------------------------- encoding
def test_crc16_modbus_check_value_and_word_order() -> None:
    assert crc16_bytes(b"123456789") == 0x4B37
    words = [0x0102, 0xA0FF, 0x0000]
    assert crc16_modbus(words) == crc16_bytes(bytes([1, 2, 0xA0, 0xFF, 0, 0]))


def test_part_id_is_big_endian_word_order() -> None:
    assert split_u32(0x12345678) == (0x1234, 0x5678)
    words = inputs(5, part_id=0x12345678).encode()
    assert len(words) == BLOCK_A_LEN and words[3:5] == [0x1234, 0x5678]
    assert PlcInputs.decode(words).part_id == 0x12345678


def test_result_block_round_trip_and_check() -> None:
    block = ResultBlock(7, 9, 7, 0xDEADBEEF, PlcVerdict.NG, 3, 123, 2, 1, 0xBEEF)
    words = block.encode()
    assert len(words) == RESULT_LEN and words[-1] == crc16_modbus(words[:-1])
    assert ResultBlock.decode(words) == block
    torn = [*words]
    torn[5] ^= 1  # a verdict changed without the CHECK: a half-updated block
    with pytest.raises(ValueError, match="CHECK"):
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


def test_jump_counts_missed_triggers_and_processes_the_last() -> None:
    hs = synced(10)
    step = hs.on_inputs(inputs(14, part_id=99), MS)
    assert [p.trigger_seq for p in step.parts] == [14]
    assert hs.missed_triggers == 3
    words, _ = hs.result_words(MS)
    assert words[8] == 3 and words[0] == 14  # MISSED_TRIGGERS, TRIGGER_ACK_SEQ


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
    assert hs.on_inputs(inputs(11, hb=1), 500 * MS).parts
    step = hs.on_inputs(inputs(12, hb=1), 1600 * MS)  # silent > 1 s
    assert step.parts == [] and not hs.synced
    assert hs.on_inputs(inputs(13, hb=2), 1601 * MS).parts == []  # adopts 13
    assert hs.on_inputs(inputs(14, hb=2), 1602 * MS).parts


def test_disabled_line_is_offline_and_readopts_on_enable() -> None:
    hs = synced(10)
    assert hs.on_inputs(inputs(11, enable=False), MS).parts == []
    assert hs.state() == State.OFFLINE
    assert hs.on_inputs(inputs(12, enable=True), 2 * MS).parts == []
    assert hs.on_inputs(inputs(13, enable=True), 3 * MS).parts


# ------------------------------------------------------------------- results
def test_results_are_presented_one_at_a_time_until_acknowledged() -> None:
    hs = synced(10)
    hs.on_inputs(inputs(11, part_id=111), MS)
    hs.on_inputs(inputs(12, part_id=112), MS)
    assert hs.on_result(result(11, 111)) and hs.on_result(result(12, 112, ok=False))
    words, deadline = hs.result_words(3 * MS)
    first = ResultBlock.decode(words)
    assert (first.result_seq, first.result_trigger_seq, first.result_part_id) == (1, 11, 111)
    assert first.verdict == PlcVerdict.OK and first.pending_results == 2
    assert first.config_crc == 0x1234 and deadline is not None
    assert hs.result_words(3 * MS)[1] is None  # still waiting for the ack
    hs.on_inputs(inputs(12, ack=1), 4 * MS)
    second = ResultBlock.decode(hs.result_words(4 * MS)[0])
    assert (second.result_seq, second.result_part_id, second.verdict) == (2, 112, PlcVerdict.NG)


def test_result_for_an_unknown_or_stale_part_is_never_written() -> None:
    hs = synced(10)
    hs.on_inputs(inputs(11, part_id=111), MS)
    assert not hs.on_result(result(11, 999))  # wrong part id
    hs.on_inputs(inputs(3), 2 * MS)  # PLC reset: resync
    assert not hs.on_result(result(11, 111))  # from before the resync
    assert ResultBlock.decode(hs.result_words(3 * MS)[0]).result_seq == 0


def test_late_ok_goes_out_as_timeout() -> None:
    hs = synced(10)
    hs.on_inputs(inputs(11, part_id=5), 0)
    hs.on_result(result(11, 5, t=0, budget=30 * MS))
    block = ResultBlock.decode(hs.result_words(31 * MS)[0])
    assert block.verdict == PlcVerdict.NG_TIMEOUT


def test_result_queue_overflow_is_a_visible_fault_cleared_by_command() -> None:
    hs = synced(10)
    for i in range(4):
        hs.on_inputs(inputs(11 + i, part_id=i), MS)
    assert all(hs.on_result(result(11 + i, i)) for i in range(3))
    assert not hs.on_result(result(14, 3))  # the fourth: queue of 3 is full
    assert hs.state() == State.FAULT and hs.error_code() == ERR_RESULT_OVERFLOW
    assert hs.status_words()[1:] == [State.FAULT, ERR_RESULT_OVERFLOW]
    step = hs.on_inputs(inputs(14, command=Command.CLEAR_FAULT, command_seq=1), 2 * MS)
    assert step.clear_fault and hs.error_code() == 0


def test_result_seq_wraps_and_skips_zero() -> None:
    hs = synced(10)
    hs._result_seq = 65535
    hs.on_inputs(inputs(11, part_id=1), MS)
    hs.on_result(result(11, 1))
    assert ResultBlock.decode(hs.result_words(MS)[0]).result_seq == 1


# -------------------------------------------------------------- recipe, status
def test_recipe_change_and_reload_command_call_the_hook() -> None:
    hs = synced(10)
    assert hs.on_inputs(inputs(10, recipe_id=2), MS).recipe_changed
    assert not hs.on_inputs(inputs(10, recipe_id=2), MS).recipe_changed
    step = hs.on_inputs(inputs(10, recipe_id=2, command=Command.RELOAD_RECIPE, command_seq=1), MS)
    assert step.recipe_changed
    hs.recipe_ok = False
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


def test_resync_shows_no_result_so_a_restarted_plc_never_sees_an_old_one() -> None:
    hs = synced(10)
    hs.on_inputs(inputs(11, part_id=111), MS)
    hs.on_result(result(11, 111))
    assert ResultBlock.decode(hs.result_words(MS)[0]).result_seq == 1
    hs.lost()  # link dropped; the PLC restarts with TRIGGER_SEQ 0 and ack 2
    hs.on_inputs(inputs(0, hb=1, ack=2), 2 * MS)
    block = ResultBlock.decode(hs.result_words(2 * MS)[0])
    assert (block.result_seq, block.result_part_id, block.verdict) == (0, 0, PlcVerdict.NONE)
    hs.on_inputs(inputs(1, hb=2, part_id=5, ack=2), 3 * MS)
    hs.on_result(result(1, 5))
    assert ResultBlock.decode(hs.result_words(3 * MS)[0]).result_seq == 3  # not 2: pre-acked


# ------------------------------------------------- the simulator's PLC program
def test_sim_plc_fifo_classifies_every_verdict() -> None:
    plc = PlcModel(deadline_ms=30, first_part_id=100)
    stale = ResultBlock(result_seq=9, result_trigger_seq=77, result_part_id=5, verdict=1)
    plc.on_result_words(stale.encode(), 0)  # shown before this PLC started: adopted
    assert plc.inputs.result_ack_seq == 9 and plc.counts.results == 0
    plc.trigger(0, 3)  # parts 100, 101, 102 (seq 1..3) in one scan

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
