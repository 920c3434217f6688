"""Golden check: a new engine must agree with ONNX Runtime before it is used.

After any build, the golden images go through ONNX Runtime (the reference; the model
as trained) and through the new engine. Each output is compared element by element
with a tolerance that depends on the precision, and the verdicts the two produce are
compared. An engine that disagrees on one image is refused: a reduced-precision
engine that turns an NG part OK is an escape waiting to happen.

Pure numpy; the two runners and the verdict function are plain callables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inspector.config import PreprocessConfig
from inspector.errors import CameraError, EngineError
from inspector.preprocess.geometry import Geometry

Tensor = npt.NDArray[np.float32]
Runner = Callable[[Tensor], list[Tensor]]
VerdictOf = Callable[[list[Tensor], Geometry], Any]
#: Reads a folder of images (name order) as ``(file name, BGR8 image)``, raising
#: CameraError on a file it cannot decode. The daemon's own reader is
#: ``camera.folder.read_folder``; it is passed in so engine/ never imports a camera.
ReadFolder = Callable[[Path], Iterable[tuple[str, npt.NDArray[np.uint8]]]]


@dataclass(frozen=True, slots=True)
class Tolerance:
    """An element is off when ``|new - ref| > atol + rtol * |ref|``; an output passes
    when at most ``max_off_fraction`` of its elements are off."""

    atol: float
    rtol: float
    max_off_fraction: float


#: fp32 builds clear TF32, so they must match closely; fp16 keeps ~3 significant
#: digits; int8 is judged mostly by the verdicts, with a loose element check.
TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(atol=1e-3, rtol=1e-3, max_off_fraction=0.0),
    "fp16": Tolerance(atol=1e-2, rtol=1e-2, max_off_fraction=1e-3),
    "int8": Tolerance(atol=5e-2, rtol=5e-2, max_off_fraction=2e-2),
}


@dataclass(frozen=True, slots=True)
class OutputDiff:
    index: int
    max_abs: float
    off_fraction: float
    ok: bool
    note: str = ""


@dataclass(frozen=True, slots=True)
class ImageResult:
    image: str
    outputs: tuple[OutputDiff, ...]
    ref_verdict: str | None
    new_verdict: str | None

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outputs) and self.ref_verdict == self.new_verdict


@dataclass(frozen=True, slots=True)
class GoldenReport:
    precision: str
    images: tuple[ImageResult, ...]

    @property
    def ok(self) -> bool:
        return bool(self.images) and all(r.ok for r in self.images)

    def failures(self) -> list[str]:
        """One line per disagreement, for the error and the log."""
        out = [] if self.images else ["no golden images were run"]
        for r in self.images:
            if r.ref_verdict != r.new_verdict:
                out.append(f"{r.image}: verdict {r.new_verdict} vs reference {r.ref_verdict}")
            for o in r.outputs:
                if not o.ok:
                    out.append(
                        f"{r.image}: output {o.index}: {o.note or ''}max |diff| {o.max_abs:.4g}, "
                        f"{o.off_fraction:.2%} of elements outside {self.precision} tolerance"
                    )
        return out

    def summary(self) -> dict[str, object]:
        """What goes into the manifest's ``golden`` field."""
        worst = max((o.max_abs for r in self.images for o in r.outputs), default=0.0)
        return {
            "ok": self.ok,
            "images": len(self.images),
            "verdicts_agree": all(r.ref_verdict == r.new_verdict for r in self.images),
            "max_abs_diff": float(worst),
            "tolerance": vars_of(TOLERANCES[self.precision]),
        }


def vars_of(tol: Tolerance) -> dict[str, float]:
    return {"atol": tol.atol, "rtol": tol.rtol, "max_off_fraction": tol.max_off_fraction}


def compare_outputs(
    ref: Sequence[npt.NDArray[Any]], new: Sequence[npt.NDArray[Any]], tol: Tolerance
) -> tuple[OutputDiff, ...]:
    """Compare two output lists (model order) element by element."""
    if len(ref) != len(new):
        return (OutputDiff(0, float("inf"), 1.0, False, f"{len(new)} outputs vs {len(ref)}; "),)
    diffs = []
    for i, (r, n) in enumerate(zip(ref, new, strict=True)):
        r64, n64 = np.asarray(r, np.float64), np.asarray(n, np.float64)
        if r64.shape != n64.shape:
            diffs.append(
                OutputDiff(i, float("inf"), 1.0, False, f"shape {n64.shape} vs {r64.shape}; ")
            )
            continue
        if not np.all(np.isfinite(n64)):
            diffs.append(OutputDiff(i, float("inf"), 1.0, False, "non-finite values; "))
            continue
        err = np.abs(n64 - r64)
        off = err > tol.atol + tol.rtol * np.abs(r64)
        frac = float(off.mean()) if off.size else 0.0
        max_abs = float(err.max()) if err.size else 0.0
        diffs.append(OutputDiff(i, max_abs, frac, frac <= tol.max_off_fraction))
    return tuple(diffs)


