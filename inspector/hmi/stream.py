"""Encode once, serve to all: the page's encoder thread and the hub the browsers read.

    HmiSink (latest slot) ─▶ encoder thread ─▶ Hub (latest messages) ─▶ clients

The encoder thread (``run_encoder``) is the only place where a part becomes something a
browser can show. It runs only while at least one live stream is open, at most
``max_fps`` times a second: it takes the latest part from the sink's slot (parts in
between are counted and charted, not shown), encodes its ``part`` message (record,
overlay shapes, and the JPEG inline as a data URL), and once a second the ``stats``
message (counters, strip chart, status). Each message is built once, as the bytes every
client is sent: the image travels in the same write as its overlay, so a viewer costs
the server one socket write per image, never a request of its own.

The ``Hub`` holds those bytes: the latest ``part`` and ``stats`` messages. It is
thread-safe (a plain lock) and wakes the server's event loop through a callback the loop
registers (``attach``), so it outlives a server restart. A client never has a queue of
its own: it is sent the latest message it has not seen, so a slow client skips images
instead of piling them up.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import cv2

from inspector import metrics
from inspector.config import Config
from inspector.hmi.live import HmiSink, Stats
from inspector.hmi.overlay import shapes, to_jpeg
from inspector.logging import RateLimitedLog, get_logger
from inspector.sinks import part_record
from inspector.types import PartResult

_errors = RateLimitedLog(get_logger(__name__))


def sse(event: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    """One Server-Sent Events message (the JSON has no newlines: one ``data`` line)."""
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return (head + "data: " + json.dumps(data, separators=(",", ":")) + "\n\n").encode()


class Hub:
    """The latest messages, shared by every client; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._part: tuple[int, bytes] = (0, b"")
        self._part_json: dict[str, Any] | None = None
        self._stats: tuple[int, bytes] = (0, b"")
        self._notify: Callable[[], None] | None = None
        self.viewers = 0  # open live streams; changed by the server loop only
        self.watched = threading.Event()  # set while viewers > 0: the encoder works

    # ----------------------------------------------------------- encoder side
    def put_part(self, seq: int, message: dict[str, Any]) -> None:
        data = sse("part", message, seq)
        with self._lock:
            self._part, self._part_json = (seq, data), message
        self._wake()

    def put_stats(self, message: dict[str, Any]) -> None:
        data = sse("stats", message)
        with self._lock:
            self._stats = (self._stats[0] + 1, data)
        self._wake()

    # ------------------------------------------------------------ server side
    def latest(self) -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        """((part seq, part message), (stats version, stats message)); empty bytes: none yet."""
        with self._lock:
            return self._part, self._stats

    def latest_part(self) -> dict[str, Any] | None:
        with self._lock:
            return self._part_json

    def attach(self, notify: Callable[[], None] | None) -> None:
        """Register the server loop's thread-safe wake-up (None: no loop running)."""
        with self._lock:
            self._notify = notify

    def join(self) -> None:
        self.viewers += 1
        metrics.HMI_CLIENTS.set(self.viewers)
        self.watched.set()

    def leave(self) -> None:
        self.viewers -= 1
        metrics.HMI_CLIENTS.set(self.viewers)
        if self.viewers <= 0:
            self.watched.clear()

    def _wake(self) -> None:
        with self._lock:
            notify = self._notify
        if notify is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: server restarting
                notify()


def part_message(seq: int, result: PartResult, cfg: Config, jpeg: bytes | None) -> dict[str, Any]:
    """The ``part`` message: the part's record, its image (JPEG data URL) and overlay shapes."""
    record = part_record(result)
    findings = record["findings"]
    assert isinstance(findings, list)
    recipe = next((r for r in cfg.recipes if r.id == result.trigger.recipe_id), None)
    frame = result.frame
    truth = frame.truth if frame is not None else None
    return {
        "seq": seq,
        "part": record,
        "recipe": recipe.name if recipe else None,
        "image": None
        if frame is None or jpeg is None
        else {
            "src": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii"),
            "width": int(frame.image.shape[1]),
            "height": int(frame.image.shape[0]),
        },
        "truth_known": truth is not None,
        "shapes": shapes(findings, recipe, truth),
    }


def run_encoder(sink: HmiSink, hub: Hub, stats: Stats, cfg: Config, stop: threading.Event) -> None:
    """The encoder thread's loop (see the module docstring); returns once ``stop`` is set."""
    hmi = cfg.hmi
    period_s = 1.0 / hmi.max_fps
    shown = 0
    next_frame = next_stats = 0.0
    while not stop.is_set():
        if not hub.watched.wait(0.5):
            continue
        now = time.monotonic()
        if now >= next_stats:
            hub.put_stats(stats.message(hub.viewers))
            next_stats = now + 1.0
        if now < next_frame:
            stop.wait(min(next_frame, next_stats) - now)
            continue
        sink.fresh.clear()
        version, result = sink.latest()
        if result is None or version == shown:
            # Bounded: ``close`` may set ``fresh`` just before the clear above.
            sink.fresh.wait(min(0.2, max(0.0, next_stats - time.monotonic())))
            continue
        seq = hub.latest()[0][0] + 1  # kept in the hub: unique across encoder restarts
        jpeg = _encode(result, cfg)
        hub.put_part(seq, part_message(seq, result, cfg, jpeg))
        shown, next_frame = version, time.monotonic() + period_s


def _encode(result: PartResult, cfg: Config) -> bytes | None:
    """The part's JPEG; None without a frame, or for a frame that cannot be encoded."""
    if result.frame is None:
        return None
    image, pixel_format = result.frame.image, result.frame.pixel_format
    try:
        # The pipeline only inspects 8-bit frames; the Frame type also admits uint16.
        jpeg = to_jpeg(image, pixel_format, cfg.hmi.image_width, cfg.hmi.jpeg_quality)  # type: ignore[arg-type]
    except (cv2.error, ValueError) as exc:  # this frame only: shown without its image
        _errors.error("hmi_encode_failed", pixel_format=pixel_format, error=repr(exc))
        return None
    metrics.HMI_FRAMES_ENCODED.inc()
    return jpeg
