"""Pinned frame buffers: where a camera's frame lands, once (step 2 → 3 on the device).

A camera given this allocator (``camera.base.FrameAllocator``) writes each frame straight
into page-locked host memory: the GenICam source copies the GenTL buffer into it and
requeues the buffer at once, the sim camera renders its pool into it, the folder camera
copies each decoded image into it. The device runner then uploads from that memory
directly (one H2D copy, no second host copy), or, on an integrated GPU (Jetson), where
the memory is mapped into the device's address space, the kernel reads it in place.

A buffer goes back to the pool when the last numpy view of its frame dies (a
``weakref.finalize`` on the memory the views share), so a frame kept by the archive or
a sink can never be overwritten under it. Buffers are recycled by size; past
``max_bytes`` of pinned memory the allocator hands out ordinary numpy arrays (the runner
then copies them into its lane's pinned staging buffer) and counts them in ``fallbacks``.
One pool per process (``shared_frames``), on the device's primary context.
"""

from __future__ import annotations

import ctypes
import math
import threading
import weakref
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inspector.nvidia import driver as cu

_DEFAULT_MAX_BYTES = 512 << 20


@dataclass(slots=True)
class _Block:
    host: int
    device: int  # mapped device address (integrated GPUs), else 0
    nbytes: int


class PinnedFrames:
    """A ``FrameAllocator`` of page-locked frame buffers, recycled by size."""

    def __init__(
        self, *, mapped: bool, device: int = 0, max_bytes: int = _DEFAULT_MAX_BYTES
    ) -> None:
        self.mapped = mapped
        self.device = device
        self.max_bytes = max_bytes
        self.allocated_bytes = 0
        self.fallbacks = 0  # frames handed out as ordinary (pageable) numpy arrays
        self._free: dict[int, list[_Block]] = defaultdict(list)
        self._live: dict[int, _Block] = {}
        # Re-entrant: a finalizer can run (GC) while this thread holds the lock.
        self._lock = threading.RLock()

    def __call__(self, shape: tuple[int, ...]) -> npt.NDArray[np.uint8]:
        """An uninitialised uint8 frame of ``shape`` in pinned memory (if any is left)."""
        nbytes = max(math.prod(shape), 1)
        with self._lock:
            free = self._free[nbytes]
            block = free.pop() if free else None
            if block is None and self.allocated_bytes + nbytes > self.max_bytes:
                self.fallbacks += 1
                return np.empty(shape, np.uint8)
            if block is None:
                cu.make_current(self.device)  # cameras allocate from their own threads
                host, dev = cu.host_alloc(nbytes, mapped=self.mapped)
                block = _Block(host, dev, nbytes)
                self.allocated_bytes += nbytes
            self._live[block.host] = block
        raw = (ctypes.c_ubyte * nbytes).from_address(block.host)
        weakref.finalize(raw, self._release, block)
        view: npt.NDArray[np.uint8] = np.frombuffer(memoryview(raw), np.uint8, math.prod(shape))
        return view.reshape(shape)

    def lookup(self, image: npt.NDArray[np.generic]) -> tuple[int, int] | None:
        """``(host_ptr, mapped_device_ptr)`` when ``image`` is a whole contiguous frame of
        this pool, else None."""
        ptr = int(image.__array_interface__["data"][0])
        with self._lock:
            block = self._live.get(ptr)
        if block is None or not image.flags.c_contiguous or image.nbytes > block.nbytes:
            return None
        return block.host, block.device

    def _release(self, block: _Block) -> None:
        with self._lock:
            self._live.pop(block.host, None)
            self._free[block.nbytes].append(block)


_shared: PinnedFrames | None = None
_shared_lock = threading.Lock()


def shared_frames(device: int = 0) -> PinnedFrames:
    """The process's pinned frame pool (mapped memory on an integrated GPU)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = PinnedFrames(mapped=cu.make_current(device).integrated, device=device)
        return _shared
