"""GPU preprocessing: pinned frame ring → async H2D → one fused NVRTC kernel (step 3).

``CudaPreprocessor`` is built once per camera format/size and model input. It owns:

- a ring of page-locked host buffers (one per frame in flight), allocated once. A camera
  may grab straight into ``host_view(slot)``; ``upload()`` copies a numpy frame there.
  On integrated GPUs (Jetson) the buffers are mapped into the device address space and
  the kernel reads them in place (zero-copy): the iGPU shares DRAM, a copy would only
  double the memory traffic;
- one device buffer per slot and the H2D copies into it;
- the fused kernel (``cuda_kernel.py``), compiled with NVRTC and cached per architecture,
  writing fp16 or fp32 CHW for the backend's input tensor (``run(out_ptr, slot)``).

With one frame in flight (the daemon's worker) everything runs in order on the
pipeline's stream and the kernel writes straight into the backend's input. With more
(``frames_in_flight`` > 1, a discrete GPU), the H2D copy and the kernel of frame k+1 run
on a side stream into the slot's own staging tensor while the model runs frame k; the
pipeline stream then only waits for that and copies the finished input into the
backend's input binding (device to device, 2.4 MB at 640×640 fp16: microseconds),
so per frame the model's stream carries the model and almost nothing else. Events order
the two streams: a slot's staging tensor is rewritten only after its last copy out.
- CUDA events around each stage, read back by ``stage_ns()`` once the frame is done.

Every CUDA failure raises ``BackendError`` named after the CUDA error (``nvidia/driver.py``);
the pipeline turns it into NG_ERROR. The geometry equals the CPU path's.
"""

from __future__ import annotations

import contextlib
import ctypes
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from inspector.config import PreprocessConfig
from inspector.errors import BackendError, FrameError
from inspector.nvidia import driver as cu
from inspector.nvidia.nvrtc import compile_cubin
from inspector.preprocess.cuda_kernel import (
    KERNEL_NAME,
    KERNEL_SOURCE,
    kernel_params,
    source_bytes,
)
from inspector.preprocess.geometry import Geometry

_BLOCK = (32, 8, 1)


@dataclass(slots=True)
class _Slot:
    host: int  # pinned host pointer
    device: int  # device pointer the kernel reads (mapped host pointer on Jetson)
    h2d_start: Any  # events
    h2d_end: Any
    pre_start: Any
    pre_end: Any
    staged: int  # the slot's own model-input tensor (side-stream mode), else 0
    input_ready: Any  # side-stream mode: recorded on the pipeline stream once the model
    # input holds this slot's frame (with one stream, pre_end says the same)


