"""Anomaly postprocessing on synthetic outputs: output lookup, anomalib 2.x normalised and
v1 raw + metadata.json units, thresholds in the recipe, padding, fail-closed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inspector.config import ModelConfig
from inspector.errors import ModelError
from inspector.model_info import ModelInfo, TensorSpec
from inspector.models.anomaly import AnomalyPostprocessor, build, locate_outputs
from inspector.preprocess.geometry import fit

GEO = fit(64, 64, 64, 64, "letterbox")
ANOMALIB = (
    TensorSpec("pred_score", (1,)),
    TensorSpec("pred_label", (1,), "bool"),
    TensorSpec("anomaly_map", (1, 1, 64, 64)),
    TensorSpec("pred_mask", (1, 1, 64, 64), "bool"),
)
MAP_ONLY = (TensorSpec("output", (1, 1, 64, 64)),)
# anomalib v1 metadata: raw threshold 4 lands on 0.5; 1 raw unit = 0.1 normalised.
V1_META = {"image_threshold": 4.0, "pixel_threshold": 3.0, "min": 0.0, "max": 10.0}
INPUT = (TensorSpec("input", (1, 3, 64, 64)),)


@pytest.fixture
def meta(tmp_path: Path) -> Path:
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps(V1_META))
    return path


def _post(outputs: tuple[TensorSpec, ...], **cfg: Any) -> AnomalyPostprocessor:
    model = ModelConfig(name="ad", family="anomaly", path=Path("x.onnx"), **cfg)
    return build(model, ModelInfo(inputs=INPUT, outputs=outputs))


def _v1(meta: Path, **cfg: Any) -> AnomalyPostprocessor:
    return _post(MAP_ONLY, anomaly={"metadata": meta, **cfg.pop("anomaly", {})}, **cfg)


def _loc(outputs: tuple[TensorSpec, ...]) -> tuple[int | None, int | None]:
    model = ModelConfig(name="ad", family="anomaly", path=Path("x.onnx"))
    return locate_outputs(model, ModelInfo(inputs=INPUT, outputs=outputs))


def _anomalib(score: float, amap: np.ndarray) -> list[np.ndarray]:
    label = np.array([score >= 0.5], np.float32)
    return [np.array([score], np.float32), label, amap, (amap >= 0.5).astype(np.float32)]


def test_outputs_are_found_by_name_in_anomalib_order() -> None:
    assert _loc(ANOMALIB) == (2, 0)


def test_outputs_are_found_by_shape_without_names() -> None:
    outs = (TensorSpec("1021", (1, 1, None, None)), TensorSpec("1022", (1, 1)))
    assert _loc(outs) == (0, 1)
    assert _loc(MAP_ONLY) == (0, None)
    assert _loc((TensorSpec("out", (1,)),)) == (None, 0)


def test_ambiguous_or_missing_outputs_are_refused() -> None:
    two_maps = (TensorSpec("a", (1, 1, 64, 64)), TensorSpec("b", (1, 1, 64, 64)))
    with pytest.raises(ModelError, match="no anomaly map or score"):
        _loc(two_maps)
    with pytest.raises(ModelError, match="several outputs"):
        _loc((TensorSpec("anomaly_map_a", (1, 1, 8, 8)), TensorSpec("anomaly_map_b", (1, 1, 8, 8))))
    with pytest.raises(ModelError, match="no anomaly map or score"):
        _loc((TensorSpec("logits", (1, 10)),))


def test_anomalous_part_gives_image_and_localised_findings() -> None:
    post = _post(ANOMALIB)
    amap = np.full((1, 1, 64, 64), 0.1, np.float32)
    amap[0, 0, 10:20, 40:50] = 0.8
    amap[0, 0, 12, 42] = 0.95
    image, local = post(_anomalib(0.95, amap), GEO)
    assert (image.class_name, image.box, image.area_px) == ("anomaly", (0, 0, 64, 64), None)
    assert image.confidence == pytest.approx(0.95)
    assert local.class_name == "anomaly"
    assert local.box == (40.0, 10.0, 50.0, 20.0) and local.area_px == 100.0
    assert local.confidence == pytest.approx(0.95)  # the peak inside the blob


def test_normal_part_gives_nothing() -> None:
    post = _post(ANOMALIB)
    amap = np.full((1, 1, 64, 64), 0.2, np.float32)
    assert post(_anomalib(0.3, amap), GEO) == []


def test_localised_anomaly_is_reported_even_below_the_image_threshold() -> None:
    post = _post(ANOMALIB)
    amap = np.zeros((1, 1, 64, 64), np.float32)
    amap[0, 0, 0:3, 0:3] = 0.6
    (local,) = post(_anomalib(0.4, amap), GEO)
    assert local.box == (0.0, 0.0, 3.0, 3.0)


def test_score_at_threshold_is_anomalous() -> None:
    post = _post(ANOMALIB)
    (image,) = post(_anomalib(0.5, np.zeros((1, 1, 64, 64), np.float32)), GEO)
    assert image.confidence == pytest.approx(0.5)


def test_v1_raw_map_is_normalised_with_metadata_json(meta: Path) -> None:
    post = _v1(meta)
    assert post.layout == "v1"
    amap = np.ones((1, 1, 64, 64), np.float32)
    amap[0, 0, 30:34, 30:34] = 6.0
    image, local = post([amap], GEO)  # map-only: the score is the normalised map's max
    # pixel: (6 - 3) / 10 + 0.5 = 0.8 ≥ 0.5
    assert image.confidence == pytest.approx(0.8) and image.area_px is None
    assert local.confidence == pytest.approx(0.8) and local.area_px == 16.0
    amap[0, 0, 30:34, 30:34] = 2.5  # (2.5 - 3) / 10 + 0.5 = 0.45 < 0.5: nothing
    assert post([amap], GEO) == []


def test_thresholds_move_without_re_exporting(meta: Path) -> None:
    post = _post(ANOMALIB, anomaly={"image_threshold": 0.3, "pixel_threshold": 0.9})
    amap = np.full((1, 1, 64, 64), 0.1, np.float32)
    amap[0, 0, 5:9, 5:9] = 0.85  # below the moved pixel threshold
    (image,) = post(_anomalib(0.35, amap), GEO)  # the graph's pred_label says 0 here
    assert image.confidence == pytest.approx(0.35)
    lowered = _v1(meta, anomaly={"pixel_threshold": 0.4})
    amap = np.ones((1, 1, 64, 64), np.float32)
    amap[0, 0, 1:3, 1:3] = 2.5  # 0.45 normalised: now a blob
    assert len(lowered([amap], GEO)) == 1


def test_raw_outputs_without_metadata_are_refused_at_build(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"metadata\.json"):
        _post(MAP_ONLY)
    bad = tmp_path / "metadata.json"
    bad.write_text(json.dumps({"image_threshold": 1.0, "min": 0, "max": 1}))
    with pytest.raises(ModelError, match="pixel_threshold"):
        _v1(bad)
    bad.write_text(json.dumps({**V1_META, "max": 0.0}))
    with pytest.raises(ModelError, match="below max"):
        _v1(bad)


def test_normalised_outputs_outside_0_1_are_an_error_not_ok() -> None:
    post = _post(ANOMALIB)
    amap = np.zeros((1, 1, 64, 64), np.float32)
    with pytest.raises(ModelError, match="not normalised"):
        post(_anomalib(3.7, amap), GEO)
    amap[0, 0, 0, 0] = -2.0
    with pytest.raises(ModelError, match="not normalised"):
        post(_anomalib(0.1, amap), GEO)


def test_multi_channel_map_is_refused_at_build() -> None:
    outs = (TensorSpec("pred_score", (1,)), TensorSpec("anomaly_map", (1, 3, 64, 64)))
    with pytest.raises(ModelError, match=r"one channel.*family: segmentation"):
        _post((*outs, TensorSpec("pred_label", (1,), "bool")))


def test_map_only_score_ignores_the_letterbox_padding(meta: Path) -> None:
    geo = fit(100, 200, 64, 64, "letterbox")  # content rows 16..47
    post = _post(
        (TensorSpec("anomaly_map", (1, 1, 64, 64)), TensorSpec("pred_mask", (1, 1, 64, 64)))
    )
    amap = np.zeros((1, 1, 64, 64), np.float32)
    amap[0, 0, :16] = 1.0  # black padding looks anomalous to the model
    assert post([amap, amap], geo) == []
    amap[0, 0, 20, 20] = 0.7
    image, local = post([amap, amap], geo)
    assert image.confidence == pytest.approx(0.7)
    assert local.box == pytest.approx((62.5, 12.5, 65.625, 15.625))


def test_rank_3_map_and_scalar_score_are_accepted() -> None:
    outs = (TensorSpec("anomaly_map", (1, 64, 64)), TensorSpec("pred_score", ()))
    post = _post((*outs, TensorSpec("pred_label", ())))
    amap = np.zeros((1, 64, 64), np.float32)
    amap[0, 1:3, 1:3] = 0.9
    findings = post([amap, np.array(0.9, np.float32), np.array(1.0, np.float32)], GEO)
    assert len(findings) == 2


def test_configured_class_name_is_used(meta: Path) -> None:
    post = _v1(meta, class_names=["surface"])
    (image, _local) = post([np.full((1, 1, 64, 64), 9.0, np.float32)], GEO)
    assert image.class_name == "surface"
    with pytest.raises(ModelError, match="one class"):
        _v1(meta, class_names=["a", "b"])


@pytest.mark.parametrize("where", ["map", "score"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_outputs_raise_model_error(where: str, value: float) -> None:
    post = _post(ANOMALIB)
    amap = np.zeros((1, 1, 64, 64), np.float32)
    outputs = _anomalib(0.1, amap)
    if where == "map":
        outputs[2][0, 0, 5, 5] = value
    else:
        outputs[0][0] = value
    with pytest.raises(ModelError, match="NaN or inf"):
        post(outputs, GEO)


def test_wrong_layouts_raise_model_error() -> None:
    post = _post(ANOMALIB)
    amap = np.zeros((1, 1, 64, 64), np.float32)
    bad_score = _anomalib(0.1, amap)
    bad_score[0] = np.zeros(2, np.float32)
    with pytest.raises(ModelError, match="one value"):
        post(bad_score, GEO)
    bad_map = _anomalib(0.1, np.zeros((1, 2, 64, 64), np.float32))
    with pytest.raises(ModelError, match=r"\[1, 1, h, w\]"):
        post(bad_map, GEO)
    with pytest.raises(ModelError, match="needs 3"):
        post(bad_score[:2], GEO)
