"""The one CUDA layer: a thin, typed wrapper over cuda-python's driver API (12.x and 13.x).

Everything on the device path goes through here: the preprocessing kernel, the detector
kernels, the device runner, the TensorRT backend (host and device paths) and the INT8
calibrator of the engine builder. Why the driver API: it works in the device's
*primary* context, the one PyTorch and TensorRT use, so one set of streams and device
pointers serves the kernels and the model with no context juggling.

Every call goes through ``check``: a CUDA error raises ``BackendError`` whose message
starts with the error name (``CUDA_ERROR_ILLEGAL_ADDRESS in cuStreamSynchronize``), and
is counted in the one process-wide count (``failure_count()``; the metrics and the
daemon's fault state read it). Failures reported by other libraries on the same device
(torch raises RuntimeError) are counted with ``count_failure()``.

cuda-python moved its modules: 12.x has ``from cuda import cuda, nvrtc`` (legacy) and
``cuda.bindings.driver``; 13.x has only ``cuda.bindings``. ``bindings()`` tries the new
path first. Nothing imports this module unless the device path or TensorRT is used.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from inspector import metrics
from inspector.errors import BackendError
from inspector.extras import install_hint

_lock = threading.Lock()
_failures = 0
_current = threading.local()
_NOT_READY = 600  # CUDA_ERROR_NOT_READY: an event or stream query on unfinished work


def bindings() -> tuple[Any, Any]:
    """Return the ``(driver, nvrtc)`` modules of whichever cuda-python is installed."""
    try:
        from cuda.bindings import driver, nvrtc
    except ImportError:
        try:
            from cuda import cuda as driver  # cuda-python 12.x legacy layout
            from cuda import nvrtc
        except ImportError as exc:
            raise BackendError(
                f"cuda-python is not installed ({exc}): {install_hint('gpu')}"
            ) from exc
    return driver, nvrtc


def failure_count() -> int:
    """CUDA failures in this process (the daemon faults past a threshold)."""
    return _failures


def count_failure() -> None:
    """Count a CUDA failure reported by another library (torch raises RuntimeError)."""
    global _failures
    with _lock:
        _failures += 1
    metrics.GPU_CUDA_FAILURES.inc()


def error_name(err: Any) -> str:
    """``CUDA_ERROR_...`` name of a driver ``CUresult``."""
    drv, _ = bindings()
    try:
        res, name = drv.cuGetErrorName(err)
        if int(res) == 0 and name:
            return bytes(name).decode()
    except Exception:  # naming an error must never hide the error
        pass
    return f"CUresult({int(err)})"


def check(result: Any, what: str) -> Any:
    """Unpack a cuda-python ``(err, *values)`` result; raise BackendError on failure.

    Returns None, the single value, or a tuple of values.
    """
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        count_failure()
        raise BackendError(f"{error_name(err)} in {what}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


# ------------------------------------------------------------------ device and context
@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What the device path needs to know about the GPU."""

    ordinal: int
    name: str
    arch: str  # "sm_90"
    integrated: bool  # iGPU sharing DRAM with the CPU (Jetson): use mapped pinned memory

    @property
    def compute_capability(self) -> str:
        """``"9.0"``: the form TensorRT plans and manifests use."""
        digits = self.arch.removeprefix("sm_")
        return f"{digits[:-1]}.{digits[-1]}"


def make_current(ordinal: int = 0) -> DeviceInfo:
    """Initialise CUDA and make the device's primary context current in this thread.

    The primary context is the one PyTorch and TensorRT use, so pointers and streams
    are shared. Cheap after the first call in a thread.
    """
    info: DeviceInfo | None = getattr(_current, "info", None)
    if info is not None and info.ordinal == ordinal:
        return info
    drv, _ = bindings()
    check(drv.cuInit(0), "cuInit")
    dev = check(drv.cuDeviceGet(ordinal), "cuDeviceGet")
    ctx = check(drv.cuDevicePrimaryCtxRetain(dev), "cuDevicePrimaryCtxRetain")
    check(drv.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
    attr = drv.CUdevice_attribute
    major = check(
        drv.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev), "attr"
    )
    minor = check(
        drv.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev), "attr"
    )
    integrated = check(drv.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_INTEGRATED, dev), "attr")
    raw_name = check(drv.cuDeviceGetName(256, dev), "cuDeviceGetName")
    name = bytes(raw_name).split(b"\0", 1)[0].decode(errors="replace").strip()
    info = DeviceInfo(ordinal, name, f"sm_{major}{minor}", bool(integrated))
    _current.info = info
    return info


