"""Parts in flight: the worker thread's submit-then-collect queue (steps 3-6).

The worker (``pipeline.py``) hands each part to ``InFlight.add``, which submits it to
every model of its recipe (``inspect.begin_part``) and returns at once, and takes parts
back with ``pop_oldest`` (``inspect.finish_part``), always the oldest first, so verdicts
leave in trigger order. With device runners up to ``depth`` parts are on the GPU at
once: the next part's upload and model run while the host postprocesses the previous
one. A host runner finishes its part inside ``add``, so on a CPU line the oldest is
always ready and nothing is held back.

The worker decides when to wait (``Pipeline._work``): it collects when the window is
full, when the oldest part is done, or when no new part is waiting; while nothing at
all is in flight it calls ``idle`` every ``idle_timeout_s`` (the GPU keep-alive).
Single-threaded: only the worker thread touches an ``InFlight``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from inspector.errors import InspectorError
from inspector.inspect import LoadedRecipe, PartInFlight, begin_part, finish_part, part_ready
from inspector.ledger import Entry
from inspector.types import Frame, Reason, Verdict, ng

_MAX_IDLE_S = 0.05  # the worker still wakes this often to notice a stop request


@dataclass(slots=True)
class _Part:
    entry: Entry
    frame: Frame
    grab_ns: int
    work: PartInFlight | None  # None: unknown recipe, NG at once


class InFlight:
    """Parts submitted to their recipe's runners and not yet collected, oldest first."""

    def __init__(self, recipes: Iterable[LoadedRecipe], depth: int) -> None:
        self.depth = max(1, depth)
        self._parts: deque[_Part] = deque()
        self._runners = [m.runner for r in recipes for m in r.models]
        periods = [r.keepalive_s for r in self._runners if r.keepalive_s]
        self.idle_timeout_s = min([_MAX_IDLE_S, *periods])

    def __len__(self) -> int:
        return len(self._parts)

    @property
    def full(self) -> bool:
        return len(self._parts) >= self.depth

    def add(self, entry: Entry, frame: Frame, grab_ns: int, recipe: LoadedRecipe | None) -> None:
        """Submit the part (never raises; failures become its NG verdict)."""
        work = begin_part(frame, recipe) if recipe is not None else None
        self._parts.append(_Part(entry, frame, grab_ns, work))

    def oldest_ready(self) -> bool:
        """Whether the oldest part can be collected without waiting."""
        work = self._parts[0].work
        if work is None:
            return True
        try:
            return part_ready(work)
        except InspectorError:  # a failed query: collecting it will report the error
            return True

    def pop_oldest(self) -> tuple[Entry, Frame, Verdict, dict[str, int]]:
        """Collect the oldest part (waits for its device work); its verdict and stage times
        with ``grab`` first."""
        part = self._parts.popleft()
        if part.work is None:
            recipe_id = part.entry.trigger.recipe_id
            verdict = ng(Reason.ERROR, f"unknown recipe {recipe_id}")
            return part.entry, part.frame, verdict, {"grab": part.grab_ns}
        verdict, stage_ns = finish_part(part.work)
        return part.entry, part.frame, verdict, {"grab": part.grab_ns, **stage_ns}

    def idle(self) -> None:
        """Nothing in flight and nothing waiting: let each runner keep its device warm."""
        for runner in self._runners:
            runner.idle()
