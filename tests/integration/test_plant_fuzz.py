"""Fuzzing the plant links: a broker that answers garbage, OPC UA clients that send it.

The daemon runs as ``python -m inspector run`` on the sim line (internal trigger) for
the whole test, in its own process as on a station: pytest, hypothesis and the log
capture share neither its GIL nor its garbage collector. Hypothesis (derandomized, no
example database) feeds one input per example over the network. The daemon must never
fault (it stays up, and exits 0 at SIGTERM) and never delay a verdict: every triggered
part is decided within the cycle budget (0 deadline misses, read from its per-part log),
and every part is still in the MQTT spool or was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from asyncua import Client
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.plant.spool import Spool
from tests.support.common import free_port
from tests.support.daemon_process import DaemonProcess, daemon_process
from tests.support.onnx_models import make_detector_onnx
from tests.support.opcua_client_worker import ClientProcess
from tests.support.plant import CONNACK_OK, FakeBroker

FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=40)


def remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


@st.composite
def mqtt_packet(draw: st.DrawFn) -> bytes:
    """A packet of any type and flags with a random body (length right or wrong)."""
    header = draw(st.integers(0, 255))
    body = draw(st.binary(max_size=40))
    length = draw(st.one_of(st.just(len(body)), st.integers(0, 300)))
    return bytes([header]) + remaining_length(length) + body


broker_replies = st.one_of(
    st.binary(max_size=80),  # plain garbage
    st.lists(mqtt_packet(), max_size=4).map(b"".join),  # garbage packets before CONNACK
    st.lists(mqtt_packet(), max_size=6).map(lambda ps: CONNACK_OK + b"".join(ps)),  # after
    st.binary(max_size=12).map(
        lambda props: bytes([0x20, 3 + len(props), 0, 0]) + remaining_length(len(props)) + props
    ),  # CONNACK properties
)


def fuzz_config(
    tmp_path: Path, mqtt_port: int, opcua_port: int, backoff: tuple[float, float]
) -> str:
    model = make_detector_onnx(tmp_path / "m.onnx", [(30, 30, 8, 8, 2, 0.8)])
    return f"""
line: {{name: line-a, station: cam-1, cycle_budget_ms: 100}}
trigger: {{source: internal, rate_hz: 20}}
camera: {{type: sim, sim: {{width: 320, height: 256, pool_size: 8, seed: 5}}}}
recipes: [{{id: 1, name: plate, models: [{{path: "{model}"}}]}}]
metrics: {{enabled: false}}
logging: {{format: json, per_part: true, ok_parts: all}}
mqtt: {{enabled: true, port: {mqtt_port}, spool_path: "{tmp_path / "spool.sqlite"}",
       backoff_s: {backoff[0]}, backoff_max_s: {backoff[1]}, connect_timeout_s: 0.3}}
