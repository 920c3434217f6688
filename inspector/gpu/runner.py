"""The device runner: one model's part on the GPU, from the frame in pinned memory to the
findings (steps 3-5 of the flow on the device; ``preprocess.device: cuda``).

    frame (pinned) ─▶ H2D ─▶ fused kernel ─▶ [ model ─▶ candidates ─▶ NMS ─▶ D2H ] ─▶ findings
                      (per part, they take the frame's address)  (one CUDA graph per lane)

The runner owns ``frames_in_flight`` *lanes*. A lane is one model instance of the backend's
device path (``backends/device.py``: torch, TensorRT or ONNX Runtime's CUDA provider) on
its own CUDA stream, with its own preprocessing buffers, detector buffers and pinned
result buffer. At load each lane captures the model, the detector kernels
(``gpu/detect.py``) and the D2H copy into one CUDA graph; where capture fails the lane
enqueues them one by one and the log says so (``cuda_graph_unavailable``). Per part:

- ``submit(frame)`` takes a free lane, enqueues the frame's upload and the fused kernel
  (their source is the frame's own pinned buffer, so they are not in the graph), then
  replays the lane's graph, and returns at once with a ticket;
- ``collect(ticket)`` waits for that lane's last event only, turns the small result
  into findings on the host and frees the lane.

Lanes are independent, so parts on different lanes overlap on the GPU; the worker keeps
``pipeline.frames_in_flight`` parts submitted (``inspector/inflight.py``) and collects
them in trigger order. While no part arrives, ``idle()`` replays a spare lane's graph
every ``pipeline.gpu_keepalive_ms``, so a part after an idle gap finds the GPU clocked up
and its caches warm (docs/gpu.md measures it).

Stage times (ns): ``submit`` (host), ``device`` (device time from the upload to the end of
the D2H copy, CUDA events), ``gpu_wait`` (host blocked in collect), ``postprocess`` (host).
Every CUDA failure raises ``BackendError`` (counted in ``nvidia/driver.py``);
``consecutive_failures`` counts parts in a row that failed on the device.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from inspector.backends.base import Backend
from inspector.backends.device import DeviceGraph, DeviceLane, DeviceModel
from inspector.config import ModelConfig
from inspector.errors import BackendError
from inspector.gpu.detect import DeviceDetect, RawOutputs, yolo_layout
from inspector.gpu.pinned import PinnedFrames, shared_frames
from inspector.logging import get_logger
from inspector.models.base import Postprocessor
from inspector.nvidia import driver as cu
from inspector.preprocess.cpu import check_frame
from inspector.preprocess.cuda import CudaPreprocessor, fused_kernel
from inspector.preprocess.geometry import Geometry
from inspector.types import Finding, Frame

log = get_logger(__name__)

_PREPROCESSORS_PER_LANE = 4  # frame formats/sizes kept ready per lane


class _Lane:
    """One model instance on one stream, with everything a part needs around it."""

    def __init__(self, model: DeviceModel, cfg: ModelConfig, post: Postprocessor) -> None:
        self.cfg = cfg
        self.stream = cu.stream_create()
        self.start, self.done = cu.event_create(), cu.event_create()
        self.model: DeviceLane = model.open_lane(self.stream)
        self.fp16 = self.model.input.dtype == "float16"
        shape = self.model.input.shape
        self.input_hw = (int(shape[2]), int(shape[3]))
        outputs = self.model.enqueue()
        layout = yolo_layout(post, outputs[0]) if outputs else None
        self.output: DeviceDetect | RawOutputs = (
            DeviceDetect(post, outputs[0], layout)  # type: ignore[arg-type]  # yolo_layout checked the type
            if layout is not None
            else RawOutputs(post, outputs)
        )
        self._pre: OrderedDict[tuple[str, tuple[int, ...]], CudaPreprocessor] = OrderedDict()
        self._staging: dict[tuple[int, ...], cu.PinnedArray] = {}
        self.graph: DeviceGraph | None = None
        self.body()  # every kernel launched once (lazy loading) before any capture
        cu.stream_sync(self.stream)
        try:
            self.graph = self.model.capture(self.body)
        except BackendError as exc:
            log.warning("cuda_graph_unavailable", model=cfg.name, error=str(exc))
        if self.graph is not None:
            self.graph.launch()  # the first replay, checked before any part relies on it
            cu.stream_sync(self.stream)

    def body(self) -> None:
        """Model → detector kernels or raw outputs → D2H, on the lane's stream."""
        self.output.enqueue(self.model.enqueue(), self.stream)

    def run(self) -> None:
        if self.graph is not None:
            self.graph.launch()
        else:
            self.body()

    def preprocessor(self, pixel_format: str, shape: tuple[int, ...]) -> CudaPreprocessor:
        key = (pixel_format, shape)
        pre = self._pre.get(key)
        if pre is None:
            src_hw = (int(shape[0]), int(shape[1]))
            pre = CudaPreprocessor(
                pixel_format, src_hw, self.input_hw, self.cfg.preprocess, fp16=self.fp16
            )
            self._pre[key] = pre
            if len(self._pre) > _PREPROCESSORS_PER_LANE:
                _, oldest = self._pre.popitem(last=False)
                cu.stream_sync(self.stream)  # its buffer may still be read
                oldest.close()
        else:
            self._pre.move_to_end(key)
        return pre

    def staging(self, image: np.ndarray[Any, Any], mapped: bool) -> cu.PinnedArray:
        """The lane's own pinned buffer, for a frame that is not in pinned memory."""
        buf = self._staging.get(image.shape)
        if buf is None:
            buf = cu.PinnedArray(image.shape, "uint8", mapped=mapped)
            self._staging = {image.shape: buf}  # one size at a time
        np.copyto(buf.array, image)
        return buf

    def close(self) -> None:
        with contextlib.suppress(BackendError):  # after a sticky error: free what we can
            cu.stream_sync(self.stream)
        if self.graph is not None:
            with contextlib.suppress(BackendError):
                self.graph.close()
            self.graph = None
        for pre in self._pre.values():
            pre.close()
        self._pre.clear()
        for buf in (*self._staging.values(), self.output):
            with contextlib.suppress(BackendError):
                buf.close()
        self._staging.clear()
        self.model.close()
        for ev in (self.start, self.done):
            with contextlib.suppress(BackendError):
                cu.event_destroy(ev)
        # The stream stays alive: torch may still hold cached blocks tied to it.


