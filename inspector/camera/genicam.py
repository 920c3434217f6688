"""GigE Vision / USB3 Vision cameras through harvesters (step 2 of the flow: grab).

``GenicamCamera`` is the ``camera.type: genicam`` source. ``open()`` loads the GenTL
producer(s), opens the configured device, applies the feature set in order and starts
acquisition; ``grab(trigger)`` returns the part's frame or raises ``CameraError`` (the
pipeline makes that NG_NO_IMAGE); ``close()`` releases the device and joins the one
thread this source starts.

Concurrency: ``grab`` runs on the pipeline's acquisition thread and is the only user of
the device while it is healthy. When the device is lost, ``grab`` marks it LOST and
fails at once; a supervisor thread then destroys, resets, updates, reopens and re-applies
the feature set with doubling backoff; while healthy it reads the device temperature
every 10 s. One lock guards the device. ``grab`` checks the state before taking it, so
a part arriving mid-reconnect is NG at once, not late; a temperature read delays a grab
by one register access at most. Counters go to ``inspector.metrics`` (CAMERA_*) as they
move, and ``state`` / ``on_state`` carry the PLC ERROR_CODE (``CameraState.error_code``).

harvesters and genicam are imported only inside functions: ``import inspector`` and the
sim/folder daemon never load them. Node-map helpers shared with ``inspector camera``
(producer files, device choice, feature application) are in ``genicam_nodes.py``; the
state and counters in ``genicam_state.py``; pixel conversion in ``convert.py``; matching
frames to parts in ``matching.py``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import structlog

from inspector import metrics
from inspector.backoff import Backoff
from inspector.camera.base import FrameAllocator
from inspector.camera.convert import convert_raw
from inspector.camera.genicam_nodes import (
    apply_features,
    choose_device,
    describe_device,
    feature_names,
    open_harvester,
    trigger_features,
)
from inspector.camera.genicam_state import CameraState, CameraStats, DamagedBuffer, StateCallback
from inspector.camera.matching import FrameMatcher, serve_part
from inspector.config import GenicamCameraConfig
from inspector.errors import CameraError, FrameError
from inspector.types import Frame, Trigger

log = structlog.get_logger(__name__)

#: SFNC names of a device temperature node, tried in order, and how often it is read.
TEMPERATURE_NODES = ("DeviceTemperature", "SensorTemperature")
TEMPERATURE_PERIOD_S = 10.0


class GenicamCamera:
    """A GenICam camera as a ``Camera``: ``open()``, ``grab(trigger)``, ``close()``."""

    def __init__(
        self,
        cfg: GenicamCameraConfig,
        *,
        on_state: StateCallback | None = None,
        name: str = "genicam",
        alloc: FrameAllocator | None = None,
    ) -> None:
        self.name = name
        self.cfg = cfg
        self._alloc = alloc  # the one copy out of the GenTL buffer lands here (pinned)
        self.stats = CameraStats()
        self._on_state = on_state
        self.state = CameraState.CLOSED
        self.detail = ""
        self._lock = threading.Lock()  # guards the harvester and acquirer
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._harvester: Any = None
        self._acquirer: Any = None
        self._temperature_node: str | None = None
        self._trigger_software: Any = None  # the TriggerSoftware node (software trigger)
        self._geometry: tuple[int, int, str] = (0, 0, "")  # Width, Height, PixelFormat
        self._pixel_format_names: dict[int, str] = {}
        self._image_payload_types: set[int] = set()
        self._tick_hz = 0
        self.device = ""  # "vendor model (serial ..., id ...)" once opened
        self._matcher: FrameMatcher[Frame] = FrameMatcher(id_wrap=cfg.frame_id_wrap)

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> None:
        """Open and configure the device, start acquisition and the supervisor thread.

        Raises ConfigError for a feature that does not exist or cannot be written (with
        close matches), CameraError when no producer or device can be opened.
        """
        if self._supervisor is not None:
            return
        with self._lock:
            try:
                self._connect()
            except BaseException:
                self._teardown()
                raise
        self._stop.clear()
        self._lost.clear()
        self._supervisor = threading.Thread(
            target=self._supervise, name=f"{self.name}-supervisor", daemon=True
        )
        self._supervisor.start()
        self._set_state(CameraState.READY, "")

    def close(self) -> None:
        """Stop acquisition and release device, producer and thread; safe to call twice."""
        self._stop.set()
        self._lost.set()  # wakes the supervisor so it sees the stop
        if self._supervisor is not None:
            self._supervisor.join()
            self._supervisor = None
        with self._lock:
            self._teardown()
        if self.state is not CameraState.CLOSED:
            self._set_state(CameraState.CLOSED, "closed")

    def __enter__(self) -> GenicamCamera:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------- grab
    def grab(self, trigger: Trigger) -> Frame:
        """The frame of this part, or CameraError (timeout, lost or damaged frame,
        device offline). The producer's buffer is queued again before this returns.

        Waits at most ``timeout_ms``, and never past ``trigger.deadline_ns``: a frame
        that late cannot make the part's verdict in time anyway.
        """
        now_ns = time.monotonic_ns()
        deadline_ns = min(now_ns + int(self.cfg.timeout_ms * 1e6), trigger.deadline_ns)
        if self.state is not CameraState.READY:  # fail at once while reconnecting
            raise CameraError(f"camera {self.name} is {self.state.value}: {self.detail}")
        # The lock is only contended by a temperature read (short) or a reconnect that
        # started since the check above.
        if not self._lock.acquire(timeout=max(deadline_ns - now_ns, 0) / 1e9):
            raise CameraError(f"camera {self.name} busy (reconnecting?)")
        try:
            if self.state is not CameraState.READY or self._acquirer is None:
                raise CameraError(f"camera {self.name} is {self.state.value}: {self.detail}")
            try:
                if self.cfg.trigger_mode == "free_run":
                    self._drain()  # the next exposure, not one queued before the trigger
                    return self._fetch_frame(trigger, deadline_ns)
                if self._trigger_software is not None:
                    self._trigger_software.execute()
                return self._grab_matched(trigger, deadline_ns)
            except CameraError:
                raise
            except Exception as exc:  # the GenTL/GenApi layers raise plain exceptions
                self._mark_lost(f"{type(exc).__name__}: {exc}")
                raise CameraError(f"camera {self.name} lost: {exc}") from exc
        finally:
            self._lock.release()

    def _grab_matched(self, trigger: Trigger, deadline_ns: int) -> Frame:
        """Triggered modes: one exposure per part, matched by frame id (serve_part)."""

        def fetch() -> tuple[int, Frame | None]:
            try:
                frame = self._fetch_frame(trigger, deadline_ns)
            except DamagedBuffer as exc:
                return exc.frame_id, None  # its part is NG; later frames keep their parts
            return frame.frame_id, frame

        m = self._matcher
        lost, stale = m.lost, m.stale
        try:
            return serve_part(m, fetch, trigger.part_id)
        except CameraError:
            if m.out_of_step:  # restart acquisition: ids and parts start again together
                self._mark_lost("frame ids out of step with parts (missed trigger?)")
            raise
        finally:
            self.stats.dropped(stale=m.stale - stale, lost=m.lost - lost)

    def _fetch_frame(self, trigger: Trigger, deadline_ns: int) -> Frame:
        """Fetch, check, copy and convert one buffer, queueing it back at once.

        The raw GenTL buffer is used rather than harvesters' Buffer: the latter expands
        packed formats to 16 bits in Python before we see it (10-20 ms for 3 MP);
        ``convert_raw`` unpacks straight to 8 bits in the one copy we make.
        """
        ia = self._acquirer
        while (left_ns := deadline_ns - time.monotonic_ns()) > 0:
            raw = ia.try_fetch(timeout=max(left_ns / 1e9, 1e-4), is_raw=True)
            if raw is None:
                continue  # timed out, or an incomplete buffer dropped (counted by callback)
            try:
                t_grab_ns = time.monotonic_ns()
                frame_id = int(raw.frame_id)
                image, pixel_format = self._copy_pixels(raw, frame_id)
                stamp = self._device_timestamp_ns(raw)
            finally:
                raw.parent.queue_buffer(raw)  # back to the producer before any other work
            self.stats.frame_done(t_grab_ns)
            return Frame(
                image=image,
                pixel_format=pixel_format,
                frame_id=frame_id,
                t_grab_ns=t_grab_ns,
                device_timestamp_ns=stamp,
                source_name=self.name,
            )
        self.stats.timed_out()
        raise CameraError(f"no frame within {self.cfg.timeout_ms:g} ms for part {trigger.part_id}")

    def _copy_pixels(self, raw: Any, frame_id: int) -> tuple[Any, str]:
        """The one copy of the pixels; DamagedBuffer for a buffer not fit to inspect."""
        width, height, fallback_format = self._geometry
        try:
            payload_type = int(raw.payload_type)
            if payload_type not in self._image_payload_types:
                raise FrameError(f"payload type {payload_type} is not a single image")
            code = _info(raw, "pixel_format", None)
            pixel_format = self._pixel_format_names.get(code, fallback_format)
            data = np.frombuffer(raw.raw_buffer, np.uint8)
            start = _info(raw, "image_offset", 0)
            end = min(_info(raw, "size_filled", data.size) or data.size, data.size)
            return convert_raw(
                data[start:end],
                _info(raw, "width", width),
                _info(raw, "height", height),
                pixel_format,
                x_padding=_info(raw, "padding_x", 0),
                alloc=self._alloc,
            )
        except FrameError as exc:
            self.stats.damaged()
            raise DamagedBuffer(f"damaged buffer {frame_id}: {exc}", frame_id) from exc

    def _device_timestamp_ns(self, raw: Any) -> int | None:
        """The device's timestamp in ns; None where the producer has none (Viky)."""
        stamp: int = _info(raw, "timestamp_ns", 0)
        if stamp > 0:
            return stamp
        ticks: int = _info(raw, "timestamp", 0)
        if ticks <= 0 or not self._tick_hz:
            return None  # no stamp, or ticks of unknown length: do not guess
        return ticks * 1_000_000_000 // self._tick_hz

    def _drain(self) -> None:
        """Give queued frames back unseen (free-run only, where that is the normal case:
        not counted as stale)."""
        ia = self._acquirer
        while (raw := ia.try_fetch(timeout=1e-4, is_raw=True)) is not None:
            raw.parent.queue_buffer(raw)

    # ------------------------------------------------------------------- device
    def temperature_c(self) -> float | None:
        """The device temperature in °C where the camera has the node, else None.

        For the metrics scrape: it waits at most 50 ms for a grab in progress, and the
        read itself is one register access.
        """
        if self._temperature_node is None or not self._lock.acquire(timeout=0.05):
            return None
        try:
            if self._acquirer is None:
                return None
            node_map = self._acquirer.remote_device.node_map
            return float(node_map.get_node(self._temperature_node).value)
        except Exception as exc:  # not readable in the current state
            log.debug("camera_temperature_unreadable", camera=self.name, error=str(exc))
            return None
        finally:
            self._lock.release()

    def _connect(self) -> None:
        """Producer → device → features → acquisition. Caller holds the lock."""
        from harvesters.core import Callback, ImageAcquirer

        stats = self.stats

        class _CountIncomplete(Callback):  # type: ignore[misc]  # harvesters is untyped
            def emit(self, context: object = None) -> None:
                stats.damaged()

        self._harvester = open_harvester(self.cfg.cti)
        info = choose_device(self._harvester.device_info_list, self.cfg)
        try:
            self._acquirer = self._harvester.create(info)
        except Exception as exc:
            raise CameraError(f"cannot open {describe_device(info)}: {exc}") from exc
        node_map = self._acquirer.remote_device.node_map
        apply_features(node_map, trigger_features(node_map, self.cfg.trigger_mode))
        apply_features(node_map, self.cfg.features)
        if self.cfg.trigger_mode == "software":  # trigger_features checked it exists
            self._trigger_software = node_map.get_node("TriggerSoftware")
        self._acquirer.num_buffers = self.cfg.num_buffers
        self._acquirer.add_callback(ImageAcquirer.Events.INCOMPLETE_BUFFER, _CountIncomplete())
        names = set(feature_names(node_map))
        self._temperature_node = next((n for n in TEMPERATURE_NODES if n in names), None)
        self._remember_stream_format(node_map, names)
        self._matcher.reset()
        self._acquirer.start()
        self.device = describe_device(info)
        log.info("camera_open", camera=self.name, device=self.device)

    def _remember_stream_format(self, node_map: Any, names: set[str]) -> None:
        """Fallbacks for buffers that omit their geometry (fixed while acquiring)."""
        from genicam.gentl import PAYLOADTYPE_INFO_IDS
        from harvesters.util.pfnc import dict_by_ints

        def read(name: str, default: Any) -> Any:
            return node_map.get_node(name).value if name in names else default

        self._geometry = (
            int(read("Width", 0)),
            int(read("Height", 0)),
            str(read("PixelFormat", "")),
        )
        self._pixel_format_names = dict(dict_by_ints)
        self._image_payload_types = {
            int(PAYLOADTYPE_INFO_IDS.PAYLOAD_TYPE_IMAGE),
            int(PAYLOADTYPE_INFO_IDS.PAYLOAD_TYPE_CHUNK_DATA),
        }
        self._tick_hz = int(read("GevTimestampTickFrequency", 0))

    def _teardown(self) -> None:
        """Stop, destroy and reset whatever exists; never raises. Caller holds the lock."""
        ia, self._acquirer = self._acquirer, None
        h, self._harvester = self._harvester, None
        self._trigger_software = None
        # destroy() stops acquisition first; reset() unloads the producer.
        for step, call in (("destroy", ia and ia.destroy), ("reset", h and h.reset)):
            if call is None:
                continue
            try:
                call()
            except Exception as exc:  # a lost device fails its own goodbye
                log.debug("camera_teardown_failed", camera=self.name, step=step, error=str(exc))

    def _mark_lost(self, why: str) -> None:
        log.error("camera_lost", camera=self.name, error=why)
        self._set_state(CameraState.LOST, why)
        self._lost.set()

    def _supervise(self) -> None:
        """Read the temperature now and then; on LOST, reopen with doubling backoff."""
        while not self._stop.is_set():
            if not self._lost.wait(TEMPERATURE_PERIOD_S):
                if (celsius := self.temperature_c()) is not None:
                    metrics.CAMERA_TEMPERATURE.set(celsius)
                continue
            cfg = self.cfg
            backoff = Backoff(cfg.reconnect_backoff_s, cfg.reconnect_backoff_max_s)
            while True:
                if self._stop.wait(backoff.next()):
                    return
                if self._try_reconnect():
                    break

    def _try_reconnect(self) -> bool:
        with self._lock:
            self._teardown()
            try:
                self._connect()
            except Exception as exc:  # keep trying: a rebooting camera is not there yet
                self._teardown()
                self.stats.reconnect_attempt(ok=False)
                self._set_state(CameraState.LOST, f"reconnect failed: {exc}")
                log.warning("camera_reconnect_failed", camera=self.name, error=str(exc))
                return False
            self.stats.reconnect_attempt(ok=True)
            self._lost.clear()
            self._set_state(CameraState.READY, "")
            return True

    def _set_state(self, state: CameraState, detail: str) -> None:
        self.state, self.detail = state, detail
        metrics.CAMERA_UP.set(1 if state is CameraState.READY else 0)
        if self._on_state is not None:
            self._on_state(state, detail)


def _info(raw: Any, key: str, default: Any) -> Any:
    """One optional GenTL buffer info as int (GenTL may answer NotAvailable)."""
    try:
        value = getattr(raw, key)
    except Exception:  # genicam.gentl.NotAvailableException and friends
        return default
    return default if value is None else int(value)
