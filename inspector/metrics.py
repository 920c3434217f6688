"""Every Prometheus metric of the daemon, declared here and nowhere else.

Grafana dashboards (``deploy/grafana/``) and alert rules (``deploy/prometheus/``) read
these. Conventions, as Prometheus expects them:

* base units (seconds, bytes, celsius); every counter's name ends in ``_total``;
* a value that is unknown is absent, not 0: ``KnownGauge`` (PLC link without a PLC,
  camera temperature without a sensor) exposes nothing until it is set;
* label values are pre-created (``configure``), so ``rate()`` sees a 0 before the
  first event; no ``_created`` series;
* the cycle and stage histograms' buckets are fractions of ``line.cycle_budget_ms``:
  ``configure(cycle_budget_ms)`` is called once by ``App`` before anything observes;
* ``inspector_build_info`` carries no label a scrape config commonly sets (``line``,
  ``instance``, ``job``): the config's line name is ``line_name``;
* process (``process_*``) and platform (``python_info``) collectors on ``REGISTRY``.

All metrics live in ``REGISTRY`` rather than the process-wide default, so tests and
tools can start several daemons in one process. ``serve()`` binds 127.0.0.1 unless the
config says otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from inspector.errors import ConfigError

disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)


class KnownGauge(Collector):
    """A gauge that is absent until its value is known, and again after ``clear()``.

    For values a line may not have at all (the PLC link of a line without a PLC, the
    temperature of a camera without a sensor): a plain ``Gauge`` would read 0, which a
    dashboard or an alert takes for a fact.
    """

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self._value: float | None = None
        registry.register(self)

    def set(self, value: float) -> None:
        self._value = float(value)

    def clear(self) -> None:
        self._value = None

    def get(self) -> float | None:
        return self._value

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(self.name, self.documentation)]

    def collect(self) -> Iterable[Metric]:
        value = self._value
        if value is None:
            return []
        return [GaugeMetricFamily(self.name, self.documentation, value=value)]


#: Cycle histogram bounds as fractions of the cycle budget (1.0 is the budget itself).
CYCLE_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 2, 3, 5, 10)
#: Stage histogram bounds as fractions of the cycle budget.
STAGE_FRACTIONS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2, 5)
#: Modbus round trips do not scale with the budget (seconds).
REQUEST_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5)
DEFAULT_BUDGET_MS = 30.0

#: Label values known in advance, pre-created by ``configure`` (and at import).
NG_REASONS = (
    "defect",
    "count",
    "timeout",
    "no_image",
    "image_quality",
    "error",
    "overrun",
    "offline",
)
#: inspector_image_quality_rejects_total{check}: the image-quality gate's checks.
QUALITY_CHECKS = ("brightness", "contrast", "saturation", "focus", "presence")
VERDICT_REASONS: tuple[tuple[str, str], ...] = (("ok", "ok"), *(("ng", r) for r in NG_REASONS))
STAGES = ("grab", "preprocess", "infer", "postprocess", "decide")
PLC_OPS = ("read", "write")
PLC_ERROR_KINDS = ("connect", "io", "unknown_recipe", "result_dropped", "result_link_stopped")
#: ``inspector_state`` values, in the order of the PLC's STATE register (0..4).
STATES = ("boot", "ready", "busy", "fault", "offline")


def budget_buckets(budget_ms: float, fractions: Sequence[float]) -> tuple[float, ...]:
    """Histogram bounds in seconds: ``fractions`` of the budget, 6 significant digits."""
    return tuple(float(f"{budget_ms / 1000 * f:.6g}") for f in fractions)


# --------------------------------------------------------------------- pipeline
PARTS = Counter(
    "inspector_parts_total",
    "Parts given a verdict, by verdict (ok/ng) and reason code.",
    ["verdict", "reason"],
    registry=REGISTRY,
)
CYCLE_BUDGET = Gauge(
    "inspector_cycle_budget_seconds",
    "The line's cycle budget (line.cycle_budget_ms): trigger to verdict.",
    registry=REGISTRY,
)


def _stage_histogram(budget_ms: float) -> Histogram:
    return Histogram(
        "inspector_stage_seconds",
        "Time spent per pipeline stage (grab, preprocess, infer, postprocess, decide).",
        ["stage"],
        buckets=budget_buckets(budget_ms, STAGE_FRACTIONS),
        registry=REGISTRY,
    )


def _cycle_histogram(budget_ms: float) -> Histogram:
    return Histogram(
        "inspector_cycle_seconds",
        "Trigger-to-verdict time per part; the bucket le=budget is the cycle budget.",
        buckets=budget_buckets(budget_ms, CYCLE_FRACTIONS),
        registry=REGISTRY,
    )


STAGE_SECONDS = _stage_histogram(DEFAULT_BUDGET_MS)
CYCLE_SECONDS = _cycle_histogram(DEFAULT_BUDGET_MS)
DEADLINE_MISSES = Counter(
    "inspector_deadline_misses_total",
    "Parts whose verdict was not ready within the cycle budget (NG timeout).",
    registry=REGISTRY,
)
OVERRUNS = Counter(
    "inspector_overruns_total",
    "Triggers refused because the pipeline was full (NG overrun).",
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "inspector_queue_depth",
    "Parts waiting in a pipeline queue.",
    ["queue"],
    registry=REGISTRY,
)
RECIPE = KnownGauge(
    "inspector_recipe_id",
    "Recipe id of the last part inspected (absent before the first part).",
    registry=REGISTRY,
)
STATE = Enum(
    "inspector_state",
    "Daemon state as reported to the PLC (STATE register): boot, ready, busy, fault, offline.",
    states=list(STATES),
    registry=REGISTRY,
)
BUILD_INFO = Info(
    "inspector_build",
    "Version of the daemon, the config's line name (line_name) and fingerprints of the "
    "model set and config in force.",
    registry=REGISTRY,
)

# ----------------------------------------------------------------------- camera
CAMERA_FRAMES = Counter(
    "inspector_camera_frames_total", "Frames delivered by the camera.", registry=REGISTRY
)
CAMERA_TIMEOUTS = Counter(
    "inspector_camera_timeouts_total", "Frame fetches that timed out.", registry=REGISTRY
)
CAMERA_INCOMPLETE = Counter(
    "inspector_camera_incomplete_frames_total",
    "Incomplete or damaged buffers, dropped and never inferred on.",
    registry=REGISTRY,
)
CAMERA_RECONNECTS = Counter(
    "inspector_camera_reconnects_total", "Camera reconnect attempts.", registry=REGISTRY
)
CAMERA_UP = Gauge(
    "inspector_camera_up",
    "1 while the camera (any source: sim, folder, genicam) is open and acquiring.",
    registry=REGISTRY,
)
CAMERA_TEMPERATURE = KnownGauge(
    "inspector_camera_temperature_celsius",
    "Device temperature, where the camera exposes DeviceTemperature (absent otherwise).",
    registry=REGISTRY,
)

# -------------------------------------------------------------------------- PLC
PLC_LINK_UP = KnownGauge(
    "inspector_plc_link_up",
    "1 while the Modbus TCP link is up and in sync, 0 while down; absent without a PLC.",
    registry=REGISTRY,
)
PLC_ENABLED = KnownGauge(
    "inspector_plc_enabled",
    "The PLC's ENABLE register as last read (1 line running); absent without a PLC link.",
    registry=REGISTRY,
)
PLC_HEARTBEAT_AGE = KnownGauge(
    "inspector_plc_heartbeat_age_seconds",
    "Time since PLC_HEARTBEAT last moved, at the last poll; absent while the link is down.",
    registry=REGISTRY,
)
PLC_REQUEST_SECONDS = Histogram(
    "inspector_plc_request_seconds",
    "Modbus request round-trip time, by operation.",
    ["op"],
    buckets=REQUEST_BUCKETS,
    registry=REGISTRY,
)
PLC_RECONNECTS = Counter(
    "inspector_plc_reconnects_total", "PLC link reconnect attempts.", registry=REGISTRY
)
PLC_MISSED_TRIGGERS = Counter(
    "inspector_plc_missed_triggers_total",
    "Triggers the vision never inspected: no longer in the trigger ring, seen after their "
    "deadline, raised while the link was down, or after the daemon stopped taking parts.",
    registry=REGISTRY,
)
PLC_ERRORS = Counter(
    "inspector_plc_errors_total", "PLC link errors, by kind.", ["kind"], registry=REGISTRY
)
PLC_PENDING_RESULTS = KnownGauge(
    "inspector_plc_pending_results",
    "Results written but not yet acknowledged (absent without a PLC link).",
    registry=REGISTRY,
)
PLC_RESULTS_DROPPED = Counter(
    "inspector_plc_results_dropped_total",
    "Verdicts the link did not write to the PLC (the PLC rejects those parts), by reason: "
    "overflow (result queue full), late (deadline passed before it could be shown), "
    "stale (a part from before a resync), link_down (no connection), stopping.",
    ["reason"],
    registry=REGISTRY,
)
PLC_LATE_OK = Counter(
    "inspector_plc_late_ok_total",
    "OK verdicts the link could show only after their part's deadline (the result before "
    "was not yet acknowledged): written as NG_TIMEOUT, never as OK.",
    registry=REGISTRY,
)
PLC_REFUSED_REQUESTS = Counter(
    "inspector_plc_refused_requests_total",
    "Server role: client requests refused, by reason: write_block_b, write_unmapped "
    "(a Modbus exception answered), client_not_allowed (connection closed).",
    ["reason"],
    registry=REGISTRY,
)

# -------------------------------------------------------------------------- GPU
GPU_CUDA_FAILURES = Counter(
    "inspector_gpu_cuda_failures_total",
    "CUDA call failures in this process (sticky errors need a restart).",
    registry=REGISTRY,
)
GPU_CONSECUTIVE_FAILURES = Gauge(
    "inspector_gpu_consecutive_failures",
    "Parts in a row that failed on the GPU stage; the daemon faults at 3.",
    registry=REGISTRY,
)

# ---- supervision and sinks (supervisor.py, sinks.py, logging.py)
THREAD_FAULTS = Counter(
    "inspector_thread_faults_total",
    "Unexpected thread deaths and unrecoverable faults that stopped the daemon, by thread.",
    ["thread"],
    registry=REGISTRY,
)
SINK_DROPPED = Counter(
    "inspector_sink_dropped_total",
    "Parts a queued sink (log, archive, web page, MQTT) dropped because it was behind.",
    ["sink"],
    registry=REGISTRY,
)
SINK_ERRORS = Counter(
    "inspector_sink_errors_total",
    "Parts a sink failed to handle (the verdict still reached the PLC), by sink.",
    ["sink"],
    registry=REGISTRY,
)
SINK_QUEUE_DEPTH = Gauge(
    "inspector_sink_queue_depth",
    "Parts waiting in a queued sink.",
    ["sink"],
    registry=REGISTRY,
)
LOG_LINES_DROPPED = Counter(
    "inspector_log_lines_dropped_total",
    "Log lines dropped because the log reader (stdout, journald) was not keeping up.",
    registry=REGISTRY,
)
PARTS_LOST = Counter(
    "inspector_parts_lost_total",
    "Triggered parts that got no published verdict, by named cause (exact accounting: "
    "every part is either published or counted here).",
    ["cause"],
    registry=REGISTRY,
)


@dataclass
class MetricsServer:
    """A running /metrics endpoint; ``stop()`` shuts it down and joins its thread."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=2)


