"""Configuration: the one place where every setting is declared and validated.

``load_config(path)`` reads YAML, validates it with the pydantic models below and maps
every validation error back to the YAML line and key that caused it. Nothing else in
the daemon reads YAML or environment for settings. Every model forbids unknown keys,
so a misspelled key is an error, never a silently ignored default: an inspection
daemon fails closed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from inspector.errors import ConfigError

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config.yaml"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- line
class LineConfig(_Model):
    """The production line as a whole."""

    name: str = Field("line-1", description="Name of the line, used in logs and metrics.")
    cycle_budget_ms: float = Field(
        30.0,
        gt=0,
        le=10_000,
        description="Trigger-to-verdict budget per part. A part whose verdict is not ready "
        "by then is NG with reason 'timeout'.",
    )


# ------------------------------------------------------------------------ trigger
class TriggerConfig(_Model):
    """Where part triggers come from."""

    source: Literal["internal", "plc", "camera"] = Field(
        "internal",
        description="'internal': a timer at rate_hz (simulation); 'plc': TRIGGER_SEQ over "
        "Modbus; 'camera': the camera's hardware trigger, frames matched to PLC sequence.",
    )
    rate_hz: float = Field(
        10.0, gt=0, le=1000, description="Parts per second of the internal trigger."
    )
    max_parts: int | None = Field(
        None,
        ge=1,
        description="Stop after this many parts (internal trigger only); None runs forever.",
    )


# ------------------------------------------------------------------------- camera
DefectKind = Literal["scratch", "spot", "missing_hole"]
_DEFECT_KINDS: tuple[DefectKind, ...] = ("scratch", "spot", "missing_hole")


class SimDefectConfig(_Model):
    """Defects the simulated line puts on parts."""

    rate: float = Field(0.3, ge=0, le=1, description="Fraction of parts that carry defects.")
    kinds: list[DefectKind] = Field(
        default_factory=lambda: list(_DEFECT_KINDS),
        min_length=1,
        description="Defect kinds to draw from.",
    )
    max_per_part: int = Field(2, ge=1, le=10, description="Most defects on one defective part.")


class SimCameraConfig(_Model):
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


class FolderCameraConfig(_Model):
    """Replay images from a directory, in name order."""

    path: Path = Field(description="Directory of PNG/JPEG/BMP/TIFF images.")
    labels: Path | None = Field(
        None, description="Optional JSON labels file: {image name: [[class, x1, y1, x2, y2], ...]}."
    )
    loop: bool = Field(False, description="Start again at the first image after the last.")
    pixel_format: Literal["Mono8", "BGR8"] = Field(
        "BGR8", description="Read images as Mono8 or BGR8."
    )


class GenicamCameraConfig(_Model):
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


class CameraConfig(_Model):
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


# ----------------------------------------------------------------- preprocess/model
class PreprocessConfig(_Model):
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


class EngineConfig(_Model):
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


class ModelConfig(_Model):
    """One model of a recipe and how to read its outputs."""

    name: str = Field("detector", description="Name used in findings, logs and metrics.")
    family: Literal["detection", "segmentation", "anomaly", "classification"] = Field(
        "detection", description="Model family; selects the postprocessor."
    )
    path: Path = Field(description="Model file: ONNX for onnxruntime/tensorrt, .pt for torch.")
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


# -------------------------------------------------------------------------- rules
Point = tuple[float, float]


class RulesConfig(_Model):
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


class RecipeConfig(_Model):
    """A product variant: the models to run and the rules that decide."""

    id: int = Field(ge=1, le=65535, description="RECIPE_ID the PLC selects this recipe with.")
    name: str = Field(description="Human name of the product variant.")
    models: list[ModelConfig] = Field(min_length=1, description="Models run on every part.")
    rules: RulesConfig = Field(default_factory=RulesConfig, description="Decision rules.")


# --------------------------------------------------------------------------- PLC
class PlcConfig(_Model):
    """Modbus TCP link to the PLC (docs/plc.md has the register map)."""

    enabled: bool = Field(False, description="Talk to a PLC; False runs without one.")
    role: Literal["client", "server"] = Field(
        "client",
        description="'client': the daemon polls and writes the PLC; 'server': the daemon "
        "serves the map to a PLC that polls (as Cognex/Keyence sensors do).",
    )
    host: str = Field("127.0.0.1", description="PLC address (client) or bind address (server).")
    port: int = Field(
        502,
        ge=0,
        le=65535,
        description="Modbus TCP port; 0 (server role or embedded simulator) picks a free one.",
    )
    unit_id: int = Field(1, ge=0, le=255, description="Modbus unit (slave) id.")
    in_base: int = Field(0, ge=0, le=65535, description="Base address of block A (PLC → vision).")
    out_base: int = Field(
        100, ge=0, le=65535, description="Base address of block B (vision → PLC)."
    )
    poll_ms: float = Field(2.0, gt=0, description="Block A poll period (client role).")
    result_queue: int = Field(8, ge=1, le=64, description="Most unacknowledged results.")
    backoff_s: float = Field(0.2, gt=0, description="First reconnect delay; doubles up to the cap.")
    backoff_max_s: float = Field(5.0, gt=0, description="Reconnect delay cap.")
    heartbeat_timeout_s: float = Field(
        1.0, gt=0, description="PLC_HEARTBEAT silent this long means the PLC is gone."
    )
    simulator: bool = Field(
        False, description="Start the embedded PLC simulator on host:port (demo, tests)."
    )
    simulator_rate_hz: float = Field(
        10.0, gt=0, le=1000, description="Parts per second the embedded simulator triggers."
    )
    simulator_deadline_ms: float = Field(
        100.0,
        gt=0,
        description="Trigger-to-verdict deadline the embedded simulator enforces, like the "
        "distance from camera to reject gate on a real line.",
    )


# ----------------------------------------------------------------------- services
class PipelineConfig(_Model):
    """Queues and workers of the per-part loop."""

    queue_depth: int = Field(
        4, ge=1, le=64, description="Parts waiting for inference; a trigger beyond it is NG."
    )
    frames_in_flight: int = Field(2, ge=1, le=8, description="GPU frames in flight (cuda).")
    cpus: tuple[int, ...] = Field(
        (),
        description="CPUs the pipeline's threads (acquisition, inference worker, publisher) "
        "are pinned to (Linux); empty lets the OS place them. Pinning keeps the model's "
        "weights in one core's caches and the hand-offs between the threads on warm cores; "
        "with cores kept free of other work (e.g. isolcpus on a Jetson) it cuts jitter.",
    )

    @field_validator("cpus")
    @classmethod
    def _cpus_are_cpu_numbers(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(c < 0 for c in v):
            raise ValueError("CPU numbers start at 0")
        return v


class MetricsConfig(_Model):
    """Prometheus endpoint."""

    enabled: bool = Field(True, description="Serve /metrics.")
    host: str = Field("127.0.0.1", description="Bind address; loopback by default.")
    port: int = Field(9108, ge=0, le=65535, description="Port; 0 picks a free one.")


class LoggingConfig(_Model):
    """Structured logs."""

    format: Literal["auto", "json", "console"] = Field(
        "auto", description="'auto': console on a terminal, JSON lines otherwise."
    )
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")
    per_part: bool = Field(True, description="One log line per part with its verdict.")


class ArchiveConfig(_Model):
    """NG image archive."""

    enabled: bool = Field(False, description="Save images of NG parts.")
    dir: Path = Field(Path("archive"), description="Archive directory.")
    max_files: int = Field(10_000, ge=1, description="Oldest images are deleted past this count.")


class Config(_Model):
    """The whole daemon configuration (config.yaml)."""

    line: LineConfig = Field(default_factory=LineConfig, description="The line.")
    trigger: TriggerConfig = Field(default_factory=TriggerConfig, description="Part triggers.")
    camera: CameraConfig = Field(default_factory=CameraConfig, description="Camera source.")
    recipes: list[RecipeConfig] = Field(min_length=1, description="Product recipes.")
    default_recipe: int = Field(1, ge=1, description="Recipe in force until the PLC selects one.")
    plc: PlcConfig = Field(default_factory=PlcConfig, description="PLC link.")
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig, description="Pipeline.")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="Metrics.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Logs.")
    archive: ArchiveConfig = Field(default_factory=ArchiveConfig, description="NG archive.")

    @model_validator(mode="after")
    def _recipes_consistent(self) -> Config:
        ids = [r.id for r in self.recipes]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"recipe ids must be unique; repeated: {dupes}")
        if self.default_recipe not in ids:
            raise ValueError(f"default_recipe {self.default_recipe} is not one of {ids}")
        return self

    @model_validator(mode="after")
    def _trigger_consistent(self) -> Config:
        src = self.trigger.source
        if src in ("plc", "camera") and not self.plc.enabled:
            raise ValueError(f"trigger.source '{src}' needs the PLC link: set plc.enabled: true")
        if src == "camera" and not (
            self.camera.type == "genicam" and self.camera.genicam.trigger_mode == "hardware"
        ):
            raise ValueError(
                "trigger.source 'camera' needs camera.type 'genicam' with trigger_mode 'hardware'"
            )
        return self

    def recipe(self, recipe_id: int) -> RecipeConfig:
        for r in self.recipes:
            if r.id == recipe_id:
                return r
        raise ConfigError(f"unknown recipe id {recipe_id}")


# ------------------------------------------------------------------------ loading
Loc = tuple[int | str, ...]


def _yaml_lines(node: yaml.Node, path: Loc = ()) -> dict[Loc, int]:
    """Map each key path of a composed YAML document to its 1-based line."""
    lines: dict[Loc, int] = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, key.value)
            lines.update(_yaml_lines(value, sub))
            lines[sub] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.update(_yaml_lines(item, (*path, i)))
    return lines


def _line_of(lines: dict[Loc, int], loc: Loc) -> int | None:
    """The line of the deepest existing prefix of ``loc`` (a missing key → its parent)."""
    for n in range(len(loc), -1, -1):
        if (found := lines.get(tuple(loc[:n]))) is not None:
            return found
    return None


def format_errors(exc: ValidationError, lines: dict[Loc, int], source: str) -> list[str]:
    """One message per validation error: ``file:line: key.path: message``."""
    out = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        key = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_of(lines, loc)
        where = f"{source}:{line}" if line is not None else source
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r} (misspelled?)"
        out.append(f"{where}: {key}: {msg}")
    return out


def parse_config(text: str, source: str = "<config>") -> Config:
    """Validate YAML text; raise ConfigError listing every problem with its line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    lines = _yaml_lines(node) if node is not None else {}
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("\n".join(format_errors(exc, lines, source))) from exc


