"""The camera protocol every source implements.

A camera is opened once, then ``grab(trigger)`` is called for every part; it returns a
``Frame`` that the pipeline owns (any producer buffer is already given back) or raises
``CameraError`` (timeout, lost device, damaged buffer), which the pipeline turns into
NG_NO_IMAGE. ``close()`` is idempotent.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from inspector.types import Frame, Trigger


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
