"""One part's inspection: frame → quality gate → preprocess → infer → postprocess → decide.

Each model of a recipe runs through a *runner* chosen once at load, by the model's
``preprocess.device`` (``RUNNERS``):

- ``cpu``: ``HostRunner`` here: CPU preprocessing, ``backend.infer`` on a host tensor,
  the family's postprocessor;
- ``cuda``: ``gpu/runner.py``'s ``DeviceRunner``: the frame from pinned memory through the
  fused kernel, the backend's device path and the detector kernels, one CUDA graph per
  part (imported only when configured, so a CPU daemon never imports CUDA).

A runner's ``submit`` starts a part and ``collect`` finishes it, so the worker can keep
several parts on the device (``inflight.py``); ``begin_part``/``finish_part`` do that for
every model of a recipe, and ``inspect_part`` is both in one call. With device runners the
quality gate runs on the host after the submit, while the GPU works; its NG still wins.
Every failure becomes an NG verdict with a reason code here, so nothing above this layer
has to guess: a bad frame is ``no_image``, a frame the recipe's quality gate refuses
(black, flat, saturated, blurred, no part) is ``image_quality``, a backend or model
failure is ``error``.
``prove_recipe`` runs the same path once at start, so a model whose outputs cannot be
read stops the start instead of failing every part.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Protocol

from inspector import metrics
from inspector.backends.base import Backend
from inspector.camera.base import FrameAllocator
from inspector.config import ModelConfig, PipelineConfig, QualityConfig, RecipeConfig
from inspector.decide import decide
from inspector.errors import FrameError, InspectorError, ModelError
from inspector.logging import get_logger
from inspector.models.base import Postprocessor
from inspector.preprocess.cpu import HostPreprocessor
from inspector.quality import check_quality
from inspector.registry import Registry
from inspector.types import Finding, Frame, Reason, Verdict, ng

log = get_logger(__name__)

#: How a model runs, by ``preprocess.device``: imported only when configured.
RUNNERS = Registry(
    "preprocess device",
    {"cpu": "inspector.inspect:HostRunner", "cuda": "inspector.gpu.runner:DeviceRunner"},
)


class Runner(Protocol):
    """Runs one model on parts: ``submit`` starts one, ``collect`` finishes it (in order)."""

    #: Parts in a row that failed on the device (the app faults past a threshold).
    consecutive_failures: int
    #: How often the worker should call ``idle`` while no part waits (None: never).
    keepalive_s: float | None
    #: Whether ``submit`` only enqueues (device runners): the quality gate then runs on
    #: the host while the device works, instead of before.
    overlaps: bool

    def submit(self, frame: Frame) -> Any: ...
    def ready(self, ticket: Any) -> bool: ...
    def collect(self, ticket: Any) -> tuple[list[Finding], dict[str, int]]: ...
    def idle(self) -> None: ...
    def close(self) -> None: ...


def runner_class(device: str) -> Any:
    """The runner class for ``preprocess.device`` (imports its module)."""
    return RUNNERS.load(device)


def frame_allocator(devices: Collection[str]) -> FrameAllocator | None:
    """Where cameras put frames: pinned memory when any model runs on the device."""
    if "cuda" not in devices:
        return None
    alloc: FrameAllocator = runner_class("cuda").frame_allocator()
    return alloc


@dataclass(slots=True)
class _Done:
    """A host runner's part: already computed (or failed) when submitted."""

    findings: list[Finding]
    stage_ns: dict[str, int]


class HostRunner:
    """The host path: CPU preprocessing, ``backend.infer`` on a host tensor, postprocess.

    ``submit`` does the whole part (the worker then collects it at once); one instance
    serves one worker thread (the preprocessing buffers are reused).
    """

    keepalive_s: float | None = None
    overlaps = False  # submit does the whole part

    def __init__(self, cfg: ModelConfig, backend: Backend, post: Postprocessor) -> None:
        self.backend, self.post = backend, post
        self.consecutive_failures = 0
        # Reused buffers and per-model constants: one worker thread per model.
        self._host = HostPreprocessor(post.input_hw, cfg.preprocess)

    def submit(self, frame: Frame) -> _Done:
        t0 = time.monotonic_ns()
        # uint16 and other non-8-bit frames are refused inside with FrameError.
        tensor, geometry = self._host(frame.image, frame.pixel_format)  # type: ignore[arg-type]
        t1 = time.monotonic_ns()
        outputs = self.backend.infer(tensor)
        t2 = time.monotonic_ns()
        findings = self.post(outputs, geometry)
        t3 = time.monotonic_ns()
        return _Done(findings, {"preprocess": t1 - t0, "infer": t2 - t1, "postprocess": t3 - t2})

    def ready(self, ticket: _Done) -> bool:
        return True

    def collect(self, ticket: _Done) -> tuple[list[Finding], dict[str, int]]:
        return ticket.findings, ticket.stage_ns

    def idle(self) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class LoadedModel:
    """A model ready to run: its backend, its postprocessor and its runner."""

    cfg: ModelConfig
    backend: Backend
    post: Postprocessor
    runner: Runner = field(default=None)  # type: ignore[assignment]  # set below

    def __post_init__(self) -> None:
        if self.runner is None:
            self.runner = HostRunner(self.cfg, self.backend, self.post)

    @classmethod
    def with_runner(
        cls, cfg: ModelConfig, backend: Backend, post: Postprocessor, pipeline: PipelineConfig
    ) -> LoadedModel:
        """The model with the runner its ``preprocess.device`` names (chosen once, here)."""
        if cfg.preprocess.device == "cpu":
            return cls(cfg, backend, post)
        runner = runner_class(cfg.preprocess.device)(
            cfg,
            backend,
            post,
            frames_in_flight=pipeline.frames_in_flight,
            keepalive_ms=pipeline.gpu_keepalive_ms,
        )
        return cls(cfg, backend, post, runner)

    def run(self, frame: Frame) -> tuple[list[Finding], dict[str, int]]:
        """One part through this model alone (tools; the worker goes through the runner)."""
        return self.runner.collect(self.runner.submit(frame))


