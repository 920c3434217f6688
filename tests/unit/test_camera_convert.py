"""Pixel-format conversion of GenTL buffers (camera/convert.py) into what preprocessing
accepts. Packed formats go through harvesters' own expansion (its pfnc module, pure
Python) so the input is exactly what the GenICam source receives."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from harvesters.util.pfnc import Dictionary

from inspector.camera.convert import convert, convert_raw, is_supported, layout_of
from inspector.config import PreprocessConfig
from inspector.errors import FrameError
from inspector.preprocess.cpu import check_frame, preprocess

W, H = 8, 6
RNG = np.random.default_rng(4711)


# PFNC packings, written from the spec (GenICam PFNC 2.x, figures for 10p/12p and the
# GigE Vision "Packed" group formats): pixel values -> raw bytes on the wire.
def _pack_12packed(p: npt.NDArray[np.uint16]) -> npt.NDArray[np.uint8]:
    a, b = p[0::2], p[1::2]
    return np.stack([a >> 4, (a & 0xF) | ((b & 0xF) << 4), b >> 4], 1).astype(np.uint8).ravel()


def _pack_10packed(p: npt.NDArray[np.uint16]) -> npt.NDArray[np.uint8]:
    a, b = p[0::2], p[1::2]
    return np.stack([a >> 2, (a & 3) | ((b & 3) << 4), b >> 2], 1).astype(np.uint8).ravel()


def _pack_12p(p: npt.NDArray[np.uint16]) -> npt.NDArray[np.uint8]:
    a, b = p[0::2], p[1::2]
    return np.stack([a & 0xFF, (a >> 8) | ((b & 0xF) << 4), b >> 4], 1).astype(np.uint8).ravel()


def _pack_10p(p: npt.NDArray[np.uint16]) -> npt.NDArray[np.uint8]:
    q = p.astype(np.uint64).reshape(-1, 4)
    v = q[:, 0] | (q[:, 1] << 10) | (q[:, 2] << 20) | (q[:, 3] << 30)
    return np.stack([(v >> (8 * k)) & 0xFF for k in range(5)], 1).astype(np.uint8).ravel()


PACKERS = {
    "12Packed": _pack_12packed,
    "10Packed": _pack_10packed,
    "12p": _pack_12p,
    "10p": _pack_10p,
}


def _as_harvesters_delivers(name: str, pixels: npt.NDArray[np.uint16]) -> npt.NDArray[np.generic]:
    """The flat array harvesters' Component.data holds for this format."""
    suffix = next((s for s in PACKERS if name.endswith(s)), None)
    raw = PACKERS[suffix](pixels.ravel()) if suffix else pixels.ravel()
    if suffix is None and raw.dtype == np.uint16:
        raw = raw.view(np.uint8)  # the producer's bytes, little endian
    delivered: npt.NDArray[np.generic] = Dictionary.get_proxy(symbolic=name).expand(raw)
    return delivered


@pytest.mark.parametrize(
    ("name", "depth", "out"),
    [
        ("Mono10", 10, "Mono8"),
        ("Mono12", 12, "Mono8"),
        ("Mono16", 16, "Mono8"),
        ("Mono10Packed", 10, "Mono8"),
        ("Mono12Packed", 12, "Mono8"),
        ("Mono10p", 10, "Mono8"),
        ("Mono12p", 12, "Mono8"),
        ("BayerRG10", 10, "BayerRG8"),
        ("BayerBG12", 12, "BayerBG8"),
        ("BayerGR12p", 12, "BayerGR8"),
        ("BayerGB12Packed", 12, "BayerGB8"),
        ("BayerRG10p", 10, "BayerRG8"),
        ("BayerGB16", 16, "BayerGB8"),
    ],
)
def test_deep_formats_shift_to_their_top_8_bits(name: str, depth: int, out: str) -> None:
    pixels = RNG.integers(0, 2**depth, (H, W), dtype=np.uint16)
    pixels[0, 0], pixels[0, 1] = 0, 2**depth - 1  # both ends of the range
    image, fmt = convert(_as_harvesters_delivers(name, pixels), W, H, name)
    assert fmt == out
    assert image.dtype == np.uint8 and image.shape == (H, W)
    assert np.array_equal(image, (pixels >> (depth - 8)).astype(np.uint8))
    assert image[0, 0] == 0 and image[0, 1] == 255
    check_frame(image, fmt)  # the preprocessor accepts it as it is


@pytest.mark.parametrize("name", ["Mono8", "BayerRG8", "BayerBG8", "BayerGR8", "BayerGB8"])
def test_8bit_mono_and_mosaics_pass_unchanged(name: str) -> None:
    pixels = RNG.integers(0, 256, H * W, dtype=np.uint8)
    image, fmt = convert(pixels, W, H, name)
    assert fmt == name and np.array_equal(image, pixels.reshape(H, W))
    assert not np.shares_memory(image, pixels)  # the producer's buffer can be reused