def device_properties(ordinal: int = 0) -> tuple[str, str]:
    """``(GPU name, compute capability "M.m")``; also makes the device current."""
    info = make_current(ordinal)
    return info.name, info.compute_capability


# --------------------------------------------------------------------- streams, events
def stream_create(ordinal: int = 0) -> int:
    """A non-blocking stream (no implicit sync with the legacy default stream), in the
    primary context of device ``ordinal`` (made current in this thread first)."""
    make_current(ordinal)
    drv, _ = bindings()
    flags = drv.CUstream_flags.CU_STREAM_NON_BLOCKING
    return int(check(drv.cuStreamCreate(flags), "cuStreamCreate"))


def stream_destroy(stream: int) -> None:
    drv, _ = bindings()
    check(drv.cuStreamDestroy(stream), "cuStreamDestroy")


def stream_sync(stream: int) -> None:
    drv, _ = bindings()
    check(drv.cuStreamSynchronize(stream), "cuStreamSynchronize")


def event_create(*, timing: bool = True) -> Any:
    """An event; with ``timing`` (the default) ``event_elapsed_ns`` can read it."""
    drv, _ = bindings()
    flags = drv.CUevent_flags
    flag = flags.CU_EVENT_DEFAULT if timing else flags.CU_EVENT_DISABLE_TIMING
    return check(drv.cuEventCreate(flag), "cuEventCreate")


def event_record(event: Any, stream: int) -> None:
    drv, _ = bindings()
    check(drv.cuEventRecord(event, stream), "cuEventRecord")


def event_sync(event: Any) -> None:
    drv, _ = bindings()
    check(drv.cuEventSynchronize(event), "cuEventSynchronize")


def event_done(event: Any) -> bool:
    """Whether the work before the event's last record has finished (never blocks)."""
    drv, _ = bindings()
    (err,) = drv.cuEventQuery(event)
    if int(err) == _NOT_READY:
        return False
    check((err,), "cuEventQuery")
    return True


def event_elapsed_ns(start: Any, end: Any) -> int:
    """Device time between two recorded, completed events, in nanoseconds."""
    drv, _ = bindings()
    fn = getattr(drv, "cuEventElapsedTime_v2", None) or drv.cuEventElapsedTime
    ms = check(fn(start, end), "cuEventElapsedTime")
    return int(float(ms) * 1e6)


def event_destroy(event: Any) -> None:
    drv, _ = bindings()
    check(drv.cuEventDestroy(event), "cuEventDestroy")


def stream_wait(stream: int, event: Any) -> None:
    """Make ``stream`` wait for ``event`` on the device (the host does not block)."""
    drv, _ = bindings()
    check(drv.cuStreamWaitEvent(stream, event, 0), "cuStreamWaitEvent")


# ---------------------------------------------------------------------------- memory
def mem_alloc(nbytes: int) -> int:
    """Device memory (cuMemAlloc; never managed memory)."""
    drv, _ = bindings()
    return int(check(drv.cuMemAlloc(max(nbytes, 1)), "cuMemAlloc"))


def mem_free(ptr: int) -> None:
    drv, _ = bindings()
    check(drv.cuMemFree(ptr), "cuMemFree")