opcua: {{enabled: true, port: {opcua_port}}}
"""


@dataclass(kw_only=True)
class Station(DaemonProcess):
    """The daemon under test, with the fake broker it talks to."""

    broker: FakeBroker
    opcua_port: int


@contextlib.contextmanager
def running_station(tmp_path: Path, backoff: tuple[float, float]) -> Iterator[Station]:
    mqtt_port, opcua_port = free_port(), free_port()
    cfg = tmp_path / "station.yaml"
    cfg.write_text(fuzz_config(tmp_path, mqtt_port, opcua_port, backoff))
    broker = FakeBroker(mqtt_port)
    try:
        with daemon_process(
            cfg, lambda proc: Station(proc=proc, broker=broker, opcua_port=opcua_port)
        ) as station:
            yield station
    finally:
        broker.close()


def assert_healthy(station: Station, since: int = 0) -> None:
    """Still running (a fault exits 70), and no part late among the parts from the
    ``since``-th on (an example judges its own parts; the test's end judges them all)."""
    assert station.proc.poll() is None, station.events[-10:]
    parts = station.parts()[max(0, since - 2) :]  # and two before it
    late = [
        (p["part_id"], p["cycle_ms"], p["stages_ms"]) for p in parts if p["reason"] == "timeout"
    ]
    assert not late, late


def test_garbage_from_the_broker_never_crashes_or_delays(tmp_path: Path) -> None:
    # A 20 ms backoff cap: one broker reply per example, 40 examples in seconds.
    with running_station(tmp_path, (0.01, 0.02)) as station:
        broker = station.broker

        @FUZZ
        @given(reply=broker_replies)
        def one_session(reply: bytes) -> None:
            since = len(station.parts())
            broker.reply = reply
            broker.served.clear()
            assert broker.served.wait(10), "the station stopped trying the broker"
            assert_healthy(station, since)

        one_session()
        assert_healthy(station)
    assert station.exit_code == 0
    parts = len(station.parts())  # after the stop: the parts decided while stopping too
    # Nothing was lost: a fake broker may have "acknowledged" a few with a lucky PUBACK,
    # everything else waits in the spool for a real one.
    spooled = Spool(tmp_path / "spool.sqlite", 1 << 30).count
    assert parts - 5 <= spooled <= parts and parts > 20


# --------------------------------------------------------------------------- OPC UA
def hello(body_sizes: tuple[int, int, int, int], url: bytes) -> bytes:
    body = struct.pack("<IIIII", 0, *body_sizes) + struct.pack("<i", len(url)) + url
    return b"HELF" + struct.pack("<I", 8 + len(body)) + body


@st.composite
def opcua_bytes(draw: st.DrawFn) -> bytes:
    """Garbage, a Hello with wild sizes, or chunks with valid headers and random bodies."""
    kind = draw(st.sampled_from(["garbage", "hello", "chunks"]))
    if kind == "garbage":
        return draw(st.binary(max_size=200))
    sizes = draw(st.tuples(*[st.integers(0, 2**32 - 1)] * 4))
    url = draw(st.one_of(st.just(b"opc.tcp://127.0.0.1/inspector"), st.binary(max_size=40)))
    out = hello(sizes, url) if kind == "hello" else hello((65536, 65536, 0, 0), url)
    for _ in range(draw(st.integers(0, 3)) if kind == "chunks" else 0):
        msg_type = draw(st.sampled_from([b"OPN", b"MSG", b"CLO", b"ERR", b"XYZ"]))
        body = draw(st.binary(max_size=120))
        declared = draw(st.one_of(st.just(8 + len(body)), st.integers(0, 2**32 - 1)))
        out += msg_type + draw(st.sampled_from([b"F", b"C", b"A"])) + struct.pack("<I", declared)
        out += body
    return out


def send_raw(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        s.settimeout(0.2)
        with contextlib.suppress(OSError):
            s.sendall(data)
            s.recv(4096)


def test_opcua_client_garbage_never_crashes_or_delays(tmp_path: Path) -> None:
    # The fake broker accepts and drops the station; the default-like backoff keeps that
    # to one attempt every 2 s (a 20 ms cap made a reconnect storm that delayed parts).
    clients = ClientProcess()  # started (and its imports compiled) before the station
    with contextlib.ExitStack() as stack:
        stack.callback(clients.close)
        station = stack.enter_context(running_station(tmp_path, (0.2, 2.0)))
        station.broker.reply = CONNACK_OK
        port = station.opcua_port

        @FUZZ
        @given(data=opcua_bytes())
        def one_connection(data: bytes) -> None:
            since = len(station.parts())
            send_raw(port, data)
            assert_healthy(station, since)

        one_connection()
        url = f"opc.tcp://127.0.0.1:{port}/inspector"
        node_ids = st.tuples(st.integers(0, 3), st.one_of(st.integers(0, 20_000), st.text()))
        values = st.one_of(st.integers(), st.text(), st.floats(), st.binary(), st.booleans())

        @settings(derandomize=True, database=None, deadline=None, max_examples=10)
        @given(reads=st.lists(node_ids, max_size=5), value=values)
        def one_client(reads: list[tuple[int, int | str]], value: object) -> None:
            since = len(station.parts())
            clients.run(url, reads, value)
            assert_healthy(station, since)

        one_client()

        async def still_serving() -> int:
            async with Client(url, timeout=5) as client:
                idx = await client.get_namespace_index("urn:inspector:station")
                total = await client.nodes.objects.get_child(
                    [f"{idx}:VisionSystem", f"{idx}:Counters", f"{idx}:PartsTotal"]
                )
                return int(await total.read_value())

        assert asyncio.run(still_serving()) > 0  # the server still answers a good client
        assert_healthy(station)
    assert station.exit_code == 0
