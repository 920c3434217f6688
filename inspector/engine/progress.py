"""Build progress: what TensorRT's IProgressMonitor reports, printed for a person.

Builds take minutes on an Orin. ``BuildProgress`` receives the monitor's calls
(``phase_start``, ``step_complete``, ``phase_finish``; the TensorRT subclass in
``trt_api.py`` only forwards them), prints one line per phase and throttled step
lines, and calls ``keepalive`` at most every ``keepalive_s`` so a start-time build can
extend systemd's start timeout. TensorRT calls the monitor from several threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TextIO


class BuildProgress:
    """Thread-safe progress printer; ``cancel()`` makes the next step ask TRT to stop."""

    def __init__(
        self,
        out: TextIO,
        *,
        keepalive: Callable[[str], object] | None = None,
        keepalive_s: float = 20.0,
        step_interval_s: float = 2.0,
    ) -> None:
        self._out = out
        self._keepalive = keepalive
        self._keepalive_ns = int(keepalive_s * 1e9)
        self._step_ns = int(step_interval_s * 1e9)
        self._lock = threading.Lock()
        self._phases: dict[str, tuple[str | None, int]] = {}
        self._last_step_ns = 0
        self._last_alive_ns = 0
        self._cancelled = False
        self._t0 = time.monotonic_ns()

    def cancel(self) -> None:
        self._cancelled = True

    def _depth(self, name: str) -> int:
        depth, parent = 0, self._phases.get(name, (None, 0))[0]
        while parent is not None and depth < 16:
            depth += 1
            parent = self._phases.get(parent, (None, 0))[0]
        return depth

    def _line(self, text: str) -> None:
        elapsed = (time.monotonic_ns() - self._t0) / 1e9
        self._out.write(f"[{elapsed:7.1f}s] {text}\n")
        self._out.flush()

    def _alive(self, now: int, text: str) -> None:
        if self._keepalive is not None and now - self._last_alive_ns >= self._keepalive_ns:
            self._last_alive_ns = now
            self._keepalive(text)

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        with self._lock:
            self._phases[phase_name] = (parent_phase, num_steps)
            indent = "  " * self._depth(phase_name)
            self._line(f"{indent}{phase_name} ({num_steps} steps)")
            self._alive(time.monotonic_ns(), f"building TensorRT engine: {phase_name}")

    def step_complete(self, phase_name: str, step: int) -> bool:
        """Return False to ask TensorRT to cancel the build."""
        with self._lock:
            now = time.monotonic_ns()
            total = self._phases.get(phase_name, (None, 0))[1]
            if now - self._last_step_ns >= self._step_ns and self._depth(phase_name) == 0:
                self._last_step_ns = now
                self._line(f"{phase_name}: {step + 1}/{total}")
            self._alive(now, f"building TensorRT engine: {phase_name} {step + 1}/{total}")
            return not self._cancelled

    def phase_finish(self, phase_name: str) -> None:
        with self._lock:
            if self._depth(phase_name) == 0:
                self._line(f"{phase_name} done")
            self._phases.pop(phase_name, None)
