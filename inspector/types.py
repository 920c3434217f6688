"""Frozen values passed between the steps of the flow.

    Trigger ─▶ Frame ─▶ (tensor) ─▶ Finding[] ─▶ Verdict

Each step's function takes these and returns these; no step keeps per-part state on
``self``. Times are ``time.monotonic_ns()`` values unless a name says ``wall``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


class Reason(str, enum.Enum):
    """Why a part got its verdict. Only ``OK`` passes a part."""

    OK = "ok"
    DEFECT = "defect"  # a finding broke a rule
    COUNT = "count"  # too many findings of one class
    TIMEOUT = "timeout"  # the verdict was not ready within the cycle budget
    NO_IMAGE = "no_image"  # no frame, or a damaged frame
    IMAGE_QUALITY = "image_quality"  # a frame that cannot be judged (dark, flat, blurred, ...)
    ERROR = "error"  # backend, model or any other internal failure
    OVERRUN = "overrun"  # trigger arrived while the pipeline was full
    OFFLINE = "offline"  # the line or the daemon was not ready


class PlcVerdict(enum.IntEnum):
    """VERDICT register values (docs/plc.md). Only ``OK`` passes a part."""

    NONE = 0
    OK = 1
    NG = 2
    NG_TIMEOUT = 3
    NG_NO_IMAGE = 4
    NG_ERROR = 5


#: How each reason is reported in the PLC's VERDICT register.
PLC_VERDICT_OF_REASON: dict[Reason, PlcVerdict] = {
    Reason.OK: PlcVerdict.OK,
    Reason.DEFECT: PlcVerdict.NG,
    Reason.COUNT: PlcVerdict.NG,
    Reason.TIMEOUT: PlcVerdict.NG_TIMEOUT,
    Reason.NO_IMAGE: PlcVerdict.NG_NO_IMAGE,
    Reason.IMAGE_QUALITY: PlcVerdict.NG_NO_IMAGE,  # no usable image: docs/plc.md
    Reason.ERROR: PlcVerdict.NG_ERROR,
    Reason.OVERRUN: PlcVerdict.NG_ERROR,
    Reason.OFFLINE: PlcVerdict.NG_ERROR,
}


@dataclass(frozen=True, slots=True)
class Trigger:
    """One part arriving at the camera."""

    trigger_seq: int
    part_id: int
    t_trigger_ns: int
    deadline_ns: int
    source: str = "internal"
    recipe_id: int = 1


@dataclass(frozen=True, slots=True)
class Label:
    """Ground truth for a defect on a part (sim line, or a replay labels file)."""

    class_name: str
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in frame pixels


@dataclass(frozen=True, slots=True)
class Frame:
    """One grabbed image, owned by the pipeline (the producer's buffer is already back).

    ``pixel_format`` uses GenICam names: Mono8, BGR8, RGB8, BayerRG8, ...
    ``truth`` is None when ground truth is unknown, an empty tuple for a good part.
    """

    image: npt.NDArray[np.uint8] | npt.NDArray[np.uint16]
    pixel_format: str
    frame_id: int
    t_grab_ns: int
    device_timestamp_ns: int | None = None
    truth: tuple[Label, ...] | None = None
    source_name: str = ""


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a model found, in frame pixel coordinates."""

    class_name: str
    class_id: int
    confidence: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    model: str = ""
    area_px: float | None = None  # defect area when the family knows it (masks); else the box

    @property
    def area(self) -> float:
        """Area in frame pixels: the mask area when known, else the box area."""
        if self.area_px is not None:
            return self.area_px
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)

    def to_record(self) -> dict[str, object]:
        """The one JSON shape of a finding (log, archive sidecar, replay, MQTT, web page)."""
        record: dict[str, object] = {
            "class": self.class_name,
            "class_id": self.class_id,
            "confidence": round(self.confidence, 4),
            "box": [round(c, 1) for c in self.box],
            "area_px": round(self.area, 1),
        }
        if self.model:
            record["model"] = self.model
        return record


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision for one part: OK or NG, why, and the findings that caused it."""

    ok: bool
    reason: Reason
    findings: tuple[Finding, ...] = ()
    detail: str = ""
    defect_code: int = 0

    def __post_init__(self) -> None:
        if self.ok != (self.reason is Reason.OK):
            raise ValueError(f"inconsistent verdict: ok={self.ok} reason={self.reason.value}")

    @property
    def plc_verdict(self) -> PlcVerdict:
        """The VERDICT register value; only a consistent OK maps to ``PlcVerdict.OK``."""
        return PLC_VERDICT_OF_REASON[self.reason]


@dataclass(frozen=True, slots=True)
class PartResult:
    """Everything known about one part once its verdict is final."""

    trigger: Trigger
    verdict: Verdict
    t_verdict_ns: int
    stage_ns: dict[str, int] = field(default_factory=dict)
    frame_id: int | None = None
    #: The inspected frame (None when the part never got one: timeout, overrun, no image).
    #: Shared, never copied: sinks that keep it (archive, web page) must not modify it.
    frame: Frame | None = None

    @property
    def cycle_ns(self) -> int:
        return self.t_verdict_ns - self.trigger.t_trigger_ns


def ng(reason: Reason, detail: str = "", findings: tuple[Finding, ...] = ()) -> Verdict:
    """Build an NG verdict; the one helper every fail-closed path uses."""
    if reason is Reason.OK:
        raise ValueError("ng() needs a failing reason")
    return Verdict(ok=False, reason=reason, findings=findings, detail=detail)
