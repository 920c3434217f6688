"""CPU preprocessing: geometry, normalisation, channel order, debayer, bad frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inspector.config import PreprocessConfig
from inspector.errors import FrameError
from inspector.preprocess.cpu import preprocess
from inspector.preprocess.geometry import fit


def test_letterbox_geometry_and_padding() -> None:
    img = np.full((100, 200), 255, np.uint8)
    x, geo = preprocess(img, "Mono8", (64, 64), PreprocessConfig())
    assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32
    assert (geo.scale_x, geo.pad_x, geo.pad_y) == (0.32, 0, 16)
    assert np.allclose(x[0, :, 0, 0], 114 / 255)  # padding
    assert np.allclose(x[0, :, 32, 32], 1.0)  # image


def test_stretch_and_box_round_trip() -> None:
    geo = fit(480, 640, 320, 320, "stretch")
    boxes = np.array([[0, 0, 320, 320], [160, 80, 200, 120]], np.float32)
    back = geo.to_frame(boxes)
    assert back[0].tolist() == [0, 0, 640, 480]
    assert back[1].tolist() == pytest.approx([320, 120, 400, 180])


def test_channel_order_and_normalisation() -> None:
    img = np.zeros((8, 8, 3), np.uint8)
    img[..., 2] = 255  # pure red in BGR
    cfg = PreprocessConfig(mean=(0.5, 0.0, 0.0), std=(0.5, 1.0, 1.0), resize="stretch")
    x, _ = preprocess(img, "BGR8", (8, 8), cfg)
    assert np.allclose(x[0, 0], 1.0) and np.allclose(x[0, 1], 0.0)  # R = (1-0.5)/0.5
    x_rgb, _ = preprocess(img[..., ::-1].copy(), "RGB8", (8, 8), cfg)
    assert np.allclose(x, x_rgb)
    bgr_model = cfg.model_copy(update={"channel_order": "BGR"})
    x_bgr, _ = preprocess(img, "BGR8", (8, 8), bgr_model)
    assert np.allclose(x_bgr[0, 2], 1.0)


@pytest.mark.parametrize(
    ("fmt", "offset"),
    [("BayerRG8", (0, 0)), ("BayerBG8", (1, 1)), ("BayerGR8", (0, 1)), ("BayerGB8", (1, 0))],
)
def test_debayer_follows_genicam_naming(fmt: str, offset: tuple[int, int]) -> None:
    mosaic = np.zeros((16, 16), np.uint8)
    mosaic[offset[0] :: 2, offset[1] :: 2] = 200  # only red photosites lit
    x, _ = preprocess(mosaic, fmt, (16, 16), PreprocessConfig(resize="stretch"))
    centre = x[0, :, 8, 8]
    assert centre[0] > 0.5 and centre[1] < 0.1 and centre[2] < 0.1, (fmt, centre)


def test_bad_frames_raise_frame_error() -> None:
    cfg = PreprocessConfig()
    with pytest.raises(FrameError, match="uint8"):
        preprocess(np.zeros((8, 8), np.uint16), "Mono8", (8, 8), cfg)  # type: ignore[arg-type]
    with pytest.raises(FrameError, match="shape"):
        preprocess(np.zeros((8, 8, 3), np.uint8), "Mono8", (8, 8), cfg)
    with pytest.raises(FrameError, match="unsupported"):
        preprocess(np.zeros((8, 8), np.uint8), "Mono12", (8, 8), cfg)


def test_matches_reference_resize() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (101, 203, 3), np.uint8)
    x, geo = preprocess(img, "BGR8", (64, 64), PreprocessConfig())
    new_w, new_h = round(203 * geo.scale_x), round(101 * geo.scale_y)
    ref = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)[..., ::-1] / 255.0
    region = x[0, :, int(geo.pad_y) : int(geo.pad_y) + new_h, :].transpose(1, 2, 0)
    assert np.abs(region - ref).max() < 1e-6


def test_degenerate_letterbox_is_a_frame_error() -> None:
    with pytest.raises(FrameError, match="empty"):
        preprocess(np.zeros((2, 4000), np.uint8), "Mono8", (640, 640), PreprocessConfig())
