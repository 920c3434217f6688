"""The one place that builds every component from config and runs them.

``App.start()`` brings components up in flow order of dependence: metrics endpoint,
models (all recipes loaded and warmed), camera, pipeline threads, PLC link, trigger
source; then tells systemd READY. ``App.stop()`` tears down in reverse: the trigger stops
first, in-flight parts finish and are published, then the PLC link, camera and models
close. One ``threading.Event`` is the stop request for everything.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from inspector import __version__, metrics, systemd
from inspector.archive import Archive
from inspector.backends import create_backend
from inspector.camera import open_camera
from inspector.camera.base import Camera
from inspector.config import Config, PipelineConfig, RecipeConfig, config_hash
from inspector.engine.manifest import model_sha256
from inspector.errors import ConfigError, InspectorError, PlcError
from inspector.inspect import LoadedModel, LoadedRecipe, frame_allocator
from inspector.ledger import Entry, ResultSink
from inspector.logging import get_logger
from inspector.models import build_postprocessor
from inspector.pipeline import Pipeline
from inspector.sinks import LogSink, MetricsSink
from inspector.trigger import InternalTrigger, TriggerSource
from inspector.types import Frame

if TYPE_CHECKING:
    from inspector.plc.link import PlcLink

log = get_logger(__name__)


def models_hash(cfg: Config) -> str:
    """Fingerprint of every model file of every recipe (build_info, CONFIG_CRC)."""
    h = hashlib.sha256()
    for recipe in cfg.recipes:
        for m in recipe.models:
            h.update(model_sha256(m.path).encode() if m.path.exists() else b"missing")
    return h.hexdigest()[:16]


def config_crc16(model_hash: str, cfg_hash: str) -> int:
    """CRC-16/MODBUS of the model-set and config fingerprints: the CONFIG_CRC register."""
    from inspector.plc.protocol import crc16_bytes

    return crc16_bytes(f"{model_hash}:{cfg_hash}".encode())


def load_recipe(
    recipe: RecipeConfig, warmup_runs: int = 3, pipeline: PipelineConfig | None = None
) -> LoadedRecipe:
    """Load and warm every model of a recipe; raises BackendError/ModelError/ConfigError.

    Each model gets its runner here, once: the host path, or with ``preprocess.device:
    cuda`` the device runner (pinned frames, fused NVRTC kernel, the backend's device
    path, device NMS, one CUDA graph per lane); CUDA is imported only then.
    """
    pipeline = pipeline or PipelineConfig()
    models = []
    try:
        for m in recipe.models:
            backend = create_backend(m)
            post = build_postprocessor(m, backend.info)
            backend.warmup(warmup_runs)
            models.append(LoadedModel.with_runner(m, backend, post, pipeline))
    except BaseException:
        LoadedRecipe(recipe, models).close()
        raise
    return LoadedRecipe(recipe, models)


#: A model failing on the GPU on this many parts in a row puts the daemon in fault state.
GPU_FAULT_AFTER = 3
#: ERROR_CODE for inference faults (2xx, docs/plc.md).
ERROR_GPU = 201


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
    ) -> None:
        self.cfg = cfg
        self.stop_event = threading.Event()
        devices = {m.preprocess.device for r in cfg.recipes for m in r.models}
        self.camera = camera or open_camera(cfg.camera, alloc=frame_allocator(devices))
        self.trigger: TriggerSource | None = trigger
        self.extra_sinks = list(extra_sinks)
        self.plc: PlcLink | None = None  # when cfg.plc.enabled
        self.plc_sim: Any = None  # the embedded PLC simulator (plc.simulator: true)
        self.serve_metrics = cfg.metrics.enabled if serve_metrics is None else serve_metrics
        self.metrics_server: metrics.MetricsServer | None = None
        self.recipes: dict[int, LoadedRecipe] = {}
        self.pipeline: Pipeline | None = None
        self.archive = Archive(cfg.archive) if cfg.archive.enabled else None
        self._trigger_thread: threading.Thread | None = None
        self._started: list[str] = []
        self._fault_code = 0
        # Hashing every model file is I/O: do it once, for build_info and CONFIG_CRC.
        self.model_hash = models_hash(cfg)
        self.config_hash = config_hash(cfg)

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
        """Bring everything up; on any failure, tear down what started and re-raise."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        cfg = self.cfg
        metrics.BUILD_INFO.info(
            {
                "version": __version__,
                "model_hash": self.model_hash,
                "config_hash": self.config_hash,
                "line": cfg.line.name,
            }
        )
        metrics.STATE.set(0)
        check_cpus(cfg.pipeline.cpus)
        if self.serve_metrics:
            self.metrics_server = metrics.serve(cfg.metrics.host, cfg.metrics.port)
            self._started.append("metrics")
            log.info("metrics_serving", host=cfg.metrics.host, port=self.metrics_server.port)
        for recipe in cfg.recipes:
            self.recipes[recipe.id] = load_recipe(recipe, pipeline=cfg.pipeline)
            log.info(
                "recipe_loaded",
                recipe_id=recipe.id,
                name=recipe.name,
                models=[m.name for m in recipe.models],
            )
        self.camera.open()
        self._started.append("camera")
        if cfg.plc.enabled:
            self._start_plc()
        trigger = self.trigger
        if trigger is None:
            plc_triggers = cfg.trigger.source in ("plc", "camera")
            trigger = self.plc if plc_triggers and self.plc else self._internal_trigger()
            self.trigger = trigger
        sinks: list[ResultSink] = [MetricsSink(), *self.extra_sinks]
        if self.plc is not None and cfg.trigger.source in ("plc", "camera"):
            # The link answers only parts it triggered; as a sink for an internal
            # trigger it would drop every result as foreign.
            sinks.insert(0, self.plc)
        if cfg.logging.per_part:
            sinks.append(LogSink())
        if self.archive is not None:
            self.archive.start()
        self.pipeline = Pipeline(
            self.camera,
            self.recipes,
            sinks,
            queue_depth=cfg.pipeline.queue_depth,
            frames_in_flight=cfg.pipeline.frames_in_flight,
            cpus=cfg.pipeline.cpus,
            on_frame=self._archive_frame if self.archive else None,
        )
        self.pipeline.start()
        self._started.append("pipeline")
        self._trigger_thread = threading.Thread(
            target=trigger.run,
            args=(self.pipeline.submit, self.stop_event),
            name="inspector-trigger",
            daemon=True,
        )
        self._trigger_thread.start()
        self._started.append("trigger")
        if self.plc is not None and self.plc_sim is None and self.cfg.plc.simulator:
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

    def _start_plc(self) -> None:
        """Build the PLC link; in client role start the embedded simulator first."""
        from inspector.plc.link import PlcLink
        from inspector.plc.sim import start_embedded

        plc_cfg = self.cfg.plc
        if plc_cfg.simulator and plc_cfg.role == "client":
            self.plc_sim, plc_cfg = start_embedded(plc_cfg)
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
        from inspector.plc.sim import start_embedded

        assert self.plc is not None
        if not self.plc.serving.wait(5):
            raise PlcError("PLC server role did not start listening within 5 s")
        self.plc_sim, _ = start_embedded(self.cfg.plc.model_copy(update={"port": self.plc.port}))
        self._started.append("plc_sim")

    def _set_state(self, state: int, error_code: int = 0) -> None:
        """STATE for metrics and, when linked, the PLC (0 boot … 4 offline)."""
        metrics.STATE.set(state)
        if self.plc is not None:
            self.plc.set_state(state, error_code)

    def _supervise(self) -> None:
        """Report health to the PLC: a lost camera is a fault (ERROR_CODE 1xx), and so is
        a model that failed on the GPU on GPU_FAULT_AFTER parts in a row (ERROR_CODE 201)."""
        cam_state = getattr(self.camera, "state", None)
        code = int(getattr(cam_state, "error_code", 0) or 0)
        gpu_failures = max(
            (m.runner.consecutive_failures for r in self.recipes.values() for m in r.models),
            default=0,
        )
        metrics.GPU_CONSECUTIVE_FAILURES.set(gpu_failures)
        if code == 0 and gpu_failures >= GPU_FAULT_AFTER:
            code = ERROR_GPU
        if code != self._fault_code:
            self._fault_code = code
            self._set_state(3 if code else 1, code)
            log.warning("state_changed", error_code=code) if code else log.info("state_ready")

    def _archive_frame(self, frame: Frame, entry: Entry) -> None:
        if self.archive is not None and entry.verdict is not None:
            self.archive.offer(frame, entry.trigger.part_id, entry.verdict)

    # ------------------------------------------------------------------- run
    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until a stop is requested or the trigger source ends; pings the watchdog."""
        interval = systemd.watchdog_interval_s() or 1.0
        end = None if timeout_s is None else time.monotonic() + timeout_s
        while not self.stop_event.is_set():
            if self._trigger_thread is not None and not self._trigger_thread.is_alive():
                return True
            if end is not None and time.monotonic() >= end:
                return False
            systemd.watchdog()
            self._supervise()
            self.stop_event.wait(min(interval, 0.2))
        return True

    # ------------------------------------------------------------------ stop
    def stop(self) -> None:
        """Tear down in reverse order; safe to call twice and after a failed start."""
        self.stop_event.set()
        systemd.stopping()
        if self._trigger_thread is not None:
            self._trigger_thread.join(timeout=1.0)
            self._trigger_thread = None
        if self.pipeline is not None and "pipeline" in self._started:
            self.pipeline.stop()
        if self.plc_sim is not None:
            log.info("plc_simulator_summary", counts=self.plc_sim.counts().summary())
            self._close_quietly("plc_sim", self.plc_sim.stop)
            self.plc_sim = None
        if self.archive is not None:
            self.archive.close()
        if "camera" in self._started:
            self._close_quietly("camera", self.camera.close)
        for recipe in self.recipes.values():
            self._close_quietly("recipe", recipe.close)
        self.recipes.clear()
        if self.metrics_server is not None:
            self.metrics_server.stop()
            self.metrics_server = None
        metrics.STATE.set(4)
        self._started.clear()

    @staticmethod
    def _close_quietly(what: str, fn: Any) -> None:
        try:
            fn()
        except InspectorError as exc:
            log.error("close_failed", component=what, error=str(exc))
