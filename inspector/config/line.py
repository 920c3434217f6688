"""Config of the line as a whole and of its part triggers (step 1 of the flow)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from inspector.config.base import Section


class LineConfig(Section):
    """The production line as a whole."""

    name: str = Field("line-1", description="Name of the line, used in logs and metrics.")
    station: str = Field(
        "station-1",
        min_length=1,
        max_length=64,
        description="Name of this inspection station on the line (MQTT topics, OPC UA).",
    )
    cycle_budget_ms: float = Field(
        30.0,
        gt=0,
        le=10_000,
        description="Trigger-to-verdict budget per part. A part whose verdict is not ready "
        "by then is NG with reason 'timeout'.",
    )


# ------------------------------------------------------------------------ trigger
class TriggerConfig(Section):
    """Where part triggers come from."""

    source: Literal["internal", "plc", "camera"] = Field(
        "internal",
        description="'internal': a timer at rate_hz (simulation); 'plc': TRIGGER_SEQ over "
        "Modbus; 'camera': the camera's hardware trigger, frames matched to PLC sequence.",
    )
    rate_hz: float = Field(
        10.0, gt=0, le=1000, description="Parts per second of the internal trigger."
    )
    max_parts: int | None = Field(
        None,
        ge=1,
        description="Stop after this many parts (internal trigger only); None runs forever.",
    )
