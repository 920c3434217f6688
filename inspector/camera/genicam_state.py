"""The GenICam source's state and counters (step 2 of the flow): what it reports.

``CameraState`` carries the PLC's ERROR_CODE (1xx: camera); ``CameraStats`` counts
frames, timeouts, damaged, lost and stale frames and reconnects, each moving its
Prometheus metric (``inspector.metrics``, CAMERA_*). ``camera/genicam.py`` owns them.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from inspector import metrics
from inspector.errors import FrameError


class CameraState(str, enum.Enum):
    """Where the source stands; ``error_code`` is for the PLC's ERROR_CODE (1xx: camera).

    A single part's failure (timeout, damaged or lost frame) does not change the state:
    it is that part's NG no_image verdict.
    """

    CLOSED = "closed"
    READY = "ready"
    LOST = "lost"  # device gone; the supervisor thread is reconnecting

    @property
    def error_code(self) -> int:
        return {CameraState.CLOSED: 101, CameraState.READY: 0, CameraState.LOST: 102}[self]


StateCallback = Callable[[CameraState, str], None]


class DamagedBuffer(FrameError):
    """A complete-looking buffer whose pixels cannot be inspected (size, format)."""

    def __init__(self, message: str, frame_id: int) -> None:
        super().__init__(message)
        self.frame_id = frame_id


@dataclass
class CameraStats:
    """Counters of one source (monotonic); each also moves its Prometheus metric."""

    frames: int = 0  # frames fetched and converted
    timeouts: int = 0  # grabs that got no frame in time
    incomplete: int = 0  # incomplete or damaged buffers dropped, never inferred on
    lost: int = 0  # hardware trigger: frames missing from the id sequence
    stale: int = 0  # triggered modes: frames dropped because their part had given up
    reconnects: int = 0  # successful reconnects after the device was lost
    reconnect_attempts: int = 0
    _frame_times_ns: deque[int] = field(default_factory=lambda: deque(maxlen=32))

    def frame_done(self, t_ns: int) -> None:
        self.frames += 1
        self._frame_times_ns.append(t_ns)
        metrics.CAMERA_FRAMES.inc()
        metrics.CAMERA_FPS.set(self.fps)

    def timed_out(self) -> None:
        self.timeouts += 1
        metrics.CAMERA_TIMEOUTS.inc()

    def damaged(self) -> None:
        self.incomplete += 1
        metrics.CAMERA_INCOMPLETE.inc()

    def dropped(self, *, stale: int = 0, lost: int = 0) -> None:
        self.stale += stale
        self.lost += lost
        metrics.CAMERA_STALE_FRAMES.inc(stale)
        metrics.CAMERA_LOST_FRAMES.inc(lost)

    def reconnect_attempt(self, *, ok: bool) -> None:
        self.reconnect_attempts += 1
        self.reconnects += ok
        metrics.CAMERA_RECONNECTS.inc()

    @property
    def fps(self) -> float:
        """Frames per second over the last (up to) 32 frames; 0.0 before two frames."""
        times = self._frame_times_ns
        if len(times) < 2 or times[-1] == times[0]:
            return 0.0
        return (len(times) - 1) * 1e9 / (times[-1] - times[0])
