"""Config of the Modbus TCP link to the PLC (trigger in, verdict out; docs/plc.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from inspector.config.base import Section


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
        description="Modbus TCP port; 0 (server role or embedded simulator) picks a free one.",
    )
    unit_id: int = Field(1, ge=0, le=255, description="Modbus unit (slave) id.")
    in_base: int = Field(0, ge=0, le=65535, description="Base address of block A (PLC → vision).")
    out_base: int = Field(
        100, ge=0, le=65535, description="Base address of block B (vision → PLC)."
    )
    poll_ms: float = Field(2.0, gt=0, description="Block A poll period (client role).")
    result_queue: int = Field(8, ge=1, le=64, description="Most unacknowledged results.")
    backoff_s: float = Field(0.2, gt=0, description="First reconnect delay; doubles up to the cap.")
    backoff_max_s: float = Field(5.0, gt=0, description="Reconnect delay cap.")
    heartbeat_timeout_s: float = Field(
        1.0, gt=0, description="PLC_HEARTBEAT silent this long means the PLC is gone."
    )
    simulator: bool = Field(
        False, description="Start the embedded PLC simulator on host:port (demo, tests)."
    )
    simulator_rate_hz: float = Field(
        10.0, gt=0, le=1000, description="Parts per second the embedded simulator triggers."
    )
    simulator_deadline_ms: float = Field(
        100.0,
        gt=0,
        description="Trigger-to-verdict deadline the embedded simulator enforces, like the "
        "distance from camera to reject gate on a real line.",
    )
