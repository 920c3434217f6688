"""Thin, typed layer over the CUDA driver API of cuda-python (12.x and 13.x).

Why the driver API: it shares the device's primary context with PyTorch and TensorRT, so
one stream and one set of device pointers serve the kernel and the model. Every call goes
through ``check``: a CUDA error raises ``BackendError`` whose message starts with the
error name (``CUDA_ERROR_ILLEGAL_ADDRESS``...), and bumps ``FAILURES`` so the daemon can
fault after repeated errors (``failure_count()``).

cuda-python moved its modules: 12.x has ``from cuda import cuda, nvrtc`` (legacy) and
``cuda.bindings.driver``; 13.x has only ``cuda.bindings``. ``bindings()`` tries the new
path first.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from inspector.errors import BackendError

_lock = threading.Lock()
_failures = 0
_current = threading.local()


def bindings() -> tuple[Any, Any]:
    """Return the ``(driver, nvrtc)`` modules of whichever cuda-python is installed."""
    try:
        from cuda.bindings import driver, nvrtc
    except ImportError:
        try:
            from cuda import cuda as driver  # cuda-python 12.x legacy layout
            from cuda import nvrtc
        except ImportError as exc:
            raise BackendError(f"cuda-python is not installed: {exc}") from exc
    return driver, nvrtc


def failure_count() -> int:
    """CUDA calls that failed in this process (the pipeline faults past a threshold)."""
    return _failures


def count_failure() -> None:
    """Count a CUDA failure reported by another library (torch raises RuntimeError)."""
    global _failures
    with _lock:
        _failures += 1


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


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What the preprocessing path needs to know about the GPU."""

    ordinal: int
    name: str
    arch: str  # "sm_90"
    integrated: bool  # iGPU sharing DRAM with the CPU (Jetson): use mapped pinned memory


def make_current(ordinal: int = 0) -> DeviceInfo:
    """Initialise CUDA, make the device's primary context current in this thread.

    The primary context is the one PyTorch/TensorRT use, so pointers and streams are
    shared. Cheap after the first call in a thread.
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
    name = bytes(raw_name).split(b"\0", 1)[0].decode(errors="replace")
    info = DeviceInfo(ordinal, name, f"sm_{major}{minor}", bool(integrated))
    _current.info = info
    return info


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


def event_create() -> Any:
    """An event with timing (``event_elapsed_ns`` reads it)."""
    drv, _ = bindings()
    return check(drv.cuEventCreate(drv.CUevent_flags.CU_EVENT_DEFAULT), "cuEventCreate")


def event_record(event: Any, stream: int) -> None:
    drv, _ = bindings()
    check(drv.cuEventRecord(event, stream), "cuEventRecord")


def event_sync(event: Any) -> None:
    drv, _ = bindings()
    check(drv.cuEventSynchronize(event), "cuEventSynchronize")


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


def mem_alloc(nbytes: int) -> int:
    drv, _ = bindings()
    return int(check(drv.cuMemAlloc(nbytes), "cuMemAlloc"))


def mem_free(ptr: int) -> None:
    drv, _ = bindings()
    check(drv.cuMemFree(ptr), "cuMemFree")


def host_alloc(nbytes: int, *, mapped: bool) -> tuple[int, int]:
    """Page-locked host memory; returns ``(host_ptr, device_ptr)``.

    ``mapped=True`` (integrated GPUs) maps it into the device address space, so the kernel
    reads the frame in place and no copy is needed; otherwise device_ptr is 0.
    """
    drv, _ = bindings()
    flags = drv.CU_MEMHOSTALLOC_DEVICEMAP if mapped else 0
    host = int(check(drv.cuMemHostAlloc(nbytes, flags), "cuMemHostAlloc"))
    if not mapped:
        return host, 0
    dev = int(check(drv.cuMemHostGetDevicePointer(host, 0), "cuMemHostGetDevicePointer"))
    return host, dev


def host_free(ptr: int) -> None:
    drv, _ = bindings()
    check(drv.cuMemFreeHost(ptr), "cuMemFreeHost")


def copy_htod_async(dst: int, src_host: int, nbytes: int, stream: int) -> None:
    drv, _ = bindings()
    check(drv.cuMemcpyHtoDAsync(dst, src_host, nbytes, stream), "cuMemcpyHtoDAsync")


def copy_dtod_async(dst: int, src: int, nbytes: int, stream: int) -> None:
    drv, _ = bindings()
    check(drv.cuMemcpyDtoDAsync(dst, src, nbytes, stream), "cuMemcpyDtoDAsync")


def memset_d32_async(dst: int, value: int, count: int, stream: int) -> None:
    drv, _ = bindings()
    check(drv.cuMemsetD32Async(dst, value, count, stream), "cuMemsetD32Async")


def module_load(cubin: bytes, kernel: str) -> tuple[Any, Any]:
    """Load a cubin into the current context; return ``(module, function)``."""
    drv, _ = bindings()
    module = check(drv.cuModuleLoadData(cubin), "cuModuleLoadData")
    fn = check(drv.cuModuleGetFunction(module, kernel.encode()), "cuModuleGetFunction")
    return module, fn


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
