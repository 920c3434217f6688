"""Supervision: every long-lived thread of the daemon starts here, and none dies quietly.

Where it sits: the floor, beside ``errors`` and ``metrics``. ``App`` owns one
``Supervisor``; the pipeline, the PLC link, the sinks' writer threads and the web and
plant-integration servers start their threads through ``spawn``.

What it promises (STYLE.md, "Supervision"):

* A thread whose target raises (anything, ``BaseException`` included) or returns while
  the daemon is not stopping is a **fault**: the supervisor logs it with the traceback,
  counts it (``inspector_thread_faults_total{thread}``), records the exit code 70
  (``EXIT_INTERNAL``: systemd restarts us) and sets the stop event, so ``App.wait``
  returns and the daemon stops in order, telling the PLC STATE fault first.
* Faults that recovery fixes in place (PLC lost, camera lost) never reach here: the
  components handle them in their own loops.
* ``fault(code, reason)`` lets a component report a fault it cannot fix in place (a
  sticky CUDA error) the same way.

The first fault wins: its code and reason are what the daemon exits with.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from inspector import metrics
from inspector.errors import EXIT_INTERNAL
from inspector.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Fault:
    """Why the daemon stops on its own: the exit code and a one-line reason."""

    exit_code: int
    reason: str
    thread: str = ""


class Supervisor:
    """Starts named threads and turns any unexpected end of one into a daemon fault."""

    def __init__(self, stop: threading.Event | None = None) -> None:
        self.stop = stop or threading.Event()
        self._lock = threading.Lock()
        self._fault: Fault | None = None
        self._threads: list[threading.Thread] = []
        self._on_fault: list[Callable[[Fault], None]] = []

    @property
    def faulted(self) -> Fault | None:
        """The first fault, or None while healthy."""
        return self._fault

    def on_fault(self, callback: Callable[[Fault], None]) -> None:
        """Call ``callback(fault)`` once, in the faulting thread, when the first fault occurs."""
        self._on_fault.append(callback)

    def spawn(
        self,
        name: str,
        target: Callable[[], None],
        *,
        stops_with: threading.Event | None = None,
    ) -> threading.Thread:
        """Start ``target`` in a daemon thread named ``inspector-<name>``.

        ``target`` must return only once its stop was requested: ``stops_with`` (or the
        supervisor's own stop event) is set. Returning earlier is a fault too: a loop
        that ends by itself means nothing does its job any more.
        """
        expected_stop = stops_with or self.stop
        metrics.THREAD_FAULTS.labels(name)  # the series exists (0) while nothing faulted

        def run() -> None:
            try:
                target()
            except BaseException as exc:  # a dead thread must never be a quiet one
                detail = "".join(traceback.format_exception(exc)).rstrip()
                self.fault(EXIT_INTERNAL, f"thread {name} died: {exc!r}", name, detail)
                return
            if not expected_stop.is_set() and not self.stop.is_set():
                self.fault(EXIT_INTERNAL, f"thread {name} ended unexpectedly", name)

        thread = threading.Thread(target=run, name=f"inspector-{name}", daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()
        return thread

    def fault(
        self, exit_code: int, reason: str, thread: str = "", traceback_text: str = ""
    ) -> None:
        """Record a fault the daemon cannot fix in place, and request the stop."""
        metrics.THREAD_FAULTS.labels(thread or "none").inc()
        first: Fault | None = None
        with self._lock:
            if self._fault is None:
                self._fault = first = Fault(exit_code, reason, thread)
        log.error("fault", reason=reason, thread=thread, exit_code=exit_code, tb=traceback_text)
        if first is not None:
            for callback in self._on_fault:
                try:
                    callback(first)
                except Exception:  # the stop below must happen whatever a callback does
                    log.exception("fault_callback_failed")
        self.stop.set()

    def alive(self) -> list[str]:
        """Names of supervised threads still running."""
        with self._lock:
            return [t.name for t in self._threads if t.is_alive()]

    def join(self, timeout_s: float) -> list[str]:
        """Wait for every supervised thread up to ``timeout_s`` in all; the ones still alive."""
        end = time.monotonic() + timeout_s
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(max(0.0, end - time.monotonic()))
        return [t.name for t in threads if t.is_alive()]
