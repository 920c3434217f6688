"""Reconnect delays: the one backoff of the daemon (PLC link, camera, sinks).

A short first retry (a peer that blinked is back at once), doubling on every failure
up to a cap, with random jitter so that many stations do not reconnect in lock-step.
``reset()`` after a connection that worked. Deterministic when given a seeded
``random.Random``.
"""

from __future__ import annotations

import random


class Backoff:
    """Delays ``first_s``, ``2·first_s``, … capped at ``cap_s``, each ± ``jitter`` share."""

    def __init__(
        self,
        first_s: float,
        cap_s: float,
        *,
        factor: float = 2.0,
        jitter: float = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        if first_s <= 0 or cap_s <= 0 or factor < 1 or not 0 <= jitter < 1:
            raise ValueError("backoff needs first_s > 0, cap_s > 0, factor >= 1, 0 <= jitter < 1")
        self.first_s = min(first_s, cap_s)
        self.cap_s = cap_s
        self.factor = factor
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._next = self.first_s
        self.failures = 0

    def next(self) -> float:
        """The delay before the next attempt; advances the schedule."""
        base = self._next
        self._next = min(self._next * self.factor, self.cap_s)
        self.failures += 1
        if self.jitter == 0:
            return base
        return base * (1.0 + self._rng.uniform(-self.jitter, self.jitter))

    def reset(self) -> None:
        """A connection worked: the next failure starts again at ``first_s``."""
        self._next = self.first_s
        self.failures = 0