def load_config(path: Path | str | None = None) -> Config:
    """Read and validate a config file (default: the repository's config.yaml).

    Relative paths inside the config are resolved against the file's directory.
    """
    p = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror}") from exc
    return resolve_paths(parse_config(text, str(p)), p.parent)


def resolve_paths(cfg: Config, base: Path) -> Config:
    """Make every relative model/camera path absolute against ``base``."""

    def fix(p: Path) -> Path:
        return p if p.is_absolute() else (base / p).resolve()

    recipes = [
        r.model_copy(
            update={
                "models": [
                    m.model_copy(
                        update={
                            "path": fix(m.path),
                            "engine": m.engine.model_copy(update={"dir": fix(m.engine.dir)}),
                        }
                    )
                    for m in r.models
                ]
            }
        )
        for r in cfg.recipes
    ]
    camera = cfg.camera
    if camera.folder is not None:
        folder = camera.folder.model_copy(
            update={
                "path": fix(camera.folder.path),
                "labels": fix(camera.folder.labels) if camera.folder.labels else None,
            }
        )
        camera = camera.model_copy(update={"folder": folder})
    if camera.genicam.cti:
        genicam = camera.genicam.model_copy(update={"cti": [fix(p) for p in camera.genicam.cti]})
        camera = camera.model_copy(update={"genicam": genicam})
    archive = cfg.archive.model_copy(update={"dir": fix(cfg.archive.dir)})
    return cfg.model_copy(update={"recipes": recipes, "camera": camera, "archive": archive})


def config_hash(cfg: Config) -> str:
    """A short, stable fingerprint of the validated config (build_info, CONFIG_CRC)."""
    blob = json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def config_schema() -> dict[str, Any]:
    """The JSON Schema of the config (``inspector config-schema``)."""
    return Config.model_json_schema()
