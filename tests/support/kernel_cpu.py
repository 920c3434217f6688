"""The fused preprocessing kernel built with g++ and run on the CPU, one "thread" at a time.

Where it sits: a test harness for ``inspector/preprocess/cuda_kernel.py``. The kernel's
source is plain enough to compile as C++ once a few CUDA keywords are defined away, so
its arithmetic (taps, fixed-point resize, debayer, borders, normalisation, channel
order, fp16) is checked against the CPU path (``preprocess/cpu.py``, OpenCV) on a
machine without a GPU: ``tests/unit/test_preprocess_kernel.py``. Launch configuration,
memory and streams are checked on a GPU by ``tests/gpu/test_cuda_preprocess.py``.
"""

from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import numpy as np
import numpy.typing as npt

from inspector.config import PreprocessConfig
from inspector.preprocess.cuda_kernel import KERNEL_SOURCE, kernel_params, resize_taps
from inspector.preprocess.geometry import Geometry

_PRELUDE = r"""
#include <math.h>
#include <cstring>
#define __device__
#define __forceinline__ inline
#define __global__
#define INSPECTOR_CPU_CHECK
struct Dim3 { int x, y, z; };
static Dim3 blockIdx, threadIdx, blockDim;
static unsigned short inspector_cpu_half(float v) {
    _Float16 h = (_Float16)v; unsigned short u; std::memcpy(&u, &h, 2); return u;
}
"""

_DRIVER = r"""
extern "C" void run_all(const unsigned char* src, void* dst, const int* taps, const Params* p) {
    blockDim = {1, 1, 1};
    threadIdx = {0, 0, 0};
    for (int y = 0; y < p->dst_h; ++y)
        for (int x = 0; x < p->dst_w; ++x) {
            blockIdx = {x, y, 0};
            inspector_preprocess(src, dst, taps, *p);
        }
}
"""


class KernelOnCpu:
    """The kernel compiled into a shared library under ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        src = workdir / "kernel_cpu.cpp"
        src.write_text(_PRELUDE + KERNEL_SOURCE + _DRIVER)
        lib = workdir / "kernel_cpu.so"
        # -ffp-contract=off: no fused multiply-add, as __fmul_rn/__fadd_rn on the GPU
        cmd = ["g++", "-O2", "-ffp-contract=off", "-shared", "-fPIC", "-o", str(lib), str(src)]
        subprocess.run(cmd, check=True)
        self._lib = ctypes.CDLL(str(lib))

    def preprocess(
        self,
        image: npt.NDArray[np.uint8],
        pixel_format: str,
        input_hw: tuple[int, int],
        cfg: PreprocessConfig,
        *,
        fp16: bool = False,
    ) -> tuple[npt.NDArray[np.float32], Geometry]:
        """Same signature and result as ``cpu.preprocess``, computed by the kernel."""
        src_hw = (int(image.shape[0]), int(image.shape[1]))
        params, geo = kernel_params(pixel_format, src_hw, input_hw, cfg, fp16=fp16)
        taps = resize_taps(params)
        out = np.full((1, 3, *input_hw), np.nan, np.float16 if fp16 else np.float32)
        image = np.ascontiguousarray(image)
        self._lib.run_all(
            image.ctypes.data_as(ctypes.c_void_p),
            out.ctypes.data_as(ctypes.c_void_p),
            taps.ctypes.data_as(ctypes.c_void_p),
            ctypes.byref(params),
        )
        return out.astype(np.float32), geo
