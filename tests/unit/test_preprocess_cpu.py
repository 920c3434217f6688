"""CPU preprocessing: geometry, normalisation, channel order, debayer, bad frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inspector.config import PreprocessConfig
from inspector.errors import FrameError
from inspector.preprocess.cpu import HostPreprocessor, preprocess
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


def _reference(img: np.ndarray, fmt: str, hw: tuple[int, int], cfg: PreprocessConfig) -> np.ndarray:
    """Straightforward float64 maths: debayer, resize, pad, normalise, RGB/BGR, CHW."""
    code = {"BayerRG8": cv2.COLOR_BayerRGGB2BGR}.get(fmt)
    color = cv2.cvtColor(img, code) if code is not None else img
    if color.ndim == 2:
        color = np.repeat(color[..., None], 3, axis=2)
    elif fmt == "RGB8":
        color = color[..., ::-1]  # to BGR
    geo = fit(img.shape[0], img.shape[1], hw[0], hw[1], cfg.resize)
    new_w, new_h = round(geo.src_w * geo.scale_x), round(geo.src_h * geo.scale_y)
    small = cv2.resize(color, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((hw[0], hw[1], 3), cfg.pad_value, np.float64)
    canvas[int(geo.pad_y) : int(geo.pad_y) + new_h, int(geo.pad_x) : int(geo.pad_x) + new_w] = small
    rgb = canvas[..., ::-1] / 255.0
    norm = (rgb - np.asarray(cfg.mean)) / np.asarray(cfg.std)
    if cfg.channel_order == "BGR":
        norm = norm[..., ::-1]
    return norm.transpose(2, 0, 1)[None]


def test_reused_preprocessor_matches_reference_across_changing_frames() -> None:
    """One HostPreprocessor fed frames whose size and format change: every result equals
    the plain reference, so no stale border, buffer or table survives a change."""
    rng = np.random.default_rng(1)
    imagenet = PreprocessConfig(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    for cfg in (PreprocessConfig(), imagenet, imagenet.model_copy(update={"channel_order": "BGR"})):
        host = HostPreprocessor((48, 64), cfg)
        for shape, fmt in [
            ((100, 200), "Mono8"),
            ((100, 200), "Mono8"),
            ((90, 60, 3), "BGR8"),
            ((90, 60, 3), "RGB8"),
            ((64, 96), "BayerRG8"),
            ((48, 64), "Mono8"),  # already the model's size: no resize
            ((101, 203), "Mono8"),
        ]:
            img = rng.integers(0, 256, shape, np.uint8)
            x, _ = host(img, fmt)
            ref = _reference(img, fmt, (48, 64), cfg)
            assert x.shape == ref.shape and x.dtype == np.float32
            assert np.abs(x - ref).max() < 1e-5, (cfg, shape, fmt)


def test_reused_preprocessor_still_checks_a_changed_frame() -> None:
    host = HostPreprocessor((8, 8), PreprocessConfig())
    host(np.zeros((8, 8), np.uint8), "Mono8")
    with pytest.raises(FrameError, match="uint8"):
        host(np.zeros((8, 8), np.uint16), "Mono8")  # type: ignore[arg-type]
    with pytest.raises(FrameError, match="shape"):
        host(np.zeros((8, 8, 3), np.uint8), "Mono8")