def serve(host: str = "127.0.0.1", port: int = 9108) -> MetricsServer:
    """Start the /metrics endpoint (port 0 picks a free port).

    A port in use or an address this host does not have is a ``ConfigError`` (exit 78), as
    for the web page's port: another program holds it, and restarting will not free it."""
    try:
        server, thread = start_http_server(port, addr=host, registry=REGISTRY)
    except OSError as exc:
        why = exc.strerror or exc
        raise ConfigError(f"metrics: cannot listen on {host}:{port}: {why}") from exc
    return MetricsServer(server, thread)


# ---------------------------------------- camera, GenICam source (issue 4, camera/genicam.py)
CAMERA_FPS = KnownGauge(
    "inspector_camera_frames_per_second",
    "Frames per second the GenICam camera delivered, over its last 32 frames (absent for "
    "sources without a frame clock: use rate(inspector_camera_frames_total)).",
    registry=REGISTRY,
)
CAMERA_LOST_FRAMES = Counter(
    "inspector_camera_lost_frames_total",
    "Hardware trigger: frame ids missing from the sequence; their parts are NG no_image.",
    registry=REGISTRY,
)
CAMERA_STALE_FRAMES = Counter(
    "inspector_camera_stale_frames_total",
    "Triggered camera: frames dropped because their part had already given up (late).",
    registry=REGISTRY,
)

