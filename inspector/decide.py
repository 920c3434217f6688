"""Decision rules: findings → verdict (step 6 of the flow). Pure functions.

A finding *counts* when its confidence reaches the class's ``min_confidence``, its area
reaches ``min_area_px``, its centre lies inside an include ROI (when any is given) and
outside every exclude ROI. A class whose counted findings exceed ``max_count`` makes the
part NG. The verdict carries the counted findings, worst first, and a defect code
(class id + 1 of the worst finding) for the PLC's DEFECT_CODE register.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from inspector.config import Point, RulesConfig
from inspector.types import Finding, Reason, Verdict

DEFAULT = "default"
FArr = npt.NDArray[np.float64]


def per_class(table: dict[str, float] | dict[str, int], class_name: str) -> float:
    """Look up a per-class rule value, falling back to the 'default' key."""
    if class_name in table:
        return table[class_name]
    return table.get(DEFAULT, 0)


@functools.lru_cache(maxsize=128)
def _edges(polygon: tuple[Point, ...]) -> tuple[FArr, FArr, FArr, FArr]:
    """A polygon's edges as (xs, ys, xj, yj): vertex i and vertex i-1, read-only."""
    pts = np.asarray(polygon, np.float64)
    xs, ys = pts[:, 0], pts[:, 1]
    xj, yj = np.roll(xs, 1), np.roll(ys, 1)
    for a in (xs, ys, xj, yj):
        a.setflags(write=False)  # shared by every later call with this polygon
    return xs, ys, xj, yj


def inside(point: tuple[float, float], polygon: Sequence[Point]) -> bool:
    """Even-odd ray casting; points on an edge count as inside."""
    x, y = point
    xs, ys, xj, yj = _edges(tuple(polygon))
    crosses = (ys > y) != (yj > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = (xj - xs) * (y - ys) / (yj - ys) + xs
    hits = np.count_nonzero(crosses & (x < x_at))
    on_edge = _on_edge(x, y, xs, ys, xj, yj)
    return bool(on_edge or hits % 2 == 1)


def _on_edge(x: float, y: float, xs: FArr, ys: FArr, xj: FArr, yj: FArr) -> bool:
    cross = (xj - xs) * (y - ys) - (yj - ys) * (x - xs)
    within = (
        (np.minimum(xs, xj) <= x)
        & (x <= np.maximum(xs, xj))
        & (np.minimum(ys, yj) <= y)
        & (y <= np.maximum(ys, yj))
    )
    return bool(np.any((np.abs(cross) < 1e-9) & within))


def in_roi(finding: Finding, rules: RulesConfig) -> bool:
    """Whether the finding's centre lies in the inspected region."""
    x1, y1, x2, y2 = finding.box
    centre = ((x1 + x2) / 2, (y1 + y2) / 2)
    if rules.roi_include and not any(inside(centre, p) for p in rules.roi_include):
        return False
    return not any(inside(centre, p) for p in rules.roi_exclude)


def counts(finding: Finding, rules: RulesConfig) -> bool:
    """Whether one finding passes the confidence, size and ROI filters."""
    return (
        finding.confidence >= per_class(rules.min_confidence, finding.class_name)
        and finding.area >= per_class(rules.min_area_px, finding.class_name)
        and in_roi(finding, rules)
    )


def decide(findings: Sequence[Finding], rules: RulesConfig) -> Verdict:
    """Apply the rules; OK only when no class exceeds its allowed count."""
    counted = sorted((f for f in findings if counts(f, rules)), key=lambda f: -f.confidence)
    by_class: dict[str, list[Finding]] = {}
    for f in counted:
        by_class.setdefault(f.class_name, []).append(f)
    failing = [
        (cls, fs) for cls, fs in by_class.items() if len(fs) > per_class(rules.max_count, cls)
    ]
    if not failing:
        return Verdict(ok=True, reason=Reason.OK, findings=tuple(counted))
    worst = max((fs[0] for _, fs in failing), key=lambda f: f.confidence)
    allowed = per_class(rules.max_count, worst.class_name)
    reason = Reason.DEFECT if allowed == 0 else Reason.COUNT
    detail = ", ".join(f"{cls}×{len(fs)}" for cls, fs in failing)
    culprits = tuple(f for _, fs in failing for f in fs)
    return Verdict(
        ok=False, reason=reason, findings=culprits, detail=detail, defect_code=worst.class_id + 1
    )
