"""CPU pipeline overhead: model-only latency against the full pipeline, in one run.

    python benchmarks/pipeline_cpu.py [--config config.yaml] [--parts 300]

Three measurements, interleaved part by part so that machine load affects all alike:

* ``model``     backend.infer on a tensor already prepared (the baseline);
* ``stages``    inspect_part: preprocess → infer → postprocess → decide, frame in memory;
* ``pipeline``  the threaded Pipeline: submit(trigger) → grab from the sim pool →
                queues → worker → ledger → sink, i.e. frame in memory to the verdict in
                the sinks' hands (the PLC sink's write is measured in plc_link.py).

It prints p50/p99 of each and the overhead (x − model) as a share of model time. The
issue's target is pipeline − model ≤ 15 % of model time at p50.

Two estimates of the overhead are printed. "From the two medians" subtracts the model
p50 from the pipeline p50. "Paired per part" subtracts each part's own inference time
(measured inside the pipeline: same part, same moment) from its total, so machine load
cancels; its share is taken of the model-only p50. Inference runs pinned to one CPU
(``--cpu``) in all three measures, the pipeline's worker through
``pipeline.cpus`` as the daemon does it; the trigger comes from an unpinned thread, as
the PLC link's does.
"""

from __future__ import annotations

import argparse
import os
import platform
import queue
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inspector.config import load_config
from inspector.inspect import inspect_part
from inspector.pipeline import Pipeline
from inspector.preprocess.cpu import HostPreprocessor
from inspector.recipes import load_recipe
from inspector.sim.camera import SimCamera
from inspector.types import Frame, PartResult, Trigger


class OneShot:
    """Sink that notes when each result reaches the sinks, and signals it."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.last: PartResult | None = None
        self.t_published_ns = 0

    def publish(self, result: PartResult) -> None:
        self.t_published_ns = time.monotonic_ns()
        self.last = result
        self.event.set()


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--parts", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20, help="untimed parts per measure")
    ap.add_argument(
        "--cpu",
        type=int,
        default=max(os.sched_getaffinity(0)),
        help="CPU for the model-only and stages loops and the pipeline's threads "
        "(pipeline.cpus); -1: no pinning. Default: the highest CPU allowed.",
    )
    args = ap.parse_args()

    cfg = load_config(args.config)
    recipe = load_recipe(cfg.recipe(cfg.default_recipe))
    model = recipe.models[0]
    host = HostPreprocessor(model.post.input_hw, model.cfg.preprocess)  # model-only inputs
    camera = SimCamera(cfg.camera.sim)
    camera.open()
    sink = OneShot()
    cpus = {args.cpu} if args.cpu >= 0 else set()
    pipe = Pipeline(camera, {recipe.cfg.id: recipe}, [sink], queue_depth=4, cpus=cpus)
    pipe.start()
    fire: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    t_fired: list[int] = [0]

    def trigger_thread() -> None:  # started unpinned, like the PLC link's thread
        while (n := fire.get()) is not None:
            t_fired[0] = now = time.monotonic_ns()
            pipe.submit(Trigger(n, n, now, now + 10**9))

    trigger = threading.Thread(target=trigger_thread, name="bench-trigger", daemon=True)
    trigger.start()
    if cpus:  # inference runs on the same CPU in every measure
        os.sched_setaffinity(0, cpus)
    times: dict[str, list[float]] = {"model": [], "stages": [], "pipeline": []}
    stage_ms: dict[str, list[float]] = {}
    # Per part: its total time minus its own inference time (same part, same moment).
    paired: dict[str, list[float]] = {"stages": [], "pipeline": []}
    seq = 0

    def next_frame() -> Frame:
        nonlocal seq
        seq += 1
        now = time.monotonic_ns()
        return camera.grab(Trigger(seq, seq, now, now + 10**9))

    def run_model(keep: bool) -> None:
        frame = next_frame()
        tensor, _ = host(frame.image, frame.pixel_format)
        t0 = time.perf_counter_ns()
        model.backend.infer(tensor)
        if keep:
            times["model"].append((time.perf_counter_ns() - t0) / 1e6)

    def run_stages(keep: bool) -> None:
        frame = next_frame()
        t0 = time.perf_counter_ns()
        _, stage_ns = inspect_part(frame, recipe)
        if keep:
            total = (time.perf_counter_ns() - t0) / 1e6
            times["stages"].append(total)
            paired["stages"].append(total - stage_ns["infer"] / 1e6)

    def run_pipeline(keep: bool) -> None:
        nonlocal seq
        seq += 1
        sink.event.clear()
        fire.put(seq)
        if not sink.event.wait(5):
            raise RuntimeError("pipeline did not publish")
        assert sink.last is not None
        if keep:
            # trigger → the sinks hold the verdict (the PLC sink writes it from here)
            total = (sink.t_published_ns - t_fired[0]) / 1e6
            times["pipeline"].append(total)
            paired["pipeline"].append(total - sink.last.stage_ns["infer"] / 1e6)
            for stage, ns in sink.last.stage_ns.items():
                stage_ms.setdefault(stage, []).append(ns / 1e6)

    # Interleaved part by part (model, stages, pipeline, model, ...), so that a change
    # of machine load (CPU steal on a shared VM) hits all three alike. Inference runs on
    # the same pinned CPU in all three, so interleaving moves no weights between caches.
    try:
        for run in (run_model, run_stages, run_pipeline):
            for _ in range(args.warmup):
                run(False)
        for _ in range(args.parts):
            for run in (run_model, run_stages, run_pipeline):
                run(True)
    finally:
        fire.put(None)
        trigger.join(5)
        pipe.stop()
        camera.close()
        recipe.close()

    sim = cfg.camera.sim
    print(
        f"# pipeline_cpu  {time.strftime('%Y-%m-%d')}  {platform.processor() or platform.machine()}"
        f"  python {platform.python_version()}"
    )
    print(
        f"# model {model.cfg.path.name}  input {model.post.input_hw}"
        f"  frame {sim.width}x{sim.height}"
        f" {sim.pixel_format}  threads {model.cfg.onnxruntime.threads}  parts {args.parts}"
        f"  inference on CPU {args.cpu if cpus else 'any'}"
    )
    base50, base99 = pct(times["model"], 50), pct(times["model"], 99)
    print(f"{'measure':<10}{'p50 ms':>9}{'p99 ms':>9}{'p50 - model':>13}{'share of model':>16}")
    for name, xs in times.items():
        p50, p99 = pct(xs, 50), pct(xs, 99)
        line = f"{name:<10}{p50:>9.3f}{p99:>9.3f}"
        if name != "model":
            line += f"{p50 - base50:>13.3f}{(p50 - base50) / base50:>16.1%}"
        print(line)
    print(
        "pipeline stages p50 ms: " + "  ".join(f"{k} {pct(v, 50):.3f}" for k, v in stage_ms.items())
    )
    print("paired, per part: overhead = its total time - its own inference time")
    for name, xs in paired.items():
        p50, p99 = pct(xs, 50), pct(xs, 99)
        print(
            f"{name + ' overhead':<20}p50 {p50:.3f} ms  p99 {p99:.3f} ms"
            f"  {p50 / base50:.1%} of model p50"
        )
    unpaired = (pct(times["pipeline"], 50) - base50) / base50
    per_part = pct(paired["pipeline"], 50) / base50
    print(
        f"pipeline overhead at p50: {unpaired:.1%} of model time from the two medians"
        f", {per_part:.1%} paired per part (target <= 15%); p99 model {base99:.3f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
