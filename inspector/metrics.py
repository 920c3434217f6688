"""Every Prometheus metric of the daemon, declared here and nowhere else.

Grafana dashboards scrape these; names follow Prometheus conventions (base units,
``_total`` for counters). All metrics live in ``REGISTRY`` rather than the process-wide
default, so tests and tools can start several daemons in one process. ``serve()`` binds
127.0.0.1 unless the config says otherwise.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    start_http_server,
)

REGISTRY = CollectorRegistry(auto_describe=True)

# Buckets clustered around the 30 ms default budget, in seconds.
CYCLE_BUCKETS = (0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.05, 0.075, 0.1, 0.25, 1.0)
STAGE_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25)
REQUEST_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5)

# --------------------------------------------------------------------- pipeline
PARTS = Counter(
    "inspector_parts",
    "Parts given a verdict, by verdict (ok/ng) and reason code.",
    ["verdict", "reason"],
    registry=REGISTRY,
)
STAGE_SECONDS = Histogram(
    "inspector_stage_seconds",
    "Time spent per pipeline stage (grab, preprocess, infer, postprocess, decide).",
    ["stage"],
    buckets=STAGE_BUCKETS,
    registry=REGISTRY,
)
CYCLE_SECONDS = Histogram(
    "inspector_cycle_seconds",
    "Trigger-to-verdict time per part.",
    buckets=CYCLE_BUCKETS,
    registry=REGISTRY,
)
DEADLINE_MISSES = Counter(
    "inspector_deadline_misses",
    "Parts whose verdict was not ready within the cycle budget (NG timeout).",
    registry=REGISTRY,
)
OVERRUNS = Counter(
    "inspector_overruns",
    "Triggers refused because the pipeline was full (NG overrun).",
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "inspector_queue_depth",
    "Parts waiting in a pipeline queue.",
    ["queue"],
    registry=REGISTRY,
)
FPS = Gauge(
    "inspector_frames_per_second",
    "Parts inspected per second over the last few seconds.",
    registry=REGISTRY,
)
RECIPE = Gauge(
    "inspector_recipe_id",
    "Recipe id of the last part inspected.",
    registry=REGISTRY,
)
STATE = Gauge(
    "inspector_state",
    "Daemon state as reported to the PLC: 0 boot, 1 ready, 2 busy, 3 fault, 4 offline.",
    registry=REGISTRY,
)
BUILD_INFO = Info(
    "inspector_build",
    "Version of the daemon and fingerprints of the model set and config in force.",
    registry=REGISTRY,
)

# ----------------------------------------------------------------------- camera
CAMERA_FRAMES = Counter(
    "inspector_camera_frames", "Frames delivered by the camera.", registry=REGISTRY
)
CAMERA_TIMEOUTS = Counter(
    "inspector_camera_timeouts", "Frame fetches that timed out.", registry=REGISTRY
)
CAMERA_INCOMPLETE = Counter(
    "inspector_camera_incomplete_frames",
    "Incomplete or damaged buffers, dropped and never inferred on.",
    registry=REGISTRY,
)
CAMERA_RECONNECTS = Counter(
    "inspector_camera_reconnects", "Camera reconnect attempts.", registry=REGISTRY
)
CAMERA_UP = Gauge(
    "inspector_camera_up", "1 while the camera is open and acquiring.", registry=REGISTRY
)
CAMERA_TEMPERATURE = Gauge(
    "inspector_camera_temperature_celsius",
    "Device temperature, where the camera exposes DeviceTemperature.",
    registry=REGISTRY,
)

# -------------------------------------------------------------------------- PLC
PLC_LINK_UP = Gauge(
    "inspector_plc_link_up", "1 while the Modbus TCP link is up.", registry=REGISTRY
)
PLC_REQUEST_SECONDS = Histogram(
    "inspector_plc_request_seconds",
    "Modbus request round-trip time, by operation.",
    ["op"],
    buckets=REQUEST_BUCKETS,
    registry=REGISTRY,
)
PLC_RECONNECTS = Counter(
    "inspector_plc_reconnects", "PLC link reconnect attempts.", registry=REGISTRY
)
PLC_MISSED_TRIGGERS = Counter(
    "inspector_plc_missed_triggers",
    "Triggers the vision never inspected: no longer in the trigger ring, seen after their "
    "deadline, raised while the link was down, or after the daemon stopped taking parts.",
    registry=REGISTRY,
)
PLC_ERRORS = Counter(
    "inspector_plc_errors", "PLC link errors, by kind.", ["kind"], registry=REGISTRY
)
PLC_PENDING_RESULTS = Gauge(
    "inspector_plc_pending_results", "Results written but not yet acknowledged.", registry=REGISTRY
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
GPU_CUDA_FAILURES = Gauge(
    "inspector_gpu_cuda_failures",
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
    """Start the /metrics endpoint (port 0 picks a free port)."""
    server, thread = start_http_server(port, addr=host, registry=REGISTRY)
    return MetricsServer(server, thread)


# ---------------------------------------- camera, GenICam source (issue 4, camera/genicam.py)
CAMERA_FPS = Gauge(
    "inspector_camera_frames_per_second",
    "Frames per second the camera delivered, over its last 32 frames.",
    registry=REGISTRY,
)
CAMERA_LOST_FRAMES = Counter(
    "inspector_camera_lost_frames",
    "Hardware trigger: frame ids missing from the sequence; their parts are NG no_image.",
    registry=REGISTRY,
)
CAMERA_STALE_FRAMES = Counter(
    "inspector_camera_stale_frames",
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
