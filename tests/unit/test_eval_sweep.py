"""``inspector eval``'s pure parts: the sweep reproduces ``decide`` at every threshold,
operating points, YOLO txt / JSON labels, and the recipe it writes loads."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.config import RulesConfig
from inspector.decide import decide
from inspector.errors import ConfigError
from inspector.evaluation.labels import read_truth, yolo_labels_dir
from inspector.evaluation.sweep import Sweep, sweep_all, sweep_class
from inspector.types import Finding

CLASSES = ("scratch", "spot", "anomaly")


def _parts(seed: int, n: int) -> tuple[list[list[Finding]], np.ndarray]:
    rng = np.random.default_rng(seed)
    parts, truth = [], []
    for _ in range(n):
        bad = bool(rng.random() < 0.4)
        found = []
        for _ in range(int(rng.integers(0, 4))):
            x, y, s = (float(v) for v in rng.uniform(0, 500, 3))
            conf = float(np.clip(rng.normal(0.7 if bad else 0.3, 0.2), 0, 1))
            cls = CLASSES[int(rng.integers(0, 3))]
            found.append(Finding(cls, 0, conf, (x, y, x + s / 10 + 1, y + s / 20 + 1)))
        parts.append(found)
        truth.append(bad)
    return parts, np.array(truth)


RULES = RulesConfig(
    min_confidence={"default": 0.5, "spot": 0.4},
    min_area_px={"default": 20.0},
    max_count={"default": 0, "scratch": 1},
    roi_exclude=[[(0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0)]],
)


@pytest.mark.parametrize("rule", ["min_confidence", "min_area_px"])
@pytest.mark.parametrize("cls", CLASSES)
def test_sweep_equals_decide_at_every_threshold(rule: str, cls: str) -> None:
    parts, truth = _parts(7, 300)
    grid = np.linspace(0, 1, 21) if rule == "min_confidence" else np.linspace(0, 60, 21)
    sweep = sweep_class(parts, truth, RULES, cls, rule, grid)
    for i, t in enumerate(grid):
        table = dict(getattr(RULES, rule))
        table[cls] = float(t)
        rules = RULES.model_copy(update={rule: table})
        ng = np.array([not decide(fs, rules).ok for fs in parts])
        assert sweep.escape_rate[i] == pytest.approx((~ng & truth).sum() / truth.sum())
        assert sweep.overkill_rate[i] == pytest.approx((ng & ~truth).sum() / (~truth).sum())


def test_operating_points() -> None:
    s = Sweep(
        "min_confidence",
        "spot",
        np.array([0.1, 0.2, 0.3, 0.4, 0.5]),
        np.array([0.0, 0.0, 0.1, 0.3, 0.3]),
        np.array([0.5, 0.2, 0.0, 0.0, 0.0]),
        0.5,
    )
    points = s.operating_points()
    assert points["lowest overkill at 0 escapes"] == (0.2, 0.0, 0.2)
    assert points["lowest escape at 0 overkill"] == (0.3, 0.1, 0.0)
    assert points["lowest escape + overkill"] == (0.3, 0.1, 0.0)
    flat = Sweep("min_confidence", "x", np.linspace(0, 1, 5), np.zeros(5), np.zeros(5), 0.5)
    assert flat.operating_points()["lowest escape + overkill"][0] == 0.5  # mid-range


def test_sweep_all_covers_each_class_and_rule() -> None:
    parts, truth = _parts(3, 50)
    sweeps = sweep_all(parts, truth, RulesConfig())
    assert {(s.class_name, s.rule) for s in sweeps} == {
        (c, r) for c in CLASSES for r in ("min_confidence", "min_area_px")
    }


def _images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True)
    for n in names:
        cv2.imwrite(str(folder / n), np.zeros((4, 4), np.uint8))


def test_yolo_txt_labels_in_the_ultralytics_layout(tmp_path: Path) -> None:
    images, labels = tmp_path / "images" / "val", tmp_path / "labels" / "val"
    _images(images, ["a.png", "b.png", "c.png"])
    labels.mkdir(parents=True)
    (labels / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (labels / "b.txt").write_text("\n")  # empty: a good part; c has no file: good too
    assert yolo_labels_dir(images) == labels
    assert read_truth(images, None) == {"a.png": True, "b.png": False, "c.png": False}
    (labels / "b.txt").write_text("0 0.5 nope\n")
    with pytest.raises(ConfigError, match=r"b\.txt"):
        read_truth(images, labels)


def test_json_labels_and_missing_truth(tmp_path: Path) -> None:
    images = tmp_path / "imgs"
    _images(images, ["a.png", "b.png"])
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"a.png": [["spot", 1, 1, 3, 3]], "b.png": []}))
    assert read_truth(images, labels) == {"a.png": True, "b.png": False}
    labels.write_text(json.dumps({"a.png": []}))
    with pytest.raises(ConfigError, match=r"no label for 1 image\(s\), e.g. b.png"):
        read_truth(images, labels)
    with pytest.raises(ConfigError, match="images"):
        read_truth(images, None)
