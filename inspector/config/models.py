"""Config of recipes: the models a part runs through (steps 3-5) and the rules (step 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from inspector.config.base import Section
from inspector.config.quality import QualityConfig


class PreprocessConfig(Section):
    """How a frame becomes the model's input tensor."""

    device: Literal["cpu", "cuda"] = Field(
        "cpu", description="'cpu': OpenCV/numpy; 'cuda': the fused NVRTC kernel."
    )
    resize: Literal["letterbox", "stretch"] = Field(
        "letterbox", description="Keep aspect ratio with padding, or stretch to the input size."
    )
    pad_value: int = Field(114, ge=0, le=255, description="Letterbox padding grey level.")
    mean: tuple[float, float, float] = Field(
        (0.0, 0.0, 0.0), description="Per-channel mean subtracted after scaling to 0..1 (RGB)."
    )
    std: tuple[float, float, float] = Field(
        (1.0, 1.0, 1.0), description="Per-channel std divided after the mean (RGB)."
    )
    channel_order: Literal["RGB", "BGR"] = Field("RGB", description="Channel order of the model.")


class EngineConfig(Section):
    """Engine policy: TensorRT plans and build, and CUDA-graph use (tensorrt and torch)."""

    dir: Path = Field(Path("engines"), description="Where plans and manifests live.")
    precision: Literal["fp32", "fp16", "int8"] = Field("fp16", description="Engine precision.")
    build_on_start: bool = Field(
        False, description="Build a missing or stale engine at start instead of failing."
    )
    warmup_runs: int = Field(10, ge=0, description="Runs before the daemon reports ready.")
    cuda_graph: bool = Field(
        True, description="Capture a CUDA graph after warm-up (tensorrt and torch backends)."
    )
    dla_core: int | None = Field(None, ge=0, description="DLA core (Jetson), GPU fallback.")
    workspace_mib: int = Field(
        1024, ge=16, le=65536, description="Builder workspace pool limit for a start-time build."
    )
    golden_check: bool = Field(
        True,
        description="After a start-time build, compare the new engine with ONNX Runtime on "
        "the golden images (<dir>/golden/, else synthetic frames) and refuse it on disagreement.",
    )


class ModelConfig(Section):
    """One model of a recipe and how to read its outputs."""

    name: str = Field("detector", description="Name used in findings, logs and metrics.")
    family: Literal["detection", "segmentation", "anomaly", "classification"] = Field(
        "detection", description="Model family; selects the postprocessor."
    )
    path: Path = Field(description="Model file: ONNX for onnxruntime/tensorrt, .pt for torch.")
    sha256: str | None = Field(
        None,
        description="Pin the model file: its SHA-256 (64 hex digits). A file that does not "
        "match is refused at start, before any runtime reads it. None: not pinned.",
    )
    backend: Literal["onnxruntime", "tensorrt", "torch"] = Field(
        "onnxruntime", description="Inference backend."
    )
    input_size: tuple[int, int] | None = Field(
        None, description="Model input (height, width); None reads it from the model."
    )
    class_names: list[str] | None = Field(
        None, description="Class names; None reads Ultralytics 'names' metadata."
    )
    layout: Literal["auto", "yolov8", "yolov5"] = Field(
        "auto", description="Detection output layout: [1,4+nc,N] (v8/v11) or [1,N,5+nc] (v5)."
    )
    conf_floor: float = Field(
        0.1, ge=0, le=1, description="Candidates below this confidence are dropped before NMS."
    )
    iou_threshold: float = Field(0.5, gt=0, le=1, description="NMS IoU threshold.")
    max_detections: int = Field(
        100,
        ge=1,
        description="Most findings kept after NMS (detection), or blobs kept per class "
        "(segmentation, anomaly; largest first).",
    )
    mask_threshold: float = Field(
        0.5,
        gt=0,
        description="Segmentation: class probability (0..1) a pixel needs to join a defect "
        "mask. Anomaly: anomaly-map value a pixel needs to join a localised anomaly, in the "
        "model's units (0.5 for normalised anomalib exports).",
    )
    anomaly_threshold: float = Field(
        0.5,
        gt=0,
        description="Anomaly: image score at or above which a part is anomalous, in the "
        "model's units (0.5 for normalised anomalib exports, else the raw image threshold). "
        "Findings report score / (2 * threshold) clipped to 0..1, so the threshold reads 0.5.",
    )
    ok_classes: list[str] = Field(
        default_factory=lambda: ["ok", "good", "pass"],
        description="Classification: class names (case-insensitive) of a good part; a top-1 "
        "class not in this list is a finding.",
    )
    threads: int = Field(1, ge=1, le=64, description="CPU threads for onnxruntime.")
    fp16: bool = Field(False, description="Run in FP16 (torch backend).")
    preprocess: PreprocessConfig = Field(
        default_factory=PreprocessConfig, description="Preprocessing of this model's input."
    )
    engine: EngineConfig = Field(
        default_factory=EngineConfig, description="TensorRT engine policy."
    )

    @field_validator("sha256")
    @classmethod
    def _sha256_is_hex(cls, v: str | None) -> str | None:
        if v is None:
            return None
        digest = v.strip().lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError("sha256 must be 64 hex digits (sha256sum of the model file)")
        return digest


# -------------------------------------------------------------------------- rules
Point = tuple[float, float]


class RulesConfig(Section):
    """Decision rules turning findings into a verdict. A part with no finding that breaks
    a rule is OK; everything else is NG."""

    min_confidence: dict[str, float] = Field(
        default_factory=lambda: {"default": 0.5},
        description="Per-class minimum confidence for a finding to count; key 'default' "
        "covers classes not listed.",
    )
    min_area_px: dict[str, float] = Field(
        default_factory=lambda: {"default": 0.0},
        description="Per-class minimum defect area in frame pixels; smaller findings are "
        "ignored. Key 'default' covers classes not listed.",
    )
    roi_include: list[list[Point]] = Field(
        default_factory=list,
        description="Polygons (frame pixels); if any is given, only findings whose centre "
        "lies inside one of them count.",
    )
    roi_exclude: list[list[Point]] = Field(
        default_factory=list,
        description="Polygons (frame pixels); findings whose centre lies inside one are ignored.",
    )
    max_count: dict[str, int] = Field(
        default_factory=lambda: {"default": 0},
        description="Per-class most counted findings still OK; 0 means any counted finding "
        "is NG. Key 'default' covers classes not listed.",
    )

    @model_validator(mode="after")
    def _polygons_valid(self) -> RulesConfig:
        for name, polys in (("roi_include", self.roi_include), ("roi_exclude", self.roi_exclude)):
            for i, poly in enumerate(polys):
                if len(poly) < 3:
                    raise ValueError(f"{name}[{i}] needs at least 3 points, has {len(poly)}")
        for cls, v in self.min_confidence.items():
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"min_confidence[{cls!r}] must be within 0..1, is {v}")
        for cls, n in self.max_count.items():
            if n < 0:
                raise ValueError(f"max_count[{cls!r}] must be >= 0, is {n}")
        return self


class RecipeConfig(Section):
    """A product variant: the models to run and the rules that decide."""

    id: int = Field(ge=1, le=65535, description="RECIPE_ID the PLC selects this recipe with.")
    name: str = Field(description="Human name of the product variant.")
    models: list[ModelConfig] = Field(min_length=1, description="Models run on every part.")
    rules: RulesConfig = Field(default_factory=RulesConfig, description="Decision rules.")
    quality: QualityConfig = Field(
        default_factory=QualityConfig,
        description="Image-quality gate run on every frame before the models.",
    )
