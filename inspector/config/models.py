"""Config of recipes: the models a part runs through (steps 3-5) and the rules (step 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from inspector.config.base import Section
from inspector.config.quality import QualityConfig

#: Backends with a device path (``Backend.device_model``, backends/device.py), which
#: ``preprocess.device: cuda`` feeds. ``tensorrt`` + ``cuda`` is the Jetson configuration;
#: ``onnxruntime`` + ``cuda`` runs ONNX Runtime's CUDA provider (onnxruntime-gpu).
DEVICE_BACKENDS = ("tensorrt", "torch", "onnxruntime")


class PreprocessConfig(Section):
    """How a frame becomes the model's input tensor."""

    device: Literal["cpu", "cuda"] = Field(
        "cpu",
        description="'cpu': OpenCV/numpy, then the backend's host path; 'cuda': the whole "
        "part on the GPU (fused NVRTC kernel, the backend's device path, detector NMS on "
        "the device), for backends tensorrt (the Jetson configuration), torch and "
        "onnxruntime (CUDA provider, onnxruntime-gpu).",
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


Family = Literal["detection", "segmentation", "anomaly", "classification"]
#: The family keys of ``ModelConfig``: each names its options block.
FAMILIES: tuple[Family, ...] = ("detection", "segmentation", "anomaly", "classification")


class DetectionOptions(Section):
    """Detection (boxes). Defaults are Ultralytics' for the same concepts (conf, iou,
    max_det)."""

    layout: Literal["auto", "yolov8", "yolov5", "end2end", "efficient_nms"] = Field(
        "auto",
        description="Output layout: [1,4+nc,N] (YOLOv8/v11/YOLO26 plain head), [1,N,5+nc] "
        "(YOLOv5), [1,N,6] x1,y1,x2,y2,score,class (NMS-free: YOLO26/YOLOv10 end-to-end, any "
        "nms=True export), or TensorRT EfficientNMS's four outputs. 'auto' reads the model.",
    )
    conf: float = Field(
        0.25,
        ge=0,
        le=1,
        description="Candidates below this confidence are dropped before NMS (Ultralytics "
        "'conf'). The rules' min_confidence then decides what counts.",
    )
    iou: float = Field(0.7, gt=0, le=1, description="NMS IoU threshold (Ultralytics 'iou').")
    max_det: int = Field(
        300, ge=1, description="Most detections kept after NMS (Ultralytics 'max_det')."
    )


class SegmentationOptions(Section):
    """Segmentation: semantic maps (U-Net, torchvision, YOLO26 semantic) or instance masks
    (YOLO-seg)."""

    layout: Literal["auto", "semantic", "instance"] = Field(
        "auto",
        description="'semantic': [1,C,h,w] logits/probabilities or a [1,h,w] class map; "
        "'instance': YOLO-seg boxes + mask coefficients + prototypes. 'auto' reads the model.",
    )
    mask_threshold: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Probability (0..1) a pixel needs to belong to a defect mask (semantic "
        "maps and instance masks alike).",
    )
    conf: float = Field(
        0.25, ge=0, le=1, description="Instance layout: box confidence floor before NMS."
    )
    iou: float = Field(0.7, gt=0, le=1, description="Instance layout: NMS IoU threshold.")
    max_det: int = Field(
        300,
        ge=1,
        description="Instance layout: most instances kept; semantic: most blobs per class "
        "(largest first).",
    )


class AnomalyOptions(Section):
    """Anomaly (anomalib): thresholds on the normalised score and map, where 0.5 is the
    threshold anomalib computed at training."""

    image_threshold: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="Normalised image score at or above which a part is anomalous (0.5: the "
        "exported graph's own threshold). Moves the line's threshold without re-exporting.",
    )
    pixel_threshold: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="Normalised anomaly-map value at or above which a pixel is anomalous "
        "(0.5: the graph's own pixel threshold).",
    )
    metadata: Path | None = Field(
        None,
        description="anomalib v1 metadata.json (thresholds and min/max) for a model that "
        "outputs raw values; None looks for metadata.json next to the model.",
    )
    max_det: int = Field(300, ge=1, description="Most localised anomalies kept (largest first).")


class ClassificationOptions(Section):
    """Classification: the top-1 class decides."""

    ok_classes: list[str] = Field(
        default_factory=lambda: ["ok", "good", "pass"],
        description="Class names (case-insensitive) of a good part; a top-1 class not in "
        "this list is a finding.",
    )


class OnnxRuntimeOptions(Section):
    """ONNX Runtime (CPU) options."""

    threads: int = Field(1, ge=1, le=64, description="Intra-op CPU threads.")


class TorchOptions(Section):
    """torch backend options."""

    fp16: bool = Field(False, description="Run in FP16 (on a CUDA device).")


