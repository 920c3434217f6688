"""Small real ONNX models written with ``onnx.helper`` (no training), run by ONNX Runtime
as a trained model would be."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: input size of ``make_conv_detector``
IMGSZ = 64


def make_detector_onnx(
    path: Path,
    detections: list[tuple[float, float, float, float, int, float]],
    *,
    nc: int = 3,
    n: int = 16,
    imgsz: int = 64,
    layout: str = "yolov8",
    names: dict[int, str] | None = None,
) -> Path:
    """Write a real ONNX detector whose output is fixed detections (+0 × the input).

    Each detection is (cx, cy, w, h, class_id, score) in model-input pixels. The graph
    really reads its input (a ReduceSum multiplied by zero), so ONNX Runtime runs it as
    it would a trained model, and NaN inputs propagate.
    """
    import onnx
    from onnx import TensorProto, helper

    rows = np.zeros((n, 4 + nc), np.float32)
    for i, (cx, cy, w, h, cls, score) in enumerate(detections):
        rows[i, :4] = (cx, cy, w, h)
        rows[i, 4 + cls] = score
    if layout == "yolov8":
        const = rows.T[None]  # [1, 4+nc, n]
    else:  # yolov5: [1, n, 5+nc] with objectness 1
        v5 = np.zeros((n, 5 + nc), np.float32)
        v5[:, :4] = rows[:, :4]
        v5[:, 4] = 1.0
        v5[:, 5:] = rows[:, 4:]
        const = v5[None]
    graph = helper.make_graph(
        [
            helper.make_node("ReduceSum", ["images"], ["s"], keepdims=0),
            helper.make_node("Mul", ["s", "zero"], ["z"]),
            helper.make_node("Add", ["det", "z"], ["output0"]),
        ],
        "fixed_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, imgsz, imgsz])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(const.shape))],
        initializer=[
            helper.make_tensor("det", TensorProto.FLOAT, const.shape, const.flatten().tolist()),
            helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    names = names or {i: f"defect{i}" for i in range(nc)}
    for key, value in (("names", repr(names)), ("imgsz", repr([imgsz, imgsz])), ("stride", "32")):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def make_conv_detector(path: Path) -> Path:
    """A real YOLOv8-layout ONNX ([1, 4+3, N]) whose outputs depend on every pixel."""
    import onnx
    from onnx import TensorProto, helper

    # Boxes: small image-dependent jitter around (32, 32, 8, 8). Class 0 scores
    # sum(rgb) - 2.2: a flat grey part scores < 0 (OK), white pixels score 0.8 (NG).
    w = np.zeros((7, 3, 1, 1), np.float32)
    w[:4, :, 0, 0] = 0.5
    w[4, :, 0, 0] = 1.0
    w[5:, :, 0, 0] = -1.0
    b = np.array([32, 32, 8, 8, -2.2, -1, -1], np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["images", "w", "b"], ["c"]),
            helper.make_node("Reshape", ["c", "shape"], ["output0"]),
        ],
        "conv_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, IMGSZ, IMGSZ])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 7, IMGSZ * IMGSZ])],
        initializer=[
            helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.flatten().tolist()),
            helper.make_tensor("b", TensorProto.FLOAT, b.shape, b.tolist()),
            helper.make_tensor("shape", TensorProto.INT64, [3], [1, 7, IMGSZ * IMGSZ]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (("names", "{0: 'scratch', 1: 'spot', 2: 'hole'}"), ("imgsz", "[64, 64]")):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path
