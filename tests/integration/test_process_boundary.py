"""The fail-safe promise at the process boundary (issue 11).

Real components: `inspector run` in a subprocess (or the real ``App`` in-process), the
demo detector on ONNX Runtime, the sim line, and the PLC simulator on 127.0.0.1.

* SIGTERM under load: exit 0 within 2 s, and every part the PLC triggered got its
  verdict (the simulator counts none missed, late or mismatched).
* SIGTERM while models warm up: exit 0 within 2 s.
* A configuration that would crash at start exits 78 with one line, no traceback.
* A thread that dies faults the daemon: the PLC sees STATE fault, the exit code is 70.
* The systemd watchdog is pinged only while parts make progress.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from inspector.app import ERROR_INTERNAL, App
from inspector.config import parse_config
from inspector.errors import EXIT_CONFIG, EXIT_INTERNAL
from inspector.plc.protocol import State
from inspector.sim.plc import PlcSimulator
from inspector.types import PartResult
from tests.support.common import REPO

MODEL = REPO / "engines" / "demo_detector.onnx"


def _daemon(cfg_text: str, tmp_path: Path) -> subprocess.Popen[str]:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(cfg_text)
    return subprocess.Popen(
        [sys.executable, "-m", "inspector", "run", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _events_until(proc: subprocess.Popen[str], pred: object, timeout_s: float) -> list[dict]:
    """Read JSON log lines until ``pred(event)`` is true (or EOF / timeout)."""
    assert proc.stdout is not None and callable(pred)
    events: list[dict] = []
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            break
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        events.append(event)
        if pred(event):
            break
    return events


def _plc_line(sim: PlcSimulator, logging: str) -> str:
    """The demo line at 640×512 against ``sim`` (client role), JSON logs with ``logging``."""
    return f"""
line: {{cycle_budget_ms: 30}}
trigger: {{source: plc}}
camera: {{type: sim, sim: {{width: 640, height: 512, pool_size: 8, seed: 5}}}}
recipes: [{{id: 1, name: demo, models: [{{path: "{MODEL}"}}]}}]
plc: {{enabled: true, port: {sim.bound_port}}}
metrics: {{enabled: false}}
logging: {{format: json, {logging}}}
"""


def test_sigterm_under_load_exits_0_within_2s_with_every_verdict_at_the_plc(
    tmp_path: Path,
) -> None:
    # The PLC runs on after the daemon exits, as a real one does: every part it
    # triggered before the vision went offline must have its verdict.
    sim = PlcSimulator(port=0, rate_hz=40, deadline_ms=300).start()
    try:
        proc = _daemon(_plc_line(sim, "per_part: false"), tmp_path)
        try:
            events = _events_until(proc, lambda e: e.get("event") == "plc_link_up", 60)
            assert events and events[-1]["event"] == "plc_link_up", proc.stderr.read()  # type: ignore[union-attr]
            time.sleep(3.0)  # ~120 parts at 40 parts/s, several in flight at any moment
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=10)
            stop_s = time.monotonic() - t0
            rest = _events_until(proc, lambda e: False, 5)
        finally:
            proc.kill()
        time.sleep(0.5)  # past the PLC's deadline: an unanswered part is now counted missed
        counts = sim.counts()
        status = sim.call(lambda m: list(m.status))
    finally:
        sim.stop()
    print(f"SIGTERM under load: exit {rc} after {stop_s:.3f} s; PLC {counts.summary()}")
    assert rc == 0
    assert stop_s < 2.0, f"stop took {stop_s:.2f} s"
    assert counts.triggered >= 60, counts.summary()
    # Every part the PLC triggered got its own verdict, on time, for the right part.
    assert counts.missed == 0 and counts.late == 0 and counts.mismatched == 0, counts.summary()
    assert counts.ok + counts.ng == counts.triggered, counts.summary()
    assert status[1] == State.OFFLINE, status
    errors = [e for e in rest if e.get("level") == "error"]
    assert not errors, errors


def test_sigterm_during_warmup_exits_0_within_2s(tmp_path: Path) -> None:
    # 40 recipes of the demo model: loading and warming them takes many seconds here.
    recipes = ", ".join(
        f'{{id: {i}, name: r{i}, models: [{{path: "{MODEL}"}}]}}' for i in range(1, 41)
    )
    proc = _daemon(
        f"""
