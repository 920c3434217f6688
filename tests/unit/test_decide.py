"""Decision rules: confidence, size, ROI and count, and the reason codes they give."""

from __future__ import annotations

from inspector.config import RulesConfig
from inspector.decide import decide, inside
from inspector.types import Finding, PlcVerdict, Reason


def f(cls: str = "scratch", conf: float = 0.9, box=(10, 10, 20, 20), cid: int = 0) -> Finding:
    return Finding(class_name=cls, class_id=cid, confidence=conf, box=box)


def test_no_findings_is_ok() -> None:
    v = decide([], RulesConfig())
    assert v.ok and v.reason is Reason.OK and v.plc_verdict is PlcVerdict.OK


def test_one_confident_finding_is_ng_with_defect_code() -> None:
    v = decide([f(cid=2)], RulesConfig())
    assert not v.ok and v.reason is Reason.DEFECT and v.defect_code == 3
    assert v.plc_verdict is PlcVerdict.NG


def test_per_class_min_confidence() -> None:
    rules = RulesConfig(min_confidence={"default": 0.5, "spot": 0.95})
    assert decide([f("spot", 0.9)], rules).ok
    assert not decide([f("spot", 0.96)], rules).ok
    assert not decide([f("scratch", 0.6)], rules).ok


def test_min_area() -> None:
    rules = RulesConfig(min_area_px={"default": 150})
    assert decide([f(box=(0, 0, 10, 10))], rules).ok  # 100 px²
    assert not decide([f(box=(0, 0, 20, 10))], rules).ok  # 200 px²
    masked = Finding("scratch", 0, 0.9, (0, 0, 100, 100), area_px=50.0)
    assert decide([masked], rules).ok  # mask area wins over the box


def test_roi_include_and_exclude() -> None:
    square = [(0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0)]
    rules = RulesConfig(roi_include=[square])
    assert not decide([f(box=(40, 40, 60, 60))], rules).ok
    assert decide([f(box=(140, 140, 160, 160))], rules).ok
    rules = RulesConfig(roi_exclude=[square])
    assert decide([f(box=(40, 40, 60, 60))], rules).ok
    assert not decide([f(box=(140, 140, 160, 160))], rules).ok


def test_max_count_gives_count_reason() -> None:
    rules = RulesConfig(max_count={"default": 0, "spot": 2})
    spots = [f("spot", 0.9, cid=1), f("spot", 0.8, cid=1)]
    assert decide(spots, rules).ok
    v = decide([*spots, f("spot", 0.7, cid=1)], rules)
    assert not v.ok and v.reason is Reason.COUNT and "spot×3" in v.detail


def test_point_in_polygon() -> None:
    tri = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)]
    assert inside((1, 1), tri)
    assert not inside((9, 9), tri)
    assert inside((5, 0), tri)  # on an edge