# ------------------------------------------------ station web page (issue 16, hmi/)
HMI_CLIENTS = Gauge(
    "inspector_hmi_clients",
    "Live streams (browser tabs) connected to the station web page.",
    registry=REGISTRY,
)
HMI_FRAMES_ENCODED = Counter(
    "inspector_hmi_frames_encoded_total",
    "Live images encoded for the web page (once per image, whatever the number of clients).",
    registry=REGISTRY,
)
HMI_CLIENTS_DROPPED = Counter(
    "inspector_hmi_clients_dropped_total",
    "Web page clients disconnected or refused, by reason (slow, too_many).",
    ["reason"],
    registry=REGISTRY,
)
HMI_RESTARTS = Counter(
    "inspector_hmi_restarts_total",
    "Web page components (server, encoder) restarted after a crash; the line goes on.",
    ["component"],
    registry=REGISTRY,
)

# ------------------------------- inputs: image-quality gate, inspection errors, archive
IMAGE_QUALITY_REJECTS = Counter(
    "inspector_image_quality_rejects_total",
    "Frames the recipe's image-quality gate refused (NG image_quality), by failed check "
    "(brightness, contrast, saturation, focus, presence).",
    ["check"],
    registry=REGISTRY,
)
ERROR_PARTS_IN_A_ROW = Gauge(
    "inspector_error_parts_in_a_row",
    "Parts in a row, up to the last one, with reason 'error' (NG_ERROR); the station "
    "faults at pipeline.fault_after_errors.",
    registry=REGISTRY,
)
ARCHIVE_IMAGES = Counter(
    "inspector_archive_images_total",
    "Images of NG parts the archive handled, by outcome: written (image and sidecar), "
    "dropped (its queue was full; equals inspector_sink_dropped_total{sink='archive'}), "
    "failed (a write error, or the archive was off).",
    ["outcome"],
    registry=REGISTRY,
)
ARCHIVE_UP = Gauge(
    "inspector_archive_up",
    "1 while the archive writes; 0 from a failure until an image is written again (a "
    "fault flag: inspection goes on), by archive directory. Absent when the archive is "
    "disabled.",
    ["dir"],
    registry=REGISTRY,
)

