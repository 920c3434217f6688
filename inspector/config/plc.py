"""Config of the Modbus TCP link to the PLC (trigger in, verdict out; docs/plc.md)."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator, model_validator

from inspector.config.base import Section

# The register map's sizes (inspector/plc/protocol.py; the config floor cannot import it).
_BLOCK_A_HEADER, _SLOT_LEN, _BLOCK_B_LEN, _MAX_RING = 10, 4, 15, 28


class PlcConfig(Section):
    """Modbus TCP link to the PLC (docs/plc.md has the register map)."""

    enabled: bool = Field(False, description="Talk to a PLC; False runs without one.")
    role: Literal["client", "server"] = Field(
        "client",
        description="'client': the daemon polls and writes the PLC; 'server': the daemon "
        "serves the map to a PLC that polls (as Cognex/Keyence sensors do).",
    )
    host: str = Field("127.0.0.1", description="PLC address (client) or bind address (server).")
    port: int = Field(
        502,
        ge=0,
        le=65535,
        description="Modbus TCP port; 0 (server role, or the demo's embedded simulator) picks "
        "a free one.",
    )
    unit_id: int = Field(1, ge=0, le=255, description="Modbus unit (slave) id.")
    in_base: int = Field(0, ge=0, le=65535, description="Base address of block A (PLC → vision).")
    out_base: int = Field(
        100, ge=0, le=65535, description="Base address of block B (vision → PLC)."
    )
    trigger_ring: int = Field(
        16,
        ge=1,
        le=_MAX_RING,
        description="Slots of the trigger ring in block A (the PLC program must use the same "
        "number): a poll that comes late still finds every part of the last N triggers.",
    )
    poll_ms: float = Field(2.0, gt=0, le=1000, description="Block A poll period (client role).")
    request_timeout_s: float = Field(
        0.5,
        gt=0,
        le=60,
        description="A Modbus request unanswered this long means the link is stalled: the "
        "connection is closed and made again. A slow answer within it is waited for.",
    )
    result_queue: int = Field(8, ge=1, le=64, description="Most unacknowledged results.")
    backoff_s: float = Field(
        0.05,
        gt=0,
        le=60,
        description="First reconnect delay; doubles (with jitter) up to the cap.",
    )
    backoff_max_s: float = Field(
        0.5,
        gt=0,
        le=60,
        description="Reconnect delay cap; 0.5 s serves a PLC that is back within 1 s.",
    )
    heartbeat_timeout_s: float = Field(
        1.0,
        gt=0,
        le=3600,
        description="PLC_HEARTBEAT silent this long means the PLC is gone.",
    )
    allowed_clients: list[str] = Field(
        default_factory=list,
        description="Server role: addresses or networks (CIDR) of the clients that may "
        "connect; empty allows any. Not a substitute for a firewall (docs/plc.md, Security).",
    )

    @field_validator("allowed_clients")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"allowed_clients: {item!r} is not an address or network") from exc
        return value

    @model_validator(mode="after")
    def _map_consistent(self) -> PlcConfig:
        a_end = self.in_base + _BLOCK_A_HEADER + _SLOT_LEN * self.trigger_ring
        b_end = self.out_base + _BLOCK_B_LEN
        if a_end > 65536 or b_end > 65536:
            raise ValueError("block A or block B runs past register 65535")
        if self.in_base < b_end and self.out_base < a_end:
            raise ValueError(
                f"block A ({self.in_base}..{a_end - 1}) and block B "
                f"({self.out_base}..{b_end - 1}) overlap"
            )
        if self.allowed_clients and self.role != "server":
            raise ValueError("allowed_clients applies to role 'server' only")
        return self
