"""Classification postprocessing on synthetic outputs: top-1, ok classes, fail-closed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inspector.config import ModelConfig
from inspector.errors import ModelError
from inspector.model_info import ModelInfo, TensorSpec
from inspector.models.classification import ClassificationPostprocessor, build
from inspector.preprocess.geometry import fit

GEO = fit(120, 160, 32, 32, "letterbox")
NAMES = "{0: 'good', 1: 'scratch', 2: 'dent'}"


def _post(
    out_shape: tuple[int | None, ...] = (1, 3), names: str | None = NAMES, **cfg: Any
) -> ClassificationPostprocessor:
    model = ModelConfig(name="cls", family="classification", path=Path("x.onnx"), **cfg)
    info = ModelInfo(
        inputs=(TensorSpec("images", (1, 3, 32, 32)),),
        outputs=(TensorSpec("probs", out_shape),),
        metadata={"names": names} if names else {},
    )
    return build(model, info)


def _row(*values: float) -> list[np.ndarray]:
    return [np.array([values], np.float32)]


def test_defect_top1_gives_one_whole_frame_finding() -> None:
    (f,) = _post()(_row(0.1, 0.7, 0.2), GEO)
    assert (f.class_name, f.class_id, f.box, f.model) == ("scratch", 1, (0, 0, 160, 120), "cls")
    assert f.confidence == pytest.approx(0.7)


def test_good_top1_gives_no_finding() -> None:
    assert _post()(_row(0.6, 0.3, 0.1), GEO) == []


def test_logits_get_a_softmax() -> None:
    (f,) = _post()(_row(0.0, 1.0, 3.0), GEO)
    expected = np.exp(3.0) / (1 + np.exp(1.0) + np.exp(3.0))
    assert (f.class_name, f.confidence) == ("dent", pytest.approx(expected))


def test_scores_not_summing_to_one_are_softmaxed() -> None:
    (f,) = _post()(_row(0.2, 0.9, 0.1), GEO)
    assert f.class_name == "scratch"
    assert f.confidence == pytest.approx(np.exp(0.9) / (np.exp(0.2) + np.exp(0.9) + np.exp(0.1)))


def test_tie_between_good_and_defect_is_a_defect() -> None:
    (f,) = _post()(_row(0.45, 0.1, 0.45), GEO)
    assert f.class_name == "dent"


def test_ok_classes_are_case_insensitive_and_configurable() -> None:
    post = _post(out_shape=(1, 2), names="['OK', 'burr']")
    assert post(_row(0.9, 0.1), GEO) == []
    custom = _post(names="['fine', 'burr', 'crack']", classification={"ok_classes": ["fine"]})
    assert custom(_row(0.9, 0.05, 0.05), GEO) == []
    assert custom(_row(0.05, 0.05, 0.9), GEO)[0].class_name == "crack"


def test_config_names_win_over_metadata() -> None:
    post = _post(class_names=["pass", "x", "y"])
    assert post.class_names == ("pass", "x", "y")


def test_no_good_class_is_refused_at_build() -> None:
    with pytest.raises(ModelError, match="ok_classes"):
        _post(names="['scratch', 'dent', 'crack']")
    with pytest.raises(ModelError, match="ok_classes"):
        _post(names=None)  # default names class0.. are never a good part


def test_names_that_do_not_fit_the_output_are_refused() -> None:
    with pytest.raises(ModelError, match="4 classes but has 3"):
        _post(out_shape=(1, 4))
    with pytest.raises(ModelError, match="at least 2"):
        _post(out_shape=(1, 1), names="['good']")
    with pytest.raises(ModelError, match="declares"):
        _post(out_shape=(1, 3, 1, 1))
    with pytest.raises(ModelError, match="class names unknown"):
        _post(out_shape=(1, None), names=None)


def test_wrong_output_shape_at_run_time_raises() -> None:
    post = _post(out_shape=(1, None))
    with pytest.raises(ModelError, match=r"\[1, 3\]"):
        post(_row(0.1, 0.2, 0.3, 0.4), GEO)
    with pytest.raises(ModelError, match=r"\[1, 3\]"):
        post([np.zeros(3, np.float32)], GEO)
    with pytest.raises(ModelError, match="no outputs"):
        post([], GEO)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_output_raises_model_error(value: float) -> None:
    with pytest.raises(ModelError, match="NaN or inf"):
        _post()(_row(value, 0.1, 0.1), GEO)
