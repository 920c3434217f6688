"""The PLC register map and its encoding: pure data, no I/O, no clock.

Where it sits in the flow: ``trigger ─▶ … ─▶ publish``. Block A (PLC → vision) brings
the triggers (a header and a ring of the last N parts, each dated on the PLC's clock);
block B (vision → PLC) carries the verdict. This module names every register, encodes
and decodes both blocks (a read that is not one raises ``PlcProtocolError``) and
computes CHECK (CRC-16/MODBUS); the 1..65535 sequence arithmetic is ``inspector.seq``.
``handshake.py`` holds the state machine built on it, shared by both roles of
``link.py``. ``docs/plc.md`` has the map and the timing.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from inspector.errors import PlcProtocolError
from inspector.types import PlcVerdict


# ------------------------------------------------------------------ register map
class A(enum.IntEnum):
    """Block A (PLC → vision) offsets from ``in_base``."""

    PLC_HEARTBEAT = 0
    ENABLE = 1
    TRIGGER_SEQ = 2
    PART_ID_HI = 3
    PART_ID_LO = 4
    RECIPE_ID = 5
    RESULT_ACK_SEQ = 6
    COMMAND = 7
    COMMAND_SEQ = 8
    PLC_CLOCK = 9  # the PLC's free-running millisecond clock (u16, wraps)


BLOCK_A_HEADER = 10  # offsets 0..9; the trigger ring follows at offset 10


class Slot(enum.IntEnum):
    """One trigger-ring slot: 4 words from ``in_base + BLOCK_A_HEADER + 4·i``."""

    SEQ = 0  # the TRIGGER_SEQ of the part in this slot; 0 = empty
    PART_ID_HI = 1
    PART_ID_LO = 2
    T_MS = 3  # PLC_CLOCK when the part was triggered


SLOT_LEN = 4
MAX_RING = 28  # 10 + 4·28 = 122 words: block A stays one FC3 (at most 125 registers)
DEFAULT_RING = 16


def block_a_len(ring: int) -> int:
    """Words of block A with a trigger ring of ``ring`` slots."""
    return BLOCK_A_HEADER + SLOT_LEN * ring


class B(enum.IntEnum):
    """Block B (vision → PLC) offsets from ``out_base``."""

    VISION_HEARTBEAT = 0
    STATE = 1
    ERROR_CODE = 2
    TRIGGER_ACK_SEQ = 3
    RESULT_SEQ = 4
    RESULT_TRIGGER_SEQ = 5
    RESULT_PART_ID_HI = 6
    RESULT_PART_ID_LO = 7
    VERDICT = 8
    DEFECT_CODE = 9
    CYCLE_TIME = 10
    MISSED_TRIGGERS = 11
    PENDING_RESULTS = 12
    CONFIG_CRC = 13
    CHECK = 14


BLOCK_B_LEN = 15
RESULT_FIRST = B.TRIGGER_ACK_SEQ  # the result block: one FC16 of offsets 3..14
RESULT_LEN = BLOCK_B_LEN - RESULT_FIRST


class State(enum.IntEnum):
    """STATE register values."""

    BOOT = 0
    READY = 1
    BUSY = 2
    FAULT = 3
    OFFLINE = 4


class Command(enum.IntEnum):
    """COMMAND register values, executed when COMMAND_SEQ changes."""

    CLEAR_FAULT = 1
    RELOAD_RECIPE = 2


# ERROR_CODE values raised by the link itself (1xx camera, 2xx inference and other
# 3xx/4xx codes are the application's, through PlcLink.set_state).
ERR_RESULT_OVERFLOW = 302  # more unacknowledged results than the queue holds
ERR_UNKNOWN_RECIPE = 401  # RECIPE_ID names no recipe of the config


# ---------------------------------------------------------------------- encoding
def _crc_table() -> tuple[int, ...]:
    """The 256 entries of CRC-16/MODBUS (poly 0xA001 reflected), one per byte value."""
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _crc_table()


def crc16_bytes(data: bytes) -> int:
    """CRC-16/MODBUS of raw bytes (the standard check value of b'123456789' is 0x4B37)."""
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ b) & 0xFF]
    return crc


def crc16_modbus(words: Sequence[int]) -> int:
    """CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF) over the words, high byte first."""
    return crc16_bytes(struct.pack(f">{len(words)}H", *(w & 0xFFFF for w in words)))


def split_u32(value: int) -> tuple[int, int]:
    """A u32 as (high word, low word): big-endian word order."""
    value &= 0xFFFFFFFF
    return value >> 16, value & 0xFFFF


def join_u32(hi: int, lo: int) -> int:
    return ((hi & 0xFFFF) << 16) | (lo & 0xFFFF)


@dataclass(frozen=True, slots=True)
class TriggerSlot:
    """One slot of the trigger ring: a part the PLC triggered, and when (PLC clock)."""

    seq: int
    part_id: int
    t_ms: int

    def encode(self) -> list[int]:
        hi, lo = split_u32(self.part_id)
        return [self.seq & 0xFFFF, hi, lo, self.t_ms & 0xFFFF]


@dataclass(frozen=True, slots=True)
class PlcInputs:
    """Block A decoded: the header and the trigger ring."""

    plc_heartbeat: int
    enable: bool
    trigger_seq: int
    part_id: int
    recipe_id: int
    result_ack_seq: int
    command: int
    command_seq: int
    plc_clock: int = 0
    ring: tuple[TriggerSlot, ...] = ()

    @classmethod
    def decode(cls, words: Sequence[int]) -> PlcInputs:
        """Decode a read of block A; raise PlcProtocolError when it is not one."""
        n = len(words)
        if n < BLOCK_A_HEADER + SLOT_LEN or (n - BLOCK_A_HEADER) % SLOT_LEN:
            raise PlcProtocolError(f"block A has {BLOCK_A_HEADER} + 4·ring words, got {n}")
        if any(not 0 <= w <= 0xFFFF for w in words):
            raise PlcProtocolError("block A holds a value that is not a 16-bit register")
        ring = tuple(
            TriggerSlot(words[i], join_u32(words[i + 1], words[i + 2]), words[i + 3])
            for i in range(BLOCK_A_HEADER, n, SLOT_LEN)
        )
        return cls(
            plc_heartbeat=words[A.PLC_HEARTBEAT],
            enable=words[A.ENABLE] == 1,
            trigger_seq=words[A.TRIGGER_SEQ],
            part_id=join_u32(words[A.PART_ID_HI], words[A.PART_ID_LO]),
            recipe_id=words[A.RECIPE_ID],
            result_ack_seq=words[A.RESULT_ACK_SEQ],
            command=words[A.COMMAND],
            command_seq=words[A.COMMAND_SEQ],
            plc_clock=words[A.PLC_CLOCK],
            ring=ring,
        )

    def encode(self) -> list[int]:
        hi, lo = split_u32(self.part_id)
        words = [
            self.plc_heartbeat & 0xFFFF,
            1 if self.enable else 0,
            self.trigger_seq,
            hi,
            lo,
            self.recipe_id,
            self.result_ack_seq,
            self.command,
            self.command_seq,
            self.plc_clock & 0xFFFF,
        ]
        for slot in self.ring:
            words.extend(slot.encode())
        return words


@dataclass(frozen=True, slots=True)
class ResultBlock:
    """Offsets 3..14 of block B: the last presented result plus counters."""

    trigger_ack_seq: int = 0
    result_seq: int = 0
    result_trigger_seq: int = 0
    result_part_id: int = 0
    verdict: int = PlcVerdict.NONE
    defect_code: int = 0
    cycle_time: int = 0  # 0.1 ms
    missed_triggers: int = 0
    pending_results: int = 0
    config_crc: int = 0

    def encode(self) -> list[int]:
        """The 12 words of one FC16, CHECK last."""
        hi, lo = split_u32(self.result_part_id)
        body = [
            self.trigger_ack_seq,
            self.result_seq,
            self.result_trigger_seq,
            hi,
            lo,
            int(self.verdict),
            self.defect_code & 0xFFFF,
            min(self.cycle_time, 0xFFFF),
            self.missed_triggers & 0xFFFF,
            min(self.pending_results, 0xFFFF),
            self.config_crc & 0xFFFF,
        ]
        return [*body, crc16_modbus(body)]

    @classmethod
    def decode(cls, words: Sequence[int]) -> ResultBlock:
        """Decode offsets 3..14; raise PlcProtocolError when CHECK does not match
        (a half-updated or never written block)."""
        if len(words) != RESULT_LEN:
            raise PlcProtocolError(f"result block has {RESULT_LEN} words, got {len(words)}")
        if crc16_modbus(words[:-1]) != words[-1]:
            raise PlcProtocolError("CHECK mismatch")
        return cls(
            trigger_ack_seq=words[0],
            result_seq=words[1],
            result_trigger_seq=words[2],
            result_part_id=join_u32(words[3], words[4]),
            verdict=words[5],
            defect_code=words[6],
            cycle_time=words[7],
            missed_triggers=words[8],
            pending_results=words[9],
            config_crc=words[10],
        )
