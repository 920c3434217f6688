"""Every part's result to a real mosquitto: broker outage, daemon restart, schema, auth.

The daemon runs as the real ``App`` on the sim line with the internal trigger, so the
parts are real parts (camera, ONNX Runtime model, rules). A ``Record`` sink keeps what
the daemon decided; the consumer must see exactly that, part for part, in order.

Ordering needs the consumer subscribed before the station republishes: with
persistence off, a broker that restarts forgets subscriptions, and what it receives
before a subscriber is back reaches nobody (a plant runs a persistent broker and
persistent sessions). So the restarted broker first admits only the consumer (password
file without the station's user: the station's attempts are refused, CONNACK "not
authorized"), and admits the station once the consumer has subscribed (SIGHUP).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from inspector import metrics
from inspector.app import App
from inspector.config import Config, parse_config
from inspector.plant.message import load_schema
from inspector.plant.spool import Spool
from inspector.types import PartResult, Reason
from tests.support.common import REPO, free_port
from tests.support.daemon import Record
from tests.support.onnx_models import make_detector_onnx
from tests.support.plant import (
    CONNACK_OK,
    Consumer,
    FakeBroker,
    Mosquitto,
    first_arrivals,
    password_file,
)

RATE_HZ = 10
USERS = {"station": "s3cret-station", "consumer": "s3cret-consumer"}


def daemon_config(
    tmp_path: Path, port: int, *, max_parts: int | None = None, per_part: bool = False
) -> str:
    model = tmp_path / "m.onnx"
    if not model.exists():  # a fixed detection: every part NG "defect" (the rules see it)
        make_detector_onnx(model, [(30, 30, 8, 8, 2, 0.8)])
    limit = f", max_parts: {max_parts}" if max_parts else ""
    return f"""
line: {{name: line-a, station: cam-1, cycle_budget_ms: 100}}
trigger: {{source: internal, rate_hz: {RATE_HZ}{limit}}}
camera: {{type: sim, sim: {{width: 320, height: 256, pool_size: 8, seed: 5}}}}
recipes: [{{id: 1, name: plate, models: [{{path: "{model}"}}],
           rules: {{min_confidence: {{default: 0.5}}}}}}]
metrics: {{enabled: false}}
logging: {{per_part: {str(per_part).lower()}, format: json}}
mqtt: {{enabled: true, port: {port}, username: station, password: {USERS["station"]},
       spool_path: "{tmp_path / "spool.sqlite"}", backoff_s: 0.05, backoff_max_s: 0.5,
       connect_timeout_s: 2}}
