"""Segmentation postprocessing on synthetic outputs: classes, activations, fail-closed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from inspector.config import ModelConfig
from inspector.errors import ModelError
from inspector.model_info import ModelInfo, TensorSpec
from inspector.models import build_postprocessor
from inspector.models.segmentation import SegmentationPostprocessor, build
from inspector.preprocess.geometry import fit

GEO = fit(64, 64, 64, 64, "letterbox")


def _info(out_shape: tuple[int | None, ...], names: str | None = None) -> ModelInfo:
    meta = {"names": names} if names else {}
    return ModelInfo(
        inputs=(TensorSpec("images", (1, 3, 64, 64)),),
        outputs=(TensorSpec("out", out_shape),),
        metadata=meta,
    )


def _post(
    out_shape: tuple[int | None, ...], meta_names: str | None = None, **cfg: Any
) -> SegmentationPostprocessor:
    model = ModelConfig(name="seg", family="segmentation", path=Path("x.onnx"), **cfg)
    return build(model, _info(out_shape, meta_names))


def test_binary_probabilities_give_one_finding_per_blob() -> None:
    post = _post((1, 1, 64, 64), class_names=["crack"])
    out = np.zeros((1, 1, 64, 64), np.float32)
    out[0, 0, 5:10, 5:10] = 0.9
    out[0, 0, 30:40, 30:33] = 0.7
    findings = post([out], GEO)
    assert [(f.class_name, f.class_id) for f in findings] == [("crack", 0), ("crack", 0)]
    big, small = findings
    assert big.box == (30.0, 30.0, 33.0, 40.0) and big.area_px == 30.0
    assert big.confidence == pytest.approx(0.7)
    assert small.box == (5.0, 5.0, 10.0, 10.0) and small.confidence == pytest.approx(0.9)
    assert big.model == "seg"


def test_binary_logits_get_a_sigmoid() -> None:
    post = _post((1, 1, 64, 64))
    out = np.full((1, 1, 64, 64), -8.0, np.float32)
    out[0, 0, 20:24, 20:24] = 3.0
    (f,) = post([out], GEO)
    assert f.class_name == "defect"  # default name of a binary model
    assert f.confidence == pytest.approx(1 / (1 + np.exp(-3.0)), abs=1e-6)


def test_multiclass_logits_softmax_and_background_is_never_reported() -> None:
    post = _post((1, 3, 64, 64), meta_names="{0: 'background', 1: 'scratch', 2: 'dent'}")
    out = np.zeros((1, 3, 64, 64), np.float32)
    out[0, 0] = 5.0  # background everywhere
    out[0, 1, 0:4, 0:8] = 10.0  # scratch
    out[0, 2, 50:60, 50:52] = 10.0  # dent
    findings = post([out], GEO)
    got = sorted((f.class_name, f.class_id, f.box) for f in findings)
    assert got == [("dent", 2, (50.0, 50.0, 52.0, 60.0)), ("scratch", 1, (0.0, 0.0, 8.0, 4.0))]
    assert all(0.99 < f.confidence <= 1.0 for f in findings)


def test_multiclass_probabilities_use_the_mask_threshold() -> None:
    post = _post((1, 2, 64, 64), class_names=["bg", "pore"], segmentation={"mask_threshold": 0.6})
    out = np.zeros((1, 2, 64, 64), np.float32)
    out[0, 0] = 1.0
    out[0, :, 0:5, 0:5] = [[[0.45]], [[0.55]]]  # pore wins argmax but is below 0.6
    out[0, :, 10:15, 10:15] = [[[0.3]], [[0.7]]]
    (f,) = post([out], GEO)
    assert f.box == (10.0, 10.0, 15.0, 15.0)
    assert f.confidence == pytest.approx(0.7)


def test_defect_names_only_get_background_in_front() -> None:
    post = _post((1, 3, 64, 64), class_names=["scratch", "dent"])
    assert post.class_names == ("background", "scratch", "dent")
    out = np.zeros((1, 3, 64, 64), np.float32)
    out[0, 0] = 1.0
    out[0, :, 3:6, 3:6] = [[[0.0]], [[0.0]], [[1.0]]]
    (f,) = post([out], GEO)
    assert (f.class_name, f.class_id) == ("dent", 2)


def test_registry_builds_the_segmentation_family() -> None:
    model = ModelConfig(name="s", family="segmentation", path=Path("x.onnx"))
    post = build_postprocessor(model, _info((1, 1, 32, 32)))
    assert isinstance(post, SegmentationPostprocessor)
    assert post.input_hw == (64, 64)


def test_clean_map_is_an_empty_list() -> None:
    post = _post((1, 1, 64, 64))
    assert post([np.zeros((1, 1, 64, 64), np.float32)], GEO) == []


@pytest.mark.parametrize(
    ("shape", "names"),
    [((1, 1, 64, 64), ["a", "b"]), ((1, 3, 64, 64), ["a"]), ((1, 4, 64, 64), ["a", "b"])],
)
def test_names_that_do_not_fit_the_channels_are_refused_at_build(
    shape: tuple[int, ...], names: list[str]
) -> None:
    with pytest.raises(ModelError, match="channel"):
        _post(shape, class_names=names)


def test_dynamic_channels_are_checked_on_every_call() -> None:
    post = _post((1, None, None, None), class_names=["bg", "a", "b"])
    with pytest.raises(ModelError, match="5 channel"):
        post([np.zeros((1, 5, 8, 8), np.float32)], GEO)


def test_dynamic_channels_without_names_are_refused() -> None:
    with pytest.raises(ModelError, match="class_names"):
        _post((1, None, 64, 64))


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((1, 64, 64), np.float32),  # rank 3
        np.zeros((2, 1, 64, 64), np.float32),  # batch 2
        np.zeros((1, 1, 0, 64), np.float32),  # empty
    ],
)
def test_wrong_layout_raises_model_error(bad: np.ndarray) -> None:
    post = _post((1, 1, 64, 64))
    with pytest.raises(ModelError, match=r"\[1, C, h, w\]"):
        post([bad], GEO)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_output_raises_model_error(value: float) -> None:
    post = _post((1, 1, 64, 64))
    out = np.zeros((1, 1, 64, 64), np.float32)
    out[0, 0, 7, 7] = value
    with pytest.raises(ModelError, match="NaN or inf"):
        post([out], GEO)


def test_no_outputs_raises_model_error() -> None:
    with pytest.raises(ModelError, match="no outputs"):
        _post((1, 1, 64, 64))([], GEO)


def test_declared_wrong_rank_is_refused_at_build() -> None:
    with pytest.raises(ModelError, match="class map"):
        _post((1, 64, 64))


def test_probability_threshold_above_one_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="mask_threshold"):
        _post((1, 1, 64, 64), segmentation={"mask_threshold": 1.5})


def test_unknown_input_size_is_refused() -> None:
    model = ModelConfig(name="s", family="segmentation", path=Path("x.onnx"))
    info = ModelInfo(
        inputs=(TensorSpec("images", (1, 3, None, None)),),
        outputs=(TensorSpec("out", (1, 1, None, None)),),
    )
    with pytest.raises(ModelError, match="input_size"):
        build(model, info)
