"""A real mosquitto on loopback and a checking MQTT consumer, for the plant tests.

The broker is the Debian package (``tools/get-mosquitto.sh``, run by ``make test``),
started on a free 127.0.0.1 port with a generated config: ``listener PORT 127.0.0.1``,
``allow_anonymous true`` (or a password file), persistence off. ``kill()`` is SIGKILL:
the broker vanishes as in a crash. ``FakeBroker`` is the other kind: it answers every
station with one given reply (garbage, or a CONNACK) and drops it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from tests.support.common import REPO

CONNACK_OK = bytes([0x20, 0x03, 0x00, 0x00, 0x00])  # MQTT 5, session absent, success, no props


class FakeBroker:
    """Accepts MQTT clients on loopback and answers each with the next fuzz reply."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_server(("127.0.0.1", port))
        self.sock.settimeout(0.1)
        self.reply = b""
        self.served = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="fake-broker")
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(0.2)
                with contextlib.suppress(OSError):
                    conn.recv(4096)  # the client's CONNECT
                    conn.sendall(self.reply)
                    conn.recv(4096)  # whatever comes back, until it gives up or 0.2 s
            self.served.set()
        self.sock.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


def mosquitto_binary() -> str:
    fetched = REPO / ".cache/bin/mosquitto"
    for candidate in (fetched, shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise AssertionError("mosquitto missing: run tools/get-mosquitto.sh (make test does)")


def wait_port(port: int, timeout_s: float = 10.0) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


class Mosquitto:
    """One mosquitto process on 127.0.0.1:port; ``extra`` lines go into its config."""

    def __init__(self, workdir: Path, port: int, extra: str = "") -> None:
        self.workdir = workdir
        self.port = port
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    def write_conf(self, extra: str | None = None) -> None:
        if extra is not None:
            self.extra = extra
        auth = "" if "password_file" in self.extra else "allow_anonymous true\n"
        # As root, mosquitto drops to user 'mosquitto', who cannot read pytest's tmp dirs.
        user = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n{auth}{user}persistence false\n"
            f"max_queued_messages 100000\nlog_dest stderr\n{self.extra}\n"
        )

    def start(self) -> Mosquitto:
        self.write_conf()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [mosquitto_binary(), "-c", str(self.conf)], stdout=log, stderr=log
            )
        wait_port(self.port)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def reload(self) -> None:
        """SIGHUP: mosquitto re-reads its password file."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)


def password_file(path: Path, users: dict[str, str]) -> Path:
    path.write_text("")
    for user, pw in users.items():
        subprocess.run(["mosquitto_passwd", "-b", str(path), user, pw], check=True)
    return path


@dataclass
class Consumer:
    """Subscribes to a topic filter (QoS 1) and keeps every message, in arrival order."""

    port: int
    topic: str
    username: str | None = None
    password: str | None = None
    messages: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    raw: list[tuple[str, bytes, bool]] = field(default_factory=list)
    subscribed: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _client: paho.Client | None = None

    def start(self) -> Consumer:
        c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"consumer-{id(self)}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        if self.username:
            c.username_pw_set(self.username, self.password)
        c.on_connect = lambda cl, *_: cl.subscribe(self.topic, qos=1)
        c.on_subscribe = lambda *_: self.subscribed.set()
        c.on_disconnect = lambda *_: self.subscribed.clear()
        c.on_message = self._on_message
        c.reconnect_delay_set(0.01, 0.05)  # type: ignore[arg-type]  # paho accepts floats
        c.connect_async("127.0.0.1", self.port, keepalive=5)
        c.loop_start()
        self._client = c
        return self

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        now = time.time()
        with self._lock:
            self.raw.append((msg.topic, msg.payload, msg.retain))
            try:
                self.messages.append((now, msg.topic, json.loads(msg.payload)))
            except ValueError:
                self.messages.append((now, msg.topic, {"_undecodable": msg.payload.hex()}))

    def wait_subscribed(self, timeout_s: float = 15.0) -> None:
        assert self.subscribed.wait(timeout_s), "consumer did not subscribe"

    def parts(self) -> list[dict[str, Any]]:
        with self._lock:
            return [m for _, t, m in self.messages if t.endswith("/parts")]

    def states(self) -> list[dict[str, Any]]:
        with self._lock:
            return [m for _, t, m in self.messages if t.endswith("/state")]

    def wait_parts(self, predicate: Any, timeout_s: float) -> list[dict[str, Any]]:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            parts = self.parts()
            if predicate(parts):
                return parts
            time.sleep(0.05)
        return self.parts()

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None


def first_arrivals(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """De-duplicate on msg_id, as a consumer of at-least-once messages does."""
    seen: set[str] = set()
    out = []
    for p in parts:
        if p["msg_id"] not in seen:
            seen.add(p["msg_id"])
            out.append(p)
    return out
