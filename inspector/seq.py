"""Sequence arithmetic on the 1..65535 ring, skipping 0: the one copy of it.

Where it sits: the floor. TRIGGER_SEQ and RESULT_SEQ on the PLC (``plc/``), the
internal trigger (``trigger.py``) and replay (``replay.py``) all count with it, so a
sequence number means the same thing everywhere: 1..65535, then 1 again; 0 means
"nothing yet".
"""

from __future__ import annotations

SEQ_MOD = 65535  # sequences live in 1..65535


def next_seq(seq: int) -> int:
    """The sequence number after ``seq`` (1..65535, skipping 0; 0 → 1)."""
    return seq % SEQ_MOD + 1


def seq_of_count(n: int) -> int:
    """The sequence number of the ``n``-th item counted from 1 (n ≥ 1): 1, 2, … 65535, 1."""
    if n < 1:
        raise ValueError(f"items are counted from 1, got {n}")
    return (n - 1) % SEQ_MOD + 1


def seq_distance(old: int, new: int) -> int:
    """Forward steps from ``old`` to ``new`` on the 1..65535 ring; > 32767 means backward."""
    return (new - old) % SEQ_MOD
