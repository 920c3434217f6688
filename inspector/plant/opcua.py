"""The OPC UA server: a read-only view of the station for SCADA, MES and HMIs.

Where it sits: the publish step, one of the sinks (``sinks.py``). ``publish`` runs in
the cycle and only appends the result to a bounded backlog (oldest dropped and counted
if the server's loop falls behind; the counters are kept in ``publish`` itself, so they
stay exact) and wakes the server's loop. The server runs in its own thread
(``inspector-opcua``) with its own asyncio loop, which owns all OPC UA I/O and writes
every result, in order, into the address space (``opcua_model.py``): a client
subscribed to ``ResultManagement/LastResult`` sees every verdict.

Defaults: bound to 127.0.0.1, anonymous, no message security, and read-only: every
session, anonymous or named, gets the plain user role, so asyncua refuses writes to
our variables (their AccessLevel has no CurrentWrite) and any node management.
Username/password and Basic256Sha256 certificates are configurable (``opcua:``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import threading
from datetime import datetime, timezone
from typing import Any

from inspector import metrics
from inspector.config import OpcUaConfig
from inspector.errors import ConfigError
from inspector.logging import RateLimitedLog, get_logger
from inspector.plant.message import Station
from inspector.supervisor import Supervisor
from inspector.types import PartResult, Reason

log = get_logger(__name__)
_errors = RateLimitedLog(log)

#: How long start waits for the server to listen (the standard address space loads first).
START_TIMEOUT_S = 60.0


class OpcUaSink:
    """Result sink and OPC UA server thread."""

    name = "opcua"

    def __init__(
        self, cfg: OpcUaConfig, station: Station, recipes: dict[int, str], default_recipe: int
    ) -> None:
        self.cfg = cfg
        self.station = station
        self.recipes = recipes
        self.endpoint = f"opc.tcp://{cfg.host}:{cfg.port}/inspector"
        self.ready = threading.Event()
        self.stopped = threading.Event()
        self._lock = threading.Lock()
        self._backlog: collections.deque[PartResult] = collections.deque()
        self._counts: dict[str, int] = collections.Counter()
        self._state = (0, 0)
        self._recipe = default_recipe
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._dropped = metrics.SINK_DROPPED.labels(self.name)
        self.start_error: BaseException | None = None

    # ------------------------------------------------------------------ cycle
    def publish(self, result: PartResult) -> None:
        """Queue the result for the server's loop (O(1)); counters are kept here."""
        v = result.verdict
        with self._lock:
            self._counts["PartsTotal"] += 1
            self._counts["PartsOk" if v.ok else "PartsNg"] += 1
            self._counts[v.reason.value] += 1
            self._recipe = result.trigger.recipe_id
            if len(self._backlog) >= self.cfg.max_result_backlog:
                self._backlog.popleft()
                self._dropped.inc()
            self._backlog.append(result)
        self._poke()

    def set_state(self, state: int, error_code: int) -> None:
        self._state = (state, error_code)
        self._poke()

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between: stopping
                loop.call_soon_threadsafe(wake.set)

    # ------------------------------------------------------------ start / stop
    def start(self, supervisor: Supervisor) -> None:
        """Start the server thread and wait until it listens (or a stop is requested)."""
        self._thread = supervisor.spawn("opcua", self._run, stops_with=self.stopped)
        while not self.ready.wait(0.05):
            if supervisor.stop.is_set() or not self._thread.is_alive():
                break
        if self.start_error is not None:
            raise ConfigError(f"opcua: cannot serve {self.endpoint}: {self.start_error}")
        if self.ready.is_set():
            # asyncua's address space is ~400k Python objects: a full garbage collection
            # over them takes 100-200 ms, long enough to make a part miss its deadline.
            # Freeze them (and everything else built at start) out of the collector.
            gc.collect()
            gc.freeze()
            log.info("opcua_serving", endpoint=self.endpoint, frozen_objects=gc.get_freeze_count())

    def close(self, timeout_s: float = 1.0) -> None:
        self.stopped.set()
        self._poke()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self.ready.is_set() and not (self._thread and self._thread.is_alive()):
            # Give the stopped server's objects back to the collector, and collect them
            # now (the pipeline has stopped), not in the middle of a later run's cycle.
            gc.unfreeze()
            gc.collect()

    # ----------------------------------------------------------- server thread
    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except Exception as exc:
            if self.ready.is_set():
                raise  # a fault while serving: the supervisor stops the daemon
            self.start_error = exc  # could not start (port taken, bad certificate): exit 78
            self.stopped.set()

    async def _serve(self) -> None:
        from inspector.plant.opcua_server import make_server

        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        server, nodes = await make_server(self.cfg, self.station, self.recipes)
        if self.stopped.is_set():
            return
        async with server:
            self.ready.set()
            writer = NodeWriter(server, nodes, self.station)
            while not self.stopped.is_set():
                await self._wake.wait()
                self._wake.clear()
                await self._update(writer)

    async def _update(self, writer: NodeWriter) -> None:
        with self._lock:
            results = list(self._backlog)
            self._backlog.clear()
            counts = dict(self._counts)
            recipe = self._recipe
        try:
            for result in results:
                await writer.result(result)
            metrics.OPCUA_UPDATES.inc(len(results))
            await writer.station_state(self._state, recipe, self.recipes.get(recipe, ""), counts)
        except Exception as exc:  # a failed node write must never stop the server
            metrics.SINK_ERRORS.labels(self.name).inc()
            _errors.error("opcua_update_failed", error=repr(exc))