_BACKENDS = ("onnxruntime", "torch")


class ModelConfig(Section):
    """One model of a recipe and how to read its outputs.

    The family and its layout are read from the model at start (Ultralytics ``task``
    metadata, anomalib output names, output shapes); ``family`` overrides that. Options
    live in one block per family (``detection``, ``segmentation``, ``anomaly``,
    ``classification``) and per backend (``onnxruntime``, ``torch``; ``engine`` for
    TensorRT and CUDA graphs). Giving a block that does not apply is an error.
    """

    name: str = Field("detector", description="Name used in findings, logs and metrics.")
    family: Literal["auto", "detection", "segmentation", "anomaly", "classification"] = Field(
        "auto",
        description="Model family; selects the postprocessor. 'auto' reads it from the model "
        "(a family options block given here must then agree with it).",
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
        None,
        description="Model input (height, width); None reads it from the model. Must equal a "
        "static model input.",
    )
    class_names: list[str] | None = Field(
        None,
        description="Class names; None reads the model's 'names' metadata. Their count must "
        "fit the model's outputs.",
    )
    detection: DetectionOptions = Field(
        default_factory=DetectionOptions, description="Detection options."
    )
    segmentation: SegmentationOptions = Field(
        default_factory=SegmentationOptions, description="Segmentation options."
    )
    anomaly: AnomalyOptions = Field(default_factory=AnomalyOptions, description="Anomaly options.")
    classification: ClassificationOptions = Field(
        default_factory=ClassificationOptions, description="Classification options."
    )
    onnxruntime: OnnxRuntimeOptions = Field(
        default_factory=OnnxRuntimeOptions, description="ONNX Runtime options."
    )
    torch: TorchOptions = Field(default_factory=TorchOptions, description="torch options.")
    preprocess: PreprocessConfig = Field(
        default_factory=PreprocessConfig, description="Preprocessing of this model's input."
    )
    engine: EngineConfig = Field(
        default_factory=EngineConfig,
        description="Engine policy (tensorrt; cuda_graph and warm-up for torch).",
    )

    @model_validator(mode="after")
    def _device_path_exists(self) -> ModelConfig:
        if self.preprocess.device == "cuda" and self.backend not in DEVICE_BACKENDS:
            raise ValueError(
                f"preprocess.device 'cuda' needs a backend with a device path "
                f"{list(DEVICE_BACKENDS)}, not {self.backend!r}"
            )
        return self

    @field_validator("sha256")
    @classmethod
    def _sha256_is_hex(cls, v: str | None) -> str | None:
        if v is None:
            return None
        digest = v.strip().lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError("sha256 must be 64 hex digits (sha256sum of the model file)")
        return digest

    @model_validator(mode="after")
    def _blocks_apply(self) -> ModelConfig:
        given = [f for f in FAMILIES if f in self.model_fields_set]
        if len(given) > 1:
            raise ValueError(f"options for several families {given}: a model has one family")
        if given and self.family not in ("auto", given[0]):
            raise ValueError(f"'{given[0]}' options given for a model of family '{self.family}'")
        for backend in _BACKENDS:
            if backend in self.model_fields_set and self.backend != backend:
                raise ValueError(f"'{backend}' options given but backend is '{self.backend}'")
        if "engine" in self.model_fields_set and self.backend == "onnxruntime":
            raise ValueError("'engine' options apply to the tensorrt and torch backends")
        return self

    @property
    def declared_family(self) -> Family | None:
        """The family the config asks for: ``family``, else the one options block given."""
        if self.family != "auto":
            return self.family
        given = [f for f in FAMILIES if f in self.model_fields_set]
        return given[0] if given else None

    @property
    def anomaly_class(self) -> str:
        """The class name of an anomaly model's findings."""
        return self.class_names[0] if self.class_names else "anomaly"


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

    @model_validator(mode="after")
    def _anomaly_rules_fit(self) -> RecipeConfig:
        """An anomaly finding's confidence is its normalised score, which is at least the
        model's threshold; a higher min_confidence would be a second, hidden threshold."""
        table = self.rules.min_confidence
        for m in self.models:
            if m.declared_family != "anomaly":
                continue
            floor = min(m.anomaly.image_threshold, m.anomaly.pixel_threshold)
            need = table.get(m.anomaly_class, table.get("default", 0.0))
            if need > floor:
                raise ValueError(
                    f"rules.min_confidence for '{m.anomaly_class}' is {need}, above model "
                    f"'{m.name}' anomaly thresholds (lowest {floor}): anomalies between them "
                    f"would pass; set rules.min_confidence.{m.anomaly_class}: {floor} or lower"
                )
        return self
