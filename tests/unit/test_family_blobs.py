"""Map → blobs in frame pixels: stride, letterbox padding, area scaling, limits."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.models.blobs import find_blobs, valid_cells
from inspector.models.outputs import to_probabilities
from inspector.preprocess.geometry import fit


def test_identity_geometry_gives_the_cell_box_and_area() -> None:
    geo = fit(64, 64, 64, 64, "letterbox")
    score = np.zeros((64, 64), np.float32)
    score[10:20, 30:45] = 0.8
    score[12, 32] = 1.0
    (blob,) = find_blobs(score, 0.5, geo)
    assert blob.box == (30.0, 10.0, 45.0, 20.0)
    assert blob.area_px == 150.0
    assert blob.value == pytest.approx((149 * 0.8 + 1.0) / 150)


def test_max_reduction_reports_the_peak() -> None:
    geo = fit(64, 64, 64, 64, "letterbox")
    score = np.zeros((64, 64), np.float32)
    score[10:20, 30:45] = 0.8
    score[12, 32] = 3.0
    (blob,) = find_blobs(score, 0.5, geo, reduce="max")
    assert blob.value == pytest.approx(3.0)


def test_lower_resolution_map_is_scaled_by_its_stride() -> None:
    geo = fit(64, 64, 64, 64, "letterbox")
    score = np.zeros((32, 32), np.float32)  # stride 2
    score[5:10, 15:20] = 1.0
    (blob,) = find_blobs(score, 0.5, geo)
    assert blob.box == (30.0, 10.0, 40.0, 20.0)
    assert blob.area_px == 100.0


def test_letterbox_maps_back_to_frame_pixels_and_scales_area() -> None:
    geo = fit(100, 200, 64, 64, "letterbox")  # scale 0.32, pad_y 16
    assert (geo.pad_x, geo.pad_y) == (0, 16)
    score = np.zeros((64, 64), np.float32)
    score[16 + 16 : 16 + 26, 16:26] = 0.9  # 10×10 model pixels
    (blob,) = find_blobs(score, 0.5, geo)
    assert blob.box == pytest.approx((50.0, 50.0, 81.25, 81.25))
    assert blob.area_px == pytest.approx(100 / 0.32**2)


def test_blobs_in_the_letterbox_padding_are_ignored() -> None:
    geo = fit(100, 200, 64, 64, "letterbox")  # content rows 16..47
    score = np.zeros((64, 64), np.float32)
    score[:16] = 1.0  # top padding
    score[48:] = 1.0  # bottom padding
    assert find_blobs(score, 0.5, geo) == []
    score[47, 5] = 1.0  # last content row
    (blob,) = find_blobs(score, 0.5, geo)
    assert blob.box[3] == pytest.approx(100.0)


def test_valid_cells_keep_cells_whose_centre_is_content() -> None:
    geo = fit(100, 200, 64, 64, "letterbox")
    rows, cols = valid_cells((16, 16), geo)  # stride 4: content 16..48 → cells 4..11
    assert (rows.start, rows.stop, cols.start, cols.stop) == (4, 12, 0, 16)
    stretch = fit(100, 200, 64, 64, "stretch")
    rows, cols = valid_cells((16, 16), stretch)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (0, 16, 0, 16)


def test_threshold_is_inclusive_and_components_are_8_connected() -> None:
    geo = fit(32, 32, 32, 32, "letterbox")
    score = np.zeros((32, 32), np.float32)
    score[5, 5] = 0.5
    score[6, 6] = 0.5  # diagonal neighbour: same blob
    (blob,) = find_blobs(score, 0.5, geo)
    assert blob.area_px == 2.0
    assert find_blobs(score, 0.5001, geo) == []


def test_max_blobs_keeps_the_largest() -> None:
    geo = fit(64, 64, 64, 64, "letterbox")
    score = np.zeros((64, 64), np.float32)
    score[0:2, 0:2] = 1.0  # 4
    score[10:20, 10:20] = 1.0  # 100
    score[40:45, 40:45] = 1.0  # 25
    blobs = find_blobs(score, 0.5, geo, max_blobs=2)
    assert [b.area_px for b in blobs] == [100.0, 25.0]


def test_probabilities_pass_through_and_logits_are_converted() -> None:
    probs = np.array([[[0.2]], [[0.8]]], np.float32)
    assert to_probabilities(probs, axis=0) is probs
    logits = np.array([[[0.0]], [[2.0]]], np.float32)
    out = to_probabilities(logits, axis=0)
    assert out[:, 0, 0] == pytest.approx([1 / (1 + np.e**2), np.e**2 / (1 + np.e**2)])
    # In range but not summing to 1: independent scores, softmaxed.
    odd = np.array([0.9, 0.8], np.float32)
    assert to_probabilities(odd, axis=0).sum() == pytest.approx(1.0)
    binary_logit = np.array([[[-3.0, 3.0]]], np.float32)
    assert to_probabilities(binary_logit, axis=0)[0, 0] == pytest.approx(
        [0.0474259, 0.9525741], abs=1e-6
    )
