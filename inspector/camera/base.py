"""The camera protocol every source implements.

A camera is opened once, then ``grab(trigger)`` is called for every part; it returns a
``Frame`` that the pipeline owns (any producer buffer is already given back) or raises
``CameraError`` (timeout, lost device, damaged buffer), which the pipeline turns into
NG_NO_IMAGE. ``close()`` is idempotent.

A source built with a ``FrameAllocator`` writes each frame into memory the allocator
gives (the device runner's pinned frame pool, ``gpu/pinned.py``), so the frame lands
where the GPU reads it with the one copy the camera makes anyway; without one it uses
ordinary numpy memory.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from inspector.types import Frame, Trigger


class FrameAllocator(Protocol):
    """Gives an uninitialised uint8 frame buffer of a shape (the camera fills it)."""

    def __call__(self, shape: tuple[int, ...]) -> npt.NDArray[np.uint8]: ...


def host_frame(shape: tuple[int, ...]) -> npt.NDArray[np.uint8]:
    """The default allocator: ordinary numpy memory."""
    return np.empty(shape, np.uint8)


@runtime_checkable
class Camera(Protocol):
    """A source of frames, one per trigger."""

    name: str

    def open(self) -> None:
        """Acquire the device or resources; raise CameraError on failure."""

    def grab(self, trigger: Trigger) -> Frame:
        """Return the frame for this part, or raise CameraError."""

    def close(self) -> None:
        """Release everything; safe to call twice."""
