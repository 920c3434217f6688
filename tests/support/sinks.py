"""A result sink for tests: records every published part and signals when enough came."""

from __future__ import annotations

import threading

from inspector.types import PartResult


class Collect:
    """Keeps results in publication order; ``done`` is set once ``want`` have arrived
    (``want`` may be raised later; clear ``done`` to wait again)."""

    def __init__(self, want: int = 0) -> None:
        self.want = want
        self.results: list[PartResult] = []
        self.done = threading.Event()

    def publish(self, result: PartResult) -> None:
        self.results.append(result)
        if len(self.results) >= self.want:
            self.done.set()
