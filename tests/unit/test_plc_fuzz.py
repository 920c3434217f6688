"""Whatever the PLC writes into block A, the link's pure logic answers with parts of the
ring, counts, or a resync: never an exception that would fault the daemon, never a
part the PLC did not put in the ring (hypothesis, seeded by its database-free profile)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.errors import PlcProtocolError
from inspector.plc.handshake import Handshake
from inspector.plc.protocol import PlcInputs, ResultBlock, block_a_len
from inspector.types import PartResult, Reason, Trigger, Verdict

RING = 4
WORD = st.integers(0, 0xFFFF)
BLOCK_A = st.lists(WORD, min_size=block_a_len(RING), max_size=block_a_len(RING))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(reads=st.lists(BLOCK_A, min_size=1, max_size=12), step_ms=st.integers(0, 2000))
def test_any_sequence_of_block_a_reads_is_handled(reads: list[list[int]], step_ms: int) -> None:
    hs = Handshake(budget_ns=30_000_000, result_queue=3)
    for k, words in enumerate(reads):
        inp = PlcInputs.decode(words)
        now = k * step_ms * 1_000_000
        step = hs.on_inputs(inp, now)
        in_ring = {(s.seq, s.part_id) for s in inp.ring if s.seq}
        assert all((p.trigger_seq, p.part_id) in in_ring for p in step.parts)
        assert min(step.missed, step.late, step.unseen) >= 0
        assert all(0 <= p.age_ns < hs.budget_ns for p in step.parts)
        for p in step.parts:  # answer them: whatever is written decodes with a good CHECK
            trig = Trigger(p.trigger_seq, p.part_id, now, now + hs.budget_ns, source="plc")
            hs.on_result(PartResult(trig, Verdict(ok=True, reason=Reason.OK), now), now)
        block = ResultBlock.decode(hs.result_words(now))
        assert block.pending_results == hs.pending <= 3
        assert len(hs.status_words()) == 3


@settings(max_examples=200, deadline=None, derandomize=True)
@given(words=st.lists(st.integers(-(2**17), 2**17), max_size=130))
def test_a_read_that_is_not_block_a_is_a_protocol_error_never_another_exception(
    words: list[int],
) -> None:
    with contextlib.suppress(PlcProtocolError):  # anything else fails the test
        PlcInputs.decode(words)


def test_decode_refuses_the_old_nine_word_map() -> None:
    with pytest.raises(PlcProtocolError):
        PlcInputs.decode([0] * 9)
