"""GPU preprocessing: a frame in pinned host memory → one fused NVRTC kernel (step 3).

``CudaPreprocessor`` is built per lane of the device runner for one camera format and
size and one model input. Per part, ``enqueue`` puts on the lane's stream:

- the H2D copy of the frame from pinned host memory (the camera's own buffer when it
  grabbed into the pinned frame pool, ``gpu/pinned.py``) into the preprocessor's device
  buffer; on integrated GPUs (Jetson) the frame's pinned memory is mapped into the
  device's address space and the kernel reads it in place, so no copy is issued (the
  iGPU shares DRAM; a copy would only double the memory traffic);
- the fused kernel (``cuda_kernel.py``: debayer, resize, letterbox, normalise, CHW,
  fp16 or fp32), compiled once per architecture with NVRTC and cached on disk, writing
  straight into the model's input binding.

Both are enqueued per part because the frame's address changes from part to part; the
model, the detector kernels and the D2H copy that follow are the lane's CUDA graph.
Every CUDA failure raises ``BackendError`` named after the CUDA error and counted in
``nvidia/driver.py``; the geometry equals the CPU path's.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from typing import Any

import numpy as np
import numpy.typing as npt

from inspector.config import PreprocessConfig
from inspector.errors import BackendError
from inspector.nvidia import driver as cu
from inspector.nvidia.nvrtc import compile_cubin
from inspector.preprocess.cuda_kernel import (
    KERNEL_NAME,
    KERNEL_SOURCE,
    kernel_params,
    resize_taps,
    source_bytes,
)
from inspector.preprocess.geometry import Geometry

_BLOCK = (32, 8, 1)
_functions: dict[str, Any] = {}
_functions_lock = threading.Lock()


def fused_kernel(arch: str) -> Any:
    """The fused kernel, compiled (or read from the cubin cache) and loaded once."""
    with _functions_lock:
        if arch not in _functions:
            cubin = compile_cubin(KERNEL_SOURCE, KERNEL_NAME, arch)
            _, _functions[arch] = cu.module_load(cubin, KERNEL_NAME)
        fn = _functions[arch]
    return fn


class CudaPreprocessor:
    """Frame → model input on the device, for one pixel format, frame size and input size."""

    def __init__(
        self,
        pixel_format: str,
        src_hw: tuple[int, int],
        input_hw: tuple[int, int],
        cfg: PreprocessConfig,
        *,
        fp16: bool,
        device: int = 0,
    ) -> None:
        self.pixel_format = pixel_format
        self.frame_shape = (*src_hw, 3) if pixel_format in ("BGR8", "RGB8") else src_hw
        self.params, self.geometry = kernel_params(pixel_format, src_hw, input_hw, cfg, fp16=fp16)
        info = cu.make_current(device)
        self.mapped = info.integrated
        self.nbytes = source_bytes(self.params)
        self._fn = fused_kernel(info.arch)
        # The resize taps (OpenCV's, computed once on the host), then the frame's copy on
        # the device (discrete GPUs); the kernel reads both.
        taps = resize_taps(self.params)
        self._taps: cu.DeviceBuffer | None = cu.DeviceBuffer(taps.nbytes)
        self._src: cu.DeviceBuffer | None = None
        try:
            cu.copy_htod(self._taps.ptr, taps.ctypes.data, taps.nbytes)
            self._src = None if self.mapped else cu.DeviceBuffer(self.nbytes)
        except BaseException:
            self.close()
            raise
        self._arg_src = ctypes.c_void_p(0)
        self._arg_dst = ctypes.c_void_p(0)
        self._arg_taps = ctypes.c_void_p(self._taps.ptr)
        self._args = cu.KernelArgs(self._arg_src, self._arg_dst, self._arg_taps, self.params)
        dst_h, dst_w = input_hw
        self._grid = (-(-dst_w // _BLOCK[0]), -(-dst_h // _BLOCK[1]), 1)

    def enqueue(self, host_ptr: int, mapped_ptr: int, dst: int, stream: int) -> None:
        """Put the frame's upload and the kernel on ``stream``; ``dst`` is the device
        address of a contiguous ``[1, 3, H, W]`` fp16/fp32 input.

        ``host_ptr`` is the frame in pinned host memory; ``mapped_ptr`` its device
        address where that memory is mapped (integrated GPUs), else 0.
        """
        if self._src is not None:
            cu.copy_htod_async(self._src.ptr, host_ptr, self.nbytes, stream)
            self._arg_src.value = self._src.ptr
        else:
            if not mapped_ptr:
                raise BackendError("integrated GPU: the frame is not in mapped pinned memory")
            self._arg_src.value = mapped_ptr
        self._arg_dst.value = dst
        cu.launch(self._fn, self._grid, _BLOCK, stream, self._args.pointer)

    def close(self) -> None:
        """Free the device buffers. Safe to call twice; never raises (after a sticky CUDA
        error the context is lost anyway)."""
        for buf in (self._src, self._taps):
            if buf is not None:
                with contextlib.suppress(BackendError):  # already counted and named
                    buf.close()
        self._src = self._taps = None


def preprocess_once(
    image: npt.NDArray[np.uint8],
    pixel_format: str,
    input_hw: tuple[int, int],
    cfg: PreprocessConfig,
    *,
    fp16: bool = False,
) -> tuple[npt.NDArray[np.float32], Geometry]:
    """Check/test path: one frame through the GPU, result back as host float32.

    Same signature and result as ``cpu.preprocess``. Allocates everything per call, so
    it is for checks and tools, not for the per-part loop.
    """
    info = cu.make_current()
    stream = cu.stream_create()
    src_hw = (int(image.shape[0]), int(image.shape[1]))
    pre = CudaPreprocessor(pixel_format, src_hw, input_hw, cfg, fp16=fp16)
    host = cu.PinnedArray(image.shape, "uint8", mapped=info.integrated)
    out = cu.PinnedArray((1, 3, *input_hw), "float16" if fp16 else "float32")
    dev = cu.DeviceBuffer(out.nbytes)
    try:
        np.copyto(host.array, image)
        # Poison the output (all-ones bytes are NaN in fp16 and fp32): an element the
        # kernel fails to write shows up as NaN instead of passing as zero.
        cu.memset_d8_async(dev.ptr, 0xFF, out.nbytes, stream)
        pre.enqueue(host.ptr, host.device_ptr, dev.ptr, stream)
        cu.copy_dtoh_async(out.ptr, dev.ptr, out.nbytes, stream)
        cu.stream_sync(stream)
        result = out.array.astype(np.float32)
    finally:
        for buf in (dev, out, host):
            buf.close()
        pre.close()
        cu.stream_destroy(stream)
    return result, pre.geometry
