"""The device stage of the flow (steps 3-4 on the GPU): one pipeline stream, plus side streams.

    frame ─▶ pinned slot ─▶ H2D ─▶ fused kernel ─▶ model (CUDA graph) ─▶ filter ─▶ D2H ─▶ host
                            └─ side stream ─┘     └──── pipeline stream ────┘    (d2h stream)

With one frame in flight everything runs in order on the pipeline stream. With more,
the upload and the kernel of frame k+1 run on a side stream while the model runs frame k
(``overlap_preprocess``; see ``preprocess/cuda.py``), and the D2H copy of frame k runs
on its own stream while frame k+1 is filtered.

``GpuStage.submit(frame)`` enqueues everything and returns at once with a ticket;
``collect(ticket)`` waits for that frame's last event only and returns
``(outputs, geometry, stage_ns)``, so up to ``frames_in_flight`` frames overlap (the host
grabs and uploads frame k+1 while the GPU runs frame k). ``__call__`` does both for one
frame, and ``make_gpu_model_stage`` wraps it with the postprocessor into the
``inspect.ModelStage`` the worker thread calls.

Detection outputs in the YOLOv8 layout ``[1, 4+nc, N]`` are filtered on the device
(``gpu/compact.py``): only candidates whose best class score reaches ``detection.conf`` are
copied into a fixed ``[4+nc, candidate_cap]`` buffer that comes back with the count
(14 KB at cap 512 and 3 classes, instead of 235 KB for N = 8400); the host
postprocessor then runs NMS as on the CPU path. ``saturated`` counts parts with more
than ``candidate_cap`` candidates above the floor (the extra ones were dropped).

Stage times come from CUDA events: ``h2d``, ``preprocess``, ``infer`` (model + filter),
``d2h`` (device time, ns) plus ``gpu_wait`` (host time blocked in collect).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from inspector.config import ModelConfig
from inspector.errors import BackendError, ConfigError, FrameError
from inspector.gpu.compact import CandidateFilter
from inspector.models.base import Postprocessor
from inspector.nvidia import driver as cu
from inspector.preprocess.cuda import CudaPreprocessor
from inspector.preprocess.geometry import Geometry
from inspector.types import Finding, Frame

if TYPE_CHECKING:
    from inspector.inspect import LoadedModel

FloatArray = npt.NDArray[np.float32]


@dataclass(slots=True)
class Ticket:
    """One frame in flight."""

    ring: int  # the stage's own ring index (events, host output buffers)
    slot: int  # the preprocessor's pinned slot
    geometry: Geometry
    host_out: list[Any]  # pinned torch tensors the D2H copies land in
    pre: CudaPreprocessor
    t_submit_ns: int
    done: Any = None  # event after the D2H copies
    infer_end: Any = None
    extra: dict[str, int] = field(default_factory=dict)


class GpuStage:
    """Preprocess + infer on the device for one model (torch backend), frames in flight.

    ``backend`` must offer the device path of ``backends/torch.py``: ``bind_stream``,
    ``input_ptr``, ``input_fp16``, ``run_on_stream``.
    """

    def __init__(
        self,
        model_cfg: ModelConfig,
        backend: Any,
        *,
        frames_in_flight: int = 2,
        device: int = 0,
        candidate_cap: int = 512,
        candidate_filter: bool = True,
        overlap_preprocess: bool = True,
    ) -> None:
        import torch

        self._torch: Any = torch
        self.cfg = model_cfg
        self.backend = backend
        self.frames_in_flight = frames_in_flight
        self.candidate_cap = candidate_cap
        self.overlap_preprocess = overlap_preprocess  # see preprocess/cuda.py
        self._device = device
        self.stream = cu.stream_create(device)
        self._filter: CandidateFilter | None = None
        out0 = backend.info.outputs[0].shape
        if candidate_filter and _is_yolov8(out0):
            self._filter = CandidateFilter(
                int(out0[1]),
                int(out0[2]),
                model_cfg.detection.conf,
                candidate_cap,
                backend.device,
                slots=frames_in_flight,
            )
        # The filtered result lives in a per-frame buffer, so its D2H copy can go to its
        # own stream and overlap the next frame's kernel and model. Unfiltered outputs
        # are the graph's static buffers: those must be copied before the next replay,
        # on the pipeline stream.
        self._d2h_stream = cu.stream_create(device) if self._filter is not None else self.stream
        self._d2h_torch = self._torch.cuda.ExternalStream(self._d2h_stream, device=backend.device)
        self.rebind()
        shape = backend.info.inputs[0].shape
        self.input_hw = (int(shape[2]), int(shape[3]))
        self._pre: dict[tuple[str, tuple[int, ...]], CudaPreprocessor] = {}
        self._host_out: list[list[Any] | None] = [None] * frames_in_flight
        self._events = [(cu.event_create(), cu.event_create()) for _ in range(frames_in_flight)]
        self._in_flight: list[Ticket] = []
        self._ring = 0
        self.saturated = 0  # parts with more candidates above the floor than the cap
        self.consecutive_failures = 0  # parts in a row that failed on the device

    def _preprocessor(self, frame: Frame, shape: tuple[int, ...]) -> CudaPreprocessor:
        if frame.image.dtype != np.uint8:
            raise FrameError(f"GPU path takes 8-bit frames, got {frame.image.dtype}")
        key = (frame.pixel_format, tuple(shape))
        pre = self._pre.get(key)
        if pre is None:
            pre = CudaPreprocessor(
                frame.pixel_format,
                (int(shape[0]), int(shape[1])),
                self.input_hw,
                self.cfg.preprocess,
                self.stream,
                fp16=self.backend.input_fp16,
                frames_in_flight=self.frames_in_flight,
                device=self._device,
                stage_on_side_stream=self.overlap_preprocess,
            )
            self._pre[key] = pre
        return pre

    def rebind(self) -> None:
        """Bind the backend to this stage's stream again (another stage or a benchmark
        may have bound it elsewhere); re-captures the CUDA graph."""
        # With the candidate filter the graph is the model alone (the filter reads its
        # fp16/fp32 output directly); otherwise the graph also converts to float32.
        self.backend.bind_stream(self.stream, epilogue=None if self._filter else _as_float)

    def acquire_pinned(
        self, pixel_format: str, shape: tuple[int, ...]
    ) -> tuple[int, npt.NDArray[np.uint8]]:
        """A free pinned slot and its frame-shaped view, for a camera that writes frames
        straight into pinned memory; pass the slot to ``submit(frame, slot=...)``."""
        probe = Frame(np.empty((0,), np.uint8), pixel_format, 0, 0)
        pre = self._preprocessor(probe, shape)
        slot = pre.acquire()
        return slot, pre.host_view(slot)

    def submit(self, frame: Frame, *, slot: int | None = None) -> Ticket:
        """Enqueue one frame (upload, kernel, model, reduction, D2H); do not wait.

        ``slot`` says the frame already lies in that pinned slot (``acquire_pinned``):
        the host copy is skipped.
        """
        ring = self._ring
        if len(self._in_flight) >= self.frames_in_flight or any(
            t.ring == ring for t in self._in_flight
        ):
            raise BackendError(f"more than {self.frames_in_flight} frames in flight")
        cu.make_current(self._device)
        t0 = time.monotonic_ns()
        pre = self._preprocessor(frame, frame.image.shape)
        if slot is None:
            slot = pre.upload(frame.image)  # type: ignore[arg-type]  # dtype checked above
        else:
            pre.enqueue_copy(slot)
        pre.run(self.backend.input_ptr, slot)
        infer_end, done = self._events[ring]
        torch = self._torch
        try:
            with torch.cuda.stream(self.backend.stream):
                outs = self.backend.run_on_stream()  # one CUDA graph replay
                if self._filter is not None:
                    self._filter.run(outs[0], self.stream, ring)
                    flt = self._filter
                    outs = [flt.outs[ring], flt.counts[ring], *_as_float(outs[1:])]
                cu.event_record(infer_end, self.stream)
            host = self._host_buffers(ring, outs)
            if self._d2h_stream != self.stream:
                cu.stream_wait(self._d2h_stream, infer_end)
            with torch.cuda.stream(self._d2h_torch):
                for h, o in zip(host, outs, strict=True):
                    h.copy_(o, non_blocking=True)
        except RuntimeError as exc:  # torch reports CUDA failures as RuntimeError
            cu.count_failure()
            raise BackendError(f"torch on the pipeline stream failed: {exc}") from exc
        cu.event_record(done, self._d2h_stream)
        self._ring = (ring + 1) % self.frames_in_flight
        ticket = Ticket(ring, slot, pre.geometry, host, pre, t0, done, infer_end)
        self._in_flight.append(ticket)
        return ticket

    def _host_buffers(self, slot: int, outs: list[Any]) -> list[Any]:
        bufs = self._host_out[slot]
        if bufs is None or [b.shape for b in bufs] != [o.shape for o in outs]:
            torch = self._torch
            bufs = [torch.empty(o.shape, dtype=o.dtype, pin_memory=True) for o in outs]
            self._host_out[slot] = bufs
        return bufs

    def collect(self, ticket: Ticket) -> tuple[list[FloatArray], Geometry, dict[str, int]]:
        """Wait for one submitted frame; return host outputs, geometry and stage times."""
        t0 = time.monotonic_ns()
        try:
            cu.event_sync(ticket.done)
        finally:
            self._in_flight.remove(ticket)
        t1 = time.monotonic_ns()
        outputs = [h.numpy().copy() for h in ticket.host_out]
        if self._filter is not None:  # [candidates, count, *others] → [candidates[:count], ...]
            count = int(outputs[1][0])
            if count > self._filter.cap:
                self.saturated += 1
            outputs = [outputs[0][:, :, : min(count, self._filter.cap)], *outputs[2:]]
        stage_ns = ticket.pre.stage_ns(ticket.slot)
        stage_ns["infer"] = cu.event_elapsed_ns(
            ticket.pre.pre_end_event(ticket.slot), ticket.infer_end
        )
        stage_ns["d2h"] = cu.event_elapsed_ns(ticket.infer_end, ticket.done)
        stage_ns["gpu_wait"] = t1 - t0
        return outputs, ticket.geometry, stage_ns

    def __call__(self, frame: Frame) -> tuple[list[FloatArray], Geometry, dict[str, int]]:
        """One frame through the device, waited for. Counts consecutive BackendErrors
        (``consecutive_failures``; the daemon faults past its threshold)."""
        try:
            result = self.collect(self.submit(frame))
        except BackendError:
            self.consecutive_failures += 1
            raise
        self.consecutive_failures = 0
        return result

    def close(self) -> None:
        """Wait for the stream and free the preprocessors, events and stream."""
        with contextlib.suppress(BackendError):  # after a sticky error: free what we can
            cu.stream_sync(self.stream)
        for pre in self._pre.values():
            pre.close()
        with contextlib.suppress(BackendError):
            cu.stream_sync(self._d2h_stream)
        # The streams stay alive on purpose: torch's pinned-memory allocator records an
        # event on every stream a host buffer was copied on when that buffer is freed
        # (possibly later than this), and the backend's graph is bound to self.stream.
        # Two streams per GpuStage, made once per model, are not worth that risk.
        self._in_flight.clear()
        self._host_out = [None] * self.frames_in_flight
        if self._filter is not None:
            with contextlib.suppress(BackendError):
                self._filter.close()
            self._filter = None
        self._pre.clear()
        for a, b in self._events:
            for ev in (a, b):
                with contextlib.suppress(BackendError):
                    cu.event_destroy(ev)
        self._events = []


def _is_yolov8(shape: tuple[int | None, ...]) -> bool:
    """[1, 4+nc, N] with the candidate axis the long one (static dims only)."""
    if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
        return False
    return shape[0] == 1 and 4 < int(shape[1]) < int(shape[2])  # type: ignore[arg-type]


def _as_float(outs: list[Any]) -> list[Any]:
    """Device outputs as float32 (fp16 models), for the host."""
    return [o if o.dtype.is_floating_point and o.element_size() == 4 else o.float() for o in outs]


def make_gpu_model_stage(
    stage: GpuStage, post: Postprocessor
) -> Callable[[Frame], tuple[list[Finding], dict[str, int]]]:
    """Wrap a GpuStage and the model's postprocessor into an ``inspect.ModelStage``."""

    def run(frame: Frame) -> tuple[list[Finding], dict[str, int]]:
        outputs, geometry, stage_ns = stage(frame)
        t0 = time.monotonic_ns()
        findings = post(outputs, geometry)
        stage_ns["postprocess"] = time.monotonic_ns() - t0
        return findings, stage_ns

    return run


def use_gpu_stage(model: LoadedModel, *, frames_in_flight: int = 1) -> GpuStage:
    """Switch a loaded model to the device stage (``preprocess.device: cuda``).

    Replaces ``model.stage`` (the CPU path) with GpuStage + the model's postprocessor.
    The caller owns the returned stage and must ``close()`` it at shutdown, before the
    backend. Raises ConfigError if the backend has no device path (only ``torch`` has
    one today).
    """
    if not hasattr(model.backend, "bind_stream"):
        raise ConfigError(
            f"model {model.cfg.name!r}: preprocess.device 'cuda' needs backend 'torch', "
            f"not {model.cfg.backend!r}"
        )
    # Only a raw YOLOv8-layout detection head has candidates to filter on the device.
    raw_head = model.post.family == "detection" and model.post.layout == "yolov8"
    stage = GpuStage(
        model.cfg, model.backend, frames_in_flight=frames_in_flight, candidate_filter=raw_head
    )
    model.stage = make_gpu_model_stage(stage, model.post)
    return stage
