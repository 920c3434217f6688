"""The segmentation, anomaly and classification families end to end on real ONNX models.

Each committed model (tests/data/models, built by tools/make_family_models.py) is loaded
by ONNX Runtime, fed synthetic frames through the CPU preprocess, and its outputs turned
into findings by the family's postprocessor, as the pipeline does for every part.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inspector.backends.onnxruntime import OnnxRuntimeBackend
from inspector.config import ModelConfig, PreprocessConfig, QualityConfig, RecipeConfig
from inspector.errors import ModelError
from inspector.inspect import LoadedRecipe, inspect_part
from inspector.models import build_postprocessor
from inspector.preprocess.cpu import preprocess
from inspector.recipes import load_recipe
from inspector.types import Finding, Frame, Reason

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "tests" / "data" / "models"

# A 200×100 mid-grey part (letterboxed into the square inputs with 16 rows of padding
# above and below at 64×64) with a dark square and a bright bar.
DARK = (50.0, 40.0, 70.0, 60.0)
BRIGHT = (150.0, 10.0, 190.0, 20.0)


def _frame(*, dark: bool = True, bright: bool = True) -> np.ndarray:
    frame = np.full((100, 200), 128, np.uint8)
    if dark:
        frame[40:60, 50:70] = 0
    if bright:
        frame[10:20, 150:190] = 255
    return frame


def _run(
    file: str, family: str, frame: np.ndarray, pixel_format: str = "Mono8", **cfg: Any
) -> tuple[list[Finding], list[np.ndarray]]:
    model = ModelConfig(name=file, family=family, path=MODELS / file, **cfg)
    backend = OnnxRuntimeBackend(model)
    backend.load()
    try:
        post = build_postprocessor(model, backend.info)
        tensor, geometry = preprocess(frame, pixel_format, post.input_hw, model.preprocess)
        outputs = backend.infer(tensor)
        return post(outputs, geometry), outputs
    finally:
        backend.close()


def _near(box: tuple[float, ...], truth: tuple[float, ...], tol: float) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(box, truth, strict=True))


def test_committed_models_are_what_the_generator_builds(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(REPO / "tools" / "make_family_models.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    built = sorted(p.name for p in tmp_path.glob("*.onnx"))
    assert len(built) == 6
    for name in built:
        assert (MODELS / name).read_bytes() == (tmp_path / name).read_bytes(), name


def test_binary_segmentation_finds_the_dark_spot_at_half_resolution() -> None:
    findings, _ = _run("seg_dark.onnx", "segmentation", _frame())
    (f,) = findings
    assert (f.class_name, f.class_id, f.model) == ("dark_spot", 0, "seg_dark.onnx")
    # One output cell is 2 model pixels = 6.25 frame pixels.
    assert _near(f.box, DARK, 6.25), f.box
    assert f.area_px is not None and 300 <= f.area_px <= 650
    assert f.confidence > 0.8


def test_binary_segmentation_of_a_good_part_is_empty() -> None:
    findings, _ = _run("seg_dark.onnx", "segmentation", _frame(dark=False))
    assert findings == []


def test_black_letterbox_padding_is_not_a_defect() -> None:
    pre = PreprocessConfig(pad_value=0)
    findings, outputs = _run("seg_dark.onnx", "segmentation", _frame(dark=False), preprocess=pre)
    assert outputs[0][0, 0, :8].min() > 0.5  # the model does see the padding as dark...
    assert findings == []  # ...and the postprocessor ignores it
    findings, _ = _run("seg_dark.onnx", "segmentation", _frame(), preprocess=pre)
    assert len(findings) == 1 and _near(findings[0].box, DARK, 6.25)


def test_multiclass_segmentation_names_each_blob_on_a_bgr_frame() -> None:
    bgr = np.repeat(_frame()[:, :, None], 3, axis=2)
    findings, outputs = _run("seg_multi.onnx", "segmentation", bgr, "BGR8")
    assert outputs[0].min() < 0 or outputs[0].max() > 1  # logits: softmax path
    by_class = {f.class_name: f for f in findings}
    assert sorted(by_class) == ["bright", "dark"] and len(findings) == 2
    assert by_class["dark"].class_id == 1 and by_class["bright"].class_id == 2
    assert _near(by_class["dark"].box, DARK, 3.2)
    assert _near(by_class["bright"].box, BRIGHT, 3.2)
    assert by_class["dark"].area_px == pytest.approx(400, rel=0.15)


def test_anomalib_layout_gives_image_and_localised_findings() -> None:
    pre = PreprocessConfig(pad_value=128)  # a mid-grey pad is normal for this model
    findings, outputs = _run("anomaly_patchcore.onnx", "anomaly", _frame(), preprocess=pre)
    assert len(outputs) == 3  # pred_score, pred_label, anomaly_map
    image = [f for f in findings if f.area_px is None]
    local = sorted((f for f in findings if f.area_px is not None), key=lambda f: f.box[0])
    assert len(image) == 1 and image[0].box == (0.0, 0.0, 200.0, 100.0)
    assert image[0].confidence == pytest.approx(float(outputs[0][0]), abs=1e-6)
    assert [f.class_name for f in findings] == ["anomaly"] * 3
    assert len(local) == 2
    assert _near(local[0].box, DARK, 3.2) and _near(local[1].box, BRIGHT, 3.2)


def test_anomalib_layout_on_a_good_part_is_empty() -> None:
    pre = PreprocessConfig(pad_value=128)
    findings, _ = _run(
        "anomaly_patchcore.onnx", "anomaly", _frame(dark=False, bright=False), preprocess=pre
    )
    assert findings == []


def test_raw_map_only_model_is_normalised_by_its_metadata_and_ignores_padding() -> None:
    # anomaly_map_raw.metadata.json: raw threshold 4 → 0.5 on the recipe's scale.
    cfg: dict[str, Any] = {"preprocess": PreprocessConfig(pad_value=0)}
    good, outputs = _run("anomaly_map_raw.onnx", "anomaly", _frame(dark=False, bright=False), **cfg)
    assert outputs[0][0, 0, :8].min() > 9.0  # black padding is far from mid-grey
    assert good == []
    findings, _ = _run("anomaly_map_raw.onnx", "anomaly", _frame(bright=False), **cfg)
    image, local = findings
    assert image.box == (0.0, 0.0, 200.0, 100.0) and image.confidence == pytest.approx(1.0)
    assert _near(local.box, DARK, 6.25)


@pytest.mark.parametrize("file", ["cls_brightness.onnx", "cls_brightness_probs.onnx"])
@pytest.mark.parametrize(("level", "expected"), [(20, "dark"), (235, "bright"), (128, None)])
def test_classifier_reports_defect_classes_only(file: str, level: int, expected: str) -> None:
    frame = np.full((80, 80), level, np.uint8)
    findings, _ = _run(file, "classification", frame)
    if expected is None:
        assert findings == []
    else:
        (f,) = findings
        assert (f.class_name, f.box) == (expected, (0.0, 0.0, 80.0, 80.0))
        assert f.confidence > 0.99


def test_logits_and_probability_exports_agree() -> None:
    frame = np.full((80, 80), 60, np.uint8)  # mean 0.235: dark, but not saturated
    (a,), _ = _run("cls_brightness.onnx", "classification", frame)
    (b,), _ = _run("cls_brightness_probs.onnx", "classification", frame)
    assert a.class_name == b.class_name == "dark"
    assert a.confidence == pytest.approx(b.confidence, abs=1e-5)
    assert 0.5 < a.confidence < 0.99


@pytest.mark.parametrize(
    ("file", "family"),
    [
        ("seg_dark.onnx", "segmentation"),
        ("anomaly_patchcore.onnx", "anomaly"),
        ("cls_brightness.onnx", "classification"),
    ],
)
def test_nan_from_the_engine_is_a_model_error(file: str, family: str) -> None:
    model = ModelConfig(name=file, family=family, path=MODELS / file)
    backend = OnnxRuntimeBackend(model)
    backend.load()
    post = build_postprocessor(model, backend.info)
    outputs = backend.infer(np.full((1, 3, *post.input_hw), np.nan, np.float32))
    with pytest.raises(ModelError, match="NaN or inf"):
        post(outputs, preprocess(_frame(), "Mono8", post.input_hw, model.preprocess)[1])


def test_names_that_do_not_fit_the_real_model_are_refused() -> None:
    model = ModelConfig(
        name="m", family="segmentation", path=MODELS / "seg_multi.onnx", class_names=["a"]
    )
    backend = OnnxRuntimeBackend(model)
    backend.load()
    with pytest.raises(ModelError, match="3 channel"):
        build_postprocessor(model, backend.info)


def _recipe() -> LoadedRecipe:
    grey_pad = PreprocessConfig(pad_value=128)
    recipe = RecipeConfig(
        id=1,
        name="families",
        models=[
            ModelConfig(name="seg", family="segmentation", path=MODELS / "seg_dark.onnx"),
            ModelConfig(
                name="ad",
                family="anomaly",
                path=MODELS / "anomaly_patchcore.onnx",
                preprocess=grey_pad,
            ),
            ModelConfig(
                name="cls",
                family="classification",
                path=MODELS / "cls_brightness_probs.onnx",
                preprocess=grey_pad,
            ),
        ],
        # The frames here are flat synthetic fields that the image-quality gate would
        # refuse (std 0); the subject is the families, so the gate is off.
        quality=QualityConfig(enabled=False),
    )
    return load_recipe(recipe, warmup_runs=1)


def test_three_families_in_one_recipe_decide_ok_and_ng() -> None:
    loaded = _recipe()
    try:
        good = Frame(_frame(dark=False, bright=False), "Mono8", frame_id=1, t_grab_ns=0)
        verdict, stage_ns = inspect_part(good, loaded)
        assert verdict.ok and verdict.reason is Reason.OK, verdict
        assert stage_ns["postprocess"] > 0
        dark = Frame(_frame(bright=False), "Mono8", frame_id=2, t_grab_ns=0)
        verdict, _ = inspect_part(dark, loaded)
        assert not verdict.ok and verdict.reason is Reason.DEFECT
        assert {(f.model, f.class_name) for f in verdict.findings} == {
            ("seg", "dark_spot"),
            ("ad", "anomaly"),
        }
        black = Frame(np.zeros((100, 200), np.uint8), "Mono8", frame_id=3, t_grab_ns=0)
        verdict, _ = inspect_part(black, loaded)
        assert not verdict.ok
        assert ("cls", "dark") in {(f.model, f.class_name) for f in verdict.findings}
    finally:
        loaded.close()
