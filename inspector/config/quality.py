"""Config of the image-quality gate (between step 2 and step 3 of the flow).

A recipe's ``quality:`` block: the cheap checks every frame passes before any model
sees it (``inspector/quality.py``). A frame that fails one is NG ``image_quality``:
a frame that cannot be judged never passes. Levels are 8-bit grey levels (deeper
frames are scaled to 8 bits by their declared depth before the gate).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from inspector.config.base import Section


class PresenceConfig(Section):
    """Part presence: inside a box of the frame, the part must show these levels."""

    box: tuple[int, int, int, int] = Field(
        description="x1, y1, x2, y2 in frame pixels (x2, y2 exclusive) where the part lies."
    )
    mean: tuple[float, float] = Field(
        (0.0, 255.0), description="Allowed mean grey level inside the box: [min, max]."
    )
    min_std: float = Field(
        0.0, ge=0, description="Least grey-level standard deviation inside the box."
    )

    @model_validator(mode="after")
    def _box_and_range(self) -> PresenceConfig:
        x1, y1, x2, y2 = self.box
        if x1 < 0 or y1 < 0 or x2 <= x1 or y2 <= y1:
            raise ValueError(f"box {list(self.box)} must be x1, y1, x2, y2 with x2 > x1 >= 0")
        _check_range("mean", self.mean)
        return self


class QualityConfig(Section):
    """The image-quality gate of a recipe: a frame failing any check is NG image_quality.

    The statistics are taken on a subsampled view of about ``samples`` pixels (an odd
    stride, so a Bayer mosaic contributes all its colour sites), which keeps the gate
    well under 0.2 ms on a 1280×1024 frame.
    """

    enabled: bool = Field(True, description="Run the gate on every frame of this recipe.")
    mean: tuple[float, float] = Field(
        (20.0, 240.0),
        description="Allowed mean grey level of the frame: [min, max]. The default minimum "
        "(20) also refuses 10- or 12-bit data declared as 16-bit (at most 15 once scaled).",
    )
    min_std: float = Field(
        5.0, ge=0, description="Least grey-level standard deviation (contrast) of the frame."
    )
    max_saturated: float = Field(
        0.25,
        ge=0,
        le=1,
        description="Largest fraction of pixels at full scale (255; any channel of a colour "
        "pixel).",
    )
    min_focus: float | None = Field(
        None,
        ge=0,
        description="Least focus measure: the variance of the Laplacian of the subsampled "
        "view. Scene dependent: set it from good parts (about half their lowest value). "
        "None: no focus check.",
    )
    presence: PresenceConfig | None = Field(
        None, description="Part presence check in a box of the frame; None: no check."
    )
    samples: int = Field(
        16384,
        ge=256,
        le=1_000_000,
        description="About how many pixels the statistics are computed on.",
    )

    @model_validator(mode="after")
    def _ranges(self) -> QualityConfig:
        _check_range("mean", self.mean)
        return self


def _check_range(name: str, lo_hi: tuple[float, float]) -> None:
    lo, hi = lo_hi
    if not 0 <= lo <= hi <= 255:
        raise ValueError(f"{name} must be [min, max] with 0 <= min <= max <= 255, is {[lo, hi]}")
