"""Small CUDA runtime helpers for the TensorRT backend (cuda-python 12.x and 13.x).

Streams, device buffers, pinned host buffers seen as numpy arrays, async copies and
CUDA graph capture. The runtime API is used (not the driver API) because TensorRT
itself uses it: both work in the device's primary context with no context juggling.

cuda-python moved its modules: 12.x has ``from cuda import cudart`` (legacy, still
shipped) and ``cuda.bindings.runtime``; 13.x only ``cuda.bindings.runtime``.
Every call goes through ``check``; a CUDA error raises ``BackendError`` naming the
call and the error. Imported only by ``backends/tensorrt.py`` and the build tool.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from inspector.errors import BackendError
from inspector.extras import install_hint


def runtime() -> Any:
    """The CUDA runtime module of whichever cuda-python is installed."""
    try:
        from cuda.bindings import runtime as rt
    except ImportError:
        try:
            from cuda import cudart as rt  # cuda-python 12.x legacy layout
        except ImportError as exc:
            raise BackendError(
                f"cuda-python is not installed ({exc}): {install_hint('gpu')}"
            ) from exc
    return rt


def check(result: Any, what: str) -> Any:
    """Unpack ``(err, *values)``; raise BackendError on error; return None/value/tuple."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        rt = runtime()
        try:
            _, text = rt.cudaGetErrorString(err)
            detail = bytes(text).decode(errors="replace")
        except Exception:  # naming the error must never hide the error itself
            detail = ""
        raise BackendError(f"{what} failed: cudaError {int(err)} {detail}".rstrip())
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def device_properties(ordinal: int = 0) -> tuple[str, str]:
    """``(GPU name, compute capability "M.m")`` of a device; also makes it current."""
    rt = runtime()
    check(rt.cudaSetDevice(ordinal), "cudaSetDevice")
    props = check(rt.cudaGetDeviceProperties(ordinal), "cudaGetDeviceProperties")
    raw = props.name
    name = (
        bytes(raw).split(b"\0", 1)[0].decode(errors="replace") if not isinstance(raw, str) else raw
    )
    return name.strip(), f"{props.major}.{props.minor}"


class Stream:
    """A non-blocking stream; ``handle`` is the integer TensorRT takes."""

    def __init__(self) -> None:
        rt = runtime()
        self._rt = rt
        self.obj = check(rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking), "cudaStreamCreate")
        self.handle = int(self.obj)

    def sync(self) -> None:
        check(self._rt.cudaStreamSynchronize(self.obj), "cudaStreamSynchronize")

    def close(self) -> None:
        if self.handle:
            check(self._rt.cudaStreamDestroy(self.obj), "cudaStreamDestroy")
            self.handle = 0


class DeviceBuffer:
    """``nbytes`` of device memory (cudaMalloc; never managed memory)."""

    def __init__(self, nbytes: int) -> None:
        self._rt = runtime()
        self.nbytes = nbytes
        self.ptr = int(check(self._rt.cudaMalloc(max(nbytes, 1)), "cudaMalloc"))

    def close(self) -> None:
        if self.ptr:
            check(self._rt.cudaFree(self.ptr), "cudaFree")
            self.ptr = 0


class PinnedBuffer:
    """Page-locked host memory with a numpy view (``array``) of ``shape`` and ``dtype``.

    Pinned memory makes the async copies truly async and is required for copies
    captured in a CUDA graph.
    """

    def __init__(self, shape: tuple[int, ...], dtype: str) -> None:
        self._rt = runtime()
        self.nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        self.ptr = int(
            check(
                self._rt.cudaHostAlloc(max(self.nbytes, 1), self._rt.cudaHostAllocDefault),
                "cudaHostAlloc",
            )
        )
        raw = (ctypes.c_ubyte * max(self.nbytes, 1)).from_address(self.ptr)
        self.array: npt.NDArray[Any] = np.frombuffer(
            memoryview(raw).cast("B"), np.dtype(dtype), count=int(np.prod(shape))
        ).reshape(shape)

    def close(self) -> None:
        if self.ptr:
            self.array = np.empty(0)
            check(self._rt.cudaFreeHost(self.ptr), "cudaFreeHost")
            self.ptr = 0


def copy_htod_async(dst: int, src: int, nbytes: int, stream: Stream) -> None:
    rt = runtime()
    kind = rt.cudaMemcpyKind.cudaMemcpyHostToDevice
    check(rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream.obj), "cudaMemcpyAsync(HtoD)")


def copy_dtoh_async(dst: int, src: int, nbytes: int, stream: Stream) -> None:
    rt = runtime()
    kind = rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
    check(rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream.obj), "cudaMemcpyAsync(DtoH)")


def copy_dtod_async(dst: int, src: int, nbytes: int, stream: Stream) -> None:
    rt = runtime()
    kind = rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice
    check(rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream.obj), "cudaMemcpyAsync(DtoD)")


class Graph:
    """An instantiated CUDA graph captured from work enqueued on one stream."""

    def __init__(self, graph: Any, graph_exec: Any) -> None:
        self._rt = runtime()
        self._graph = graph
        self._exec = graph_exec

    def launch(self, stream: Stream) -> None:
        check(self._rt.cudaGraphLaunch(self._exec, stream.obj), "cudaGraphLaunch")

    def close(self) -> None:
        if self._exec is not None:
            check(self._rt.cudaGraphExecDestroy(self._exec), "cudaGraphExecDestroy")
            check(self._rt.cudaGraphDestroy(self._graph), "cudaGraphDestroy")
            self._exec = None


def capture_graph(stream: Stream, enqueue: Callable[[], None]) -> Graph:
    """Capture what ``enqueue`` puts on ``stream`` into a graph; raise BackendError if not.

    On any failure the capture is ended (so the stream works again without a graph)
    and the error cleared; the caller falls back to plain enqueue.
    """
    rt = runtime()
    mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
    check(rt.cudaStreamBeginCapture(stream.obj, mode), "cudaStreamBeginCapture")
    try:
        enqueue()
    except Exception as exc:
        rt.cudaStreamEndCapture(stream.obj)
        rt.cudaGetLastError()
        raise BackendError(f"CUDA graph capture failed while enqueuing: {exc}") from exc
    try:
        graph = check(rt.cudaStreamEndCapture(stream.obj), "cudaStreamEndCapture")
    except BackendError:
        rt.cudaGetLastError()
        raise
    try:
        graph_exec = check(rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
    except BackendError:
        rt.cudaGraphDestroy(graph)
        rt.cudaGetLastError()
        raise
    return Graph(graph, graph_exec)