camera: {{type: sim, sim: {{width: 640, height: 512, pool_size: 4}}}}
recipes: [{recipes}]
metrics: {{enabled: false}}
logging: {{format: json}}
""",
        tmp_path,
    )
    try:
        events = _events_until(proc, lambda e: e.get("event") == "recipe_loaded", 60)
        assert events and events[-1]["event"] == "recipe_loaded"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
        stop_s = time.monotonic() - t0
        rest = _events_until(proc, lambda e: False, 5)
    finally:
        proc.kill()
    print(f"SIGTERM during warm-up: exit {rc} after {stop_s:.3f} s")
    assert rc == 0
    assert stop_s < 2.0, f"stop during warm-up took {stop_s:.2f} s"
    assert not any(e.get("event") == "ready" for e in rest)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": "/nonexistent/model.onnx"}, "does not exist"),
        ({"rules": "rules: {min_confidence: {default: 0.5, scrach: 0.9}}"}, "'scrach'"),
        # An unwritable archive directory is not here: the archive runs off with a fault
        # flag and never stops the start (tests/integration/test_archive_faults.py).
        ({"model": str(REPO / "README.md")}, "cannot load"),
    ],
)
def test_start_refuses_what_would_crash_loop_with_exit_78(
    tmp_path: Path, change: dict[str, str], message: str
) -> None:
    model = change.get("model", str(MODEL))
    text = f"""
camera: {{type: sim, sim: {{width: 640, height: 512, pool_size: 4}}}}
recipes: [{{id: 1, name: r, models: [{{path: "{model}"}}],
            {change.get("rules", "rules: {}")} }}]
metrics: {{enabled: false}}
"""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    for command in (["check-config", str(cfg)], ["run", "--config", str(cfg)]):
        done = subprocess.run(
            [sys.executable, "-m", "inspector", *command],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
        assert done.returncode == EXIT_CONFIG, (command, done.stdout, done.stderr)
        assert message in done.stderr
        assert "Traceback" not in done.stderr + done.stdout


class _DiesOnPart:
    """A sink that raises a BaseException on one part: a bug that kills the worker thread."""

    def __init__(self, part: int) -> None:
        self.part = part
        self.seen = 0

    def publish(self, result: PartResult) -> None:
        self.seen += 1
        if self.seen == self.part:
            raise SystemExit("simulated bug")  # not an Exception: nothing catches it


def test_a_dead_thread_faults_the_daemon_with_exit_70_and_the_plc_sees_it() -> None:
    sim = PlcSimulator(port=0, rate_hz=20, deadline_ms=300).start()
    try:
        cfg = parse_config(
            f"""
trigger: {{source: plc}}
camera: {{type: sim, sim: {{width: 640, height: 512, pool_size: 4}}}}
recipes: [{{id: 1, name: r, models: [{{path: "{MODEL}"}}]}}]
plc: {{enabled: true, port: {sim.bound_port}}}
metrics: {{enabled: false}}
logging: {{per_part: false}}
"""
        )
        app = App(cfg, extra_sinks=[_DiesOnPart(20)])
        app.start()
        try:
            assert app.wait(timeout_s=30), "the fault did not stop the daemon"
        finally:
            app.stop()
        assert app.exit_code == EXIT_INTERNAL
        fault = app.supervisor.faulted
        assert fault is not None and fault.thread in ("worker", "publisher")  # whoever published
        status = sim.call(lambda m: list(m.status))
        assert status[1] == State.FAULT and status[2] == ERROR_INTERNAL, status
        assert sim.counts().mismatched == 0
    finally:
        sim.stop()


class _Blocking:
    """A sink that blocks the worker while ``gate`` is clear: a stuck pipeline."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()

    def publish(self, result: PartResult) -> None:
        self.gate.wait(10)


