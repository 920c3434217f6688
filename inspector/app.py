"""The one place that builds every component from config and runs them.

``App.start()`` brings components up in flow order of dependence: metrics endpoint,
models (all recipes loaded, warmed, and proven by one synthetic part of the camera's
size and format through preprocess, infer, postprocess and decide), camera, sinks,
pipeline threads, PLC link, trigger source; then tells systemd READY. ``App.stop()``
hands over in this order:

1. stop accepting triggers: STATE offline to the PLC (a line stops feeding parts to an
   offline vision), the internal timer ends, and a PLC trigger that still arrives is
   answered NG ``offline`` at once;
2. finish the parts in flight and publish every verdict, to the PLC too;
3. let the PLC link write what it holds, then STATE offline, and close it;
4. drain the queued sinks (log, archive, …), close camera, models and metrics.

The whole stop takes under 2 s (``STOP_BUDGET_S``), warm-up included: a stop request
during start aborts the start between steps.

Threads (every one starts through ``Supervisor.spawn``; a thread that dies faults the
daemon: STATE fault to the PLC, a log line with the traceback, exit 70 → systemd
restarts us):

| thread | owns | stops when |
|---|---|---|
| main | start, watchdog and health loop (``wait``), stop | signal or fault: ``stop_event`` |
| inspector-trigger | the internal timer (``trigger.py``) | ``stop_event`` |
| inspector-plc-link | the link's asyncio loop: all Modbus I/O | ``link_stop``, after the drain |
| inspector-acquire | camera grabs, one per trigger | pipeline stop, grab queue empty |
| inspector-worker | ``inspect_part`` per frame; publishes in order | pipeline stop, queue empty |
| inspector-publisher | deadlines; parts closed by trigger/acquisition | ledger ``finish`` |
| inspector-sink-<name> | one slow sink each (log, archive, …) | its ``close`` after the drain |
| inspector-hmi-server | the web page's asyncio loop (``hmi/server.py``) | ``Hmi.close`` |
| inspector-hmi-encoder | the web page's JPEGs and messages, ≤ max_fps | ``Hmi.close`` |
| inspector-mqtt-spool, -mqtt, -opcua | plant sinks (``plant/``) | ``plant.close`` after drain |
| inspector-log | writes log lines to stdout | process exit (daemon thread) |
| metrics HTTP | ``/metrics`` (prometheus_client's own server thread) | ``metrics_server.stop`` |
| camera threads | the genicam reconnect/temperature loop | ``camera.close`` |
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from inspector import __version__, metrics, systemd
from inspector.archive import Archive
from inspector.camera import open_camera, probe_frame
from inspector.camera.base import Camera
from inspector.config import Config, config_hash
from inspector.errors import EXIT_OK, ConfigError, InspectorError, PlcError
from inspector.inspect import LoadedRecipe, frame_allocator
from inspector.logging import get_logger
from inspector.pipeline import Pipeline
from inspector.plant import Plant
from inspector.preflight import check_environment, check_recipe
from inspector.recipes import config_crc16, load_recipe, models_hash
from inspector.sinks import ErrorStreak, LogSink, MetricsSink, QueuedSink, ResultSink
from inspector.supervisor import Fault, Supervisor
from inspector.trigger import InternalTrigger, TriggerSource
from inspector.types import Trigger

if TYPE_CHECKING:
    from inspector.hmi.server import Hmi
    from inspector.plc.link import PlcLink

log = get_logger(__name__)


#: A model failing on the GPU on this many parts in a row puts the daemon in fault state.
GPU_FAULT_AFTER = 3
#: ERROR_CODE for inference faults (2xx, docs/plc.md).
ERROR_GPU = 201
#: ERROR_CODE when pipeline.fault_after_errors parts in a row were NG error.
ERROR_INSPECTION = 202


def check_cpus(cpus: Sequence[int]) -> None:
    """Refuse a ``pipeline.cpus`` this machine (or its cgroup) cannot honour."""
    if not cpus:
        return
    if not hasattr(os, "sched_setaffinity"):
        raise ConfigError("pipeline.cpus: CPU pinning needs Linux")
    allowed = os.sched_getaffinity(0)
    missing = sorted(set(cpus) - allowed)
    if missing:
        raise ConfigError(
            f"pipeline.cpus: CPU(s) {missing} not available here (allowed {sorted(allowed)})"
        )


STOP_BUDGET_S = 2.0  # SIGTERM to exit, warm-up included (the unit's TimeoutStopSec is larger)
#: ERROR_CODE shown to the PLC when the daemon stops on an internal fault (docs/plc.md).
ERROR_INTERNAL = 500
#: A part in flight with no progress for this long stops the systemd watchdog pings.
STALL_S = 2.0


class StartAborted(InspectorError):
    """A stop was requested while the daemon was starting: unwind and exit 0."""


class App:
    """The daemon: every component built from one validated ``Config``."""

    def __init__(
        self,
        cfg: Config,
        *,
        camera: Camera | None = None,
        trigger: TriggerSource | None = None,
        extra_sinks: Sequence[ResultSink] = (),
        serve_metrics: bool | None = None,
        demo: bool = False,
    ) -> None:
        if cfg.demo is not None and not demo:
            raise ConfigError(
                "demo: this config has a demo section (a simulated PLC), which only runs in "
                "demo mode: `inspector run --demo`; remove it for a real line"
            )
        self.cfg = cfg
        self.stop_event = threading.Event()
        self.supervisor = Supervisor(self.stop_event)
        self.supervisor.on_fault(self._on_fault)
        devices = {m.preprocess.device for r in cfg.recipes for m in r.models}
        self.camera = camera or open_camera(cfg.camera, alloc=frame_allocator(devices))
        self.trigger: TriggerSource | None = trigger
        self.extra_sinks = list(extra_sinks)
        self.plc: PlcLink | None = None  # when cfg.plc.enabled
        self.plc_sim: Any = None  # the embedded PLC simulator (demo.plc_simulator)
        self.serve_metrics = cfg.metrics.enabled if serve_metrics is None else serve_metrics
        self.metrics_server: metrics.MetricsServer | None = None
        self.recipes: dict[int, LoadedRecipe] = {}
        self.pipeline: Pipeline | None = None
        self.queued_sinks: list[QueuedSink] = []
        self.error_streak = ErrorStreak()  # parts in a row NG error: faults the station
        self.plant: Plant | None = None  # MQTT and OPC UA (inspector/plant/)
        self.hmi: Hmi | None = None  # the station web page, when cfg.hmi.enabled
        self._link_stop = threading.Event()  # the PLC link outlives the pipeline's drain
        self._trigger_stop = threading.Event()
        self._trigger_thread: threading.Thread | None = None
        self._link_thread: threading.Thread | None = None
        self._started: list[str] = []
        self._fault_code = 0
        self._stopped = False
        # Hashing every model file is I/O: do it once, for build_info and CONFIG_CRC.
        self.model_hash = models_hash(cfg)
        self.config_hash = config_hash(cfg)

    @property
    def exit_code(self) -> int:
        """0 after a requested stop; the fault's code (70) after a fault."""
        fault = self.supervisor.faulted
        return fault.exit_code if fault is not None else EXIT_OK

    def _internal_trigger(self) -> InternalTrigger:
        t = self.cfg.trigger
        default = self.cfg.default_recipe
        return InternalTrigger(
            t.rate_hz,
            self.cfg.line.cycle_budget_ms,
            max_parts=t.max_parts,
            recipe_id=lambda: default,
        )

    # ------------------------------------------------------------------ start
    def start(self) -> None:
        """Bring everything up; on any failure, tear down what started and re-raise.

        A stop requested during start (SIGTERM while models warm up) raises
        ``StartAborted`` after a clean teardown.
        """
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _step(self, name: str) -> None:
        """Between start steps: abort the start if a stop was requested."""
        if self.stop_event.is_set():
            raise StartAborted(f"stop requested during start (before {name})")

    def _start(self) -> None:
        cfg = self.cfg
        metrics.configure(cfg.line.cycle_budget_ms)
        metrics.BUILD_INFO.info(
            {
                "version": __version__,
                "model_hash": self.model_hash,
                "config_hash": self.config_hash,
                "line_name": cfg.line.name,
            }
        )
        metrics.set_state(0)
        check_cpus(cfg.pipeline.cpus)
        if problems := check_environment(cfg):  # the same checks as check-config
            raise ConfigError("\n".join(problems))
        if self.serve_metrics:
            self.metrics_server = metrics.serve(cfg.metrics.host, cfg.metrics.port)
            self._started.append("metrics")
            log.info("metrics_serving", host=cfg.metrics.host, port=self.metrics_server.port)
        probe = probe_frame(cfg.camera)  # the warm-up part: the camera's size and format
        for recipe in cfg.recipes:
            self._step(f"recipe {recipe.id}")
            loaded = load_recipe(recipe, pipeline=cfg.pipeline, probe=probe)
            self.recipes[recipe.id] = loaded
            if problems := check_recipe(recipe, [m.post.class_names for m in loaded.models]):
                raise ConfigError("\n".join(problems))
            log.info(
                "recipe_loaded",
                recipe_id=recipe.id,
                name=recipe.name,
                models=[m.name for m in recipe.models],
            )
        self._step("camera")
        self.camera.open()
        self._started.append("camera")
        self._step("plc")
        if cfg.plc.enabled:
            self._start_plc()
        trigger = self.trigger
        if trigger is None:
            plc_triggers = cfg.trigger.source in ("plc", "camera")
            trigger = self.plc if plc_triggers and self.plc else self._internal_trigger()
            self.trigger = trigger
        self.pipeline = Pipeline(
            self.camera,
            self.recipes,
            self._build_sinks(),
            queue_depth=cfg.pipeline.queue_depth,
            frames_in_flight=cfg.pipeline.frames_in_flight,
            cpus=cfg.pipeline.cpus,
        )
        self.pipeline.start(self.supervisor)
        self._started.append("pipeline")
        self._step("trigger")
        self._start_trigger(trigger)
        if self.plc is not None and self.plc_sim is None and self._demo_plc:
            self._start_server_role_simulator()
        self._set_state(1)
        systemd.ready(f"inspecting on {cfg.line.name}")
        log.info(
            "ready",
            line=cfg.line.name,
            camera=cfg.camera.type,
            trigger=cfg.trigger.source,
            budget_ms=cfg.line.cycle_budget_ms,
        )

    def _build_sinks(self) -> list[ResultSink]:
        """PLC first (never dropped), then metrics inline, then the queued slow sinks."""
        cfg = self.cfg
        sinks: list[ResultSink] = []
        if self.plc is not None and cfg.trigger.source in ("plc", "camera"):
            # The link answers only parts it triggered; as a sink for an internal
            # trigger it would drop every result as foreign.
            sinks.append(self.plc)
        sinks.append(MetricsSink())
        sinks.append(self.error_streak)
        sinks.extend(self.extra_sinks)
        # Plant integration: MQTT (durable spool) and OPC UA; both never block the cycle.
        self.plant = Plant(cfg, model_hash=self.model_hash, config_hash=self.config_hash)
        self.plant.start(self.supervisor)
        sinks.extend(self.plant.sinks)
        slow: list[QueuedSink] = []
        if cfg.logging.per_part:
            slow.append(QueuedSink(LogSink(cfg.logging), "log"))
        if cfg.archive.enabled:
            archive = Archive(cfg.archive, model_hash=self.model_hash, config_hash=self.config_hash)
            archive.start()  # never raises: an unwritable archive is off, with a fault flag
            slow.append(
                QueuedSink(archive, "archive", wants=archive.wants, on_drop=archive.count_dropped)
            )
        for queued in slow:
            queued.start(self.supervisor)
            self.queued_sinks.append(queued)
            sinks.append(queued)
        # ---- the station web page (issue 16): an inline sink that only swaps a slot;
        # its server and encoder threads restart themselves and never fault the daemon.
        if cfg.hmi.enabled:
            from inspector.hmi import open_hmi

            self.hmi = open_hmi(cfg, model_hash=self.model_hash, config_hash=self.config_hash)
            self.hmi.start(self.supervisor)
            sinks.append(self.hmi.sink)
        return sinks

    def _start_trigger(self, trigger: TriggerSource) -> None:
        """The trigger source's loop in its own supervised thread."""
        if trigger is self.plc:
            stop = self._link_stop
            self._link_thread = self.supervisor.spawn(
                "plc-link", partial(trigger.run, self._submit, stop), stops_with=stop
            )
            self._started.append("plc")
        else:
            stop = self._trigger_stop
            self._trigger_thread = self.supervisor.spawn(
                "trigger", partial(self._run_trigger, trigger, stop), stops_with=stop
            )
            if self.plc is not None:  # PLC enabled for status only: its loop runs too
                self._link_thread = self.supervisor.spawn(
                    "plc-link",
                    partial(self.plc.run, self._submit_nothing, self._link_stop),
                    stops_with=self._link_stop,
                )
                self._started.append("plc")
        self._started.append("trigger")

    def _run_trigger(self, trigger: TriggerSource, stop: threading.Event) -> None:
        """Run a finite or endless trigger source; a finite one ending stops the daemon."""
        trigger.run(self._submit, stop)
        if not stop.is_set():
            log.info("trigger_source_done")
            stop.set()  # an expected end (max_parts): not a fault
            self.stop_event.set()

    def _submit(self, trigger: Trigger) -> None:
        assert self.pipeline is not None
        self.pipeline.submit(trigger)

    @staticmethod
    def _submit_nothing(trigger: Trigger) -> None:
        """A PLC link that only reports status (internal trigger) submits no parts."""

    @property
    def _demo_plc(self) -> bool:
        return self.cfg.demo is not None and self.cfg.demo.plc_simulator

    def _start_plc(self) -> None:
        """Build the PLC link; in client role start the embedded simulator first."""
        from inspector.plc.link import PlcLink
        from inspector.sim.plc import start_embedded

        plc_cfg, demo = self.cfg.plc, self.cfg.demo
        if demo is not None and demo.plc_simulator and plc_cfg.role == "client":
            self.plc_sim, plc_cfg = start_embedded(plc_cfg, demo)
            self._started.append("plc_sim")
        self.plc = PlcLink(
            plc_cfg,
            cycle_budget_ms=self.cfg.line.cycle_budget_ms,
            default_recipe=self.cfg.default_recipe,
            config_crc=config_crc16(self.model_hash, self.config_hash),
            on_recipe=lambda rid: rid in self.recipes,
            progress=lambda: self.pipeline.progress if self.pipeline else 0,
        )

    def _start_server_role_simulator(self) -> None:
        """Server role: the simulator polls the daemon, so it starts once the link serves."""
        from inspector.sim.plc import start_embedded

        assert self.plc is not None
        if not self.plc.serving.wait(5):
            raise PlcError("PLC server role did not start listening within 5 s")
        assert self.cfg.demo is not None
        server = self.cfg.plc.model_copy(update={"port": self.plc.port})
        self.plc_sim, _ = start_embedded(server, self.cfg.demo)
        self._started.append("plc_sim")

    def _set_state(self, state: int, error_code: int = 0) -> None:
        """STATE for metrics and, when linked, the PLC (0 boot … 4 offline)."""
        metrics.set_state(state)
        if self.plc is not None:
            self.plc.set_state(state, error_code)
        if self.plant is not None:
            self.plant.set_state(state, error_code)

    def _on_fault(self, fault: Fault) -> None:
        """First fault: show it to the PLC at once (the stop that follows writes it out)."""
        self._fault_code = ERROR_INTERNAL
        self._set_state(3, ERROR_INTERNAL)
        systemd.notify(f"STATUS=fault: {fault.reason}")

    def _supervise(self) -> None:
        """Report health to the PLC: a lost camera is a fault (ERROR_CODE 1xx), and so is
        a GPU stage that failed on GPU_FAULT_AFTER parts in a row (ERROR_CODE 201) and
        pipeline.fault_after_errors parts in a row NG error (ERROR_CODE 202)."""
        if self.supervisor.faulted is not None:
            return
        cam_state = getattr(self.camera, "state", None)
        code = int(getattr(cam_state, "error_code", 0) or 0)
        gpu_failures = max(
            (m.runner.consecutive_failures for r in self.recipes.values() for m in r.models),
            default=0,
        )
        metrics.GPU_CONSECUTIVE_FAILURES.set(gpu_failures)
        if code == 0 and gpu_failures >= GPU_FAULT_AFTER:
            code = ERROR_GPU
        if code == 0 and self.error_streak.count >= self.cfg.pipeline.fault_after_errors:
            code = ERROR_INSPECTION
        if code != self._fault_code:
            self._fault_code = code
            self._set_state(3 if code else 1, code)
            log.warning("state_changed", error_code=code) if code else log.info("state_ready")

    # ------------------------------------------------------------------- run
    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until a stop is requested (signal, fault, finite trigger done).

        Pings the systemd watchdog only while the pipeline makes progress, or while no
        part is in flight and no thread has faulted: a stuck worker lets the watchdog
        expire, and systemd restarts us. Returns False on ``timeout_s``.
        """
        interval = systemd.watchdog_interval_s() or 1.0
        end = None if timeout_s is None else time.monotonic() + timeout_s
        last_progress, last_change = -1, time.monotonic()
        while not self.stop_event.is_set():
            if end is not None and time.monotonic() >= end:
                return False
            now = time.monotonic()
            progress = self.pipeline.progress if self.pipeline else 0
            if progress != last_progress:
                last_progress, last_change = progress, now
            in_flight = self.pipeline.ledger.depth() if self.pipeline else 0
            if in_flight == 0 or now - last_change < STALL_S:
                systemd.watchdog()
            self._supervise()
            self.stop_event.wait(min(interval, 0.2))
        return True

    # ------------------------------------------------------------------ stop
    def stop(self) -> None:
        """Hand over in order (module docstring); safe to call twice and after a failed start."""
        if self._stopped:
            return
        self._stopped = True
        self.stop_event.set()
        systemd.stopping()
        t0 = time.monotonic()
        if self.supervisor.faulted is None:
            self._set_state(4)  # STATE offline first: the line stops feeding parts
        self._trigger_stop.set()
        if self._trigger_thread is not None:
            self._trigger_thread.join(timeout=0.5)
        if self.pipeline is not None and "pipeline" in self._started:
            self.pipeline.stop(timeout_s=1.0)  # new parts NG offline; in-flight published
        if self.plc is not None and self._link_thread is not None:
            left = max(0.1, STOP_BUDGET_S * 0.75 - (time.monotonic() - t0))
            self.plc.drain(left)
        self._link_stop.set()
        if self._link_thread is not None:
            self._link_thread.join(timeout=0.5)
        if self.plc_sim is not None:
            log.info("plc_simulator_summary", counts=self.plc_sim.counts().summary())
            self._close_quietly("plc_sim", self.plc_sim.stop)
            self.plc_sim = None
        if self.plant is not None:  # MQTT: spool what waits, send what fits; OPC UA stops
            left = max(0.05, min(0.8, (STOP_BUDGET_S - 0.2 - (time.monotonic() - t0)) / 2))
            self._close_quietly("plant", partial(self.plant.close, left))
        for sink in self.queued_sinks:
            left = max(0.05, STOP_BUDGET_S - 0.2 - (time.monotonic() - t0))
            self._close_quietly(f"sink-{sink.name}", partial(sink.close, left))
        if self.hmi is not None:
            left = max(0.05, min(0.5, STOP_BUDGET_S - 0.1 - (time.monotonic() - t0)))
            self._close_quietly("hmi", partial(self.hmi.close, left))
        if "camera" in self._started:
            self._close_quietly("camera", self.camera.close)
        for recipe in self.recipes.values():
            self._close_quietly("recipe", recipe.close)
        self.recipes.clear()
        if self.metrics_server is not None:
            self.metrics_server.stop()
            self.metrics_server = None
        metrics.set_state(3 if self.supervisor.faulted else 4)
        self._started.clear()
        log.info("stopped", seconds=round(time.monotonic() - t0, 3), exit_code=self.exit_code)

    @staticmethod
    def _close_quietly(what: str, fn: Any) -> None:
        try:
            fn()
        except Exception as exc:  # closing must go on whatever one component does
            log.error("close_failed", component=what, error=repr(exc))
