"""Plant integration: every part's result to MQTT (durable spool) and an OPC UA view.

Where it sits: the publish step's plant-facing sinks. ``App`` builds one ``Plant`` from
the config (``mqtt:`` and ``opcua:`` sections), adds ``plant.sinks`` to its sinks,
tells it every STATE change (``set_state``) and closes it at stop, after the PLC
drain. paho-mqtt and asyncua are imported only when their section is enabled (extras
``mqtt`` and ``opcua``).

| thread | owns | stops when |
|---|---|---|
| inspector-mqtt-spool | handoff → messages → SQLite spool | ``close``: handoff stored |
| inspector-mqtt | paho client: sends the spool, deletes acked rows | ``close``: drained |
| inspector-opcua | asyncua server's asyncio loop: all OPC UA I/O and node updates | ``close`` |
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from inspector.config import Config
from inspector.plant.message import Station
from inspector.sinks import ResultSink
from inspector.supervisor import Supervisor

if TYPE_CHECKING:
    from inspector.plant.mqtt import MqttSink
    from inspector.plant.opcua import OpcUaSink


class Plant:
    """The enabled plant sinks of one daemon run."""

    def __init__(self, cfg: Config, *, model_hash: str, config_hash: str) -> None:
        self.station = Station(
            cfg.line.name, cfg.line.station, model_hash, config_hash, Station.new_run_id()
        )
        self.mqtt: MqttSink | None = None
        self.opcua: OpcUaSink | None = None
        if cfg.mqtt.enabled:
            from inspector.plant.mqtt import MqttSink

            self.mqtt = MqttSink(cfg.mqtt, self.station)
        if cfg.opcua.enabled:
            from inspector.plant.opcua import OpcUaSink

            recipes = {r.id: r.name for r in cfg.recipes}
            self.opcua = OpcUaSink(cfg.opcua, self.station, recipes, cfg.default_recipe)

    @property
    def sinks(self) -> list[ResultSink]:
        return [s for s in (self.mqtt, self.opcua) if s is not None]

    def start(self, supervisor: Supervisor) -> None:
        """Open the spool and start the threads; waits until the OPC UA server listens."""
        if self.mqtt is not None:
            self.mqtt.start(supervisor)
        if self.opcua is not None:
            self.opcua.start(supervisor)

    def set_state(self, state: int, error_code: int) -> None:
        """STATE and ERROR_CODE (docs/plc.md) changed: show it on MQTT and OPC UA."""
        for sink in (self.mqtt, self.opcua):
            if sink is not None:
                sink.set_state(state, error_code)

    def close(self, budget_s: float) -> None:
        """MQTT: store the handoff, send what fits in the budget, say offline; OPC UA: stop."""
        end = time.monotonic() + budget_s
        if self.mqtt is not None:
            self.mqtt.close(max(0.05, budget_s * 0.8))
        if self.opcua is not None:
            self.opcua.close(max(0.05, end - time.monotonic()))