"""


def check_against_record(parts: list[dict[str, Any]], results: list[PartResult]) -> None:
    """Every decided part has one message, in trigger order, with the same verdict."""
    assert [p["part_id"] for p in parts] == [r.trigger.part_id for r in results]
    assert [p["verdict"] for p in parts] == ["OK" if r.verdict.ok else "NG" for r in results]
    assert [p["reason"] for p in parts] == [r.verdict.reason.value for r in results]
    seqs = [p["msg_seq"] for p in parts]
    assert seqs == list(range(1, len(parts) + 1)), "a gap or a reordering in msg_seq"


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def deadline_misses(results: list[PartResult]) -> list[tuple[int, float]]:
    """(part_id, cycle ms) of every part that missed its deadline."""
    return [
        (r.trigger.part_id, r.cycle_ns / 1e6) for r in results if r.verdict.reason is Reason.TIMEOUT
    ]


def test_broker_killed_for_10_s_under_load_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    pw = password_file(tmp_path / "passwd", USERS)
    broker = Mosquitto(tmp_path, port, f"password_file {pw}").start()
    consumer = Consumer(port, "inspector/#", "consumer", USERS["consumer"]).start()
    record = Record()
    app = App(parse_config(daemon_config(tmp_path, port)), extra_sinks=[record])
    dropped_before = sample("inspector_mqtt_spool_dropped_total")
    try:
        consumer.wait_subscribed()
        app.start()
        assert len(consumer.wait_parts(lambda p: len(p) >= 20, 30)) >= 20
        broker.kill()
        killed_at = len(record.results)
        app.stop_event.wait(10.0)  # the outage: parts go on at 10/s into the spool
        assert len(record.results) >= killed_at + 80, "the line did not go on during the outage"
        assert sample("inspector_mqtt_spool_messages") > 0
        # Restart: the consumer first (station refused), then the station.
        password_file(pw, {"consumer": USERS["consumer"]})
        refused_before = sample("inspector_mqtt_errors_total", kind="refused")
        broker.start()
        consumer.wait_subscribed()
        end = time.monotonic() + 10  # the station tried, and was kept out until now
        while sample("inspector_mqtt_errors_total", kind="refused") == refused_before:
            assert time.monotonic() < end, "the station never tried the restarted broker"
            app.stop_event.wait(0.02)
        password_file(pw, USERS)
        broker.reload()
        app.stop_event.wait(3.0)
    finally:
        t0 = time.monotonic()
        app.stop()  # within the 2 s stop budget, the spool flushed to the broker
        stop_s = time.monotonic() - t0
        consumer.wait_parts(lambda p: len(first_arrivals(p)) >= len(record.results), 15)
        consumer.stop()
        broker.kill()
    results = sorted(record.results.values(), key=lambda r: r.trigger.trigger_seq)
    parts = first_arrivals(consumer.parts())
    assert len(results) >= 150
    check_against_record(parts, results)
    assert deadline_misses(results) == []
    assert sample("inspector_mqtt_spool_dropped_total") == dropped_before
    last_state = consumer.states()[-1]
    assert last_state["online"] is False and last_state["state"] == "offline"
    assert Spool(tmp_path / "spool.sqlite", 1 << 20).count == 0  # everything acknowledged
    assert stop_s < 2.0, stop_s


def test_a_broker_that_drops_the_station_at_once_is_retried_at_the_cap(tmp_path: Path) -> None:
    """A broker that answers CONNACK and closes at once (an ACL that refuses the topic):
    the session counts as failed, so the delay grows to ``backoff_max_s`` (0.5 s here)
    instead of restarting at ``backoff_s`` (0.05 s) after every CONNACK. Over 4 s that is
    about 11 attempts; resetting on CONNACK made 77, and in CI such a storm (with a
    20 ms cap) delayed verdicts past a 100 ms budget."""
    port = free_port()
    broker = FakeBroker(port)  # CONNACK, then the station is dropped
    broker.reply = CONNACK_OK
    record = Record()
    app = App(parse_config(daemon_config(tmp_path, port)), extra_sinks=[record])
    try:
        app.start()
        before = sample("inspector_mqtt_connect_attempts_total")
        app.stop_event.wait(4.0)
        attempts = sample("inspector_mqtt_connect_attempts_total") - before
    finally:
        app.stop()
        broker.close()
    print(f"connect attempts in 4 s against a broker that drops at once: {attempts:.0f}")
    assert 4 <= attempts <= 16, attempts
    results = list(record.results.values())
    assert len(results) >= 35 and deadline_misses(results) == []
    assert Spool(tmp_path / "spool.sqlite", 1 << 20).count == len(results)  # all kept


def test_a_stop_during_a_long_backoff_is_not_held_up(tmp_path: Path) -> None:
    """No broker, and the session waits out a 3 s reconnect delay when the stop comes:
    the stop cuts the wait. (It used to sleep it out, up to backoff_max_s, 10 s by
    default, with its thread and wake-up sockets left behind after the stop.)"""
    port = free_port()  # nothing listens: every attempt is refused
    config = daemon_config(tmp_path, port).replace("backoff_s: 0.05", "backoff_s: 3.0")
    config = config.replace("backoff_max_s: 0.5", "backoff_max_s: 5.0")
    app = App(parse_config(config))
    app.start()
    try:
        end = time.monotonic() + 5
        while sample("inspector_mqtt_errors_total", kind="connect") < 1:
            assert time.monotonic() < end, "the station never tried the broker"
            app.stop_event.wait(0.02)
        app.stop_event.wait(0.3)  # now inside the 3 s wait
    finally:
        t0 = time.monotonic()
        app.stop()
        stop_s = time.monotonic() - t0
    assert stop_s < 2.0, stop_s
    assert not [t.name for t in threading.enumerate() if t.name == "inspector-mqtt"]


def test_daemon_restart_with_a_full_spool_replays_it_first(tmp_path: Path) -> None:
    """Daemon A (a subprocess, stopped with SIGTERM) runs while the broker is down and
    leaves its messages spooled; daemon B (in-process) starts with the broker up and
    sends A's messages first, then its own, in order, nothing lost."""
    port = free_port()
    pw = password_file(tmp_path / "passwd", USERS)
    cfg_path = tmp_path / "a.yaml"
    cfg_path.write_text(daemon_config(tmp_path, port, per_part=True))
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "inspector", "run", "--config", str(cfg_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    a_parts: list[dict[str, Any]] = []
    try:
        assert proc.stdout is not None
        while len(a_parts) < 30:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else "daemon A ended"
            event = json.loads(line)
            if event.get("event") == "part":
                a_parts.append(event)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    a_parts += [e for e in map(json.loads, out.splitlines()) if e.get("event") == "part"]
    assert Spool(tmp_path / "spool.sqlite", 1 << 20).count == len(a_parts)

    broker = Mosquitto(tmp_path, port, f"password_file {pw}").start()
    consumer = Consumer(port, "inspector/+/+/parts", "consumer", USERS["consumer"]).start()
    record = Record()
    app = App(parse_config(daemon_config(tmp_path, port, max_parts=30)), extra_sinks=[record])
    try:
        consumer.wait_subscribed()
        app.start()
        app.wait(30)
    finally:
        app.stop()
        expected = len(a_parts) + len(record.results)
        consumer.wait_parts(lambda p: len(first_arrivals(p)) >= expected, 15)
        consumer.stop()
        broker.kill()
    parts = first_arrivals(consumer.parts())
    runs = [p["run_id"] for p in parts]
    assert len(set(runs)) == 2 and runs == sorted(runs, key=runs.index)  # A's run, then B's
    first_run = [p for p in parts if p["run_id"] == runs[0]]
    assert [p["part_id"] for p in first_run] == [e["part_id"] for e in a_parts]
    assert [p["verdict"] for p in first_run] == [e["verdict"] for e in a_parts]
    assert [p["msg_seq"] for p in first_run] == list(range(1, len(a_parts) + 1))
    results = sorted(record.results.values(), key=lambda r: r.trigger.trigger_seq)
    check_against_record([p for p in parts if p["run_id"] != runs[0]], results)
    assert deadline_misses(results) == []


def test_messages_follow_the_json_schema_and_the_topics(tmp_path: Path) -> None:
    port = free_port()
    broker = Mosquitto(tmp_path, port).start()
    consumer = Consumer(port, "inspector/#").start()
    text = daemon_config(tmp_path, port, max_parts=10).replace(
        "username: station, password: s3cret-station,", ""
    )
    cfg: Config = parse_config(text)
    app = App(cfg)
    try:
        consumer.wait_subscribed()
        app.start()
        app.wait(30)
    finally:
        app.stop()
        consumer.wait_parts(lambda p: len(p) >= 10, 10)
        consumer.stop()
        broker.kill()
    part_schema, state_schema = load_schema("part.v1"), load_schema("state.v1")
    checker = jsonschema.FormatChecker()
    parts = consumer.parts()
    assert len(parts) == 10
    for p in parts:
        jsonschema.validate(p, part_schema, format_checker=checker)
        assert p["model_hash"] == app.model_hash and p["config_hash"] == app.config_hash
    states = consumer.states()
    for s in states:
        jsonschema.validate(s, state_schema, format_checker=checker)
    assert [s["state"] for s in states][-1] == "offline"
    assert "ready" in [s["state"] for s in states]
    topics = {t for t, _, _ in consumer.raw}
    assert topics == {"inspector/line-a/cam-1/parts", "inspector/line-a/cam-1/state"}
    # The schema really checks: a message without its id, or OK with a failing reason, fails.
    for broken in (
        {k: v for k, v in parts[0].items() if k != "msg_id"},
        {**parts[0], "verdict": "OK", "reason": "defect"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, part_schema)


def make_tls_files(d: Path) -> tuple[Path, Path, Path]:
    """A CA and a broker certificate for 127.0.0.1 / localhost (cryptography)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (d / "ca.pem").write_bytes(ca.public_bytes(pem))
    (d / "broker.pem").write_bytes(cert.public_bytes(pem))
    (d / "broker.key").write_bytes(
        key.private_bytes(
            pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    return d / "ca.pem", d / "broker.pem", d / "broker.key"


def test_tls_and_the_last_will_when_the_daemon_dies(tmp_path: Path) -> None:
    """The daemon (subprocess) talks TLS to the broker; killed (SIGKILL), the broker
    publishes its last will: the retained state says offline, connection lost."""
    plain, tls_port = free_port(), free_port()
    ca, cert, key = make_tls_files(tmp_path)
    broker = Mosquitto(
        tmp_path,
        plain,
        f"listener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}",
    ).start()
    consumer = Consumer(plain, "inspector/#").start()
    text = daemon_config(tmp_path, tls_port).replace(
        "username: station, password: s3cret-station,", f'tls: {{enabled: true, ca_file: "{ca}"}},'
    )
    (tmp_path / "d.yaml").write_text(text)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "inspector", "run", "--config", str(tmp_path / "d.yaml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        consumer.wait_subscribed()
        parts = consumer.wait_parts(lambda p: len(p) >= 5, 60)
        assert len(parts) >= 5, (
            proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
        )
        assert consumer.states()[-1]["state"] == "ready"
        proc.kill()
        proc.wait(5)
        end = time.monotonic() + 10
        while consumer.states()[-1].get("reason") != "connection lost":
            assert time.monotonic() < end, consumer.states()[-1]
            time.sleep(0.05)
        will = consumer.states()[-1]
        assert will["online"] is False and will["run_id"] == parts[0]["run_id"]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=5)
        consumer.stop()
        broker.kill()
