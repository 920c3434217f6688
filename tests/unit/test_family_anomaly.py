"""Anomaly postprocessing on synthetic outputs: output lookup, units, padding, fail-closed."""

from __future__ import annotations

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


def _post(outputs: tuple[TensorSpec, ...], **cfg: Any) -> AnomalyPostprocessor:
    model = ModelConfig(name="ad", family="anomaly", path=Path("x.onnx"), **cfg)
    info = ModelInfo(inputs=(TensorSpec("input", (1, 3, 64, 64)),), outputs=outputs)
    return build(model, info)


def _anomalib(score: float, amap: np.ndarray) -> list[np.ndarray]:
    label = np.array([score >= 0.5], np.float32)
    return [np.array([score], np.float32), label, amap, (amap >= 0.5).astype(np.float32)]


def test_outputs_are_found_by_name_in_anomalib_order() -> None:
    assert locate_outputs("ad", ANOMALIB) == (2, 0)


def test_outputs_are_found_by_shape_without_names() -> None:
    outs = (TensorSpec("1021", (1, 1, None, None)), TensorSpec("1022", (1, 1)))
    assert locate_outputs("ad", outs) == (0, 1)
    assert locate_outputs("ad", MAP_ONLY) == (0, None)
    assert locate_outputs("ad", (TensorSpec("out", (1,)),)) == (None, 0)


def test_ambiguous_or_missing_outputs_are_refused() -> None:
    two_maps = (TensorSpec("a", (1, 1, 64, 64)), TensorSpec("b", (1, 1, 64, 64)))
    with pytest.raises(ModelError, match="anomaly_map"):
        locate_outputs("ad", two_maps)
    with pytest.raises(ModelError, match="no anomaly map or score"):
        locate_outputs("ad", (TensorSpec("logits", (1, 10)),))


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


def test_raw_units_put_the_threshold_at_half_confidence() -> None:
    post = _post(MAP_ONLY, anomaly_threshold=4.0, mask_threshold=3.0)
    amap = np.ones((1, 1, 64, 64), np.float32)
    amap[0, 0, 30:34, 30:34] = 6.0
    image, local = post([amap], GEO)
    assert image.confidence == pytest.approx(6.0 / 8.0)  # score = map max
    assert local.confidence == pytest.approx(1.0)  # 6 / (2·3), clipped
    amap[0, 0, 30:34, 30:34] = 3.5
    (local,) = post([amap], GEO)  # 3.5 < 4: no image finding; ≥ 3: a blob
    assert local.confidence == pytest.approx(3.5 / 6.0)


def test_map_only_score_ignores_the_letterbox_padding() -> None:
    geo = fit(100, 200, 64, 64, "letterbox")  # content rows 16..47
    post = _post(MAP_ONLY)
    amap = np.zeros((1, 1, 64, 64), np.float32)
    amap[0, 0, :16] = 1.0  # black padding looks anomalous to the model
    assert post([amap], geo) == []
    amap[0, 0, 20, 20] = 0.7
    image, local = post([amap], geo)
    assert image.confidence == pytest.approx(0.7)
    assert local.box == pytest.approx((62.5, 12.5, 65.625, 15.625))


def test_rank_3_map_and_scalar_score_are_accepted() -> None:
    post = _post((TensorSpec("anomaly_map", (1, 64, 64)), TensorSpec("pred_score", ())))
    amap = np.zeros((1, 64, 64), np.float32)
    amap[0, 1:3, 1:3] = 0.9
    findings = post([amap, np.array(0.9, np.float32)], GEO)
    assert len(findings) == 2


def test_configured_class_name_is_used() -> None:
    post = _post(MAP_ONLY, class_names=["surface"])
    (image, _local) = post([np.ones((1, 1, 64, 64), np.float32)], GEO)
    assert image.class_name == "surface"
    with pytest.raises(ModelError, match="one class"):
        _post(MAP_ONLY, class_names=["a", "b"])


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
