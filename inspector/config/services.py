"""Config of the daemon's services: pipeline queues, metrics, logs, NG archive."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from inspector.config.base import Section


class PipelineConfig(Section):
    """Queues and workers of the per-part loop."""

    queue_depth: int = Field(
        4, ge=1, le=64, description="Parts waiting for inference; a trigger beyond it is NG."
    )
    frames_in_flight: int = Field(
        2,
        ge=1,
        le=8,
        description="Parts the worker keeps on the GPU at once (models with preprocess.device "
        "'cuda'): it submits the next part before collecting the oldest; verdicts are still "
        "published in trigger order.",
    )
    gpu_keepalive_ms: float = Field(
        10.0,
        ge=0,
        le=1000,
        description="While no part waits, replay the model on the GPU this often, so a part "
        "after an idle gap finds the GPU busy and the model warm; 0 turns it off. Models "
        "with preprocess.device 'cuda' only. docs/gpu.md measures what it removes and what "
        "is left (host-side).",
    )
    cpus: tuple[int, ...] = Field(
        (),
        description="CPUs the pipeline's threads (acquisition, inference worker, publisher) "
        "are pinned to (Linux); empty lets the OS place them. Pinning keeps the model's "
        "weights in one core's caches and the hand-offs between the threads on warm cores; "
        "with cores kept free of other work (e.g. isolcpus on a Jetson) it cuts jitter.",
    )
    fault_after_errors: int = Field(
        5,
        ge=1,
        description="Parts in a row with reason 'error' (NG_ERROR: model, backend or "
        "internal failure) after which the station reports STATE fault (ERROR_CODE 202); "
        "it is ready again after the next part without an error.",
    )

    @field_validator("cpus")
    @classmethod
    def _cpus_are_cpu_numbers(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(c < 0 for c in v):
            raise ValueError("CPU numbers start at 0")
        return v


class MetricsConfig(Section):
    """Prometheus endpoint."""

    enabled: bool = Field(True, description="Serve /metrics.")
    host: str = Field("127.0.0.1", description="Bind address; loopback by default.")
    port: int = Field(9108, ge=0, le=65535, description="Port; 0 picks a free one.")


class LoggingConfig(Section):
    """Structured logs."""

    format: Literal["auto", "json", "console"] = Field(
        "auto", description="'auto': console on a terminal, JSON lines otherwise."
    )
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")
    per_part: bool = Field(
        True, description="Log parts (the log sink); NG parts then always get one line each."
    )
    ok_parts: Literal["all", "sample", "summary"] = Field(
        "summary",
        description="OK parts: 'all' one line each; 'sample' one line every ok_sample_every OK "
        "parts; 'summary' none. With 'sample' and 'summary' a 'parts_summary' line every "
        "summary_period_s counts every part by verdict and reason (about 270 MB/day of OK "
        "lines at 10 parts/s is what 'all' costs a Jetson's eMMC).",
    )
    ok_sample_every: int = Field(100, ge=1, description="'sample': log 1 OK part in this many.")
    summary_period_s: float = Field(
        60.0, gt=0, le=86_400, description="Period of the 'parts_summary' line (seconds)."
    )


class ArchiveConfig(Section):
    """NG image archive."""

    enabled: bool = Field(False, description="Save images of NG parts.")
    dir: Path = Field(Path("archive"), description="Archive directory.")
    max_files: int = Field(10_000, ge=1, description="Oldest images are deleted past this count.")
    retry_s: float = Field(
        10.0,
        gt=0,
        description="After a failed write (or a directory that cannot be created) the "
        "archive is off, with inspector_archive_up 0, for this long, then tries again; "
        "images of NG parts meanwhile are counted as failed. Inspection never waits.",
    )