class CudaPreprocessor:
    """Frame → model input on the device, for one pixel format, frame size and input size.

    ``stream`` is the pipeline's CUDA stream (an int handle); the kernel runs on it.
    """

    def __init__(
        self,
        pixel_format: str,
        src_hw: tuple[int, int],
        input_hw: tuple[int, int],
        cfg: PreprocessConfig,
        stream: int,
        *,
        fp16: bool,
        frames_in_flight: int = 2,
        device: int = 0,
        stage_on_side_stream: bool = True,
    ) -> None:
        self.pixel_format = pixel_format
        self.frame_shape = (*src_hw, 3) if pixel_format in ("BGR8", "RGB8") else src_hw
        self.params, self.geometry = kernel_params(pixel_format, src_hw, input_hw, cfg, fp16=fp16)
        self.device = cu.make_current(device)
        self.mapped = self.device.integrated
        self._stream = stream
        self._nbytes = source_bytes(self.params)
        dst_h, dst_w = input_hw
        self._input_nbytes = 3 * dst_h * dst_w * (2 if fp16 else 4)
        self._slots: list[_Slot] = []
        self._copy_stream = 0
        self._module: Any = None
        self._next = 0
        try:
            cubin = compile_cubin(KERNEL_SOURCE, KERNEL_NAME, self.device.arch)
            self._module, self._fn = cu.module_load(cubin, KERNEL_NAME)
            side = frames_in_flight > 1 and not self.mapped
            self._copy_stream = cu.stream_create(device) if side else 0
            # With the side stream: also run the kernel there, into a staging tensor
            # (else only the H2D copy goes there and the kernel runs on the pipeline
            # stream).
            staging = side and stage_on_side_stream
            for _ in range(max(1, frames_in_flight)):
                self._slots.append(self._new_slot(staging))
        except BaseException:
            self.close()
            raise
        # Kernel arguments live in ctypes objects built once; each launch only updates
        # the two pointers (no per-part allocation in the hot path).
        self._arg_src = ctypes.c_void_p(0)
        self._arg_dst = ctypes.c_void_p(0)
        self._argv = (ctypes.c_void_p * 3)(
            ctypes.addressof(self._arg_src),
            ctypes.addressof(self._arg_dst),
            ctypes.addressof(self.params),
        )
        self._argv_ptr = ctypes.addressof(self._argv)
        self._grid = (-(-dst_w // _BLOCK[0]), -(-dst_h // _BLOCK[1]), 1)

    def _new_slot(self, staging: bool) -> _Slot:
        host, mapped_dev = cu.host_alloc(self._nbytes, mapped=self.mapped)
        h2d_start, h2d_end, pre_start, pre_end, ready = (cu.event_create() for _ in range(5))
        staged = cu.mem_alloc(self._input_nbytes) if staging else 0
        device = mapped_dev if self.mapped else cu.mem_alloc(self._nbytes)
        return _Slot(host, device, h2d_start, h2d_end, pre_start, pre_end, staged, ready)

    @property
    def copy_stream(self) -> int:
        """The stream the H2D copies run on (the pipeline's stream when there is none)."""
        return self._copy_stream or self._stream

    def acquire(self) -> int:
        """Next ring slot, once the kernel that last read it has finished (host waits)."""
        slot = self._next
        self._next = (slot + 1) % len(self._slots)
        cu.event_sync(self._slots[slot].pre_end)
        return slot

    def host_view(self, slot: int) -> npt.NDArray[np.uint8]:
        """The pinned buffer of ``slot`` as a frame-shaped array (a camera may fill it)."""
        buf = (ctypes.c_uint8 * self._nbytes).from_address(self._slots[slot].host)
        view: npt.NDArray[np.uint8] = np.ctypeslib.as_array(buf).reshape(self.frame_shape)
        return view

    def upload(self, image: npt.NDArray[np.uint8]) -> int:
        """Copy a frame into the next pinned slot and start its async H2D copy; return
        the slot."""
        if image.dtype != np.uint8 or image.shape != self.frame_shape:
            raise FrameError(
                f"{self.pixel_format} frame {image.shape} {image.dtype} does not match the "
                f"configured {self.frame_shape} uint8"
            )
        slot = self.acquire()
        np.copyto(self.host_view(slot), image)
        self.enqueue_copy(slot)
        return slot

    def enqueue_copy(self, slot: int) -> None:
        """Start the H2D copy of an already filled pinned slot (no-op on mapped memory)."""
        s = self._slots[slot]
        stream = self.copy_stream
        cu.event_record(s.h2d_start, stream)
        if not self.mapped:
            cu.copy_htod_async(s.device, s.host, self._nbytes, stream)
        cu.event_record(s.h2d_end, stream)

    def run(self, out_ptr: int, slot: int) -> None:
        """Enqueue the fused kernel on the slot's frame so that the input at ``out_ptr``
        holds it, in order on the pipeline's stream.

        ``out_ptr`` is the device address of a contiguous ``[1, 3, H, W]`` fp16/fp32
        tensor (the backend's input binding).
        """
        s = self._slots[slot]
        self._arg_src.value = s.device
        if s.staged:
            # Side stream: after the slot's H2D (same stream) and after the pipeline
            # stream copied the slot's previous frame out of its staging tensor.
            stream, dst = self._copy_stream, s.staged
            cu.stream_wait(stream, s.input_ready)
        else:
            stream, dst = self._stream, out_ptr
            if self._copy_stream:  # H2D on the side stream, kernel on the pipeline stream
                cu.stream_wait(stream, s.h2d_end)
        cu.event_record(s.pre_start, stream)
        self._launch(dst, stream)
        cu.event_record(s.pre_end, stream)  # without staging, also the input-ready event
        if s.staged:
            cu.stream_wait(self._stream, s.pre_end)
            cu.copy_dtod_async(out_ptr, s.staged, self._input_nbytes, self._stream)
            cu.event_record(s.input_ready, self._stream)

    def _launch(self, dst: int, stream: int) -> None:
        """Launch the kernel on ``stream``, writing ``dst`` (the source is ``_arg_src``)."""
        self._arg_dst.value = dst
        cu.launch(self._fn, self._grid, _BLOCK, stream, self._argv_ptr)

    def stage_ns(self, slot: int) -> dict[str, int]:
        """Device time of the slot's last H2D copy and kernel (call after it completed)."""
        s = self._slots[slot]
        return {
            "h2d": cu.event_elapsed_ns(s.h2d_start, s.h2d_end),
            "preprocess": cu.event_elapsed_ns(s.pre_start, s.pre_end),
        }

    def pre_end_event(self, slot: int) -> Any:
        """The event on the pipeline stream after which the model input holds the slot's
        frame (later stages time from it)."""
        s = self._slots[slot]
        return s.input_ready if s.staged else s.pre_end

    def close(self) -> None:
        """Free the ring, the streams and the module. Safe to call twice; never raises
        (after a sticky CUDA error the context is lost anyway)."""
        slots, self._slots = self._slots, []
        for s in slots:
            _quiet(cu.event_sync, s.pre_end)
            _quiet(cu.event_sync, s.input_ready)
            for ev in (s.h2d_start, s.h2d_end, s.pre_start, s.pre_end, s.input_ready):
                _quiet(cu.event_destroy, ev)
            if not self.mapped:  # a device buffer of ours, not the mapped host one
                _quiet(cu.mem_free, s.device)
            if s.staged:
                _quiet(cu.mem_free, s.staged)
            _quiet(cu.host_free, s.host)
        if self._copy_stream:
            _quiet(cu.stream_destroy, self._copy_stream)
            self._copy_stream = 0
        if self._module is not None:
            _quiet(cu.module_unload, self._module)
            self._module = None


def _quiet(fn: Any, *args: Any) -> None:
    # Already counted and named by cu.check; nothing more to do while closing.
    with contextlib.suppress(BackendError):
        fn(*args)


def preprocess_once(
    image: npt.NDArray[np.uint8],
    pixel_format: str,
    input_hw: tuple[int, int],
    cfg: PreprocessConfig,
    *,
    fp16: bool = False,
) -> tuple[npt.NDArray[np.float32], Geometry]:
    """Convenience/test path: one frame through the GPU, result back as host float32.

    Same signature and result as ``cpu.preprocess``. Allocates everything per call, so
    it is for checks and tools, not for the per-part loop.
    """
    stream = cu.stream_create()
    pre = CudaPreprocessor(
        pixel_format, image.shape[:2], input_hw, cfg, stream, fp16=fp16, frames_in_flight=1
    )
    dtype = np.float16 if fp16 else np.float32
    out = np.empty((1, 3, *input_hw), dtype)
    dev = cu.mem_alloc(out.nbytes)
    try:
        drv, _ = cu.bindings()
        # Poison the output (all-ones bytes are NaN in fp16 and fp32): an element the
        # kernel fails to write shows up as NaN instead of passing as zero.
        cu.check(drv.cuMemsetD8(dev, 0xFF, out.nbytes), "cuMemsetD8")
        slot = pre.upload(image)
        pre.run(dev, slot)
        cu.check(
            drv.cuMemcpyDtoHAsync(out.ctypes.data, dev, out.nbytes, stream), "cuMemcpyDtoHAsync"
        )
        cu.stream_sync(stream)
    finally:
        cu.mem_free(dev)
        pre.close()
        cu.stream_destroy(stream)
    return out.astype(np.float32), pre.geometry
