"""Running the whole daemon against its embedded PLC simulator, for end-to-end tests.

Shared by the CPU (tests/integration) and GPU (tests/gpu) end-to-end tests, so the
start → wait for N triggers → stop sequence and the result recorder exist once.
"""

from __future__ import annotations

import threading
import time

from inspector.app import App
from inspector.sim.plc_program import Counts
from inspector.types import PartResult


class Record:
    """A result sink that keeps every part's final result, by part id."""

    def __init__(self) -> None:
        self.results: dict[int, PartResult] = {}
        self.lock = threading.Lock()

    def publish(self, result: PartResult) -> None:
        with self.lock:
            self.results[result.trigger.part_id] = result


def run_against_plc_sim(app: App, parts: int, rate_hz: float) -> Counts:
    """Start ``app`` (configured with ``plc.simulator: true``), let the simulator trigger
    ``parts`` parts, stop the line, wait until the PLC judged (or expired) every part it
    triggered, stop the app, and return what the simulated PLC counted."""
    app.start()
    try:
        assert app.plc_sim is not None
        end = time.monotonic() + parts / rate_hz * 3 + 20
        while app.plc_sim.counts().triggered < parts and time.monotonic() < end:
            app.stop_event.wait(0.2)
        app.plc_sim.triggering = False  # the line stops feeding parts
        counts: Counts = app.plc_sim.counts()
        while not _settled(counts) and time.monotonic() < end:
            app.stop_event.wait(0.02)  # the parts in flight: a verdict, or past the deadline
            counts = app.plc_sim.counts()
    finally:
        app.stop()
    return counts


def _settled(c: Counts) -> bool:
    return c.ok + c.ng + c.missed + c.late + c.forgotten == c.triggered


def late_ok() -> float:
    """OKs the link showed the PLC as NG_TIMEOUT because they came after their deadline."""
    from inspector import metrics

    return metrics.REGISTRY.get_sample_value("inspector_plc_late_ok_total") or 0.0


def explained_losses() -> float:
    """Parts the daemon counted as lost on the PLC side: triggers it never inspected
    (missed, late, raised while the link was down or stopping) and verdicts the link did
    not write (dropped, by reason)."""
    from inspector import metrics

    total = 0.0
    for family in metrics.REGISTRY.collect():
        for sample in family.samples:
            if sample.name in (
                "inspector_plc_missed_triggers_total",
                "inspector_plc_results_dropped_total",
            ):
                total += sample.value
    return total
