"""Config of the frame sources (step 2 of the flow): sim, folder, genicam."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from inspector.config.base import Section

DefectKind = Literal["scratch", "spot", "missing_hole"]
_DEFECT_KINDS: tuple[DefectKind, ...] = ("scratch", "spot", "missing_hole")


class SimDefectConfig(Section):
    """Defects the simulated line puts on parts."""

    rate: float = Field(0.3, ge=0, le=1, description="Fraction of parts that carry defects.")
    kinds: list[DefectKind] = Field(
        default_factory=lambda: list(_DEFECT_KINDS),
        min_length=1,
        description="Defect kinds to draw from.",
    )
    max_per_part: int = Field(2, ge=1, le=10, description="Most defects on one defective part.")


class SimCameraConfig(Section):
    """A synthetic production line: parts rendered from a seed, with ground truth."""

    width: int = Field(1280, ge=64, le=8192, description="Frame width in pixels.")
    height: int = Field(1024, ge=64, le=8192, description="Frame height in pixels.")
    pixel_format: Literal["Mono8", "BGR8", "BayerRG8"] = Field(
        "Mono8", description="Pixel format of the rendered frames (GenICam name)."
    )
    seed: int = Field(1234, description="Random seed; the same seed renders the same parts.")
    pool_size: int = Field(
        64, ge=1, le=4096, description="Frames pre-rendered at start and served in a cycle."
    )
    defects: SimDefectConfig = Field(
        default_factory=SimDefectConfig, description="Defects put on parts."
    )


class FolderCameraConfig(Section):
    """Replay images from a directory, in name order."""

    path: Path = Field(description="Directory of PNG/JPEG/BMP/TIFF images.")
    labels: Path | None = Field(
        None, description="Optional JSON labels file: {image name: [[class, x1, y1, x2, y2], ...]}."
    )
    loop: bool = Field(False, description="Start again at the first image after the last.")
    pixel_format: Literal["Mono8", "BGR8"] = Field(
        "BGR8", description="Read images as Mono8 or BGR8."
    )
    bit_depth: Literal[8, 10, 12, 16] = Field(
        8,
        description="Significant bits per sample in the files. 8: 8-bit files only (a "
        "deeper file is refused, NG no_image); 10/12/16: 16-bit files holding that many "
        "bits, scaled to 8 bits by this depth (a value above it is refused).",
    )
    max_pixels: int = Field(
        16_777_216,
        ge=4,
        description="Largest image (width × height) served; a larger one is refused from "
        "its header, before decoding (NG no_image).",
    )


class GenicamCameraConfig(Section):
    """A GigE Vision / USB3 Vision camera through harvesters and a GenTL producer."""

    cti: list[Path] = Field(
        default_factory=list,
        description="GenTL producer files (.cti); empty falls back to GENICAM_GENTL64_PATH.",
    )
    serial_number: str | None = Field(None, description="Open the device with this serial number.")
    user_defined_name: str | None = Field(None, description="Open the device with this user name.")
    model: str | None = Field(None, description="Open the first device of this model.")
    index: int | None = Field(None, ge=0, description="Open the device at this index.")
    features: list[dict[str, Any]] = Field(
        default_factory=list,
        description="GenICam features applied in order at every open, as one-key mappings "
        "{Name: value}, e.g. [{ExposureTime: 2000}, {PixelFormat: Mono8}].",
    )
    trigger_mode: Literal["software", "hardware", "free_run"] = Field(
        "software", description="How the camera is triggered."
    )
    timeout_ms: float = Field(
        100.0, gt=0, description="Frame fetch timeout; on expiry the part is NG_NO_IMAGE."
    )
    reconnect_backoff_s: float = Field(
        0.5, gt=0, description="First reconnect delay; doubles up to reconnect_backoff_max_s."
    )
    reconnect_backoff_max_s: float = Field(10.0, gt=0, description="Reconnect delay cap.")
    num_buffers: int = Field(
        8,
        ge=2,
        le=256,
        description="Buffers announced to the producer; hardware trigger holds one per part "
        "in flight, so keep it above the parts between the sensor and the camera.",
    )
    frame_id_wrap: int | None = Field(
        None,
        ge=2,
        description="Frame ids wrap at this value (65535 for GigE Vision 1.x 16-bit block "
        "ids); None: ids never wrap (GEV 2 / USB3 Vision 64-bit ids).",
    )

    @model_validator(mode="after")
    def _one_feature_per_entry(self) -> GenicamCameraConfig:
        for i, entry in enumerate(self.features):
            if len(entry) != 1:
                raise ValueError(
                    f"features[{i}] must be one {{Name: value}} mapping, has keys {sorted(entry)}"
                )
        chosen = [self.serial_number, self.user_defined_name, self.model, self.index]
        if sum(v is not None for v in chosen) > 1:
            raise ValueError(
                "choose the device by one of serial_number, user_defined_name, model, index"
            )
        return self


class CameraConfig(Section):
    """Which camera source feeds the pipeline."""

    type: Literal["sim", "folder", "genicam"] = Field("sim", description="Camera source.")
    sim: SimCameraConfig = Field(
        default_factory=SimCameraConfig, description="Settings of the 'sim' source."
    )
    folder: FolderCameraConfig | None = Field(None, description="Settings of the 'folder' source.")
    genicam: GenicamCameraConfig = Field(
        default_factory=GenicamCameraConfig, description="Settings of the 'genicam' source."
    )

    @model_validator(mode="after")
    def _source_settings_present(self) -> CameraConfig:
        if self.type == "folder" and self.folder is None:
            raise ValueError("camera.type is 'folder' but camera.folder is missing")
        return self
