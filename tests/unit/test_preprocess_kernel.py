"""The fused GPU preprocessing kernel's arithmetic against the CPU path, on the CPU.

The kernel source is built with g++ (``tests/support/kernel_cpu.py``) and compared with
``preprocess/cpu.py`` (OpenCV) on random frames of every pixel format. Downscaling, the
camera-to-model case, must be bit-identical in float32 and fp16, so the model sees the
same tensor on both paths; upscaling may differ by 1 of 255 in a few pixels (OpenCV's
own upscaling taps). The GPU tests check the same on a device.
"""

from __future__ import annotations

import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest

from inspector.config import PreprocessConfig
from inspector.preprocess.cpu import PIXEL_FORMATS, preprocess
from tests.support.kernel_cpu import KernelOnCpu

# (frame h, w, model h, w): the production cases first, then odd sizes
DOWN = [
    (1024, 1280, 640, 640),  # 2x step, letterboxed
    (1024, 1280, 512, 640),  # 2x step, no border (the bundled demo model)
    (2048, 2448, 640, 640),  # a 5 MP Bayer camera: a non-integer step
    (481, 643, 320, 320),
    (37, 53, 16, 24),
]
UP = [(37, 53, 64, 96), (300, 200, 640, 640)]


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> KernelOnCpu:
    assert shutil.which("g++"), "g++ is installed by the Makefile (make test)"
    return KernelOnCpu(Path(tmp_path_factory.mktemp("kernel")))


def _frame(rng: np.random.Generator, fmt: str, h: int, w: int) -> np.ndarray:
    shape = (h, w, 3) if fmt in ("BGR8", "RGB8") else (h, w)
    return rng.integers(0, 256, shape, dtype=np.uint8)


CONFIGS = {
    "rgb-01": PreprocessConfig(),
    "bgr-imagenet-stretch": PreprocessConfig(
        resize="stretch",
        channel_order="BGR",
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        pad_value=0,
    ),
}


@pytest.mark.parametrize("fmt", PIXEL_FORMATS)
@pytest.mark.parametrize("cfg_name", list(CONFIGS))
def test_downscaling_is_bit_identical_to_the_cpu_path(
    kernel: KernelOnCpu, fmt: str, cfg_name: str
) -> None:
    cfg = CONFIGS[cfg_name]
    rng = np.random.default_rng(zlib.crc32(f"{fmt}/{cfg_name}".encode()))
    for h, w, mh, mw in DOWN:
        image = _frame(rng, fmt, h, w)
        ref, geo_ref = preprocess(image, fmt, (mh, mw), cfg)
        for fp16 in (False, True):
            out, geo = kernel.preprocess(image, fmt, (mh, mw), cfg, fp16=fp16)
            assert geo == geo_ref
            want = ref.astype(np.float16).astype(np.float32) if fp16 else ref
            differ = int(np.count_nonzero(out != want))
            assert differ == 0, f"{fmt} {h}x{w}->{mh}x{mw} fp16={fp16}: {differ} values differ"


@pytest.mark.parametrize("fmt", ["Mono8", "BGR8", "BayerRG8"])
def test_upscaling_is_within_one_level(kernel: KernelOnCpu, fmt: str) -> None:
    cfg = PreprocessConfig()
    rng = np.random.default_rng(3)
    for h, w, mh, mw in UP:
        image = _frame(rng, fmt, h, w)
        ref, _ = preprocess(image, fmt, (mh, mw), cfg)
        out, _ = kernel.preprocess(image, fmt, (mh, mw), cfg)
        assert np.isfinite(out).all(), "the kernel left elements unwritten"
        d = np.abs(out - ref)
        assert d.max() <= 1.0 / 255 + 1e-7
        assert np.count_nonzero(d) <= 0.01 * d.size
