"""Trigger sources: where parts come from (step 1 of the flow).

A trigger source calls ``submit(trigger)`` once per part; ``submit`` never blocks (the
pipeline answers an overrun with NG at once). ``InternalTrigger`` is a timer at line
rate for simulation; the PLC trigger lives in ``plc/`` and the camera hardware trigger
in ``camera/genicam.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from inspector.seq import seq_of_count
from inspector.types import Trigger

Submit = Callable[[Trigger], None]


class TriggerSource(Protocol):
    """Produces triggers until ``stop`` is set. ``run`` blocks; call it in a thread."""

    def run(self, submit: Submit, stop: threading.Event) -> None: ...


class InternalTrigger:
    """A timer at ``rate_hz``, numbering parts 1, 2, 3 ... (simulation, demo, replay)."""

    def __init__(
        self,
        rate_hz: float,
        budget_ms: float,
        *,
        max_parts: int | None = None,
        recipe_id: Callable[[], int] = lambda: 1,
        first_part_id: int = 1,
    ) -> None:
        self.period_ns = int(1e9 / rate_hz)
        self.budget_ns = int(budget_ms * 1e6)
        self.max_parts = max_parts
        self.recipe_id = recipe_id
        self.first_part_id = first_part_id

    def run(self, submit: Submit, stop: threading.Event) -> None:
        seq = 0
        next_ns = time.monotonic_ns()
        while not stop.is_set():
            if self.max_parts is not None and seq >= self.max_parts:
                break
            now = time.monotonic_ns()
            if now < next_ns:
                # Event.wait, not sleep: a stop request ends the wait at once.
                if stop.wait((next_ns - now) / 1e9):
                    break
                now = time.monotonic_ns()
            seq += 1
            submit(
                Trigger(
                    trigger_seq=seq_of_count(seq),
                    part_id=self.first_part_id + seq - 1,
                    t_trigger_ns=now,
                    deadline_ns=now + self.budget_ns,
                    source="internal",
                    recipe_id=self.recipe_id(),
                )
            )
            next_ns += self.period_ns
            if next_ns < now:  # we fell behind (e.g. suspended): do not burst
                next_ns = now + self.period_ns
