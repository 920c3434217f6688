"""Recognise a model at start: its family and output layout (before step 5 ever runs).

Read in this order, each only when the previous says nothing:

1. Ultralytics ``task`` metadata (every Ultralytics export carries it): ``detect``,
   ``segment`` (instance masks), ``semantic``, ``classify``; ``pose``, ``obb`` and
   ``depth`` are refused with a clear message, since no family here reads keypoints,
   rotated boxes or depth.
2. Output names: anomalib's ``pred_score`` / ``anomaly_map``; TensorRT EfficientNMS's
   ``num_dets``, ``det_boxes``, ``det_scores``, ``det_classes``.
3. Output shapes and dtypes: a rank-3 detection head plus rank-4 prototypes is instance
   segmentation; ``[1, nc]`` is a classifier; an integer ``[1, h, w]`` is a class map;
   ``[1, N, 6]`` with N ≤ 1000 is an NMS-free detector; another float ``[1, A, B]`` is a
   detection head; ``[1, C, h, w]`` is a semantic map, or an anomalib v1 raw map when
   its ``metadata.json`` lies next to the model (``v1_metadata_path``).

``model.family`` (or a family options block) overrides nothing silently: when the model
says something else, start is refused, and the message lists the model's inputs and
outputs and names the family that fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from inspector.config import ModelConfig
from inspector.errors import ModelError
from inspector.model_info import ModelInfo, TensorSpec

#: Ultralytics tasks no family reads, and why.
REFUSED_TASKS = {
    "pose": "keypoints (pose)",
    "obb": "rotated boxes (OBB)",
    "depth": "depth maps",
}
_TASK_FAMILY = {
    "detect": ("detection", "auto"),
    "segment": ("segmentation", "instance"),
    "semantic": ("segmentation", "semantic"),
    "classify": ("classification", "auto"),
}
EFFICIENT_NMS_NAMES = (
    ("num_dets", "det_boxes", "det_scores", "det_classes"),
    ("num_detections", "detection_boxes", "detection_scores", "detection_classes"),
)
#: An NMS-free head keeps at most this many detections ([1, N, 6]); raw heads have more.
MAX_END2END = 1000
_INTEGER = ("uint8", "int8", "int32", "int64", "bool")


@dataclass(frozen=True, slots=True)
class Identity:
    """What a model is: its family and its output layout ('auto' = the family decides)."""

    family: str
    layout: str
    source: str  # what told us: "metadata", "output names", "output shapes", "config"


def describe(info: ModelInfo) -> str:
    """The model's inputs, outputs and telling metadata, for error messages."""

    def spec(t: TensorSpec) -> str:
        dims = ",".join("?" if d is None else str(d) for d in t.shape)
        return f"{t.name} {t.dtype} [{dims}]"

    meta = {k: info.metadata[k] for k in ("task", "end2end", "imgsz") if k in info.metadata}
    text = (
        f"inputs: {'; '.join(spec(t) for t in info.inputs)}; "
        f"outputs: {'; '.join(spec(t) for t in info.outputs)}"
    )
    return text + (f"; metadata {meta}" if meta else "")


def v1_metadata_path(model: ModelConfig) -> Path | None:
    """anomalib v1 ``metadata.json``: configured, else ``<stem>.metadata.json`` next to the
    model, else anomalib's own layout (``metadata.json`` beside ``model.onnx``). A plain
    ``metadata.json`` beside any other file is not taken: it may belong to another model."""
    if model.anomaly.metadata is not None:
        return model.anomaly.metadata
    path = Path(model.path)
    for near in (path.with_name(f"{path.stem}.metadata.json"), path.with_name("metadata.json")):
        if near.is_file() and (near.name != "metadata.json" or path.stem == "model"):
            return near
    return None


