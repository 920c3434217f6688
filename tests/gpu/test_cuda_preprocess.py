"""The fused NVRTC kernel against the CPU path, on a real GPU (marked ``gpu``).

Every pixel format, letterbox and stretch, fp16 and fp32, odd frame sizes, random
content drawn fresh per case; the GPU output is poisoned with NaN first so an unwritten
element fails. Downscaling (camera frame → model input) must be bit-identical to the CPU
path: the kernel resizes in OpenCV's fixed point and normalises without fused
multiply-adds (``cuda_kernel.py``). Upscaling may differ by 1/255 (OpenCV's upscaling
taps); ``tests/unit/test_preprocess_kernel.py`` checks the same arithmetic on the CPU.

    pytest -m gpu tests/gpu
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from inspector.config import PreprocessConfig
from inspector.errors import BackendError
from inspector.preprocess.cpu import PIXEL_FORMATS, preprocess

pytestmark = pytest.mark.gpu

TOL = 1.0 / 255 + 1e-6  # one level (float rounding of the division)
# (frame h, w, model h, w): odd sizes, up- and downscaling, a 2x case, a big Bayer frame
SIZES = [(37, 53, 64, 96), (481, 643, 320, 320), (300, 200, 640, 640), (2048, 2448, 640, 640)]


def _frame(rng: np.random.Generator, fmt: str, h: int, w: int) -> np.ndarray:
    shape = (h, w, 3) if fmt in ("BGR8", "RGB8") else (h, w)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def _err_01(gpu: np.ndarray, cpu: np.ndarray, cfg: PreprocessConfig) -> float:
    """Max abs difference on the 0-1 pixel scale (undo the division by std)."""
    std = np.asarray(cfg.std, np.float32)
    if cfg.channel_order == "BGR":
        std = std[::-1]
    return float(np.max(np.abs(gpu - cpu) * std.reshape(1, 3, 1, 1)))


@pytest.mark.parametrize("fmt", PIXEL_FORMATS)
@pytest.mark.parametrize("resize", ["letterbox", "stretch"])
@pytest.mark.parametrize("fp16", [False, True])
def test_gpu_matches_cpu(fmt: str, resize: str, fp16: bool) -> None:
    from inspector.preprocess.cuda import preprocess_once

    rng = np.random.default_rng(7)
    cfg = PreprocessConfig(resize=resize)
    for h, w, mh, mw in SIZES:
        image = _frame(rng, fmt, h, w)
        ref, geo_ref = preprocess(image, fmt, (mh, mw), cfg)
        out, geo = preprocess_once(image, fmt, (mh, mw), cfg, fp16=fp16)
        assert geo == geo_ref
        assert np.isfinite(out).all(), "kernel left elements unwritten"
        if h >= mh and w >= mw:  # downscaling: the same tensor as the CPU path
            want = ref.astype(np.float16).astype(np.float32) if fp16 else ref
            differ = int(np.count_nonzero(out != want))
            assert differ == 0, f"{fmt} {h}x{w}->{mh}x{mw}: {differ} values differ"
        err = _err_01(out, ref, cfg)
        tol = TOL + (2.0**-10 if fp16 else 0.0)  # upscaling: one level, plus fp16's step at 1
        assert err <= tol, f"{fmt} {h}x{w}->{mh}x{mw}: max|d|*255 = {err * 255:.3f}"


@pytest.mark.parametrize("fmt", ["BayerGB8", "RGB8", "Mono8"])
def test_gpu_matches_cpu_with_mean_std_and_bgr(fmt: str) -> None:
    from inspector.preprocess.cuda import preprocess_once

    rng = np.random.default_rng(8)
    cfg = PreprocessConfig(
        channel_order="BGR", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), pad_value=0
    )
    image = _frame(rng, fmt, 513, 771)
    ref, _ = preprocess(image, fmt, (416, 416), cfg)
    out, _ = preprocess_once(image, fmt, (416, 416), cfg)
    assert np.array_equal(out, ref), "downscaling: the same tensor as the CPU path"


def test_cuda_error_is_a_named_backend_error_and_counted() -> None:
    """A failing CUDA call raises BackendError named after the CUDA error, and counts."""
    from inspector.nvidia import driver as cu
    from inspector.preprocess.cuda import CudaPreprocessor

    cu.make_current()
    before = cu.failure_count()
    with pytest.raises(BackendError, match=r"CUDA_ERROR_(OUT_OF_MEMORY|INVALID_VALUE)"):
        cu.mem_alloc(1 << 52)
    stream = cu.stream_create()
    pre = CudaPreprocessor("Mono8", (64, 64), (32, 32), PreprocessConfig(), fp16=False)
    try:  # a launch the driver refuses: 4096 threads per block
        with pytest.raises(BackendError, match="CUDA_ERROR_INVALID_VALUE"):
            cu.launch(pre._fn, (1, 1, 1), (4096, 1, 1), stream, pre._args.pointer)
    finally:
        pre.close()
        cu.stream_destroy(stream)
    assert cu.failure_count() == before + 2


_ILLEGAL_ADDRESS = """
import numpy as np
from inspector.config import PreprocessConfig
from inspector.errors import BackendError
from inspector.nvidia import driver as cu
from inspector.preprocess.cuda import CudaPreprocessor
stream = cu.stream_create()
pre = CudaPreprocessor("Mono8", (64, 64), (32, 32), PreprocessConfig(), fp16=False)
frame = cu.PinnedArray((64, 64), "uint8")
pre.enqueue(frame.ptr, 0, 0x10, stream)  # writes through a bogus device pointer
try:
    cu.stream_sync(stream)
except BackendError as exc:
    print("RAISED", exc)
"""


def test_kernel_fault_surfaces_at_sync_as_backend_error() -> None:
    """A kernel fault (sticky: it ruins the context) in a child process, so the rest of
    this session keeps a healthy context."""
    done = subprocess.run(
        [sys.executable, "-c", _ILLEGAL_ADDRESS], capture_output=True, text=True, timeout=120
    )
    assert "RAISED CUDA_ERROR_ILLEGAL_ADDRESS" in done.stdout, done.stdout + done.stderr
