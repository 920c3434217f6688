"""``inspector eval``: a recipe over labelled images, with raw scores kept and every
threshold swept (an offline tool beside the flow; it reuses steps 3-6).

For each image the recipe's models run once (CPU preprocess → backend). Their outputs go
through two postprocessors: the recipe's own, whose verdict (``decide``) is exactly the
daemon's, and a *floored* copy with the candidate floors lowered (detection and
instance ``conf`` 0.001, anomaly ``image_threshold`` 0.001) so that the scores below
today's thresholds are kept. The floored findings feed the sweeps of ``sweep.py``:
per class, ``min_confidence`` (for anomaly models that is the anomaly score) and
``min_area_px``. Output: the confusion matrix at the recipe's thresholds, the operating
points of every sweep, optionally a PNG plot (matplotlib), raw findings as JSON lines,
and the recipe with the chosen thresholds written back as YAML.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from inspector.camera.folder import list_images
from inspector.config import ModelConfig, RecipeConfig
from inspector.decide import decide
from inspector.errors import ConfigError, FrameError, InspectorError
from inspector.evaluation import CHOICES
from inspector.evaluation.sweep import Sweep, sweep_all
from inspector.extras import install_hint
from inspector.inspect import LoadedRecipe
from inspector.models import build_postprocessor
from inspector.models.base import Postprocessor
from inspector.preprocess.cpu import HostPreprocessor
from inspector.replay import Confusion
from inspector.types import Finding, Reason, Verdict, ng

#: Candidate floor of the sweeps: Ultralytics' validation ``conf``.
SWEEP_FLOOR = 0.001


def floored(model: ModelConfig, family: str) -> ModelConfig:
    """The model's config with its family's candidate floor lowered (low scores kept).

    ``family`` is what the model was recognised as; it is set explicitly, since a
    copied options block would otherwise read as a declared family.
    """
    if family == "detection":
        update: dict[str, object] = {"detection": {"conf": SWEEP_FLOOR}}
    elif family == "segmentation":
        update = {"segmentation": {"conf": SWEEP_FLOOR}}
    elif family == "anomaly":
        update = {"anomaly": {"image_threshold": SWEEP_FLOOR}}
    else:
        return model
    ((key, change),) = update.items()
    block = getattr(model, key).model_copy(update=change)
    return model.model_copy(update={"family": family, key: block})


@dataclass
class Evaluation:
    """Everything ``inspector eval`` measured."""

    names: list[str] = field(default_factory=list)
    truth: list[bool] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    raw: list[list[Finding]] = field(default_factory=list)
    infer_ms: list[float] = field(default_factory=list)
    confusion: Confusion = field(default_factory=Confusion)
    sweeps: list[Sweep] = field(default_factory=list)


def _read(path: Path) -> tuple[np.ndarray, str]:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint8:
        raise FrameError(f"cannot read {path.name} as an 8-bit image")
    if image.ndim == 2:
        return image, "Mono8"
    if image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image, "BGR8"


def _progress(items: Sequence[Path], enabled: bool) -> Iterator[Path]:
    if enabled and sys.stderr.isatty():
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            yield from tqdm(items, desc="eval", unit="img", file=sys.stderr)
            return
    yield from items


def _one(
    recipe: LoadedRecipe,
    pre: list[HostPreprocessor],
    sweep_posts: list[Postprocessor],
    image: np.ndarray,
    fmt: str,
) -> tuple[Verdict, list[Finding], float]:
    findings: list[Finding] = []
    raw: list[Finding] = []
    t_infer = 0.0
    for model, host, sweep_post in zip(recipe.models, pre, sweep_posts, strict=True):
        tensor, geometry = host(image, fmt)
        t0 = time.perf_counter()
        outputs = model.backend.infer(tensor)
        t_infer += time.perf_counter() - t0
        findings += model.post(outputs, geometry)
        raw += sweep_post(outputs, geometry)
    return decide(findings, recipe.cfg.rules), raw, t_infer * 1e3


def evaluate(
    recipe: LoadedRecipe, images: Path, truth: dict[str, bool], *, progress: bool = True
) -> Evaluation:
    """Run the recipe over every image; never stops on one bad image (it is NG)."""
    pre = [HostPreprocessor(m.post.input_hw, m.cfg.preprocess) for m in recipe.models]
    sweep_posts = [
        build_postprocessor(floored(m.cfg, m.post.family), m.backend.info) for m in recipe.models
    ]
    ev = Evaluation()
    for path in _progress(list_images(images), progress):
        try:
            image, fmt = _read(path)
            verdict, raw, ms = _one(recipe, pre, sweep_posts, image, fmt)
        except InspectorError as exc:  # counted as NG with its reason, like the daemon
            reason = Reason.NO_IMAGE if isinstance(exc, FrameError) else Reason.ERROR
            verdict, raw, ms = ng(reason, str(exc)), [], float("nan")
        ev.names.append(path.name)
        ev.truth.append(truth[path.name])
        ev.verdicts.append(verdict)
        ev.raw.append(raw)
        ev.infer_ms.append(ms)
        ev.confusion.add(truth[path.name], verdict)
    ev.sweeps = sweep_all(ev.raw, np.array(ev.truth, bool), recipe.cfg.rules)
    return ev


def report(ev: Evaluation, out: IO[str]) -> None:
    """Confusion matrix, latency and the operating points of every sweep."""
    print(ev.confusion.table(), file=out)
    ms = np.array([m for m in ev.infer_ms if m == m])
    if ms.size:
        print(
            f"model time per image: p50 {np.percentile(ms, 50):.1f} ms, "
            f"p99 {np.percentile(ms, 99):.1f} ms ({ms.size} images)",
            file=out,
        )
    print("\nthreshold sweeps (escape rate / overkill rate):", file=out)
    for s in ev.sweeps:
        now = _at(s, s.current)
        print(
            f"  {s.rule}[{s.class_name}] now {s.current:g}: escape {now[0]:.2%} "
            f"overkill {now[1]:.2%}",
            file=out,
        )
        for name, (thr, esc, ovk) in s.operating_points().items():
            print(f"      {name:32s} {thr:10.4g}  escape {esc:.2%}  overkill {ovk:.2%}", file=out)


def _at(s: Sweep, value: float) -> tuple[float, float]:
    i = int(np.argmin(np.abs(s.thresholds - value)))
    return float(s.escape_rate[i]), float(s.overkill_rate[i])


def write_raw(ev: Evaluation, path: Path) -> None:
    """One JSON line per image: truth, verdict and every kept finding (raw scores)."""
    with path.open("w", encoding="utf-8") as out:
        for name, truth, verdict, raw in zip(ev.names, ev.truth, ev.verdicts, ev.raw, strict=True):
            record = {
                "image": name,
                "truth": "NG" if truth else "OK",
                "verdict": "OK" if verdict.ok else "NG",
                "reason": verdict.reason.value,
                "findings": [f.to_record() for f in raw],
            }
            out.write(json.dumps(record) + "\n")


def plot(ev: Evaluation, path: Path, title: str) -> None:
    """Escape and overkill rate against each swept threshold, one panel per sweep."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError(f"--plot needs matplotlib: {install_hint('eval')}") from exc
    n = len(ev.sweeps)
    cols = 2
    rows = max(1, (n + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(11, 3.2 * rows), squeeze=False)
    for ax, s in zip(axes.flat, ev.sweeps, strict=False):
        ax.plot(s.thresholds, s.escape_rate * 100, label="escape (NG passed)", color="tab:red")
        ax.plot(s.thresholds, s.overkill_rate * 100, label="overkill (OK rejected)")
        ax.axvline(s.current, color="grey", linestyle="--", linewidth=1, label="recipe")
        if s.rule == "min_area_px" and s.thresholds.max() > 100:
            ax.set_xscale("symlog", linthresh=10)
            ax.set_xlim(left=0)
        ax.set_title(f"{s.rule} [{s.class_name}]", fontsize=10)
        ax.set_xlabel("threshold")
        ax.set_ylabel("% of parts")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def chosen_recipe(recipe: LoadedRecipe, ev: Evaluation, choice: str) -> dict[str, Any]:
    """The recipe (as YAML data) with each class's min_confidence at the chosen point.

    For an anomaly model the swept confidence is the normalised score: the model's
    ``image_threshold`` and ``pixel_threshold`` are set to it as well, so the daemon
    emits exactly what the rule now counts (and the recipe passes its own check).
    """
    point = CHOICES[choice]
    cfg = recipe.cfg
    data = cfg.model_dump(mode="json", exclude_unset=True)
    for m, m_data in zip(cfg.models, data["models"], strict=True):
        if m.backend == "onnxruntime":  # set when paths were resolved; not an option here
            m_data.pop("engine", None)
    table = dict(cfg.rules.min_confidence)
    anomaly = {
        m.cfg.anomaly_class: i for i, m in enumerate(recipe.models) if m.post.family == "anomaly"
    }
    for s in ev.sweeps:
        points = s.operating_points()
        if s.rule != "min_confidence" or point not in points:
            continue
        thr = round(float(points[point][0]), 4)
        if s.class_name in anomaly:
            thr = min(max(thr, 0.001), 0.999)
            block = data["models"][anomaly[s.class_name]].setdefault("anomaly", {})
            block["image_threshold"] = block["pixel_threshold"] = thr
        table[s.class_name] = thr
    data.setdefault("rules", {})["min_confidence"] = table
    return data


def write_recipe(data: dict[str, Any], path: Path) -> None:
    """Write the recipe as YAML: an entry for ``recipes:``, validated before writing."""
    import yaml

    RecipeConfig.model_validate(data)  # what we write must load
    text = "# written by inspector eval: paste under recipes:\n" + yaml.safe_dump(
        [data], sort_keys=False
    )
    path.write_text(text, encoding="utf-8")
