"""Config of the demo pieces: the embedded PLC simulator (``make run``, tests).

Where it sits: outside the production schema's meaning. A config with a ``demo:``
section is refused unless the daemon runs in demo mode (``inspector run --demo``, or the
embedded default config): a plant's config can never start a simulated PLC by accident.
"""

from __future__ import annotations

from pydantic import Field

from inspector.config.base import Section


class DemoConfig(Section):
    """Demo mode only (``inspector run --demo``): simulated pieces inside the daemon."""

    plc_simulator: bool = Field(
        False,
        description="Start the embedded PLC simulator on plc.host:plc.port (plc.port 0 picks "
        "a free one); it triggers parts and checks every verdict.",
    )
    plc_rate_hz: float = Field(
        10.0, gt=0, le=1000, description="Parts per second the embedded simulator triggers."
    )
    plc_deadline_ms: float = Field(
        100.0,
        gt=0,
        description="Trigger-to-verdict deadline the embedded simulator enforces, like the "
        "distance from camera to reject gate on a real line.",
    )