@dataclass
class LoadedRecipe:
    """A recipe whose models are loaded and warm."""

    cfg: RecipeConfig
    models: list[LoadedModel]

    def close(self) -> None:
        for m in self.models:
            m.runner.close()  # before the backend its device lanes use
            m.backend.close()


@dataclass(slots=True)
class PartInFlight:
    """A part submitted to every model of its recipe, not yet collected."""

    recipe: LoadedRecipe
    tickets: list[tuple[Runner, Any]] = field(default_factory=list)
    error: BaseException | None = None  # the first submit that failed
    refused: Verdict | None = None  # the quality gate's NG: no model ran
    stage_ns: dict[str, int] = field(default_factory=dict)


def gate(frame: Frame, cfg: QualityConfig, stage_ns: dict[str, int]) -> Verdict | None:
    """The recipe's image-quality gate: NG ``image_quality`` (counted) or None to go on.

    Raises FrameError for a frame that is not 8-bit (``finish_part`` makes it no_image).
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


def begin_part(frame: Frame, recipe: LoadedRecipe) -> PartInFlight:
    """Gate the frame and submit it to every model of the recipe. Never raises.

    On the host the gate comes first, so a refused frame costs no inference. When every
    runner only enqueues (device runners), the frame is submitted first and gated while
    the device works: the gate's time leaves the part's latency, and ``finish_part``
    still answers the gate's NG whatever the models found.
    """
    part = PartInFlight(recipe)
    overlap = all(m.runner.overlaps for m in recipe.models)
    if not overlap:
        _gate_into(part, frame)
        if part.refused is not None or part.error is not None:
            return part
    for model in recipe.models:
        try:
            part.tickets.append((model.runner, model.runner.submit(frame)))
        except Exception as exc:  # collected into the verdict by finish_part
            part.error = exc
            break
    if overlap and part.error is None:
        _gate_into(part, frame)
    return part


def _gate_into(part: PartInFlight, frame: Frame) -> None:
    """Run the recipe's gate on ``frame``; its NG or its failure goes into ``part``."""
    try:
        part.refused = gate(frame, part.recipe.cfg.quality, part.stage_ns)
    except Exception as exc:  # collected into the verdict by finish_part
        part.error = exc


def part_ready(part: PartInFlight) -> bool:
    """Whether ``finish_part`` would not wait."""
    return all(runner.ready(ticket) for runner, ticket in part.tickets)


def finish_part(part: PartInFlight) -> tuple[Verdict, dict[str, int]]:
    """Collect every submitted model (always all of them: each frees its device lane),
    then decide. Never raises."""
    stage_ns = part.stage_ns
    findings: list[Finding] = []
    error = part.error
    for runner, ticket in part.tickets:
        try:
            found, times = runner.collect(ticket)
        except Exception as exc:
            error = error or exc
            continue
        findings.extend(found)
        for k, v in times.items():
            stage_ns[k] = stage_ns.get(k, 0) + v
    if part.refused is not None:  # the gate's NG, whatever the models said
        return part.refused, stage_ns
    if error is not None:
        return _failed(error), stage_ns
    t0 = time.monotonic_ns()
    verdict = decide(findings, part.recipe.cfg.rules)
    stage_ns["decide"] = time.monotonic_ns() - t0
    return verdict, stage_ns


def _failed(exc: BaseException) -> Verdict:
    if isinstance(exc, FrameError):
        return ng(Reason.NO_IMAGE, str(exc))
    if isinstance(exc, InspectorError):
        return ng(Reason.ERROR, f"{type(exc).__name__}: {exc}")
    # fail closed on anything unexpected, and say what it was
    log.error("inspection_failed", error=repr(exc), exc_info=exc)
    return ng(Reason.ERROR, f"unexpected {type(exc).__name__}: {exc}")


def inspect_part(frame: Frame, recipe: LoadedRecipe) -> tuple[Verdict, dict[str, int]]:
    """Run every model of the recipe on the frame and decide. Never raises."""
    return finish_part(begin_part(frame, recipe))


def prove_recipe(recipe: LoadedRecipe, frame: Frame) -> None:
    """Run the whole path once (each model's runner: preprocess, infer, postprocess;
    decide) on a synthetic ``frame`` shaped like the camera's; the gate is skipped.

    Raises ModelError naming the model when any step fails: a model whose outputs its
    family cannot read stops the start (exit 78) instead of answering NG_ERROR for
    every part behind a READY station. On the device this also prepares a lane for the
    camera's frame format before the first part.
    """
    where = f"{frame.image.shape[1]}x{frame.image.shape[0]} {frame.pixel_format}"
    findings: list[Finding] = []
    for model in recipe.models:
        try:
            found, _ = model.run(frame)
        except Exception as exc:  # whatever it is, every part would fail the same way
            said = " ".join(str(exc).split())  # one line: runtimes' messages span several
            raise ModelError(
                f"recipe {recipe.cfg.id} model {model.cfg.name!r}: the warm-up part "
                f"({where} frame) failed: {type(exc).__name__}: {said}"
            ) from exc
        findings.extend(found)
    decide(findings, recipe.cfg.rules)