def _verdict_key(verdict: Any) -> str:
    reason = getattr(verdict, "reason", None)
    reason_text = getattr(reason, "value", reason)
    return f"{'OK' if getattr(verdict, 'ok', False) else 'NG'}:{reason_text}"


def run_golden(
    images: Sequence[tuple[str, Tensor, Geometry]],
    reference: Runner,
    candidate: Runner,
    precision: str,
    verdict_of: VerdictOf | None = None,
) -> GoldenReport:
    """Run every golden image through both runners and compare outputs and verdicts."""
    tol = TOLERANCES[precision]
    results = []
    for name, tensor, geometry in images:
        ref, new = reference(tensor), candidate(tensor)
        ref_v = new_v = None
        if verdict_of is not None:
            ref_v, new_v = (
                _verdict_key(verdict_of(ref, geometry)),
                _verdict_key(verdict_of(new, geometry)),
            )
        results.append(ImageResult(name, compare_outputs(ref, new, tol), ref_v, new_v))
    return GoldenReport(precision, tuple(results))


def require_agreement(report: GoldenReport) -> None:
    """Raise EngineError listing the disagreements unless the engine passed."""
    if not report.ok:
        lines = report.failures()
        shown = "\n  ".join(lines[:10]) + (
            f"\n  … and {len(lines) - 10} more" if len(lines) > 10 else ""
        )
        raise EngineError(
            f"the new {report.precision} engine disagrees with ONNX Runtime on the golden "
            f"images; refusing to use it:\n  {shown}"
        )


def golden_inputs(
    folder: Path | None,
    input_hw: tuple[int, int],
    cfg: PreprocessConfig,
    *,
    read_folder: ReadFolder | None = None,
    synthetic: int = 6,
    seed: int = 0,
) -> list[tuple[str, Tensor, Geometry]]:
    """Preprocessed golden images from ``folder``; synthetic frames when it has none.

    Synthetic frames (flat, gradient, seeded noise with bright blobs) catch a broken
    engine but not a subtle one; put real good and bad parts in ``<engine dir>/golden/``.
    """
    import cv2

    from inspector.preprocess.cpu import preprocess

    out = folder_inputs(folder, input_hw, cfg, read_folder) if folder is not None else []
    if out:
        return out
    rng = np.random.default_rng(seed)
    h, w = input_hw
    for i in range(synthetic):
        image: npt.NDArray[np.uint8]
        if i == 0:
            image = np.full((h, w), 128, np.uint8)
        elif i == 1:
            image = np.tile(np.linspace(0, 255, w, dtype=np.uint8), (h, 1))
        else:
            image = rng.integers(0, 256, (h, w), dtype=np.uint8)
            for _ in range(i):
                y, x = rng.integers(0, h), rng.integers(0, w)
                cv2.circle(image, (int(x), int(y)), int(rng.integers(4, 40)), 255, -1)
        tensor, geo = preprocess(np.asarray(image, np.uint8), "Mono8", input_hw, cfg)
        out.append((f"synthetic-{i}", tensor, geo))
    return out


def folder_inputs(
    folder: Path,
    input_hw: tuple[int, int],
    cfg: PreprocessConfig,
    read_folder: ReadFolder | None,
) -> list[tuple[str, Tensor, Geometry]]:
    """Every image of ``folder`` (name order), read and preprocessed as the daemon would."""
    from inspector.preprocess.cpu import preprocess

    if not folder.is_dir():
        return []
    if read_folder is None:
        raise EngineError(f"{folder}: no image reader was given to read it")
    out = []
    try:
        for name, image in read_folder(folder):
            tensor, geo = preprocess(image, "BGR8", input_hw, cfg)
            out.append((name, tensor, geo))
    except CameraError as exc:
        raise EngineError(f"image cannot be read: {exc}") from exc
    return out
