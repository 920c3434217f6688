"""The web page's sink: the latest part in a one-slot hand-off, plus cheap counters.

    ledger ─▶ … ─▶ HmiSink.publish ─▶ [latest slot] ┄▶ encoder thread ─▶ Hub ─▶ browsers

``HmiSink.publish`` runs inline in the publishing thread (worker or publisher), so it
does only constant work under one short lock: it replaces the latest result (the frame
is shared, never copied: the slot holds one reference, the previous one is released),
counts the verdict since start and in the current minute, and appends the cycle time to
a bounded ring for the strip chart. It never waits for the page's threads: the encoder
takes the slot when it is ready to, and parts in between are counted, not shown.

``Stats`` reads all of this back (in the encoder thread, at most once a second) into the
JSON the page shows: counters since start and over the last hour, the cycle-time strip
chart, the verdicts of the last parts, and the station status (recipe in force, PLC
link, camera, GPU, daemon state), read from the metrics registry's gauges and the config.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Gauge

from inspector import metrics
from inspector.config import Config
from inspector.types import PartResult

_MINUTE_NS = 60_000_000_000
RECENT_PARTS = 12  # the verdict history table
#: (monotonic ns at publish, part id, cycle ms, reason: "ok" or the NG reason code)
ChartPoint = tuple[int, int, float, str]
_HOUR_MINUTES = 60
_FPS_WINDOW_NS = 5_000_000_000


@dataclass
class _Minute:
    """Verdict counts of one wall minute (monotonic minute index)."""

    index: int
    counts: collections.Counter[str] = field(default_factory=collections.Counter)


class HmiSink:
    """A result sink for the web page: a latest-only slot and counters; never blocks."""

    def __init__(
        self, chart_parts: int = 300, clock: Callable[[], int] = time.monotonic_ns
    ) -> None:
        self.clock = clock  # monotonic ns; a test passes its own
        self._lock = threading.Lock()
        self._latest: PartResult | None = None
        self._version = 0  # bumps on every part; the encoder compares versions
        self._since_start: collections.Counter[str] = collections.Counter()
        self._minutes: collections.deque[_Minute] = collections.deque(maxlen=_HOUR_MINUTES + 1)
        #: (monotonic ns at publish, part id, cycle ms, ok, reason) per part, oldest first.
        self._chart: collections.deque[ChartPoint] = collections.deque(maxlen=chart_parts)
        self.fresh = threading.Event()  # set on every part; the encoder clears it
        self.t_start_ns = clock()

    def publish(self, result: PartResult) -> None:
        now = self.clock()
        key = "ok" if result.verdict.ok else result.verdict.reason.value
        minute = now // _MINUTE_NS
        with self._lock:
            self._latest = result
            self._version += 1
            self._since_start[key] += 1
            if not self._minutes or self._minutes[-1].index != minute:
                self._minutes.append(_Minute(minute))
            self._minutes[-1].counts[key] += 1
            self._chart.append((now, result.trigger.part_id, result.cycle_ns / 1e6, key))
        self.fresh.set()

    def latest(self) -> tuple[int, PartResult | None]:
        """The latest part and its version (0 and None before the first part)."""
        with self._lock:
            return self._version, self._latest

    def snapshot(self) -> tuple[dict[str, int], dict[str, int], list[ChartPoint]]:
        """Counts since start, counts over the last hour, and the chart ring (copies)."""
        hour_start = self.clock() // _MINUTE_NS - _HOUR_MINUTES + 1
        with self._lock:
            since = dict(self._since_start)
            hour: collections.Counter[str] = collections.Counter()
            for m in self._minutes:
                if m.index >= hour_start:
                    hour.update(m.counts)
            chart = list(self._chart)
        return since, dict(hour), chart


def gauge_value(gauge: Gauge) -> float | None:
    """The current value of an unlabelled gauge, through its public ``collect``."""
    for family in gauge.collect():
        for sample in family.samples:
            return float(sample.value)
    return None


def _tally(counts: dict[str, int]) -> dict[str, Any]:
    ok = counts.get("ok", 0)
    ng = {k: v for k, v in sorted(counts.items()) if k != "ok"}
    return {"total": ok + sum(ng.values()), "ok": ok, "ng": sum(ng.values()), "ng_by_reason": ng}


class Stats:
    """Builds the page's stats message: counters, strip chart, station status."""

    def __init__(self, cfg: Config, sink: HmiSink, build: dict[str, str]) -> None:
        self.cfg = cfg
        self.sink = sink
        self.build = build
        self._gpu_used = any(
            m.preprocess.device == "cuda" or m.backend != "onnxruntime"
            for r in cfg.recipes
            for m in r.models
        )

    def message(self, clients: int) -> dict[str, Any]:
        since, hour, chart = self.sink.snapshot()
        now = self.sink.clock()
        _, latest = self.sink.latest()
        recent = [c for c in chart if now - c[0] <= _FPS_WINDOW_NS]
        fps = (len(recent) - 1) / ((recent[-1][0] - recent[0][0]) / 1e9) if len(recent) > 1 else 0
        recipe_id = latest.trigger.recipe_id if latest else self.cfg.default_recipe
        return {
            "line": self.cfg.line.name,
            "uptime_s": round((now - self.sink.t_start_ns) / 1e9, 1),
            "since_start": _tally(since),
            "last_hour": _tally(hour),
            "chart": {
                "budget_ms": self.cfg.line.cycle_budget_ms,
                "part_ids": [c[1] for c in chart],
                "cycle_ms": [round(c[2], 2) for c in chart],
                "ok": [int(c[3] == "ok") for c in chart],
            },
            "recent": [
                {"part_id": c[1], "verdict": "OK" if c[3] == "ok" else "NG", "reason": c[3]}
                | {"cycle_ms": round(c[2], 1)}
                for c in reversed(chart[-RECENT_PARTS:])
            ],
            "status": {
                "state": metrics.current_state(),
                "recipe": {"id": recipe_id, "name": self._recipe_name(recipe_id)},
                "plc": self._plc(),
                "camera": self._camera(),
                "gpu": self._gpu(),
                "parts_per_s": round(fps, 2),
                "deadline_misses": since.get("timeout", 0),
                "clients": clients,
            },
            "build": self.build,
        }

    def _recipe_name(self, recipe_id: int) -> str:
        return next((r.name for r in self.cfg.recipes if r.id == recipe_id), "unknown recipe")

    def _plc(self) -> str:
        if not self.cfg.plc.enabled:
            return "disabled"
        return "up" if metrics.PLC_LINK_UP.get() == 1 else "down"

    def _camera(self) -> str:
        if self.cfg.camera.type != "genicam":  # only a real camera reports health
            return f"{self.cfg.camera.type} (no health signal)"
        return "up" if gauge_value(metrics.CAMERA_UP) == 1 else "down"

    def _gpu(self) -> str:
        if not self._gpu_used:
            return "not used (CPU)"
        failing = int(gauge_value(metrics.GPU_CONSECUTIVE_FAILURES) or 0)
        return "ok" if failing == 0 else f"failing ({failing} parts in a row)"
