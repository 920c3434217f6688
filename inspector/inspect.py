"""One part's inspection: frame → quality gate → preprocess → infer → postprocess → decide.

These are the stage functions of steps 3-6 of the flow. They return values and keep no
per-part state; ``pipeline.py`` calls ``inspect_part`` from its worker thread. Every
failure becomes an NG verdict with a reason code here, so nothing above this layer has
to guess: a bad frame is ``no_image``, a frame the recipe's quality gate refuses
(black, flat, saturated, blurred, no part) is ``image_quality``, a backend or model
failure is ``error``. ``prove_recipe`` runs the same path once at start, so a model
whose outputs cannot be read stops the start instead of failing every part.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from inspector import metrics
from inspector.backends.base import Backend
from inspector.config import ModelConfig, QualityConfig, RecipeConfig
from inspector.decide import decide
from inspector.errors import FrameError, InspectorError, ModelError
from inspector.logging import get_logger
from inspector.models.base import Postprocessor
from inspector.preprocess.cpu import HostPreprocessor
from inspector.quality import check_quality
from inspector.types import Finding, Frame, Reason, Verdict, ng

log = get_logger(__name__)

#: Runs one model on one frame: returns findings and per-stage durations (ns).
ModelStage = Callable[[Frame], tuple[list[Finding], dict[str, int]]]


@dataclass
class LoadedModel:
    """A model ready to run: its backend, its postprocessor and its stage function."""

    cfg: ModelConfig
    backend: Backend
    post: Postprocessor
    stage: ModelStage = field(init=False)
    #: Closed before the backend (e.g. the GPU stage that replaced ``stage``).
    on_close: list[Callable[[], None]] = field(default_factory=list)
    #: Probes returning consecutive device failures; the app faults past a threshold.
    health: list[Callable[[], int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stage = self.run_cpu
        # Reused buffers and per-model constants: one worker thread per model.
        self._host = HostPreprocessor(self.post.input_hw, self.cfg.preprocess)

    def run_cpu(self, frame: Frame) -> tuple[list[Finding], dict[str, int]]:
        """The host path: CPU preprocessing, backend.infer on a host tensor, postprocess."""
        t0 = time.monotonic_ns()
        # uint16 and other non-8-bit frames are refused inside with FrameError.
        tensor, geometry = self._host(frame.image, frame.pixel_format)  # type: ignore[arg-type]
        t1 = time.monotonic_ns()
        outputs = self.backend.infer(tensor)
        t2 = time.monotonic_ns()
        findings = self.post(outputs, geometry)
        t3 = time.monotonic_ns()
        return findings, {"preprocess": t1 - t0, "infer": t2 - t1, "postprocess": t3 - t2}


@dataclass
class LoadedRecipe:
    """A recipe whose models are loaded and warm."""

    cfg: RecipeConfig
    models: list[LoadedModel]

    def close(self) -> None:
        for m in self.models:
            for hook in m.on_close:
                hook()
            m.backend.close()


def gate(frame: Frame, cfg: QualityConfig, stage_ns: dict[str, int]) -> Verdict | None:
    """The recipe's image-quality gate: NG ``image_quality`` (counted) or None to go on.

    Raises FrameError for a frame that is not 8-bit (``inspect_part`` makes it no_image).
    """
    if not cfg.enabled:
        return None
    t0 = time.monotonic_ns()
    failure = check_quality(frame.image, frame.pixel_format, cfg)
    stage_ns["quality"] = time.monotonic_ns() - t0
    if failure is None:
        return None
    metrics.IMAGE_QUALITY_REJECTS.labels(failure.check).inc()
    return ng(Reason.IMAGE_QUALITY, f"{failure.check}: {failure.detail}")


def inspect_part(frame: Frame, recipe: LoadedRecipe) -> tuple[Verdict, dict[str, int]]:
    """Gate the frame, run every model of the recipe on it and decide. Never raises."""
    stage_ns: dict[str, int] = {}
    findings: list[Finding] = []
    try:
        refused = gate(frame, recipe.cfg.quality, stage_ns)
        if refused is not None:
            return refused, stage_ns
        for model in recipe.models:
            found, times = model.stage(frame)
            findings.extend(found)
            for k, v in times.items():
                stage_ns[k] = stage_ns.get(k, 0) + v
    except FrameError as exc:
        return ng(Reason.NO_IMAGE, str(exc)), stage_ns
    except InspectorError as exc:
        return ng(Reason.ERROR, f"{type(exc).__name__}: {exc}"), stage_ns
    except Exception as exc:  # fail closed on anything unexpected, and say what it was
        log.exception("inspection_failed", error=repr(exc))
        return ng(Reason.ERROR, f"unexpected {type(exc).__name__}: {exc}"), stage_ns
    t0 = time.monotonic_ns()
    verdict = decide(findings, recipe.cfg.rules)
    stage_ns["decide"] = time.monotonic_ns() - t0
    return verdict, stage_ns


def prove_recipe(recipe: LoadedRecipe, frame: Frame) -> None:
    """Run the whole path once (preprocess, infer, postprocess of every model, decide) on
    a synthetic ``frame`` shaped like the camera's; the gate's verdict on it is ignored.

    Raises ModelError naming the model when any step fails: a model whose outputs its
    family cannot read stops the start (exit 78) instead of answering NG_ERROR for
    every part behind a READY station.
    """
    where = f"{frame.image.shape[1]}x{frame.image.shape[0]} {frame.pixel_format}"
    findings: list[Finding] = []
    for model in recipe.models:
        try:
            found, _ = model.stage(frame)
        except Exception as exc:  # whatever it is, every part would fail the same way
            said = " ".join(str(exc).split())  # one line: runtimes' messages span several
            raise ModelError(
                f"recipe {recipe.cfg.id} model {model.cfg.name!r}: the warm-up part "
                f"({where} frame) failed: {type(exc).__name__}: {said}"
            ) from exc
        findings.extend(found)
    decide(findings, recipe.cfg.rules)
