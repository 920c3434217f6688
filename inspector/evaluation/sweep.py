"""Threshold sweeps over kept raw scores: escape and overkill against each threshold.

Pure numpy, no model. ``decide.py`` makes a part NG when some class has more counted
findings than its ``max_count``; a finding counts when its confidence, area and ROI pass.
Classes are independent, so sweeping one class's threshold needs, per part, only

* whether the *other* classes already make it NG (at the recipe's rules), and
* the (max_count+1)-th largest confidence (or area) of this class's findings that pass
  the other filters: the part is NG for every threshold at or below it.

That makes a whole sweep one comparison per part and threshold, and it reproduces
``decide`` exactly (tests/unit/test_eval_sweep.py checks it against ``decide``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inspector.config import RulesConfig
from inspector.decide import decide, in_roi, per_class
from inspector.types import Finding

BoolArray = npt.NDArray[np.bool_]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Sweep:
    """One threshold swept for one class: rates at each grid value."""

    rule: str  # "min_confidence" or "min_area_px"
    class_name: str
    thresholds: F64
    escape_rate: F64
    overkill_rate: F64
    current: float  # the recipe's value

    def operating_points(self) -> dict[str, tuple[float, float, float]]:
        """Named points: (threshold, escape rate, overkill rate).

        Where a whole range of thresholds is equally good, the middle of the range is
        taken: the most margin on both sides for parts that were not in the set.
        """
        esc, ovk, thr = self.escape_rate, self.overkill_rate, self.thresholds
        points: dict[str, tuple[float, float, float]] = {}

        def middle(candidates: npt.NDArray[np.intp], cost: F64) -> tuple[float, float, float]:
            best = candidates[cost[candidates] == cost[candidates].min()]
            i = int(best[len(best) // 2])
            return float(thr[i]), float(esc[i]), float(ovk[i])

        zero_escape = np.flatnonzero(esc == 0)
        if zero_escape.size:
            points["lowest overkill at 0 escapes"] = middle(zero_escape, ovk)
        zero_overkill = np.flatnonzero(ovk == 0)
        if zero_overkill.size:
            points["lowest escape at 0 overkill"] = middle(zero_overkill, esc)
        points["lowest escape + overkill"] = middle(np.arange(len(thr)), esc + ovk)
        return points


def _rates(ng: BoolArray, truth: BoolArray) -> tuple[F64, F64]:
    """Escape and overkill rates for NG decisions ``ng`` [thresholds, parts]."""
    n_bad, n_good = max(1, int(truth.sum())), max(1, int((~truth).sum()))
    escape = (~ng & truth).sum(axis=1) / n_bad
    overkill = (ng & ~truth).sum(axis=1) / n_good
    return escape.astype(np.float64), overkill.astype(np.float64)


def _kth(values: list[float], k: int) -> float:
    """The k-th largest value (1-based), or -inf when there are fewer than k."""
    if len(values) < k:
        return -np.inf
    return float(sorted(values, reverse=True)[k - 1])


def sweep_class(
    parts: Sequence[Sequence[Finding]],
    truth: BoolArray,
    rules: RulesConfig,
    class_name: str,
    rule: str,
    grid: F64,
) -> Sweep:
    """Sweep ``rules.<rule>[class_name]`` over ``grid``, other rules as in the recipe."""
    k = int(per_class(rules.max_count, class_name)) + 1
    others_ng = np.zeros(len(parts), bool)
    kth = np.full(len(parts), -np.inf)
    min_conf = per_class(rules.min_confidence, class_name)
    min_area = per_class(rules.min_area_px, class_name)
    for p, findings in enumerate(parts):
        mine = [f for f in findings if f.class_name == class_name and in_roi(f, rules)]
        others_ng[p] = not decide([f for f in findings if f.class_name != class_name], rules).ok
        if rule == "min_confidence":
            kth[p] = _kth([f.confidence for f in mine if f.area >= min_area], k)
        else:
            kth[p] = _kth([f.area for f in mine if f.confidence >= min_conf], k)
    ng = others_ng[None, :] | (grid[:, None] <= kth[None, :])
    escape, overkill = _rates(ng, truth)
    current = min_conf if rule == "min_confidence" else min_area
    return Sweep(rule, class_name, grid, escape, overkill, float(current))


def area_grid(parts: Sequence[Sequence[Finding]], class_name: str, points: int = 101) -> F64:
    """0, then geometric steps up to just above the largest area of the class."""
    areas = [f.area for fs in parts for f in fs if f.class_name == class_name and f.area > 0]
    if not areas:
        return np.zeros(1)
    top = max(areas) * 1.01
    return np.concatenate([[0.0], np.geomspace(max(1.0, min(areas) / 2), top, points - 1)])


def sweep_all(
    parts: Sequence[Sequence[Finding]], truth: BoolArray, rules: RulesConfig
) -> list[Sweep]:
    """Confidence and area sweeps for every class that appears in the findings."""
    classes = sorted({f.class_name for fs in parts for f in fs})
    conf_grid = np.round(np.linspace(0.0, 1.0, 101), 4)
    sweeps = []
    for cls in classes:
        sweeps.append(sweep_class(parts, truth, rules, cls, "min_confidence", conf_grid))
        grid = area_grid(parts, cls)
        sweeps.append(sweep_class(parts, truth, rules, cls, "min_area_px", grid))
    return sweeps
