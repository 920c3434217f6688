"""The bundled demo detector (engines/demo_detector.onnx) run by the real ONNX Runtime.

Checks the file is what the daemon expects (Ultralytics YOLOv8 layout and metadata) and
that, through the daemon's own stages (CPU preprocess → ONNX Runtime → detection
postprocess → decide), it finds the planted defects on held-out simulated parts and
nothing on good ones.
"""

from __future__ import annotations

import ast
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from inspector.backends import create_backend
from inspector.config import (
    ModelConfig,
    PreprocessConfig,
    RecipeConfig,
    SimCameraConfig,
    SimDefectConfig,
)
from inspector.inspect import LoadedModel, LoadedRecipe, inspect_part
from inspector.models import build_postprocessor
from inspector.preprocess.cpu import preprocess
from inspector.sim.render import DEFECT_CLASSES, render_part
from inspector.types import Frame, Label, Verdict

ENGINES = Path(__file__).resolve().parents[2] / "engines"
ONNX_PATH = ENGINES / "demo_detector.onnx"
TS_PATH = ENGINES / "demo_detector.ts"
HOLDOUT_SEED = 9000  # never used in training (tools/train_detector.py uses 1000 and 2000)


@pytest.fixture(scope="module")
def recipe() -> Iterator[LoadedRecipe]:
    model = ModelConfig(name="demo_detector", path=ONNX_PATH, onnxruntime={"threads": 1})
    backend = create_backend(model)
    loaded = LoadedRecipe(
        RecipeConfig(id=1, name="demo", models=[model]),
        [LoadedModel(model, backend, build_postprocessor(model, backend.info))],
    )
    yield loaded
    loaded.close()


def test_files_are_small() -> None:
    for path in (ONNX_PATH, TS_PATH):
        assert path.stat().st_size < 5 * 1024 * 1024, path


def test_onnx_layout_and_ultralytics_metadata() -> None:
    sess = ort.InferenceSession(str(ONNX_PATH), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    (out,) = sess.get_outputs()
    # 512×640: the sim camera's 5:4 aspect, no letterbox padding (docs/demo-model.md)
    assert inp.name == "images" and inp.shape == [1, 3, 512, 640] and inp.type == "tensor(float)"
    assert out.shape == [1, 4 + len(DEFECT_CLASSES), 80 * 64 + 40 * 32 + 20 * 16]
    meta = sess.get_modelmeta().custom_metadata_map
    assert ast.literal_eval(meta["names"]) == dict(enumerate(DEFECT_CLASSES))
    assert ast.literal_eval(meta["imgsz"]) == [512, 640]
    assert int(meta["stride"]) == 32 and meta["task"] == "detect"
    assert meta["description"] and meta["author"]
    # Rows 0-3 are cx, cy, w, h in input pixels; 4.. are sigmoid scores in [0, 1].
    sim = SimCameraConfig(seed=HOLDOUT_SEED, defects=SimDefectConfig(rate=1.0, kinds=["spot"]))
    image, (spot,) = render_part(HOLDOUT_SEED, 1, sim)
    x, geo = preprocess(image, "Mono8", (512, 640), PreprocessConfig())
    (raw,) = sess.run(None, {"images": x})
    assert raw.shape == (1, 7, 6720) and np.isfinite(raw).all()
    scores = raw[0, 4:]
    assert scores.min() >= 0.0 and scores.max() <= 1.0
    cls, best = np.unravel_index(scores.argmax(), scores.shape)
    assert DEFECT_CLASSES[cls] == "spot" and scores[cls, best] > 0.5
    cx, cy, w, h = raw[0, :4, best]
    box = geo.to_frame(np.array([[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]], np.float32))
    sx1, sy1, sx2, sy2 = spot.box
    fx, fy = (box[0, 0] + box[0, 2]) / 2, (box[0, 1] + box[0, 3]) / 2
    assert sx1 <= fx <= sx2 and sy1 <= fy <= sy2  # the best cell's box sits on the spot


def test_torchscript_export_is_a_torchscript_archive() -> None:
    # torch is not a runtime dependency; the trace is checked against the ONNX export
    # by tools/train_detector.py when it is written. Here: it is a complete archive.
    with zipfile.ZipFile(TS_PATH) as archive:
        names = archive.namelist()
        assert archive.testzip() is None
    assert any(n.endswith("/data.pkl") for n in names)
    assert any("/code/" in n for n in names)


def _matched(label: Label, verdict: Verdict) -> bool:
    lx1, ly1, lx2, ly2 = label.box
    for f in verdict.findings:
        fx1, fy1, fx2, fy2 = f.box
        iw = max(0.0, min(lx2, fx2) - max(lx1, fx1))
        ih = max(0.0, min(ly2, fy2) - max(ly1, fy1))
        union = (lx2 - lx1) * (ly2 - ly1) + (fx2 - fx1) * (fy2 - fy1) - iw * ih
        if f.class_name == label.class_name and iw * ih / union >= 0.3:
            return True
    return False


@pytest.mark.parametrize(
    ("pixel_format", "start", "count"),
    [("Mono8", 5000, 16), ("BGR8", 5100, 3), ("BayerRG8", 5200, 3)],
)
def test_finds_planted_defects_and_passes_good_parts(
    recipe: LoadedRecipe, pixel_format: str, start: int, count: int
) -> None:
    sim = SimCameraConfig(
        seed=HOLDOUT_SEED,
        pixel_format=pixel_format,  # type: ignore[arg-type]  # a Literal value
        defects=SimDefectConfig(rate=0.6),
    )
    seen_good = seen_bad = 0
    classes: set[str] = set()
    for index in range(start, start + count):
        image, truth = render_part(HOLDOUT_SEED, index, sim)
        frame = Frame(image, pixel_format, index, time.monotonic_ns(), truth=truth)
        verdict, _ = inspect_part(frame, recipe)
        if truth:
            seen_bad += 1
            classes.update(t.class_name for t in truth)
            assert not verdict.ok, (index, truth)
            missed = [t for t in truth if not _matched(t, verdict)]
            assert not missed, (index, missed, verdict.findings)
        else:
            seen_good += 1
            assert verdict.ok and verdict.findings == (), (index, verdict)
    if pixel_format == "Mono8":  # the sample must exercise every class and both outcomes
        assert seen_good >= 2 and seen_bad >= 6 and classes == set(DEFECT_CLASSES)
