"""``python -m inspector run`` as a subprocess, judged from its JSON log.

Where it sits: the tests that must see the daemon as a station runs it, in its own
process (the web page's browser and load tests, the plant fuzz tests), start it here.
Its stdout is read on a thread, so the daemon never blocks on its log pipe; every line
becomes an event (``{"event": "raw"}`` for a line that is not JSON). The context waits
for the ``ready`` line, and at exit sends SIGTERM and records the exit code and how long
the stop took.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.support.common import REPO


@dataclass
class DaemonProcess:
    """The daemon's process and what its log said, line by line."""

    proc: subprocess.Popen[str]
    events: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int | None = None
    stop_s: float = 0.0

    def parts(self) -> list[dict[str, Any]]:
        """The per-part log lines so far (``logging.per_part``)."""
        return [e for e in list(self.events) if e.get("event") == "part"]


D = TypeVar("D", bound=DaemonProcess)


@contextmanager
def daemon_process(config: Path, make: Callable[[subprocess.Popen[str]], D]) -> Iterator[D]:
    """Run the daemon on ``config`` until the block ends; ``make`` wraps its process in
    the caller's ``DaemonProcess`` (with the caller's own fields)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "inspector", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)},
    )
    daemon = make(proc)
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "raw", "line": line.rstrip()}
            daemon.events.append(event)
            if event.get("event") == "ready":
                ready.set()

    reader = threading.Thread(target=read, name="test-daemon-stdout")
    reader.start()
    try:
        assert ready.wait(60), daemon.events[-10:]
        yield daemon
    finally:
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            daemon.exit_code = proc.wait(timeout=10)
        finally:
            proc.kill()
            reader.join(5)
        daemon.stop_s = time.monotonic() - t0
