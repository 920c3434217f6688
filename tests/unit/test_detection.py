"""YOLO layouts, decoding and class-aware NMS, on synthetic raw outputs."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.config import ModelConfig
from inspector.errors import ModelError
from inspector.model_info import ModelInfo, TensorSpec
from inspector.models.base import parse_imgsz, parse_names
from inspector.models.detection import build, detect_layout, nms
from inspector.preprocess.geometry import fit


def v8(rows: list[tuple[float, float, float, float, int, float]], nc: int = 3, n: int = 10):
    out = np.zeros((1, 4 + nc, n), np.float32)
    for i, (cx, cy, w, h, c, s) in enumerate(rows):
        out[0, :4, i] = (cx, cy, w, h)
        out[0, 4 + c, i] = s
    return out


def post(nc: int = 3, out: tuple[int, ...] | None = None, **kw: object):
    info = ModelInfo(
        inputs=(TensorSpec("images", (1, 3, 640, 640)),),
        outputs=(TensorSpec("output0", out or (1, 4 + nc, 10)),),
        metadata={"names": repr({i: f"c{i}" for i in range(nc)})},
    )
    return build(ModelConfig(path="m.onnx", **kw), info)  # type: ignore[arg-type]


def test_layouts() -> None:
    assert detect_layout((1, 7, 8400), 3) == "yolov8"
    assert detect_layout((1, 8400, 8), 3) == "yolov5"
    assert detect_layout((1, 84, 8400), None) == "yolov8"
    assert detect_layout((1, 25200, 85), None) == "yolov5"
    with pytest.raises(ModelError):
        detect_layout((1, 9, 8400), 3)
    with pytest.raises(ModelError):
        detect_layout((8400, 7), 3)


def test_metadata_parsing() -> None:
    assert parse_names("{0: 'scratch', 1: 'spot'}") == ("scratch", "spot")
    assert parse_names("['a', 'b']") == ("a", "b")
    assert parse_names("not python") is None
    assert parse_imgsz("[640, 480]") == (640, 480)
    assert parse_imgsz("320") == (320, 320)


def test_decode_maps_boxes_back_to_frame() -> None:
    p = post()
    geo = fit(1024, 1280, 640, 640, "letterbox")  # scale 0.5, pad_y 64
    out = v8([(100, 164, 20, 40, 1, 0.9)])
    (f,) = p([out], geo)
    assert f.class_name == "c1" and f.class_id == 1
    assert f.confidence == pytest.approx(0.9)
    assert f.box == pytest.approx((180.0, 160.0, 220.0, 240.0))


def test_nms_is_class_aware_and_ordered() -> None:
    p = post(detection={"conf": 0.2, "iou": 0.5})
    geo = fit(640, 640, 640, 640, "letterbox")
    out = v8(
        [
            (100, 100, 50, 50, 0, 0.8),
            (102, 101, 50, 50, 0, 0.9),  # overlaps the first, higher score: keeps this one
            (101, 100, 50, 50, 2, 0.7),  # same place, other class: kept
            (400, 400, 30, 30, 0, 0.6),
            (500, 500, 30, 30, 1, 0.1),  # below the floor
        ]
    )
    found = p([out], geo)
    assert [(f.class_id, round(f.confidence, 2)) for f in found] == [(0, 0.9), (2, 0.7), (0, 0.6)]


def test_nms_max_detections_and_empty() -> None:
    boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], np.float32)
    scores = np.array([0.5, 0.9, 0.7], np.float32)
    ids = np.zeros(3, np.intp)
    assert nms(boxes, scores, ids, 0.5, 2).tolist() == [1, 2]
    assert nms(boxes[:0], scores[:0], ids[:0], 0.5, 5).size == 0


def test_yolov5_layout_uses_objectness() -> None:
    p = post(out=(1, 10, 8))
    out = np.zeros((1, 10, 8), np.float32)
    out[0, 0] = (50, 50, 10, 10, 0.5, 0.0, 0.9, 0.0)  # obj 0.5 × cls 0.9 = 0.45
    out[0, 1] = (200, 200, 10, 10, 1.0, 0.0, 0.0, 0.95)
    found = p([out], fit(640, 640, 640, 640, "letterbox"))
    assert [(f.class_name, round(f.confidence, 2)) for f in found] == [("c2", 0.95), ("c1", 0.45)]


def test_garbage_outputs_raise_instead_of_returning_nothing() -> None:
    p = post()
    geo = fit(640, 640, 640, 640, "letterbox")
    bad = v8([(1, 1, 1, 1, 0, 0.9)])
    bad[0, 0, 3] = np.nan
    with pytest.raises(ModelError, match="NaN"):
        p([bad], geo)
    with pytest.raises(ModelError):
        p([np.zeros((1, 9, 10), np.float32)], geo)
    with pytest.raises(ModelError):
        p([], geo)


def test_forced_layout_mismatch_is_refused_at_start() -> None:
    with pytest.raises(ModelError, match="not 'yolov5'"):
        post(detection={"layout": "yolov5"})


def test_output_that_changes_layout_per_part_is_an_error() -> None:
    p = post()
    with pytest.raises(ModelError):
        p([np.zeros((1, 10, 8), np.float32)], fit(640, 640, 640, 640, "letterbox"))