@pytest.mark.parametrize(
    ("name", "out"), [("RGB8", "RGB8"), ("BGR8", "BGR8"), ("RGBa8", "RGB8"), ("BGRa8", "BGR8")]
)
def test_colour_formats_keep_order_and_drop_alpha(name: str, out: str) -> None:
    channels = 4 if "a" in name else 3
    pixels = RNG.integers(0, 256, (H, W, channels), dtype=np.uint8)
    image, fmt = convert(pixels.ravel(), W, H, name)
    assert fmt == out and image.shape == (H, W, 3) and image.flags.c_contiguous
    assert np.array_equal(image, pixels[:, :, :3])
    assert not np.shares_memory(image, pixels)
    tensor, _ = preprocess(image, fmt, (H, W), PreprocessConfig(resize="stretch"))
    assert tensor.shape == (1, 3, H, W)


def test_line_padding_is_skipped() -> None:
    pixels = RNG.integers(0, 4096, (H, W), dtype=np.uint16)
    padded = np.zeros((H, W + 2), np.uint16)  # 4 padding bytes per line
    padded[:, :W] = pixels
    padded[:, W:] = 0xFFF  # padding must not leak into the image
    image, _ = convert(padded.ravel(), W, H, "Mono12", x_padding=4)
    assert np.array_equal(image, (pixels >> 4).astype(np.uint8))


def test_short_buffer_is_damaged() -> None:
    short = np.zeros(H * W - 1, np.uint8)
    with pytest.raises(FrameError, match="damaged Mono8 buffer"):
        convert(short, W, H, "Mono8")


def test_wrong_dtype_or_shape_is_refused() -> None:
    with pytest.raises(FrameError, match="flat uint16"):
        convert(np.zeros(H * W, np.uint8), W, H, "Mono12")
    with pytest.raises(FrameError, match="flat uint8"):
        convert(np.zeros((H, W), np.uint8), W, H, "Mono8")
    with pytest.raises(FrameError, match="implausible size"):
        convert(np.zeros(10, np.uint8), 10, 1, "Mono8")


@pytest.mark.parametrize(
    "name", ["YUV422_8", "Mono8p", "BayerRG8Packed", "Coord3D_ABC32f", "RGB10", ""]
)
def test_unsupported_formats_fail_closed(name: str) -> None:
    assert not is_supported(name)
    with pytest.raises(FrameError, match="unsupported pixel format"):
        convert(np.zeros(H * W * 4, np.uint8), W, H, name)


def test_layout_names_the_8bit_mosaic() -> None:
    assert layout_of("BayerRG12").out_format == "BayerRG8"
    assert layout_of("Mono16").depth == 16
    assert layout_of("RGBa8").channels == 4


# -------------------------------------------------- raw bytes (the source's own path)
def _raw_bytes(name: str, pixels: npt.NDArray[np.uint16]) -> npt.NDArray[np.uint8]:
    suffix = next((s for s in PACKERS if name.endswith(s)), None)
    if suffix:
        return PACKERS[suffix](pixels.ravel())
    return pixels.astype("<u2").ravel().view(np.uint8)


@pytest.mark.parametrize(
    ("name", "depth"),
    [
        ("Mono10p", 10),
        ("Mono12p", 12),
        ("Mono10Packed", 10),
        ("Mono12Packed", 12),
        ("BayerRG10p", 10),
        ("BayerBG12p", 12),
        ("BayerGR12Packed", 12),
        ("BayerGB10Packed", 10),
        ("Mono12", 12),
        ("BayerRG16", 16),
    ],
)
def test_raw_bytes_unpack_straight_to_8_bits(name: str, depth: int) -> None:
    pixels = RNG.integers(0, 2**depth, (H, W), dtype=np.uint16)
    raw = _raw_bytes(name, pixels)
    image, fmt = convert_raw(raw, W, H, name)
    assert np.array_equal(image, (pixels >> (depth - 8)).astype(np.uint8))
    # the same answer as harvesters' own expansion followed by convert()
    expected, expected_fmt = convert(_as_harvesters_delivers(name, pixels), W, H, name)
    assert fmt == expected_fmt and np.array_equal(image, expected)
    assert not np.shares_memory(image, raw)


def test_raw_packed_line_padding_and_damage() -> None:
    pixels = RNG.integers(0, 4096, (H, W), dtype=np.uint16)
    lines = _pack_12p(pixels.ravel()).reshape(H, W * 3 // 2)
    padded = np.concatenate([lines, np.full((H, 4), 0xFF, np.uint8)], axis=1).ravel()
    image, _ = convert_raw(padded, W, H, "Mono12p", x_padding=4)
    assert np.array_equal(image, (pixels >> 4).astype(np.uint8))
    with pytest.raises(FrameError, match="damaged Mono12p buffer"):
        convert_raw(padded[:-1], W, H, "Mono12p", x_padding=4)
    with pytest.raises(FrameError, match="whole 4-pixel groups"):
        convert_raw(np.zeros(100, np.uint8), 6, 4, "Mono10p")


def test_raw_8bit_and_colour_go_through_convert() -> None:
    rgba = RNG.integers(0, 256, (H, W, 4), dtype=np.uint8)
    image, fmt = convert_raw(rgba.ravel(), W, H, "RGBa8")
    assert fmt == "RGB8" and np.array_equal(image, rgba[:, :, :3])
    with pytest.raises(FrameError, match="damaged Mono8"):
        convert_raw(np.zeros(W * H - 1, np.uint8), W, H, "Mono8")