# ------------------------------------------- plant integration (issue 17, inspector/plant/)
MQTT_CONNECTED = Gauge(
    "inspector_mqtt_connected",
    "1 while the MQTT session to the broker is up (CONNACK accepted).",
    registry=REGISTRY,
)
MQTT_CONNECT_ATTEMPTS = Counter(
    "inspector_mqtt_connect_attempts_total",
    "MQTT connection attempts (the first one and every reconnect).",
    registry=REGISTRY,
)
MQTT_ERRORS = Counter(
    "inspector_mqtt_errors_total",
    "MQTT session failures, by kind (connect, refused, protocol, puback, timeout).",
    ["kind"],
    registry=REGISTRY,
)
MQTT_ACKED = Counter(
    "inspector_mqtt_acked_total",
    "Part messages the broker acknowledged (QoS 1 PUBACK) and the spool let go of.",
    registry=REGISTRY,
)
MQTT_SPOOL_MESSAGES = Gauge(
    "inspector_mqtt_spool_messages",
    "Part messages in the durable spool, not yet acknowledged by the broker.",
    registry=REGISTRY,
)
MQTT_SPOOL_BYTES = Gauge(
    "inspector_mqtt_spool_bytes",
    "Payload bytes in the durable spool.",
    registry=REGISTRY,
)
MQTT_SPOOL_DROPPED = Counter(
    "inspector_mqtt_spool_dropped_total",
    "Oldest part messages dropped from the spool because it reached its size bound.",
    registry=REGISTRY,
)
OPCUA_UPDATES = Counter(
    "inspector_opcua_result_updates_total",
    "Part results written into the OPC UA address space.",
    registry=REGISTRY,
)


def precreate_labels() -> None:
    """Create every label value known in advance, so each series exists from the start."""
    for verdict, reason in VERDICT_REASONS:
        PARTS.labels(verdict, reason)
    for stage in STAGES:
        STAGE_SECONDS.labels(stage)
    for op in PLC_OPS:
        PLC_REQUEST_SECONDS.labels(op)
    for kind in PLC_ERROR_KINDS:
        PLC_ERRORS.labels(kind)
    for check in QUALITY_CHECKS:
        IMAGE_QUALITY_REJECTS.labels(check)


def configure(cycle_budget_ms: float) -> None:
    """Prepare the metrics for one daemon run; ``App`` calls it before anything observes.

    Rebuilds the cycle and stage histograms with buckets that are fractions of
    ``cycle_budget_ms`` (their counts start again at 0), sets
    ``inspector_cycle_budget_seconds``, pre-creates label values, and forgets every
    ``KnownGauge`` of a previous run in this process (a PLC link that is not
    configured now is absent, not stale).
    """
    global CYCLE_SECONDS, STAGE_SECONDS
    for old in (CYCLE_SECONDS, STAGE_SECONDS):
        REGISTRY.unregister(old)
    CYCLE_SECONDS = _cycle_histogram(cycle_budget_ms)
    STAGE_SECONDS = _stage_histogram(cycle_budget_ms)
    CYCLE_BUDGET.set(cycle_budget_ms / 1000)
    for known in (
        RECIPE,
        CAMERA_TEMPERATURE,
        CAMERA_FPS,
        PLC_LINK_UP,
        PLC_ENABLED,
        PLC_HEARTBEAT_AGE,
        PLC_PENDING_RESULTS,
    ):
        known.clear()
    precreate_labels()


_state_now = STATES[0]


def set_state(state: int) -> None:
    """``inspector_state`` from a STATE register value (0 boot … 4 offline)."""
    global _state_now
    _state_now = STATES[state]
    STATE.state(_state_now)


def current_state() -> str:
    """The state last set with ``set_state`` (boot, ready, busy, fault, offline)."""
    return _state_now


CYCLE_BUDGET.set(DEFAULT_BUDGET_MS / 1000)
precreate_labels()
