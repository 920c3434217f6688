"""A real OPC UA client (asyncua's) reads the running station.

The daemon is the real ``App`` on the sim line (internal trigger, held back until the
client has subscribed, so the client can see the run from its first part). The client
browses the model, reads the hashes, subscribes to ``ResultManagement/LastResult`` and
must see every verdict of a 200-part run, in trigger order; writes and node management
are refused.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua

from inspector.app import App
from inspector.config import parse_config
from inspector.trigger import InternalTrigger, Submit
from tests.support.common import free_port
from tests.support.daemon import Record
from tests.support.onnx_models import make_detector_onnx

PARTS = 200
RATE_HZ = 40
NS = "urn:inspector:station"


class GatedTrigger:
    """The internal timer, started only once ``gate`` is set (or never, on stop)."""

    def __init__(self, inner: InternalTrigger, gate: threading.Event) -> None:
        self.inner = inner
        self.gate = gate

    def run(self, submit: Submit, stop: threading.Event) -> None:
        while not self.gate.wait(0.05):
            if stop.is_set():
                return
        self.inner.run(submit, stop)


def station_config(tmp_path: Path, port: int, extra: str = "") -> str:
    model = make_detector_onnx(tmp_path / "m.onnx", [(30, 30, 8, 8, 2, 0.8)])
    return f"""
line: {{name: line-a, station: cam-1, cycle_budget_ms: 100}}
trigger: {{source: internal, rate_hz: {RATE_HZ}, max_parts: {PARTS}}}
camera: {{type: sim, sim: {{width: 320, height: 256, pool_size: 8, seed: 5}}}}
recipes: [{{id: 3, name: plate, models: [{{path: "{model}"}}]}}]
default_recipe: 3
metrics: {{enabled: false}}
logging: {{per_part: false}}
opcua: {{enabled: true, port: {port}{extra}}}
"""


class Collect:
    """Subscription handler: every LastResult notification, in arrival order."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.done = asyncio.Event()

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        if val is not None and val.PartId > 0:
            self.values.append(val)
            if len(self.values) >= PARTS:
                self.done.set()


async def read_station(url: str, app: App, gate: threading.Event) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    async with Client(url, timeout=10) as client:
        await client.load_data_type_definitions()
        idx = await client.get_namespace_index(NS)
        system = await client.nodes.objects.get_child(f"{idx}:VisionSystem")
        seen["children"] = {(await c.read_browse_name()).Name for c in await system.get_children()}
        base = [f"{idx}:VisionSystem"]

        async def node(*path: str) -> Any:
            return await client.nodes.objects.get_child(base + [f"{idx}:{p}" for p in path])

        cm = ("ConfigurationManagement", "ActiveConfiguration")
        seen["config_hash"] = await (await node(*cm, "InternalId")).read_value()
        seen["model_hash"] = await (await node(*cm, "ModelHash")).read_value()
        seen["state_before"] = await (await node("VisionStateMachine", "CurrentState")).read_value()
        last = await node("ResultManagement", "LastResult")
        handler = Collect()
        sub = await client.create_subscription(20, handler)
        await sub.subscribe_data_change(last, queuesize=PARTS * 2, sampling_interval=0)
        gate.set()  # the run starts now
        await asyncio.wait_for(handler.done.wait(), timeout=60)
        seen["results"] = handler.values
        await asyncio.to_thread(app.wait, 10)  # the finite trigger ends the run
        counters = ("Counters",)
        seen["total"] = await (await node(*counters, "PartsTotal")).read_value()
        seen["ng"] = await (await node(*counters, "PartsNg")).read_value()
        seen["recipe"] = await (await node("RecipeManagement", "ActiveRecipeId")).read_value()
        verdict = await node("ResultManagement", "Results", "Verdict")
        with pytest.raises(ua.UaStatusCodeError) as refused:
            await verdict.write_value(ua.Variant("OK", ua.VariantType.String))
        seen["write_refused"] = refused.value
        with pytest.raises(ua.UaStatusCodeError) as refused_add:
            await system.add_variable(idx, "Injected", 1)
        seen["add_refused"] = refused_add.value
        seen["verdict_after"] = await verdict.read_value()
        await sub.delete()
    return seen


def test_client_browses_subscribes_and_sees_every_verdict(tmp_path: Path) -> None:
    port = free_port()
    cfg = parse_config(station_config(tmp_path, port))
    gate = threading.Event()
    record = Record()
    trigger = GatedTrigger(
        InternalTrigger(RATE_HZ, 100, max_parts=PARTS, recipe_id=lambda: 3), gate
    )
    app = App(cfg, extra_sinks=[record], trigger=trigger)
    try:
        app.start()
        assert gc.get_freeze_count() > 100_000  # asyncua's objects out of the collector
        seen = asyncio.run(read_station(f"opc.tcp://127.0.0.1:{port}/inspector", app, gate))
    finally:
        gate.set()
        app.stop()
    expected = sorted(record.results.values(), key=lambda r: r.trigger.trigger_seq)
    assert len(expected) == PARTS
    assert {
        "VisionStateMachine",
        "ResultManagement",
        "RecipeManagement",
        "ConfigurationManagement",
        "Counters",
        "SystemState",
    } <= seen["children"]
    assert seen["config_hash"] == app.config_hash and seen["model_hash"] == app.model_hash
    assert seen["state_before"].Text == "Operational"
    got = [(v.PartId, v.TriggerSeq, v.Verdict, v.Reason) for v in seen["results"]]
    want = [
        (
            r.trigger.part_id,
            r.trigger.trigger_seq,
            "OK" if r.verdict.ok else "NG",
            r.verdict.reason.value,
        )
        for r in expected
    ]
    assert got == want  # every verdict, once, in trigger order
    assert all(v.InternalConfigurationId == app.config_hash for v in seen["results"])
    assert seen["total"] == PARTS and seen["ng"] == sum(not r.verdict.ok for r in expected)
    assert seen["recipe"] == 3
    assert seen["write_refused"].code in (
        ua.StatusCodes.BadUserAccessDenied,
        ua.StatusCodes.BadNotWritable,
    )
    assert seen["add_refused"].code == ua.StatusCodes.BadUserAccessDenied
    assert seen["verdict_after"] == want[-1][2]


def test_username_password_and_no_anonymous(tmp_path: Path) -> None:
    port = free_port()
    extra = ", allow_anonymous: false, username: scada, password: pw-1"
    app = App(
        parse_config(station_config(tmp_path, port, extra)),
        trigger=GatedTrigger(InternalTrigger(RATE_HZ, 100, max_parts=1), threading.Event()),
    )
    url = f"opc.tcp://127.0.0.1:{port}/inspector"

    async def session(user: str | None, password: str | None) -> str:
        client = Client(url, timeout=10)
        if user is not None:
            client.set_user(user)
            client.set_password(password or "")
        async with client:
            node = client.nodes.objects
            return str((await node.read_browse_name()).Name)

    try:
        app.start()
        assert asyncio.run(session("scada", "pw-1")) == "Objects"
        for user, password in ((None, None), ("scada", "wrong"), ("admin", "pw-1")):
            with pytest.raises(ua.UaError):
                asyncio.run(session(user, password))
    finally:
        app.stop()