def test_watchdog_is_pinged_only_while_parts_make_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(0.05)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    pings: list[float] = []
    stop = threading.Event()

    def collect() -> None:
        while not stop.is_set():
            try:
                msg = listener.recv(4096).decode()
            except TimeoutError:
                continue
            if "WATCHDOG=1" in msg:
                pings.append(time.monotonic())

    reader = threading.Thread(target=collect, name="test-notify")
    reader.start()
    blocking = _Blocking()
    cfg = parse_config(
        f"""
trigger: {{rate_hz: 20}}
camera: {{type: sim, sim: {{width: 640, height: 512, pool_size: 4}}}}
recipes: [{{id: 1, name: r, models: [{{path: "{MODEL}"}}]}}]
metrics: {{enabled: false}}
logging: {{per_part: false}}
"""
    )
    app = App(cfg, extra_sinks=[blocking])
    try:
        app.start()
        app.wait(timeout_s=1.5)
        healthy = sum(p > time.monotonic() - 1.0 for p in pings)
        blocking.gate.clear()  # the worker sticks in the sink: no more progress
        app.wait(timeout_s=3.5)
        stalled = sum(p > time.monotonic() - 1.0 for p in pings)
        blocking.gate.set()
        app.wait(timeout_s=1.5)
        recovered = sum(p > time.monotonic() - 1.0 for p in pings)
    finally:
        blocking.gate.set()
        app.stop()
        stop.set()
        reader.join()
        listener.close()
    assert healthy >= 5, pings
    assert stalled == 0, "the watchdog was pinged while the pipeline was stuck"
    assert recovered >= 5


def test_a_demo_section_runs_only_in_demo_mode() -> None:
    """config.yaml starts a simulated PLC: without --demo that is refused (exit 78)."""
    done = subprocess.run(
        [sys.executable, "-m", "inspector", "run", "--config", str(REPO / "config.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == EXIT_CONFIG, done.stderr
    assert "inspector run --demo" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_stalled_log_reader_never_delays_a_verdict(tmp_path: Path) -> None:
    """stdout is a pipe nobody reads (a stuck journald or log shipper): after ~64 kB the
    pipe is full, yet every part the PLC triggers keeps getting its verdict on time."""
    sim = PlcSimulator(port=0, rate_hz=40, deadline_ms=300).start()
    try:
        proc = _daemon(_plc_line(sim, "per_part: true, ok_parts: all"), tmp_path)
        try:
            deadline = time.monotonic() + 60
            while sim.counts().triggered < 10 and time.monotonic() < deadline:
                time.sleep(0.1)  # started and linked; stdout is never read from here on
            before = sim.counts()
            time.sleep(8.0)  # ~320 parts of log lines: the 64 kB pipe fills after ~200
            during = sim.counts()
            proc.send_signal(signal.SIGTERM)
            assert proc.stdout is not None
            lines = proc.stdout.read().splitlines()  # unblock the writer so it can exit
            rc = proc.wait(timeout=10)
        finally:
            proc.kill()
    finally:
        sim.stop()
    assert rc == 0
    triggered = during.triggered - before.triggered
    assert triggered >= 200, during.summary()
    assert during.missed == before.missed and during.late == before.late, during.summary()
    assert during.mismatched == 0
    # And on time: a blocked logger would turn nearly every verdict into NG_TIMEOUT.
    timeouts = during.verdicts.get(3, 0) - before.verdicts.get(3, 0)
    assert timeouts <= 0.1 * triggered, during.summary()
    # The pipe held what it could; the rest waited in memory (or was dropped, counted).
    parts_logged = sum('"event": "part"' in line for line in lines)
    assert parts_logged > 0
