"""The per-part loop: trigger → grab → inspect → ledger → sinks.

Threads, each with one job, joined by bounded queues:

* the trigger source (``trigger.py`` or ``plc/``) calls ``submit()``, which never
  blocks: a part that does not fit in the grab queue is NG ``overrun`` at once;
* the acquisition thread grabs the frame for each trigger and hands it on; it never
  waits for inference (a full inference queue makes the part NG ``overrun``);
* the worker thread submits each part to its recipe's runners and collects it
  (``inflight.py``: up to ``frames_in_flight`` parts on the GPU at once, collected
  oldest first), closes it in the ledger and, when it is the oldest part in flight
  (the usual case), hands it to the sinks itself;
* the ledger's publisher thread turns any part still open at its deadline into NG
  ``timeout`` and publishes parts closed elsewhere (overruns, camera errors), always in
  trigger order. Trigger and acquisition threads never run the sinks.

Plain threads rather than asyncio: the heavy stages (OpenCV, ONNX Runtime, CUDA) release
the GIL, and a thread per stage keeps acquisition independent of inference. One stop
request drains the queues: in-flight parts finish (or time out) and are published.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Collection, Sequence
from functools import partial
from typing import Generic, TypeVar

from inspector import metrics
from inspector.camera.base import Camera
from inspector.errors import CameraError
from inspector.inflight import InFlight
from inspector.inspect import LoadedRecipe
from inspector.ledger import Entry, Ledger
from inspector.logging import get_logger
from inspector.sinks import ResultSink
from inspector.supervisor import Supervisor
from inspector.types import Frame, Reason, Trigger, Verdict, ng

log = get_logger(__name__)

_POLL_S = 0.05  # queue read timeout: how quickly an idle thread notices a stop

T = TypeVar("T")


class BoundedQueue(Generic[T]):
    """A bounded FIFO for exactly one producer thread and one consumer thread.

    ``queue.SimpleQueue`` is implemented in C and wakes a waiting consumer faster than
    ``queue.Queue`` (whose Condition lives in Python); with a single producer, checking
    the size before ``put`` is enough to keep the bound.
    """

    def __init__(self, maxsize: int) -> None:
        self._q: queue.SimpleQueue[T] = queue.SimpleQueue()
        self.maxsize = maxsize

    def offer(self, item: T) -> bool:
        """Append unless full; never blocks. False means the item was refused."""
        if self._q.qsize() >= self.maxsize:
            return False
        self._q.put(item)
        return True

    def get(self, timeout: float) -> T:
        """Next item; raises ``queue.Empty`` after ``timeout`` seconds."""
        return self._q.get(timeout=timeout)

    def qsize(self) -> int:
        return self._q.qsize()

    def empty(self) -> bool:
        return self._q.empty()


class Pipeline:
    """Owns the acquisition, worker and publisher threads of the per-part loop."""

    def __init__(
        self,
        camera: Camera,
        recipes: dict[int, LoadedRecipe],
        sinks: Sequence[ResultSink],
        *,
        queue_depth: int = 4,
        frames_in_flight: int = 1,
        cpus: Collection[int] = (),
    ) -> None:
        self.camera = camera
        self.recipes = recipes
        self.ledger = Ledger(sinks)
        self._grab_q: BoundedQueue[Entry] = BoundedQueue(queue_depth)
        self._infer_q: BoundedQueue[tuple[Entry, Frame, int]] = BoundedQueue(queue_depth)
        self._grab_depth = metrics.QUEUE_DEPTH.labels("grab")
        self._infer_depth = metrics.QUEUE_DEPTH.labels("infer")
        self._frames_in_flight = frames_in_flight
        self._cpus = set(cpus)
        self._stop = threading.Event()
        self._acq_done = threading.Event()
        self._threads: list[threading.Thread] = []
        self.progress = 0  # parts inspected; the PLC heartbeat follows it

    # ---------------------------------------------------------------- lifecycle
    def start(self, supervisor: Supervisor | None = None) -> None:
        """Start the publisher, worker and acquisition threads (in reverse flow order).

        Each runs under ``supervisor`` (a private one when None, for tests and tools):
        a thread that dies faults the daemon instead of leaving parts unanswered.
        """
        sup = supervisor or Supervisor()
        for name, target in (
            ("publisher", self.ledger.run),
            ("worker", self._work),
            ("acquire", self._acquire),
        ):
            self._threads.append(
                sup.spawn(name, partial(self._pinned, target), stops_with=self._stop)
            )

    def _pinned(self, target: Callable[[], None]) -> None:
        """Run a pipeline thread on ``cpus`` (checked against the machine by App)."""
        if self._cpus:
            os.sched_setaffinity(0, self._cpus)  # pid 0: the calling thread only
        target()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self, timeout_s: float = 1.5) -> None:
        """Finish in-flight parts, publish them, and join every thread."""
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        acquire, worker, publisher = self._threads[2], self._threads[1], self._threads[0]
        acquire.join(max(0.0, deadline - time.monotonic()))
        worker.join(max(0.0, deadline - time.monotonic()))
        self.ledger.finish()
        publisher.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.error("pipeline_stop_incomplete", alive=alive)

    # ------------------------------------------------------------------- stages
    def submit(self, trigger: Trigger) -> None:
        """Accept one part (called by the trigger source). Never blocks."""
        entry = self.ledger.enter(trigger)
        if self._stop.is_set():
            self._reject(entry, Reason.OFFLINE, "daemon stopping")
            return
        if not self._grab_q.offer(entry):
            metrics.OVERRUNS.inc()
            self._reject(entry, Reason.OVERRUN, "grab queue full")
        self._grab_depth.set(self._grab_q.qsize())

    def _reject(self, entry: Entry, reason: Reason, detail: str) -> None:
        """Close a part NG outside the worker; the publisher thread publishes it."""
        self.ledger.close(entry, ng(reason, detail), publish_here=False)

    def _acquire(self) -> None:
        while not (self._stop.is_set() and self._grab_q.empty()):
            try:
                entry = self._grab_q.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if self.ledger.is_closed(entry):
                continue
            t0 = time.monotonic_ns()
            try:
                frame = self.camera.grab(entry.trigger)
            except CameraError as exc:
                self._reject(entry, Reason.NO_IMAGE, str(exc))
                continue
            except Exception as exc:  # a camera bug still fails closed, loudly
                log.exception("grab_failed", part_id=entry.trigger.part_id)
                self._reject(entry, Reason.ERROR, f"grab failed: {exc!r}")
                continue
            grab_ns = time.monotonic_ns() - t0
            if not self._infer_q.offer((entry, frame, grab_ns)):
                metrics.OVERRUNS.inc()
                self._reject(entry, Reason.OVERRUN, "inference queue full")
            self._infer_depth.set(self._infer_q.qsize())
        self._acq_done.set()

    def _work(self) -> None:
        """Submit parts to the runners and collect them oldest first (``inflight.py``):
        up to ``frames_in_flight`` parts on the GPU at once, verdicts in trigger order."""
        parts = InFlight(self.recipes.values(), self._frames_in_flight)
        while True:
            if parts and (parts.full or parts.oldest_ready() or self._infer_q.empty()):
                self._finish(*parts.pop_oldest())
                continue
            if self._acq_done.is_set() and self._infer_q.empty():
                return
            try:
                entry, frame, grab_ns = self._infer_q.get(timeout=parts.idle_timeout_s)
            except queue.Empty:
                parts.idle()
                continue
            if self.ledger.is_closed(entry):  # timed out while queued: skip the work
                continue
            parts.add(entry, frame, grab_ns, self.recipes.get(entry.trigger.recipe_id))

    def _finish(
        self, entry: Entry, frame: Frame, verdict: Verdict, stage_ns: dict[str, int]
    ) -> None:
        """Close the part in the ledger (published here when it is the oldest open part)."""
        # Every stage time travels in stage_ns; the metrics sink observes them all.
        self.ledger.close(entry, verdict, stage_ns, frame)
        self.progress += 1
