"""The plant messages: one per part, and the station's retained state (schema v1).

Where it sits: the publish step, under the MQTT sink (``plant/mqtt.py``). Built from
``sinks.part_record`` (the one JSON shape of a finished part) plus who published it
and when. The JSON Schemas are ``plant/schema/part.v1.json`` and ``state.v1.json``;
``docs/plant.md`` documents them and the topics.

A message id is ``<run_id>-<msg_seq>``: ``run_id`` is random per daemon start and
``msg_seq`` counts the run's part messages from 1 without gaps, so a consumer can
de-duplicate (at least once means a message may come twice) and see a loss as a gap.
The id is fixed when the message enters the spool, so a replay repeats it.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from inspector.sinks import part_record
from inspector.types import PartResult

PART_SCHEMA = "inspector.part.v1"
STATE_SCHEMA = "inspector.state.v1"
SCHEMA_DIR = Path(__file__).resolve().parent / "schema"

#: STATE values (docs/plc.md) by name, as the state message spells them.
STATE_NAMES = {0: "boot", 1: "ready", 2: "busy", 3: "fault", 4: "offline"}


@dataclass(frozen=True, slots=True)
class Station:
    """Who publishes: the line, the station, this run, and the fingerprints in force."""

    line: str
    station: str
    model_hash: str
    config_hash: str
    run_id: str = ""

    @staticmethod
    def new_run_id() -> str:
        return secrets.token_hex(8)

    def topic(self, prefix: str, leaf: str) -> str:
        """``<prefix>/<line>/<station>/<leaf>`` (leaf: ``parts`` or ``state``)."""
        return f"{prefix.rstrip('/')}/{self.line}/{self.station}/{leaf}"


def wall_iso(wall_ns: int) -> str:
    """RFC 3339 UTC with milliseconds: ``2026-01-31T12:00:00.123Z``."""
    dt = datetime.fromtimestamp(wall_ns / 1e9, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def verdict_wall_ns(result: PartResult, now_wall_ns: int, now_mono_ns: int) -> int:
    """Wall-clock time of the verdict, from the monotonic clock's distance to now."""
    return now_wall_ns - (now_mono_ns - result.t_verdict_ns)


def part_message(result: PartResult, station: Station, msg_seq: int, wall_ns: int) -> bytes:
    """The part message (schema inspector.part.v1) as compact UTF-8 JSON."""
    msg: dict[str, Any] = {
        "schema": PART_SCHEMA,
        "msg_id": f"{station.run_id}-{msg_seq}",
        "run_id": station.run_id,
        "msg_seq": msg_seq,
        "line": station.line,
        "station": station.station,
        **part_record(result),
        "trigger_source": result.trigger.source,
        "model_hash": station.model_hash,
        "config_hash": station.config_hash,
        "time": wall_iso(wall_ns),
        "t_trigger_mono_ns": result.trigger.t_trigger_ns,
        "t_verdict_mono_ns": result.t_verdict_ns,
    }
    return json.dumps(msg, separators=(",", ":")).encode()


def state_message(
    station: Station, state: int, error_code: int, *, online: bool, reason: str = ""
) -> bytes:
    """The retained state message (schema inspector.state.v1)."""
    msg: dict[str, Any] = {
        "schema": STATE_SCHEMA,
        "line": station.line,
        "station": station.station,
        "run_id": station.run_id,
        "online": online,
        "state": STATE_NAMES.get(state, "fault"),
        "state_code": state,
        "error_code": error_code,
        "model_hash": station.model_hash,
        "config_hash": station.config_hash,
        "time": wall_iso(time.time_ns()),
    }
    if reason:
        msg["reason"] = reason
    return json.dumps(msg, separators=(",", ":")).encode()


def load_schema(name: str) -> dict[str, Any]:
    """A message JSON Schema by file stem (``part.v1``, ``state.v1``)."""
    schema: dict[str, Any] = json.loads((SCHEMA_DIR / f"{name}.json").read_text("utf-8"))
    return schema