class NodeWriter:
    """Writes values into the model's variables (server side, in the server's loop)."""

    def __init__(self, server: Any, nodes: Any, station: Station) -> None:
        self.server = server
        self.nodes = nodes
        self.station = station

    async def _set(self, key: str, value: Any) -> None:
        from asyncua import ua

        node, vtype = self.nodes.variables[key]
        await self.server.write_attribute_value(node.nodeid, ua.DataValue(ua.Variant(value, vtype)))

    async def result(self, result: PartResult) -> None:
        from inspector.plant.opcua_model import RESULT_STATE_NG, RESULT_STATE_OK

        v, t = result.verdict, result.trigger
        fields: dict[str, Any] = {
            "ResultId": f"{self.station.run_id}-{t.part_id}",
            "PartId": t.part_id,
            "TriggerSeq": t.trigger_seq,
            "InternalRecipeId": t.recipe_id,
            "Verdict": "OK" if v.ok else "NG",
            "Reason": v.reason.value,
            "ResultState": RESULT_STATE_OK if v.ok else RESULT_STATE_NG,
            "CycleTimeMs": round(result.cycle_ns / 1e6, 3),
            "CreationTime": datetime.now(timezone.utc),
            "InternalConfigurationId": self.station.config_hash,
        }
        for name, value in fields.items():
            await self._set(f"Results/{name}", value)
        await self._set("ResultManagement/LastResult", self.nodes.result_type(**fields))

    async def station_state(
        self, state: tuple[int, int], recipe: int, recipe_name: str, counts: dict[str, int]
    ) -> None:
        from asyncua import ua

        from inspector.plant.opcua_model import SEMI_E10, VISION_STATE

        code, error = state
        semi, semi_name = SEMI_E10.get(code, (5, "UDT"))
        vision = VISION_STATE.get(code, "Error")
        await self._set("VisionSystem/SystemState", semi)
        await self._set("VisionSystem/SystemStateDescription", f"{semi_name}/{vision}")
        await self._set("VisionStateMachine/CurrentState", ua.LocalizedText(vision))
        await self._set("VisionStateMachine/StateCode", code)
        await self._set("VisionStateMachine/ErrorCode", error)
        await self._set("RecipeManagement/ActiveRecipeId", recipe)
        await self._set("RecipeManagement/ActiveRecipeName", recipe_name)
        for name in ("PartsTotal", "PartsOk", "PartsNg"):
            await self._set(f"Counters/{name}", counts.get(name, 0))
        for reason in Reason:
            await self._set(f"PartsByReason/{reason.value}", counts.get(reason.value, 0))
