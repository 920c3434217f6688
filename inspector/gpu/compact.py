"""Detector candidates filtered on the device before the D2H copy (step 5, first half).

YOLOv8-layout outputs ``[1, 4+nc, N]`` hold N = 8400 candidates at 640×640, almost all
below the confidence floor. ``CandidateFilter`` runs one small kernel (``inspector_compact``
below) on the pipeline stream: each candidate whose best class
score reaches the floor takes a slot (``atomicAdd``) in a fixed ``[4+nc, cap]`` buffer,
and the count comes back with it. The host then decodes only ``count`` columns (order is
arbitrary; NMS sorts by score). A fixed-size copy needs no host sync in the middle of the
stream, so frames in flight keep overlapping.

If more than ``cap`` candidates pass, the extra ones are dropped on the device and the
host sees ``count > cap`` (``GpuStage.saturated`` counts such parts).
"""

from __future__ import annotations

import ctypes
from typing import Any

from inspector.nvidia import driver as cu
from inspector.nvidia.nvrtc import compile_cubin

COMPACT_KERNEL_NAME = "inspector_compact"

COMPACT_KERNEL_SOURCE = r"""
__device__ __forceinline__ float load_any(const void* src, int is_half, long long i) {
    if (!is_half) return ((const float*)src)[i];
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(((const unsigned short*)src)[i]));
    return f;
}

// Detector candidate filter (YOLOv8 layout [channels, n], class scores from row
// `first_score`): copy the columns whose best class score reaches `floor` into
// dst [channels, cap], in any order, and count them. `count` must be zeroed first.
extern "C" __global__ void inspector_compact(const void* src, int is_half, int channels, int n,
                                             int first_score, float floor, int cap,
                                             float* dst, int* count) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float best = load_any(src, is_half, (long long)first_score * n + i);
    for (int c = first_score + 1; c < channels; ++c)
        best = fmaxf(best, load_any(src, is_half, (long long)c * n + i));
    if (!(best >= floor)) return;   // NaN scores never pass
    int slot = atomicAdd(count, 1);
    if (slot >= cap) return;
    for (int c = 0; c < channels; ++c)
        dst[(long long)c * cap + slot] = load_any(src, is_half, (long long)c * n + i);
}
"""

_THREADS = 256


class CandidateFilter:
    """Filters one output tensor shape; ``run`` enqueues on the given stream (no sync).

    ``slots`` output buffers (one per frame in flight), so the D2H copy of one frame can
    run on another stream while the next frame is filtered.
    """

    def __init__(
        self, channels: int, n: int, floor: float, cap: int, device: Any, slots: int = 1
    ) -> None:
        import torch

        info = cu.make_current()
        cubin = compile_cubin(COMPACT_KERNEL_SOURCE, COMPACT_KERNEL_NAME, info.arch)
        self._module, self._fn = cu.module_load(cubin, COMPACT_KERNEL_NAME)
        self.channels, self.n, self.cap = channels, n, cap
        self.outs = [
            torch.empty((1, channels, cap), dtype=torch.float32, device=device)
            for _ in range(slots)
        ]
        self.counts = [torch.zeros((1,), dtype=torch.int32, device=device) for _ in range(slots)]
        self._src = ctypes.c_void_p(0)
        self._dst = ctypes.c_void_p(0)
        self._count = ctypes.c_void_p(0)
        self._is_half = ctypes.c_int(0)
        self._args: list[ctypes.c_int | ctypes.c_float | ctypes.c_void_p] = [
            self._src,
            self._is_half,
            ctypes.c_int(channels),
            ctypes.c_int(n),
            ctypes.c_int(4),
            ctypes.c_float(floor),
            ctypes.c_int(cap),
            self._dst,
            self._count,
        ]
        self._argv = (ctypes.c_void_p * len(self._args))(*(ctypes.addressof(a) for a in self._args))
        self._grid = (-(-n // _THREADS), 1, 1)

    def run(self, raw: Any, stream: int, slot: int = 0) -> None:
        """Filter ``raw`` (a contiguous device tensor [1, C, N], fp16 or fp32) into
        ``outs[slot]``/``counts[slot]``."""
        self._src.value = raw.data_ptr()
        self._is_half.value = int(raw.element_size() == 2)
        self._dst.value = self.outs[slot].data_ptr()
        self._count.value = self.counts[slot].data_ptr()
        # Reset the count on the same stream, before the kernel (a driver memset: one
        # cheap call, where torch's zero_() costs a dispatch and a fill kernel).
        cu.memset_d32_async(self.counts[slot].data_ptr(), 0, 1, stream)
        cu.launch(self._fn, self._grid, (_THREADS, 1, 1), stream, ctypes.addressof(self._argv))

    def close(self) -> None:
        cu.module_unload(self._module)
