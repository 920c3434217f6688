"""Shared fixtures: the thread-leak guard, free ports, and small real ONNX models."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail any test that leaves a thread running (pymodbus' rule, adopted here)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 3.0
    leaked: list[threading.Thread] = []
    while time.monotonic() < deadline:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked:
            return
        time.sleep(0.02)
    pytest.fail(f"test leaked threads: {[t.name for t in leaked]}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def port() -> int:
    return free_port()


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
