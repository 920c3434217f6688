"""Result sinks of step 7 that are not the PLC: metrics and the per-part log line.

Each sink gets every part's final ``PartResult`` once, in trigger order, from the
ledger (``ledger.py``): in the worker thread or the publisher thread, never both at
once. The PLC sink lives in ``plc/``.
"""

from __future__ import annotations

import collections
import time

from inspector import metrics
from inspector.logging import get_logger
from inspector.types import PartResult, Reason

log = get_logger("inspector.part")

_FPS_WINDOW_NS = 5_000_000_000


class MetricsSink:
    """Counts verdicts and reasons, observes stage and cycle times, tracks parts/s."""

    def __init__(self) -> None:
        self._recent: collections.deque[int] = collections.deque()

    def publish(self, result: PartResult) -> None:
        v = result.verdict
        metrics.PARTS.labels("ok" if v.ok else "ng", v.reason.value).inc()
        metrics.CYCLE_SECONDS.observe(result.cycle_ns / 1e9)
        for stage, ns in result.stage_ns.items():
            metrics.STAGE_SECONDS.labels(stage).observe(ns / 1e9)
        if v.reason is Reason.TIMEOUT:
            metrics.DEADLINE_MISSES.inc()
        metrics.RECIPE.set(result.trigger.recipe_id)
        now = time.monotonic_ns()
        self._recent.append(now)
        while self._recent and now - self._recent[0] > _FPS_WINDOW_NS:
            self._recent.popleft()
        span_s = max((now - self._recent[0]) / 1e9, 1e-9)
        metrics.FPS.set((len(self._recent) - 1) / span_s if len(self._recent) > 1 else 0.0)


class LogSink:
    """One structured log line per part: part_id, verdict, reason, latency."""

    def publish(self, result: PartResult) -> None:
        v = result.verdict
        fields: dict[str, object] = {
            "part_id": result.trigger.part_id,
            "trigger_seq": result.trigger.trigger_seq,
            "recipe_id": result.trigger.recipe_id,
            "verdict": "OK" if v.ok else "NG",
            "reason": v.reason.value,
            "cycle_ms": round(result.cycle_ns / 1e6, 2),
            "stages_ms": {k: round(ns / 1e6, 2) for k, ns in result.stage_ns.items()},
        }
        if v.findings:
            fields["findings"] = [f.to_record() for f in v.findings[:5]]
        if v.detail:
            fields["detail"] = v.detail
        if v.ok:
            log.info("part", **fields)
        else:
            log.warning("part", **fields)