def host_alloc(nbytes: int, *, mapped: bool) -> tuple[int, int]:
    """Page-locked host memory; returns ``(host_ptr, device_ptr)``.

    ``mapped=True`` (integrated GPUs) maps it into the device address space, so kernels
    read it in place and no copy is needed; otherwise device_ptr is 0.
    """
    drv, _ = bindings()
    flags = drv.CU_MEMHOSTALLOC_DEVICEMAP if mapped else 0
    host = int(check(drv.cuMemHostAlloc(max(nbytes, 1), flags), "cuMemHostAlloc"))
    if not mapped:
        return host, 0
    dev = int(check(drv.cuMemHostGetDevicePointer(host, 0), "cuMemHostGetDevicePointer"))
    return host, dev


def host_free(ptr: int) -> None:
    drv, _ = bindings()
    check(drv.cuMemFreeHost(ptr), "cuMemFreeHost")


def copy_htod(dst: int, src_host: int, nbytes: int) -> None:
    """Blocking upload (set-up only: tables, constants)."""
    drv, _ = bindings()
    check(drv.cuMemcpyHtoD(dst, src_host, nbytes), "cuMemcpyHtoD")


def copy_htod_async(dst: int, src_host: int, nbytes: int, stream: int) -> None:
    drv, _ = bindings()
    check(drv.cuMemcpyHtoDAsync(dst, src_host, nbytes, stream), "cuMemcpyHtoDAsync")


def copy_dtoh_async(dst_host: int, src: int, nbytes: int, stream: int) -> None:
    drv, _ = bindings()
    check(drv.cuMemcpyDtoHAsync(dst_host, src, nbytes, stream), "cuMemcpyDtoHAsync")


def copy_dtod_async(dst: int, src: int, nbytes: int, stream: int) -> None:
    drv, _ = bindings()
    check(drv.cuMemcpyDtoDAsync(dst, src, nbytes, stream), "cuMemcpyDtoDAsync")


def memset_d8_async(dst: int, value: int, nbytes: int, stream: int) -> None:
    drv, _ = bindings()
    check(drv.cuMemsetD8Async(dst, value, nbytes, stream), "cuMemsetD8Async")


def memset_d32_async(dst: int, value: int, count: int, stream: int) -> None:
    drv, _ = bindings()
    check(drv.cuMemsetD32Async(dst, value, count, stream), "cuMemsetD32Async")


