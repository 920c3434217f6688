"""Fleet simulation: N stations at R parts/s each publish into one real mosquitto.

Where it sits: a benchmark (a leaf; nothing imports it). Each simulated station is the
daemon's real MQTT sink (``inspector.plant.mqtt.MqttSink``: handoff, SQLite spool,
QoS 1 session, one paho client per station) fed with fabricated part results at R/s;
stations are spread over worker processes. One consumer subscribes to
``inspector/#`` at QoS 1 and checks every message: per station, the gapless
``msg_seq`` tells what is missing; ``msg_id`` what came twice. Latency is
publish-to-consume: the consumer's ``CLOCK_MONOTONIC`` minus the message's
``t_verdict_mono_ns`` (one clock for all processes of one Linux host).

    python benchmarks/fleet.py --stations 100 --rate 10 --seconds 60

prints one JSON document (machine, date, settings, sent, received, lost, duplicates,
latency percentiles). Spools live in a temporary directory (``--sync full`` like the
daemon's default, or ``normal``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_binary() -> str:
    repo = Path(__file__).resolve().parent.parent
    for c in (repo / ".cache/bin/mosquitto", shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if c and Path(c).exists():
            return str(c)
    raise SystemExit("mosquitto missing: run tools/get-mosquitto.sh")


def start_broker(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    conf = workdir / "mosquitto.conf"
    user = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\n{user}persistence false\n"
        "max_queued_messages 1000000\nmax_inflight_messages 0\nlog_type error\n"
    )
    proc = subprocess.Popen([mosquitto_binary(), "-c", str(conf)], stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc
        except OSError:
            time.sleep(0.02)
    raise SystemExit("mosquitto did not start")


def fake_result(i: int) -> Any:
    """A plausible finished part: NG with two findings every third part, else OK."""
    from inspector.types import Finding, PartResult, Reason, Trigger, Verdict, ng

    now = time.monotonic_ns()
    trig = Trigger(i, i, now - 14_000_000, now + 16_000_000)
    stages = {"grab": 1_100_000, "preprocess": 2_300_000, "infer": 8_900_000, "decide": 90_000}
    if i % 3:
        return PartResult(trig, Verdict(True, Reason.OK), now, stages)
    findings = (
        Finding("scratch", 0, 0.91, (120.0, 80.5, 210.0, 96.0), "detector"),
        Finding("spot", 1, 0.64, (640.0, 512.0, 652.0, 526.0), "detector"),
    )
    return PartResult(trig, ng(Reason.DEFECT, "scratch×1", findings), now, stages)


def run_worker(
    first: int, count: int, rate: float, seconds: float, port: int, spool_dir: str, sync: str
) -> dict[str, int]:
    """Stations ``first … first+count-1`` in this process; returns parts published each."""
    from inspector import logging as ilog
    from inspector.config import LoggingConfig, MqttConfig
    from inspector.plant.message import Station
    from inspector.plant.mqtt import MqttSink
    from inspector.supervisor import Supervisor

    ilog.configure(LoggingConfig(format="json", level="error", per_part=False))
    sup = Supervisor()
    sinks = []
    for n in range(first, first + count):
        cfg = MqttConfig(
            enabled=True,
            port=port,
            spool_path=Path(spool_dir) / f"st-{n:04d}.sqlite",
            spool_sync=sync,  # type: ignore[arg-type]
            client_id=f"fleet-st-{n:04d}",
        )
        station = Station("fleet", f"st-{n:04d}", "m" * 16, "c" * 16, Station.new_run_id())
        sink = MqttSink(cfg, station)
        sink.start(sup)
        sinks.append(sink)
    for sink in sinks:  # every station connected before the clock starts
        assert sink.session is not None and sink.session.connected.wait(30)
    period_ns = int(1e9 / rate)
    t0 = time.monotonic_ns() + 200_000_000
    published = [0] * count
    end = t0 + int(seconds * 1e9)
    # One ticker for the process: station k publishes at t0 + k·period/count + j·period.
    slot = period_ns // count
    j = 0
    while True:
        tick = t0 + j * period_ns
        if tick >= end:
            break
        for k, sink in enumerate(sinks):
            due = tick + k * slot
            delay = (due - time.monotonic_ns()) / 1e9
            if delay > 0:
                time.sleep(delay)
            published[k] += 1
            sink.publish(fake_result(published[k]))
        j += 1
    deadline = time.monotonic() + 20
    for sink in sinks:  # let every spool empty before closing
        while sink.spool is not None and sink.spool.count and time.monotonic() < deadline:
            time.sleep(0.05)
    for sink in sinks:
        sink.close(0.5)
    return {f"st-{first + k:04d}": published[k] for k in range(count)}


class FleetConsumer:
    def __init__(self, port: int) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

        self.lat_ns: list[int] = []
        self.seen: dict[str, set[int]] = {}
        self.runs: dict[str, str] = {}
        self.received = 0
        self.duplicates = 0
        self.subscribed = threading.Event()
        c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id="fleet-consumer",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        c.on_connect = lambda cl, *_: cl.subscribe("inspector/+/+/parts", qos=1)
        c.on_subscribe = lambda *_: self.subscribed.set()
        c.on_message = self._on_message
        c.max_inflight_messages_set(1000)
        c.connect("127.0.0.1", port, 30)
        c.loop_start()
        self.client = c

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        now = time.monotonic_ns()
        m = json.loads(msg.payload)
        self.received += 1
        seqs = self.seen.setdefault(m["station"], set())
        self.runs[m["station"]] = m["run_id"]
        if m["msg_seq"] in seqs:
            self.duplicates += 1
            return
        seqs.add(m["msg_seq"])
        self.lat_ns.append(now - m["t_verdict_mono_ns"])

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    version = subprocess.run([mosquitto_binary(), "-h"], capture_output=True, text=True).stdout
    return {
        "cpu": cpu,
        "cpus_usable": len(os.sched_getaffinity(0)),
        "load_avg_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "mosquitto": version.splitlines()[0] if version else "?",
        "kernel": platform.release(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stations", type=int, default=100)
    ap.add_argument("--rate", type=float, default=10.0, help="parts/s per station")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--procs", type=int, default=max(1, min(4, len(os.sched_getaffinity(0)))))
    ap.add_argument("--sync", choices=["full", "normal"], default="full")
    args = ap.parse_args()
    info = machine()
    work = Path(tempfile.mkdtemp(prefix="fleet-"))
    port = free_port()
    broker = start_broker(work, port)
    consumer = FleetConsumer(port)
    assert consumer.subscribed.wait(10)
    per = [
        args.stations // args.procs + (i < args.stations % args.procs) for i in range(args.procs)
    ]
    starts = [sum(per[:i]) for i in range(args.procs)]
    t_start = time.monotonic()
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.procs) as pool:
        jobs = [
            pool.apply_async(
                run_worker, (s, n, args.rate, args.seconds, port, str(work), args.sync)
            )
            for s, n in zip(starts, per, strict=True)
            if n
        ]
        published: dict[str, int] = {}
        for job in jobs:
            published.update(job.get(timeout=args.seconds + 120))
    wall = time.monotonic() - t_start
    end = time.monotonic() + 10
    sent = sum(published.values())
    while sum(len(s) for s in consumer.seen.values()) < sent and time.monotonic() < end:
        time.sleep(0.1)
    consumer.stop()
    broker.terminate()
    broker.wait(5)
    lost = sum(
        n - len(consumer.seen.get(st, set()) & set(range(1, n + 1))) for st, n in published.items()
    )
    lat_ms = np.array(consumer.lat_ns, dtype=np.float64) / 1e6
    pct = (
        {f"p{q}": round(float(np.percentile(lat_ms, q)), 2) for q in (50, 90, 99, 99.9)}
        if lat_ms.size
        else {}
    )
    report = {
        "benchmark": "fleet",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": info,
        "settings": vars(args),
        "sent": sent,
        "received": consumer.received,
        "unique": sum(len(s) for s in consumer.seen.values()),
        "lost": lost,
        "duplicates": consumer.duplicates,
        "rate_msgs_per_s": round(sent / args.seconds, 1),
        "latency_ms": {**pct, "max": round(float(lat_ms.max()), 2) if lat_ms.size else None},
        "wall_s": round(wall, 1),
        "load_avg_at_end": os.getloadavg(),
    }
    print(json.dumps(report, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
