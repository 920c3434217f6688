"""The new output layouts on crafted outputs: NMS-free, EfficientNMS, YOLO-seg instances,
integer class maps; identification of family and layout; and fail-closed handling of
wrong shapes, NaN and inf (a clear ModelError, which the pipeline turns into NG, never
an empty list that would read as OK)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from inspector.config import ModelConfig, RecipeConfig
from inspector.errors import ModelError
from inspector.model_info import ModelInfo, TensorSpec
from inspector.models import build_postprocessor
from inspector.models.identify import identify
from inspector.preprocess.geometry import fit

NAMES = "{0: 'scratch', 1: 'spot', 2: 'hole'}"
INPUT = (TensorSpec("images", (1, 3, 64, 64)),)
GEO = fit(64, 64, 64, 64, "letterbox")


def _info(*outputs: TensorSpec, **meta: str) -> ModelInfo:
    return ModelInfo(inputs=INPUT, outputs=outputs, metadata={"names": NAMES, **meta})


def _build(info: ModelInfo, **cfg: Any) -> Any:
    return build_postprocessor(ModelConfig(name="m", path=Path("m.onnx"), **cfg), info)


# ------------------------------------------------------------------- NMS-free [1,N,6]
E2E = _info(TensorSpec("output0", (1, 300, 6)), task="detect", end2end="True")


def _e2e(rows: list[tuple[float, ...]]) -> np.ndarray:
    out = np.zeros((1, 300, 6), np.float32)
    for i, r in enumerate(rows):
        out[0, i] = r
    return out


def test_end2end_rows_become_findings_without_nms() -> None:
    post = _build(E2E, detection={"conf": 0.3, "max_det": 2})
    assert (post.family, post.layout) == ("detection", "end2end")
    rows = [
        (1, 2, 11, 12, 0.9, 2),
        (1, 2, 11, 12, 0.8, 2),
        (5, 5, 9, 9, 0.2, 0),
        (0, 0, 3, 3, 0.5, 1),
    ]
    found = post([_e2e(rows)], GEO)
    # Overlapping boxes are both kept (the graph did NMS); max_det keeps the best two.
    assert [(f.class_name, f.confidence) for f in found] == [
        ("hole", pytest.approx(0.9)),
        ("hole", pytest.approx(0.8)),
    ]
    assert found[0].box == (1.0, 2.0, 11.0, 12.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_end2end_non_finite_is_an_error(bad: float) -> None:
    out = _e2e([(1, 2, 11, 12, 0.9, 0)])
    out[0, 299, 0] = bad  # even in an unused slot
    with pytest.raises(ModelError, match="NaN or inf"):
        _build(E2E)([out], GEO)


def test_end2end_wrong_shape_or_class_is_an_error() -> None:
    post = _build(E2E)
    with pytest.raises(ModelError, match=r"\[1, N, 6\]"):
        post([np.zeros((1, 300, 5), np.float32)], GEO)
    with pytest.raises(ModelError, match="class id"):
        post([_e2e([(1, 2, 11, 12, 0.9, 7)])], GEO)
    with pytest.raises(ModelError, match="class id"):
        post([_e2e([(1, 2, 11, 12, 0.9, 1.5)])], GEO)
    with pytest.raises(ModelError, match="no outputs"):
        post([], GEO)


def test_end2end_is_recognised_from_the_shape_and_nms_export_args() -> None:
    bare = ModelInfo(inputs=INPUT, outputs=(TensorSpec("out", (1, 100, 6)),))
    assert identify(ModelConfig(path=Path("m.onnx")), bare).layout == "end2end"
    nms = _info(TensorSpec("output0", (1, 300, 6)), task="detect", args="{'nms': True}")
    assert _build(nms).layout == "end2end"
    with pytest.raises(ModelError, match="class names unknown"):
        _build(bare)


# ------------------------------------------------------------------- EfficientNMS
NMS4 = _info(
    TensorSpec("num_dets", (1, 1), "int32"),
    TensorSpec("det_boxes", (1, 5, 4)),
    TensorSpec("det_scores", (1, 5)),
    TensorSpec("det_classes", (1, 5), "int32"),
)


def _nms_out(n: float, boxes: np.ndarray, scores: list[float], classes: list[int]) -> list[Any]:
    return [
        np.array([[n]], np.float32),
        boxes.astype(np.float32)[None],
        np.array([scores], np.float32),
        np.array([classes], np.float32),
    ]


def test_efficient_nms_reads_only_the_reported_count() -> None:
    post = _build(NMS4)
    assert post.layout == "efficient_nms"
    boxes = np.array([[1, 1, 5, 5], [2, 2, 6, 6], [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]])
    found = post(_nms_out(2, boxes, [0.4, 0.9, 0.99, 0.99, 0.99], [0, 1, 2, 2, 2]), GEO)
    assert [(f.class_name, f.confidence) for f in found] == [
        ("spot", pytest.approx(0.9)),
        ("scratch", pytest.approx(0.4)),
    ]


@pytest.mark.parametrize(
    ("n", "value", "match"),
    [(6, 0.0, "6 detections of 5"), (-1, 0.0, "detections of"), (2, np.nan, "NaN or inf")],
)
def test_efficient_nms_bad_outputs_are_errors(n: int, value: float, match: str) -> None:
    boxes = np.zeros((5, 4))
    boxes[1, 2] = value
    with pytest.raises(ModelError, match=match):
        _build(NMS4)(_nms_out(n, boxes, [0.5] * 5, [0] * 5), GEO)


# ------------------------------------------------------------------- YOLO-seg
SEG = _info(
    TensorSpec("output0", (1, 4 + 3 + 2, 10)), TensorSpec("output1", (1, 2, 16, 16)), task="segment"
)


def _seg_out() -> list[np.ndarray]:
    det = np.zeros((1, 9, 10), np.float32)
    det[0, :4, 0] = (32, 32, 32, 32)  # box 16..48
    det[0, 4 + 1, 0] = 0.8  # class spot
    det[0, 7:, 0] = (1.0, 0.0)  # mask = prototype 0
    protos = np.full((1, 2, 16, 16), -5.0, np.float32)
    protos[0, 0, 4:8, 4:8] = 5.0  # model pixels 16..32 (stride 4)
    return [det, protos]


def test_instance_mask_area_in_frame_pixels() -> None:
    post = _build(SEG)
    assert (post.family, post.layout) == ("segmentation", "instance")
    (f,) = post(_seg_out(), GEO)
    assert (f.class_name, f.box) == ("spot", (16.0, 16.0, 48.0, 48.0))
    assert f.area_px == pytest.approx(16 * 16, rel=0.15)  # bilinear edges
    half = fit(128, 128, 64, 64, "letterbox")  # frame twice the model size: 4× the area
    (g,) = post(_seg_out(), half)
    assert g.area_px == pytest.approx(4 * f.area_px)


def test_instance_bad_outputs_are_errors() -> None:
    post = _build(SEG)
    det, protos = _seg_out()
    with pytest.raises(ModelError, match="prototypes"):
        post([det, protos[:, :1]], GEO)
    bad = protos.copy()
    bad[0, 1, 0, 0] = np.nan
    with pytest.raises(ModelError, match="NaN or inf"):
        post([det, bad], GEO)
    with pytest.raises(ModelError, match="needs 2"):
        post([det], GEO)


def test_instance_class_count_must_fit_the_names() -> None:
    with pytest.raises(ModelError, match="2 class names"):
        _build(SEG, class_names=["a", "b"])


# ------------------------------------------------------------------- class maps
CMAP = ModelInfo(
    inputs=INPUT,
    outputs=(TensorSpec("output0", (1, 64, 64), "uint8"),),
    metadata={"task": "semantic", "names": "{0: 'background', 1: 'scratch', 2: 'spot'}"},
)


def test_class_map_blobs() -> None:
    post = _build(CMAP)
    assert post.layout == "class_map"
    cmap = np.zeros((1, 64, 64), np.float32)
    cmap[0, 2:6, 2:6] = 2
    cmap[0, 40:42, 10:30] = 1
    found = sorted(post([cmap], GEO), key=lambda f: f.class_id)
    assert [(f.class_name, f.area_px, f.confidence) for f in found] == [
        ("scratch", 40.0, 1.0),
        ("spot", 16.0, 1.0),
    ]


@pytest.mark.parametrize(
    ("value", "match"), [(3, "whole ids"), (1.5, "whole ids"), (np.nan, "NaN")]
)
def test_class_map_bad_values_are_errors(value: float, match: str) -> None:
    cmap = np.zeros((1, 64, 64), np.float32)
    cmap[0, 0, 0] = value
    with pytest.raises(ModelError, match=match):
        _build(CMAP)([cmap], GEO)


# ------------------------------------------------------------------- identification
def test_refused_tasks_and_mismatches_name_the_model_io() -> None:
    pose = _info(TensorSpec("output0", (1, 56, 8400)), task="pose")
    with pytest.raises(ModelError, match=r"keypoints.*outputs: output0 float32 \[1,56,8400\]"):
        _build(pose)
    with pytest.raises(ModelError, match="rotated boxes"):
        _build(_info(TensorSpec("output0", (1, 20, 8400)), task="obb"))
    with pytest.raises(ModelError, match=r"configured as 'classification'.*Set family: detection"):
        _build(E2E, family="classification")
    with pytest.raises(ModelError, match="configured as 'anomaly'"):
        _build(SEG, anomaly={"image_threshold": 0.4})  # a family block declares the family


def test_input_size_must_equal_a_static_input() -> None:
    with pytest.raises(ModelError, match=r"input_size \[640, 640\] differs.*\[64, 64\]"):
        _build(E2E, input_size=(640, 640))
    assert _build(E2E, input_size=(64, 64)).input_hw == (64, 64)


def test_raw_head_class_count_is_checked_at_start() -> None:
    info = _info(TensorSpec("output0", (1, 4 + 5, 8400)), task="detect")
    with pytest.raises(ModelError, match="fits neither"):
        _build(info)


# ------------------------------------------------------------------- config shape
def test_options_blocks_must_apply() -> None:
    with pytest.raises(ValidationError, match="several families"):
        ModelConfig(path=Path("m"), detection={"conf": 0.3}, anomaly={"image_threshold": 0.4})
    with pytest.raises(ValidationError, match="'segmentation' options given"):
        ModelConfig(path=Path("m"), family="detection", segmentation={"mask_threshold": 0.4})
    with pytest.raises(ValidationError, match="'torch' options given"):
        ModelConfig(path=Path("m"), torch={"fp16": True})
    with pytest.raises(ValidationError, match="'engine' options"):
        ModelConfig(path=Path("m"), engine={"precision": "fp32"})
    with pytest.raises(ValidationError, match="less than 1"):
        ModelConfig(path=Path("m"), anomaly={"pixel_threshold": 1.0})


def test_ultralytics_defaults() -> None:
    d = ModelConfig(path=Path("m")).detection
    assert (d.conf, d.iou, d.max_det) == (0.25, 0.7, 300)


def test_anomaly_rule_above_the_threshold_is_refused() -> None:
    model = ModelConfig(path=Path("m"), anomaly={"image_threshold": 0.3})
    with pytest.raises(ValidationError, match=r"min_confidence for 'anomaly' is 0.5.*0.3"):
        RecipeConfig(id=1, name="r", models=[model])
    ok = RecipeConfig(id=1, name="r", models=[model], rules={"min_confidence": {"anomaly": 0.3}})
    assert ok.rules.min_confidence["anomaly"] == 0.3