class DeviceBuffer:
    """``nbytes`` of device memory, freed by ``close``."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self.ptr = mem_alloc(nbytes)

    def close(self) -> None:
        if self.ptr:
            ptr, self.ptr = self.ptr, 0
            mem_free(ptr)


def host_view(ptr: int, shape: tuple[int, ...], dtype: str) -> npt.NDArray[Any]:
    """A numpy array over host memory at ``ptr`` (no copy; the caller keeps it alive)."""
    count = int(np.prod(shape, dtype=np.int64))
    raw = (ctypes.c_ubyte * max(count * np.dtype(dtype).itemsize, 1)).from_address(ptr)
    return np.frombuffer(memoryview(raw), np.dtype(dtype), count=count).reshape(shape)


class PinnedArray:
    """Page-locked host memory seen as a numpy array (``array``) of a shape and dtype.

    Pinned memory makes async copies truly async, and it is the only host memory a copy
    captured in a CUDA graph may touch. ``mapped`` maps it into the device's address
    space (``device_ptr``; Jetson zero-copy).
    """

    def __init__(self, shape: tuple[int, ...], dtype: str, *, mapped: bool = False) -> None:
        count = int(np.prod(shape, dtype=np.int64))
        self.nbytes = count * np.dtype(dtype).itemsize
        self.ptr, self.device_ptr = host_alloc(self.nbytes, mapped=mapped)
        self.array: npt.NDArray[Any] = host_view(self.ptr, shape, dtype)

    def close(self) -> None:
        if self.ptr:
            self.array = np.empty(0)
            ptr, self.ptr = self.ptr, 0
            host_free(ptr)


# ----------------------------------------------------------------------------- kernels
def module_load(cubin: bytes, kernel: str) -> tuple[Any, Any]:
    """Load a cubin into the current context; return ``(module, function)``."""
    drv, _ = bindings()
    module = check(drv.cuModuleLoadData(cubin), "cuModuleLoadData")
    fn = check(drv.cuModuleGetFunction(module, kernel.encode()), "cuModuleGetFunction")
    return module, fn


def module_function(module: Any, kernel: str) -> Any:
    drv, _ = bindings()
    return check(drv.cuModuleGetFunction(module, kernel.encode()), "cuModuleGetFunction")


def module_unload(module: Any) -> None:
    drv, _ = bindings()
    check(drv.cuModuleUnload(module), "cuModuleUnload")


def launch(
    fn: Any,
    grid: tuple[int, int, int],
    block: tuple[int, int, int],
    stream: int,
    arg_pointers: int,
) -> None:
    """Launch ``fn``; ``arg_pointers`` is the address of a ``void*[]`` of argument addresses."""
    drv, _ = bindings()
    check(
        drv.cuLaunchKernel(fn, *grid, *block, 0, stream, arg_pointers, 0),
        "cuLaunchKernel",
    )


class KernelArgs:
    """A kernel's arguments built once: ctypes values whose addresses never change, so a
    launch (or a graph capture of it) only needs ``pointer``; update values in place."""

    def __init__(self, *values: ctypes._SimpleCData[Any] | ctypes.Structure) -> None:
        self.values = values
        self._argv = (ctypes.c_void_p * len(values))(*(ctypes.addressof(v) for v in values))
        self.pointer = ctypes.addressof(self._argv)


# ------------------------------------------------------------------------ CUDA graphs
class Graph:
    """An instantiated CUDA graph captured from the work enqueued on one stream."""

    def __init__(self, graph: Any, graph_exec: Any, stream: int) -> None:
        self._graph = graph
        self._exec = graph_exec
        self.stream = stream

    def launch(self) -> None:
        """Replay the captured work on the stream it was captured on."""
        drv, _ = bindings()
        check(drv.cuGraphLaunch(self._exec, self.stream), "cuGraphLaunch")

    def close(self) -> None:
        if self._exec is not None:
            drv, _ = bindings()
            graph_exec, self._exec = self._exec, None
            check(drv.cuGraphExecDestroy(graph_exec), "cuGraphExecDestroy")
            check(drv.cuGraphDestroy(self._graph), "cuGraphDestroy")


def capture(stream: int, enqueue: Callable[[], None]) -> Graph:
    """Capture what ``enqueue`` puts on ``stream`` into a graph; BackendError if not.

    Thread-local capture mode: another thread's CUDA calls cannot break it, and calls of
    this thread that are illegal during capture (a sync, a cuMemAlloc) fail it. On any
    failure the capture is ended, so the stream works again, and the caller falls back
    to plain enqueue.
    """
    drv, _ = bindings()
    mode = drv.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
    check(drv.cuStreamBeginCapture(stream, mode), "cuStreamBeginCapture")
    try:
        enqueue()
    except Exception as exc:
        _end_failed_capture(stream)
        raise BackendError(f"CUDA graph capture failed while enqueuing: {exc}") from exc
    err, graph = drv.cuStreamEndCapture(stream)
    if int(err) != 0:
        _end_failed_capture(stream)
        check((err,), "cuStreamEndCapture")
    try:
        graph_exec = check(drv.cuGraphInstantiate(graph, 0), "cuGraphInstantiate")
    except BackendError:
        drv.cuGraphDestroy(graph)
        raise
    return Graph(graph, graph_exec, stream)


def _end_failed_capture(stream: int) -> None:
    """End a capture that went wrong (if it is still open) so the stream is usable."""
    drv, _ = bindings()
    err, status = drv.cuStreamIsCapturing(stream)
    active = drv.CUstreamCaptureStatus.CU_STREAM_CAPTURE_STATUS_NONE
    if int(err) == 0 and status != active:
        _, graph = drv.cuStreamEndCapture(stream)
        if graph is not None and int(graph) != 0:
            drv.cuGraphDestroy(graph)