def efficient_nms_indices(outputs: tuple[TensorSpec, ...]) -> tuple[int, int, int, int] | None:
    """Indices of (count, boxes, scores, classes) when the outputs are EfficientNMS's."""
    names = [o.name.lower() for o in outputs]
    for wanted in EFFICIENT_NMS_NAMES:
        if all(w in names for w in wanted):
            a, b, c, d = (names.index(w) for w in wanted)
            return a, b, c, d
    return None


def _is_int(spec: TensorSpec) -> bool:
    return spec.dtype in _INTEGER or spec.dtype.startswith("tensor(int")


def _by_shapes(model: ModelConfig, info: ModelInfo) -> Identity | None:
    outs = info.outputs
    ranks = sorted(len(o.shape) for o in outs)
    if len(outs) == 2 and ranks == [3, 4]:
        return Identity("segmentation", "instance", "output shapes")
    if not outs:
        return None
    first = outs[0]
    rank = len(first.shape)
    if rank == 4:
        if v1_metadata_path(model) is not None:
            return Identity("anomaly", "v1", "metadata.json")
        return Identity("segmentation", "semantic", "output shapes")
    if rank == 3 and _is_int(first):
        return Identity("segmentation", "semantic", "output shapes")
    if rank == 3:
        if v1_metadata_path(model) is not None:
            return Identity("anomaly", "v1", "metadata.json")
        n, cols = first.shape[1], first.shape[2]
        if cols == 6 and isinstance(n, int) and n <= MAX_END2END:
            return Identity("detection", "end2end", "output shapes")
        return Identity("detection", "auto", "output shapes")
    if rank == 2 and len(outs) == 1:
        return Identity("classification", "auto", "output shapes")
    return None


def _from_model(model: ModelConfig, info: ModelInfo) -> Identity | None:
    """What the model itself says, ignoring the config's family."""
    task = info.metadata.get("task", "").strip().lower()
    if task in REFUSED_TASKS:
        raise ModelError(
            f"{model.name}: an Ultralytics '{task}' model outputs {REFUSED_TASKS[task]}, which "
            f"no family reads; export a detect, segment or classify model ({describe(info)})"
        )
    if task in _TASK_FAMILY:
        family, layout = _TASK_FAMILY[task]
        return Identity(family, layout, "metadata")
    names = [o.name.lower() for o in info.outputs]
    if any("anomaly_map" in n or "pred_score" in n for n in names):
        return Identity("anomaly", "v2", "output names")
    if efficient_nms_indices(info.outputs) is not None:
        return Identity("detection", "efficient_nms", "output names")
    return _by_shapes(model, info)


def identify(model: ModelConfig, info: ModelInfo) -> Identity:
    """The family and layout of ``model``; ModelError when the config disagrees with it."""
    found = _from_model(model, info)
    declared = model.declared_family
    if declared is not None and found is not None and found.family != declared:
        raise ModelError(
            f"{model.name}: configured as '{declared}' but the model looks like "
            f"'{found.family}' ({found.source}): {describe(info)}. Set family: {found.family} "
            "(or leave it out), or point path at the intended model"
        )
    if found is None:
        if declared is None:
            raise ModelError(
                f"{model.name}: cannot tell the model's family from its outputs; set "
                f"family ({describe(info)})"
            )
        found = Identity(declared, "auto", "config")
    wanted = _configured_layout(model, found.family)
    # A layout guessed from shapes yields to the config (the family's build then checks
    # the shapes against it); one read from metadata or names does not.
    guessed = found.source == "output shapes"
    if wanted != "auto" and found.layout not in ("auto", wanted) and not guessed:
        raise ModelError(
            f"{model.name}: configured layout '{wanted}' but the model's outputs are "
            f"'{found.layout}': {describe(info)}"
        )
    return Identity(found.family, wanted if wanted != "auto" else found.layout, found.source)


def _configured_layout(model: ModelConfig, family: str) -> str:
    if family == "detection":
        return model.detection.layout
    if family == "segmentation":
        return model.segmentation.layout
    return "auto"
