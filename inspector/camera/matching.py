"""Frames matched to parts in triggered mode (step 2 of the flow, no harvesters import).

``FrameMatcher`` / ``serve_part()``: frames come in exposure order with increasing
frame ids; each belongs to the next pending part. A gap in the ids is a lost frame (its
part is NG_NO_IMAGE); an id at or below one already used is a stale frame (its part
already timed out) and is never handed over. ``camera/genicam.py`` uses it; it is tested
on its own, without a camera.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from inspector.errors import CameraError

T = TypeVar("T")

#: GigE Vision 1.x block ids are 16 bit and skip 0 when they wrap (65535 -> 1).
GEV1_BLOCK_ID_WRAP = 65535

#: Stale frames in a row, with no frame matched in between, that mean the ids are out of
#: step with the parts (the camera missed a trigger, so every frame now looks one part
#: late). Matching cannot tell that from frames that really are late, so the source
#: restarts acquisition instead of guessing.
OUT_OF_STEP_AFTER = 3


class FrameMatcher(Generic[T]):
    """Match hardware-triggered frames to parts, in order, by frame id.

    The camera exposes once per trigger of the line sensor and numbers its frames; the
    daemon serves parts in the same order. The part being served expects frame id
    ``next_id``; frames that arrive early (a later part's) are held. A frame whose id
    jumps ahead means the frames in between were lost (incomplete, dropped by the
    network): their parts get ``None`` (NG_NO_IMAGE), never a neighbour's image. A frame
    whose id was already served or abandoned (its part timed out) is stale and dropped.
    Not thread-safe: the acquisition thread owns it.
    """

    def __init__(self, *, id_wrap: int | None = None) -> None:
        self._id_wrap = id_wrap
        self._next_id: int | None = None  # None until the first frame sets the baseline
        self._abandoned_before_baseline = 0
        self._slots: deque[tuple[int, T | None]] = deque()
        self._last_raw: int | None = None
        self._last_id = 0
        self.lost = 0  # frames known lost from id gaps
        self.stale = 0  # frames dropped because their part was already given up
        self._stale_streak = 0  # stale frames since the last frame matched to a part

    def reset(self) -> None:
        """Forget ids and held frames: the camera restarted acquisition (ids restart)."""
        self._next_id = None
        self._abandoned_before_baseline = 0
        self._slots.clear()
        self._last_raw = None
        self._stale_streak = 0

    @property
    def held(self) -> int:
        """Frames (or known losses) already waiting for later parts."""
        return len(self._slots)

    def push(self, frame_id: int, frame: T | None) -> bool:
        """Record a frame from the device (None: it came damaged, its part is NG);
        False when it is stale and was dropped."""
        fid = self._unwrap(frame_id)
        if self._next_id is None:
            # The first frame after (re)start belongs to the oldest part still waiting;
            # parts that already gave up before it came owned the frames before theirs.
            self._next_id = fid + self._abandoned_before_baseline
            self._abandoned_before_baseline = 0
        expected = self._next_id + len(self._slots)
        if fid < expected:
            self.stale += 1
            self._stale_streak += 1
            return False
        for missing in range(expected, fid):
            self._slots.append((missing, None))
            self.lost += 1
        self._slots.append((fid, frame))
        return True

    def pop(self) -> tuple[int, T | None] | None:
        """The (frame id, frame or None if lost) of the part being served, or None when
        its frame has not come yet (fetch more and push)."""
        if not self._slots:
            return None
        slot = self._slots.popleft()
        self._next_id = slot[0] + 1
        if slot[1] is not None:
            self._stale_streak = 0
        return slot

    @property
    def out_of_step(self) -> bool:
        """True after OUT_OF_STEP_AFTER stale frames with no match in between."""
        return self._stale_streak >= OUT_OF_STEP_AFTER

    def abandon(self) -> None:
        """The part being served gave up waiting (timeout): its frame, if it ever comes,
        is stale."""
        if self._next_id is None:
            self._abandoned_before_baseline += 1
        else:
            self._next_id += 1

    def _unwrap(self, raw: int) -> int:
        """A monotonic id from a wrapping one (GigE Vision 1.x 16-bit block ids)."""
        if self._id_wrap is None:
            return raw
        if self._last_raw is None:
            self._last_raw, self._last_id = raw, raw
            return raw
        delta = (raw - self._last_raw) % self._id_wrap
        if delta > self._id_wrap // 2:  # an older id than the last one: stale
            delta -= self._id_wrap
        self._last_raw = raw
        self._last_id += delta
        return self._last_id


def serve_part(
    matcher: FrameMatcher[T], fetch: Callable[[], tuple[int, T | None]], part_id: int
) -> T:
    """The frame of the part being served under hardware trigger.

    ``fetch()`` returns the next (frame id, frame) from the device, frame None for a
    damaged buffer, and raises CameraError on timeout. Frames of later parts are held;
    a part whose frame is known lost or damaged raises CameraError without waiting.
    """
    while (slot := matcher.pop()) is None:
        try:
            frame_id, frame = fetch()
        except CameraError:
            matcher.abandon()  # this part's frame, if it ever comes, is stale
            raise
        matcher.push(frame_id, frame)
    frame_id, matched = slot
    if matched is None:
        raise CameraError(f"frame {frame_id} of part {part_id} was lost or damaged")
    return matched


# ------------------------------------------------------------------ small helpers
