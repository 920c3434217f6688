"""Run the fused preprocessing kernel on the CPU (built with g++) and compare with cpu.py.

A development check for machines without a GPU: the kernel source is plain enough to
compile as C++ once a few CUDA keywords are defined away, and each "thread" is run in a
loop. It checks the arithmetic (debayer, borders, resize taps, normalisation, channel
order, fp16) against ``inspector.preprocess.cpu.preprocess``; it cannot check launch
configuration, memory or streams, which ``tests/gpu`` do on a GPU.

    .venv/bin/python tools/kernel_cpu_check.py [--cases N]
"""

from __future__ import annotations

import argparse
import ctypes
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from inspector.config import PreprocessConfig
from inspector.preprocess.cpu import PIXEL_FORMATS, preprocess
from inspector.preprocess.cuda_kernel import KERNEL_SOURCE, kernel_params

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
static float inspector_cpu_float(unsigned short u) {
    _Float16 h; std::memcpy(&h, &u, 2); return (float)h;
}
static int atomicAdd(int* p, int v) { int old = *p; *p += v; return old; }
"""

_DRIVER = r"""
extern "C" void run_all(const unsigned char* src, void* dst, const Params* p) {
    blockDim = {1, 1, 1};
    threadIdx = {0, 0, 0};
    for (int y = 0; y < p->dst_h; ++y)
        for (int x = 0; x < p->dst_w; ++x) {
            blockIdx = {x, y, 0};
            inspector_preprocess(src, dst, *p);
        }
}
"""


def build(workdir: Path) -> ctypes.CDLL:
    """Compile the kernel source with g++ into a shared library and load it."""
    src = workdir / "kernel_cpu.cpp"
    src.write_text(_PRELUDE + KERNEL_SOURCE + _DRIVER)
    lib = workdir / "kernel_cpu.so"
    subprocess.run(["g++", "-O2", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return ctypes.CDLL(str(lib))


def check_case(
    lib: ctypes.CDLL, rng: np.random.Generator, fmt: str, cfg: PreprocessConfig, fp16: bool
) -> float:
    """Run one random frame through both paths; return the max abs difference (0-1)."""
    h = int(rng.integers(3, 400))
    w = int(np.clip(h * rng.uniform(0.3, 3.0), 3, 700))  # aspect kept sane: no 0-px letterbox
    shape = (h, w, 3) if fmt in ("BGR8", "RGB8") else (h, w)
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    input_hw = (int(rng.integers(8, 200)), int(rng.integers(8, 200)))
    ref, geo_ref = preprocess(image, fmt, input_hw, cfg)
    params, geo = kernel_params(fmt, (h, w), input_hw, cfg, fp16=fp16)
    assert geo == geo_ref, (geo, geo_ref)
    out = np.full(ref.shape, np.nan, np.float16 if fp16 else np.float32)
    lib.run_all(
        image.ctypes.data_as(ctypes.c_void_p),
        out.ctypes.data_as(ctypes.c_void_p),
        ctypes.byref(params),
    )
    std = np.asarray(cfg.std, np.float32).reshape(1, 3, 1, 1)  # back to the 0-1 scale
    if cfg.channel_order == "BGR":
        std = std[:, ::-1]
    return float(np.max(np.abs(out.astype(np.float32) - ref) * std))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=6, help="random cases per combination")
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        lib = build(Path(tmp))
        for fmt in PIXEL_FORMATS:
            for resize in ("letterbox", "stretch"):
                for order, mean, std in (
                    ("RGB", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
                    ("BGR", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
                ):
                    cfg = PreprocessConfig(
                        resize=resize, channel_order=order, mean=mean, std=std, pad_value=114
                    )
                    for fp16 in (False, True):
                        err = max(check_case(lib, rng, fmt, cfg, fp16) for _ in range(args.cases))
                        worst = max(worst, err)
                        print(
                            f"{fmt:9} {resize:9} {order} fp16={fp16!s:5} max|d|*255={err * 255:.3f}"
                        )
    print(f"worst max|d|*255 = {worst * 255:.3f} (limit 1.0)")
    return 0 if worst <= 1.0 / 255 else 1


if __name__ == "__main__":
    sys.exit(main())