@dataclass(slots=True)
class Ticket:
    """One part in flight on a lane."""

    lane: _Lane
    frame: Frame  # keeps the frame's pinned buffer alive until the upload is done
    geometry: Geometry
    submit_ns: int


class DeviceRunner:
    """Runs one model on the device for the worker: submit, ready, collect, idle."""

    overlaps = True  # submit only enqueues: the quality gate runs while the GPU works

    def __init__(
        self,
        cfg: ModelConfig,
        backend: Backend,
        post: Postprocessor,
        *,
        frames_in_flight: int = 2,
        keepalive_ms: float = 10.0,
        device: int = 0,
    ) -> None:
        self.cfg, self.post = cfg, post
        self._device = device
        cu.make_current(device)
        fused_kernel(cu.make_current(device).arch)  # loaded now, not on the first part
        self._frames: PinnedFrames = shared_frames(device)
        model = backend.device_model()
        self._lanes: list[_Lane] = []
        self._spare: _Lane | None = None
        try:
            for _ in range(frames_in_flight):
                self._lanes.append(_Lane(model, cfg, post))
            if keepalive_ms > 0:
                self._spare = _Lane(model, cfg, post)
        except BaseException:
            self.close()
            raise
        self._free: deque[_Lane] = deque(self._lanes)
        self.keepalive_s = keepalive_ms / 1e3
        self._keepalive_ns = int(keepalive_ms * 1e6)
        self._last_ns = time.monotonic_ns()
        self._spare_busy = False
        self.consecutive_failures = 0
        self.graphs = sum(lane.graph is not None for lane in self._lanes)
        log.info(
            "device_runner_ready",
            model=cfg.name,
            lanes=len(self._lanes),
            graphs=self.graphs,
            output="device_nms" if isinstance(self._lanes[0].output, DeviceDetect) else "raw",
            keepalive_ms=keepalive_ms,
        )

    @staticmethod
    def frame_allocator() -> PinnedFrames:
        """Where cameras should put frames for this runner: the pinned frame pool."""
        return shared_frames()

    def submit(self, frame: Frame) -> Ticket:
        """Enqueue the part (upload, kernel, the lane's graph); do not wait."""
        t0 = time.monotonic_ns()
        cu.make_current(self._device)  # the worker thread's first CUDA call binds the context
        if not self._free:
            raise BackendError(f"more than {len(self._lanes)} parts in flight")
        image = frame.image
        check_frame(image, frame.pixel_format)  # FrameError: NG no_image, as on the CPU
        lane = self._free.popleft()
        try:
            pre = lane.preprocessor(frame.pixel_format, image.shape)
            where = self._frames.lookup(image)
            if where is None:  # a frame from outside the pool: one host copy
                buf = lane.staging(image, self._frames.mapped)
                where = (buf.ptr, buf.device_ptr)
            cu.event_record(lane.start, lane.stream)
            pre.enqueue(where[0], where[1], lane.model.input.ptr, lane.stream)
            lane.run()
            cu.event_record(lane.done, lane.stream)
        except BaseException as exc:
            self._free.appendleft(lane)
            if isinstance(exc, BackendError):
                self.consecutive_failures += 1
            raise
        self._last_ns = time.monotonic_ns()
        return Ticket(lane, frame, pre.geometry, self._last_ns - t0)

    def ready(self, ticket: Ticket) -> bool:
        """Whether the part's device work has finished (never blocks)."""
        cu.make_current(self._device)
        return cu.event_done(ticket.lane.done)

    def collect(self, ticket: Ticket) -> tuple[list[Finding], dict[str, int]]:
        """Wait for the part; return its findings and stage times; free the lane."""
        lane = ticket.lane
        t0 = time.monotonic_ns()
        try:
            cu.make_current(self._device)
            cu.event_sync(lane.done)
            t1 = time.monotonic_ns()
            device_ns = cu.event_elapsed_ns(lane.start, lane.done)
            findings = lane.output.findings(ticket.geometry)
        except BackendError:
            self.consecutive_failures += 1
            raise
        finally:
            self._free.append(lane)
            self._last_ns = time.monotonic_ns()
        self.consecutive_failures = 0
        return findings, {
            "submit": ticket.submit_ns,
            "device": device_ns,
            "gpu_wait": t1 - t0,
            "postprocess": self._last_ns - t1,
        }

    def idle(self) -> None:
        """Called by the worker when no part is waiting: keep the GPU warm."""
        spare = self._spare
        now = time.monotonic_ns()
        if spare is None or now - self._last_ns < self._keepalive_ns:
            return
        try:
            cu.make_current(self._device)
            if self._spare_busy and not cu.event_done(spare.done):
                return
            spare.run()
            cu.event_record(spare.done, spare.stream)
            self._spare_busy = True
        except BackendError as exc:  # counted by the driver layer; parts will fail loudly
            log.error("gpu_keepalive_failed", model=self.cfg.name, error=str(exc))
        self._last_ns = now

    def close(self) -> None:
        """Wait for every lane, then free them (before the backend is closed)."""
        lanes = [*self._lanes, *([self._spare] if self._spare is not None else [])]
        for lane in lanes:
            lane.close()
        self._lanes, self._spare = [], None
        self._free = deque()
