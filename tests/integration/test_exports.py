"""Real exports (tests/data/exports, made by tools/make_export_fixtures.py with Ultralytics
8.4, torchvision and anomalib 2.7): each is recognised at start with its family
auto-detected, runs through the daemon's inspection path, and parses to what the
exporting tool itself predicts (expected.json). Refused combinations exit 78 from
``inspector check-config``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from inspector.backends.onnxruntime import OnnxRuntimeBackend
from inspector.config import ModelConfig, RecipeConfig
from inspector.errors import EXIT_CONFIG, ModelError
from inspector.inspect import inspect_part
from inspector.models import build_postprocessor
from inspector.models.base import Postprocessor
from inspector.preprocess.cpu import preprocess
from inspector.recipes import load_recipe
from inspector.types import Finding, Frame, Reason

REPO = Path(__file__).resolve().parents[2]
EXPORTS = REPO / "tests" / "data" / "exports"
EXPECTED: dict[str, Any] = json.loads((EXPORTS / "expected.json").read_text())
PART = cv2.imread(str(EXPORTS / "part.png"), cv2.IMREAD_GRAYSCALE)  # already 320×320
CONF = EXPECTED["part"]["conf"]
# Counts are compared above the floor: runtimes differ by ~1e-6, and a score that close
# to Ultralytics' conf may fall either side of it.
MARGIN = 1.5 * CONF


def _above(scores: list[float]) -> int:
    return sum(s >= MARGIN for s in scores)


def _run(file: str, image: np.ndarray, **cfg: Any) -> tuple[Postprocessor, list[Finding]]:
    model = ModelConfig(name=file, path=EXPORTS / file, **cfg)
    backend = OnnxRuntimeBackend(model)
    backend.load()
    try:
        post = build_postprocessor(model, backend.info)
        tensor, geometry = preprocess(image, "Mono8", post.input_hw, model.preprocess)
        return post, post(backend.infer(tensor), geometry)
    finally:
        backend.close()


@pytest.mark.parametrize(
    ("file", "family", "layout"),
    [
        ("yolo26_e2e.onnx", "detection", "end2end"),
        ("yolov8_nms.onnx", "detection", "end2end"),
        ("yolov8_seg.onnx", "segmentation", "instance"),
        ("yolo26_seg.onnx", "segmentation", "instance"),
        ("yolo26_sem.onnx", "segmentation", "class_map"),
        ("tv_lraspp.onnx", "segmentation", "semantic"),
        ("yolo11_cls.onnx", "classification", "scores"),
        ("anomalib_patchcore.onnx", "anomaly", "v2"),
    ],
)
def test_family_and_layout_are_recognised_without_config(
    file: str, family: str, layout: str
) -> None:
    image = PART if "cls" not in file and "anomalib" not in file else None
    image = cv2.resize(PART, (64, 64)) if "anomalib" in file else image
    image = cv2.imread(str(EXPORTS / "part_128.png"), 0) if "cls" in file else image
    post, findings = _run(file, image)
    assert (post.family, post.layout) == (family, layout)
    assert all(np.isfinite(f.confidence) and 0 <= f.confidence <= 1 for f in findings)


def _top(findings: list[Finding], k: int) -> list[Finding]:
    return sorted(findings, key=lambda f: -f.confidence)[:k]


@pytest.mark.parametrize("file", ["yolo26_e2e.onnx", "yolov8_nms.onnx"])
def test_nms_free_output_matches_ultralytics(file: str) -> None:
    _, findings = _run(file, PART, detection={"conf": CONF})
    exp = EXPECTED[file]
    assert _above([f.confidence for f in findings]) == _above(exp["scores"])
    order = np.argsort(-np.array(exp["scores"]), kind="stable")[:20]
    for f, i in zip(_top(findings, 20), order, strict=True):
        assert f.confidence == pytest.approx(exp["scores"][i], abs=1e-4)
        assert f.class_id == exp["classes"][i]
        assert f.box == pytest.approx(exp["boxes"][i], abs=0.05)


@pytest.mark.parametrize("file", ["yolov8_seg.onnx", "yolo26_seg.onnx"])
def test_instance_masks_match_ultralytics(file: str) -> None:
    _, all_found = _run(file, PART, segmentation={"conf": CONF})
    exp = EXPECTED[file]
    findings = [f for f in all_found if f.area_px]  # Ultralytics drops empty masks
    assert _above([f.confidence for f in findings]) == _above(exp["scores"])
    order = np.argsort(-np.array(exp["scores"]), kind="stable")[:10]
    for f, i in zip(_top(findings, 10), order, strict=True):
        assert f.confidence == pytest.approx(exp["scores"][i], abs=1e-4)
        assert f.class_id == exp["classes"][i]
        assert f.box == pytest.approx(exp["boxes"][i], abs=0.05)
        # Ultralytics upsamples with torch, we with OpenCV: edge pixels may differ.
        assert f.area_px == pytest.approx(exp["mask_areas"][i], rel=0.01, abs=2)


def test_classifier_matches_ultralytics() -> None:
    image = cv2.imread(str(EXPORTS / "part_128.png"), cv2.IMREAD_GRAYSCALE)
    post, findings = _run("yolo11_cls.onnx", image)
    probs = EXPECTED["yolo11_cls.onnx"]["probs"]
    top = int(np.argmax(probs))
    if post.class_names[top] == "good":
        assert findings == []
    else:
        (f,) = findings
        assert (f.class_id, f.confidence) == (top, pytest.approx(probs[top], abs=1e-4))


def test_anomalib_export_agrees_with_anomalib() -> None:
    image = cv2.imread(str(EXPORTS / "part_64.png"), cv2.IMREAD_GRAYSCALE)
    exp = EXPECTED["anomalib_patchcore.onnx"]
    _, at_half = _run("anomalib_patchcore.onnx", image)
    image_level = [f for f in at_half if f.area_px is None]
    assert bool(image_level) == exp["pred_label"]
    # The score itself, at a floor that always reports it:
    _, low = _run("anomalib_patchcore.onnx", image, anomaly={"image_threshold": 0.001})
    (score,) = [f.confidence for f in low if f.area_px is None]
    assert score == pytest.approx(exp["pred_score"], abs=1e-3)


def test_semantic_class_map_blobs_cover_the_map() -> None:
    post, findings = _run("yolo26_sem.onnx", PART)
    assert len(post.class_names) == 3  # the untrained export's default names
    assert {f.class_name for f in findings} <= set(post.class_names[1:])
    assert all(f.confidence == 1.0 and f.area_px and f.area_px > 0 for f in findings)


def test_pose_model_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ModelError, match=r"'pose' model outputs keypoints"):
        _run("yolo26_pose.onnx", PART)


@pytest.mark.parametrize(
    "file", ["yolo26_e2e.onnx", "yolov8_seg.onnx", "yolo26_sem.onnx", "tv_lraspp.onnx"]
)
def test_each_export_runs_through_the_daemon_inspection_path(file: str) -> None:
    recipe = load_recipe(
        RecipeConfig(id=1, name="t", models=[ModelConfig(name="m", path=EXPORTS / file)]),
        warmup_runs=1,
    )
    try:
        frame = Frame(PART, "Mono8", 1, time.monotonic_ns())
        verdict, stages = inspect_part(frame, recipe)
    finally:
        recipe.close()
    assert verdict.reason is not Reason.ERROR, verdict.detail
    assert {"preprocess", "infer", "postprocess", "decide"} <= set(stages)


REFUSED = {
    "family": ("yolov8_seg.onnx", "family: detection", "looks like 'segmentation'"),
    "pose": ("yolo26_pose.onnx", "", "keypoints"),
    "class names": ("yolov8_seg.onnx", "class_names: [a, b]", "2 class names"),
    "input size": ("yolo26_e2e.onnx", "input_size: [640, 640]", "static input"),
    "layout": ("yolo26_e2e.onnx", "detection: {layout: yolov8}", "fits neither"),
    "anomaly map": ("tv_lraspp.onnx", "family: anomaly", "looks like 'segmentation'"),
    "static batch": ("anomalib_patchcore_b2.onnx", "", "static batch of 2"),
    "raw anomaly": (
        "../models/anomaly_map_raw.onnx",
        "anomaly: {metadata: /nonexistent/metadata.json}",
        "image_threshold, pixel_threshold",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_combinations_exit_78_at_check_config(case: str, tmp_path: Path) -> None:
    file, extra, message = REFUSED[case]
    lines = [f"path: {EXPORTS / file}", *([extra] if extra else [])]
    model = "\n        ".join(lines)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"recipes:\n  - id: 1\n    name: t\n    models:\n      - {model}\n"
        "metrics: {enabled: false}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "inspector", "check-config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == EXIT_CONFIG, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    if case == "family":  # the message lists the model's outputs and suggests the family
        assert "output0 float32 [1,39,2100]; output1 float32 [1,32,80,80]" in proc.stderr
        assert "Set family: segmentation" in proc.stderr
