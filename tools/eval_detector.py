"""Evaluate a detector on held-out simulated parts, deciding exactly as the daemon does.

    .venv/bin/python tools/eval_detector.py --model engines/demo_detector.onnx --parts 1000

Each part is rendered by ``inspector.sim.render.render_part`` from a seed that training
never uses (tools/train_detector.py trains on seed 1000 and validates on 2000; this
holds out seed 9000), then goes through the daemon's own stages: ``load_recipe``
(ONNX Runtime backend, detection postprocessor, warm-up), the model's stage (CPU
preprocessing, inference, NMS) and ``decide`` with the default rules (a finding with
confidence ≥ 0.5 makes the part NG), as ``inspect_part`` runs them. Prints the
part-level confusion (escape = a defective part passed as OK; overkill = a good part
rejected), the parts it got wrong, and per-stage latency percentiles. No torch needed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from inspector.config import ModelConfig, RecipeConfig, SimCameraConfig, SimDefectConfig
from inspector.decide import decide
from inspector.inspect import LoadedRecipe
from inspector.preprocess.cpu import preprocess
from inspector.recipes import load_recipe
from inspector.replay import Confusion
from inspector.sim.render import render_part
from inspector.types import Frame, Verdict

HOLDOUT_SEED = 9000


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class Tally:
    """Part-level confusion plus per-class box recall and the closest calls."""

    def __init__(self) -> None:
        self.confusion = Confusion()
        self.labels: dict[str, list[int]] = {}  # class -> [labels, found with IoU >= 0.3]
        self.lowest_ng = 1.0  # weakest top confidence on a defective part
        self.highest_ok = 0.0  # strongest top confidence on a good part

    def add(self, frame: Frame, verdict: Verdict, top: float) -> None:
        truth = frame.truth or ()
        self.confusion.add(bool(truth), verdict)
        if truth:
            self.lowest_ng = min(self.lowest_ng, top)
        else:
            self.highest_ok = max(self.highest_ok, top)
        for label in truth:
            row = self.labels.setdefault(label.class_name, [0, 0])
            row[0] += 1
            row[1] += any(
                f.class_name == label.class_name and iou(f.box, label.box) >= 0.3
                for f in verdict.findings
            )


def evaluate(
    recipe: LoadedRecipe, sim: SimCameraConfig, start: int, parts: int, verbose: bool
) -> tuple[Tally, dict[str, list[int]]]:
    """Inspect ``parts`` parts; return the tally and per-stage durations (ns)."""
    tally = Tally()
    stages: dict[str, list[int]] = {"total": []}
    for index in range(start, start + parts):
        image, truth = render_part(sim.seed, index, sim)
        frame = Frame(image, sim.pixel_format, index, time.monotonic_ns(), truth=truth)
        t0 = time.monotonic_ns()
        found, stage_ns = recipe.models[0].run(frame)
        t1 = time.monotonic_ns()
        verdict = decide(found, recipe.cfg.rules)
        t2 = time.monotonic_ns()
        stage_ns["decide"] = t2 - t1
        stages["total"].append(t2 - t0)
        for k, v in stage_ns.items():
            stages.setdefault(k, []).append(v)
        # All findings, sub-threshold ones included (above the model's detection.conf): margins.
        top = max((f.confidence for f in found), default=0.0)
        tally.add(frame, verdict, top)
        if verbose and bool(truth) == verdict.ok:
            what = "ESCAPE" if truth else "OVERKILL"
            names = [t.class_name for t in truth]
            print(f"  {what} part {index}: truth {names} top confidence {top:.3f}")
    return tally, stages


def latency_table(stages: dict[str, list[int]]) -> str:
    rows = []
    for name, values in stages.items():
        ms = np.asarray(values, np.float64) / 1e6
        rows.append(
            f"  {name:12s} p50 {np.percentile(ms, 50):6.2f} ms  p99 {np.percentile(ms, 99):6.2f} ms"
            f"  max {ms.max():6.2f} ms"
        )
    return "\n".join(rows)


def bench_infer(recipe: LoadedRecipe, sim: SimCameraConfig, runs: int) -> str:
    """Inference alone (backend.infer on one preprocessed part), ``runs`` times."""
    image, _ = render_part(sim.seed, 0, sim)
    model = recipe.models[0]
    tensor, _ = preprocess(image, sim.pixel_format, model.post.input_hw, model.cfg.preprocess)
    times = []
    for _ in range(runs):
        t0 = time.monotonic_ns()
        model.backend.infer(tensor)
        times.append(time.monotonic_ns() - t0)
    return latency_table({f"infer x{runs}": times})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, default=Path("engines/demo_detector.onnx"))
    p.add_argument("--parts", type=int, default=1000)
    p.add_argument("--start", type=int, default=0, help="first part index")
    p.add_argument("--seed", type=int, default=HOLDOUT_SEED)
    p.add_argument("--rate", type=float, default=0.3, help="defect rate (the sim default)")
    p.add_argument("--max-per-part", type=int, default=2)
    p.add_argument("--pixel-format", default="Mono8", choices=["Mono8", "BGR8", "BayerRG8"])
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")
    p.add_argument("--bench", type=int, default=0, help="also time N bare inferences")
    p.add_argument("--quiet", action="store_true", help="do not list wrong parts")
    args = p.parse_args(argv)

    model = ModelConfig(
        name="demo_detector",
        path=args.model.resolve(),
        onnxruntime={"threads": args.threads},
    )
    recipe = load_recipe(RecipeConfig(id=1, name="eval", models=[model]))
    sim = SimCameraConfig(
        seed=args.seed,
        pixel_format=args.pixel_format,
        defects=SimDefectConfig(rate=args.rate, max_per_part=args.max_per_part),
    )
    print(
        f"{args.model.name}: {args.parts} parts of seed {args.seed} from {args.start}, "
        f"{args.pixel_format}, defect rate {args.rate}, {args.threads} ORT thread(s)"
    )
    try:
        tally, stages = evaluate(recipe, sim, args.start, args.parts, not args.quiet)
        bench = bench_infer(recipe, sim, args.bench) if args.bench else ""
    finally:
        recipe.close()
    print(tally.confusion.table())
    print(f"reasons: {tally.confusion.per_reason}")
    for name, (n, hit) in sorted(tally.labels.items()):
        print(f"  {name:12s} {hit}/{n} labels found (same class, IoU >= 0.3)")
    print(
        f"margins: weakest top confidence on a defective part {tally.lowest_ng:.3f}, "
        f"strongest on a good part {tally.highest_ok:.3f} (threshold 0.5; 0 means nothing "
        "above the model's detection.conf)"
    )
    print("latency (inspect_part, per stage):")
    print(latency_table(stages))
    if bench:
        print(bench)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
