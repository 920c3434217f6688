"""GPU pipeline benchmark: torch backend FP16 + fused NVRTC preprocessing, one stream.

Run on a machine with an NVIDIA GPU (``tools/gpu_check.sh`` runs it on the device):

    python benchmarks/pipeline_gpu.py [--model engines/demo_detector.ts] [--out DIR]

For each camera (1280×1024 Mono8, 2448×2048 BayerRG8) it measures, in one process:

- model-only latency: input already on the GPU, CUDA-graph replay + stream sync;
- full-pipeline latency: frame in a pinned slot → H2D → kernel → model → filter → D2H →
  postprocess (models/detection.py) → decide (decide.py), p50/p99/p99.9;
- throughput with 1, 2 and 3 frames in flight, against model-only throughput (graph
  replays back to back);
- the CPU path for comparison: cpu.preprocess + backend.infer (host tensor) + the same
  postprocess and decide, and cpu.preprocess alone.

Targets (issue 6): pipeline − model ≤ 0.5 ms p50 and ≤ 1 ms p99; throughput ≥ 95 % of
model-only. If ``engines/demo_detector.ts`` is missing, a stand-in with the demo
detector's architecture (tools/detector_net.py, untrained weights) is traced and used;
the output says which. Raw numbers go to ``DIR/pipeline_gpu.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from inspector.config import ModelConfig, PreprocessConfig, RulesConfig  # noqa: E402
from inspector.decide import decide  # noqa: E402
from inspector.models import build_postprocessor  # noqa: E402
from inspector.preprocess.cpu import HostPreprocessor  # noqa: E402
from inspector.types import Frame  # noqa: E402

CAMERAS = [("Mono8", 1024, 1280), ("BayerRG8", 2048, 2448)]
INPUT_HW = (640, 640)


def pct(ns: list[int]) -> dict[str, float]:
    """p50/p99/p99.9 and mean in milliseconds."""
    a = np.asarray(ns, np.float64) / 1e6
    return {
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "p99.9": float(np.percentile(a, 99.9)),
        "mean": float(a.mean()),
        "n": len(ns),
    }


def standin_model(path: Path) -> str:
    """Trace the demo architecture (random weights) to TorchScript; return what it is."""
    import torch

    sys.path.insert(0, str(REPO / "tools"))
    try:
        from detector_net import DemoDetector

        net, what = DemoDetector(nc=3, imgsz=640), "stand-in: tools/detector_net.DemoDetector"
    except ImportError:
        net, what = _fallback_net(torch), "stand-in: small conv net (detector_net missing)"
    net = net.eval().cuda()
    with torch.inference_mode():
        traced = torch.jit.trace(net, torch.rand(1, 3, *INPUT_HW, device="cuda"))
    traced.save(str(path))
    return what + ", untrained weights, traced here"


def _fallback_net(torch: Any) -> Any:
    nn = torch.nn

    class Net(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            chans = [3, 16, 32, 64, 64]
            layers = []
            for a, b in itertools.pairwise(chans):
                layers += [nn.Conv2d(a, b, 3, 2, 1), nn.ReLU()]
            self.body = nn.Sequential(*layers)
            self.head = nn.Conv2d(64, 7, 1)

        def forward(self, x: Any) -> Any:
            y = self.head(self.body(x)).flatten(2)  # [1, 7, 1600]
            return torch.cat([y[:, :4].sigmoid() * 640, y[:, 4:].sigmoid()], 1)

    return Net()


def frames_for(fmt: str, h: int, w: int, n: int) -> list[np.ndarray]:
    """Sim-line parts when the sim camera is there, else structured noise."""
    try:
        from inspector.config import SimCameraConfig
        from inspector.sim.render import render_part

        cfg = SimCameraConfig(width=w, height=h, pixel_format=fmt)
        return [render_part(1234, i, cfg)[0] for i in range(n)]
    except Exception:  # benchmark input only: any failure falls back to noise
        rng = np.random.default_rng(0)
        return [rng.integers(0, 256, (h, w), dtype=np.uint8) for _ in range(n)]


def model_only(backend: Any, iters: int) -> tuple[dict[str, float], float]:
    """Latency (graph replay + sync) and back-to-back throughput, input on the GPU."""
    stream = backend.stream
    lat = []
    for _ in range(iters):
        t0 = time.monotonic_ns()
        backend.run_on_stream()
        stream.synchronize()
        lat.append(time.monotonic_ns() - t0)
    t0 = time.monotonic_ns()
    for _ in range(iters):
        backend.run_on_stream()
    stream.synchronize()
    fps = iters / ((time.monotonic_ns() - t0) / 1e9)
    return pct(lat), fps


class Part:
    """One part's way through the GPU stage, postprocess and decide."""

    def __init__(self, stage: Any, post: Any, rules: RulesConfig) -> None:
        self.stage, self.post, self.rules = stage, post, rules
        self.stage_ns: list[dict[str, int]] = []

    def submit(self, image: np.ndarray, fmt: str, index: int) -> Any:
        slot, view = self.stage.acquire_pinned(fmt, image.shape)
        if index < self.stage.frames_in_flight * 4:  # later parts reuse the filled slots
            np.copyto(view, image)
        return self.stage.submit(Frame(view, fmt, index, 0), slot=slot)

    def finish(self, ticket: Any) -> Any:
        outputs, geo, stage_ns = self.stage.collect(ticket)
        t0 = time.monotonic_ns()
        verdict = decide(self.post(outputs, geo), self.rules)
        stage_ns["post+decide"] = time.monotonic_ns() - t0
        self.stage_ns.append(stage_ns)
        return verdict


def pipeline_latency(part: Part, fmt: str, frames: list[np.ndarray], iters: int) -> list[int]:
    """One frame at a time: pinned frame → verdict, host wall time per part."""
    lat = []
    for i in range(iters):
        slot, view = part.stage.acquire_pinned(fmt, frames[i % len(frames)].shape)
        np.copyto(view, frames[i % len(frames)])  # the camera's job, outside the timing
        t0 = time.monotonic_ns()
        ticket = part.stage.submit(Frame(view, fmt, i, 0), slot=slot)
        part.finish(ticket)
        lat.append(time.monotonic_ns() - t0)
    return lat


def pipeline_throughput(part: Part, fmt: str, frames: list[np.ndarray], parts: int) -> float:
    """Parts per second with ``stage.frames_in_flight`` frames kept in flight."""
    k = part.stage.frames_in_flight
    pending: list[Any] = []
    t0 = time.monotonic_ns()
    for i in range(parts):
        if len(pending) == k:
            part.finish(pending.pop(0))
        pending.append(part.submit(frames[i % len(frames)], fmt, i))
    for ticket in pending:
        part.finish(ticket)
    return parts / ((time.monotonic_ns() - t0) / 1e9)


def cpu_path(
    backend: Any, post: Any, fmt: str, frames: list[np.ndarray], iters: int
) -> dict[str, Any]:
    """CPU preprocessing + backend.infer on a host tensor + postprocess + decide."""
    host, rules = HostPreprocessor(INPUT_HW, PreprocessConfig()), RulesConfig()
    pre_ns, total_ns = [], []
    for i in range(iters):
        frame = frames[i % len(frames)]
        t0 = time.monotonic_ns()
        tensor, geo = host(frame, fmt)
        t1 = time.monotonic_ns()
        decide(post(backend.infer(tensor), geo), rules)
        total_ns.append(time.monotonic_ns() - t0)
        pre_ns.append(t1 - t0)
    return {"cpu_preprocess": pct(pre_ns), "cpu_path": pct(total_ns)}


def device_costs(stage: Any, fmt: str, shape: tuple[int, ...], n: int = 200) -> dict[str, float]:
    """Device time per op, back to back on the pipeline stream (µs): the fused kernel,
    the staging copy into the model input, the candidate filter, a graph replay."""
    from inspector.nvidia import driver as cu

    pre = stage._preprocessor(Frame(np.empty((0,), np.uint8), fmt, 0, 0), shape)
    stream, backend = stage.stream, stage.backend
    start, end = cu.event_create(), cu.event_create()
    slot = pre._slots[0]
    pre._arg_src.value = slot.device
    outs = backend.run_on_stream()
    ops = {
        "kernel": lambda: pre._launch(backend.input_ptr, stream),
        "input_copy": (
            lambda: cu.copy_dtod_async(backend.input_ptr, slot.staged, pre._input_nbytes, stream)
        )
        if slot.staged
        else None,
        "filter": (lambda: stage._filter.run(outs[0], stream, 0)) if stage._filter else None,
        "graph": backend.run_on_stream,
    }
    costs = {}
    torch = stage._torch
    with torch.cuda.stream(backend.stream):
        for name, op in ops.items():
            if op is None:
                continue
            for _ in range(20):
                op()
            # Keep the GPU busy while the host enqueues, so the events time the ops back
            # to back on the device, not the host's launch rate.
            torch.cuda._sleep(20_000_000)
            cu.event_record(start, stream)
            for _ in range(n):
                op()
            cu.event_record(end, stream)
            cu.stream_sync(stream)
            costs[name] = cu.event_elapsed_ns(start, end) / n / 1e3
    cu.event_destroy(start)
    cu.event_destroy(end)
    return costs


def run_camera(cam: tuple[str, int, int], model_cfg: ModelConfig, args: Any) -> dict[str, Any]:
    """Every measurement for one camera format/size; returns the raw numbers."""
    from inspector.backends.torch import TorchBackend
    from inspector.gpu.stage import GpuStage

    fmt, h, w = cam
    frames = frames_for(fmt, h, w, 16)
    backend = TorchBackend(model_cfg)
    backend.load()
    post = build_postprocessor(model_cfg, backend.info)
    res: dict[str, Any] = {"camera": f"{w}x{h} {fmt}"}
    stages = {k: GpuStage(model_cfg, backend, frames_in_flight=k) for k in (1, 2, 3)}
    unfiltered = GpuStage(model_cfg, backend, frames_in_flight=2, candidate_filter=False)
    # For comparison: the kernel on the pipeline stream, only the H2D on the side stream.
    no_overlap = {
        k: GpuStage(model_cfg, backend, frames_in_flight=k, overlap_preprocess=False)
        for k in (2, 3)
    }
    try:
        # For comparison: no device candidate filter (full output back as float32).
        unfiltered.rebind()
        part = Part(unfiltered, post, RulesConfig())
        pipeline_throughput(part, fmt, frames, args.warmup)
        res["fps_2_in_flight_unfiltered"] = pipeline_throughput(part, fmt, frames, args.parts)
        # Every GpuStage re-binds the backend to its own stream; measure each while bound.
        for k in (3, 2):
            pair = ((f"fps_{k}_in_flight", stages[k]), (f"fps_{k}_no_overlap", no_overlap[k]))
            for key, stage in pair:
                part = Part(stage, post, RulesConfig())
                stage.rebind()
                pipeline_throughput(part, fmt, frames, args.warmup)
                res[key] = pipeline_throughput(part, fmt, frames, args.parts)
        backend.bind_stream(stages[1].stream)  # the model alone (graph replay)
        model_only(backend, args.warmup)
        res["model_only"], res["model_fps"] = model_only(backend, args.iters)
        stages[1].rebind()
        part = Part(stages[1], post, RulesConfig())
        pipeline_latency(part, fmt, frames, args.warmup)
        part.stage_ns.clear()
        res["pipeline"] = pct(pipeline_latency(part, fmt, frames, args.iters))
        res["fps_1_in_flight"] = pipeline_throughput(part, fmt, frames, args.parts)
        keys = part.stage_ns[0].keys()
        res["stage_p50_us"] = {
            k: float(np.median([s[k] for s in part.stage_ns])) / 1e3 for k in keys
        }
        res["saturated_parts"] = sum(s.saturated for s in stages.values())
        stages[2].rebind()
        res["device_op_us"] = device_costs(stages[2], fmt, frames[0].shape)
        res.update(cpu_path(backend, post, fmt, frames, min(args.iters, 300)))
    finally:
        for stage in (*stages.values(), *no_overlap.values(), unfiltered):
            stage.close()
        backend.close()
    return res


def table(results: list[dict[str, Any]]) -> str:
    """The one table of the issue, as text."""
    lines = []
    for r in results:
        m, p = r["model_only"], r["pipeline"]
        lines += [
            f"== {r['camera']} → 640x640, torch FP16 + CUDA graph ==",
            f"  model only (input on GPU)   p50 {m['p50']:.3f}  p99 {m['p99']:.3f}  "
            f"p99.9 {m['p99.9']:.3f} ms   {r['model_fps']:.0f} /s back to back",
            f"  pipeline pinned → verdict   p50 {p['p50']:.3f}  p99 {p['p99']:.3f}  "
            f"p99.9 {p['p99.9']:.3f} ms",
            f"  pipeline − model            p50 {p['p50'] - m['p50']:.3f}  "
            f"p99 {p['p99'] - m['p99']:.3f} ms   (targets ≤ 0.5 / ≤ 1.0)",
        ]
        for k in (1, 2, 3):
            fps = r[f"fps_{k}_in_flight"]
            lines.append(
                f"  throughput {k} in flight       {fps:.0f} /s = "
                f"{100 * fps / r['model_fps']:.1f} % of model-only (target ≥ 95 %)"
            )
        lines.append(
            "  (kernel on the pipeline stream, no overlap: "
            + ", ".join(
                f"{k} in flight {r[f'fps_{k}_no_overlap']:.0f} /s = "
                f"{100 * r[f'fps_{k}_no_overlap'] / r['model_fps']:.1f} %"
                for k in (2, 3)
            )
            + ")"
        )
        fps = r["fps_2_in_flight_unfiltered"]
        lines.append(
            f"  (2 in flight, no device candidate filter: {fps:.0f} /s = "
            f"{100 * fps / r['model_fps']:.1f} %)"
        )
        c, cp = r["cpu_path"], r["cpu_preprocess"]
        lines += [
            f"  CPU path (cv2 preprocess + infer + post + decide)  p50 {c['p50']:.3f}  "
            f"p99 {c['p99']:.3f} ms;  cv2 preprocess alone p50 {cp['p50']:.3f} ms",
            "  stage p50 (µs; device: h2d/preprocess/infer/d2h; host: gpu_wait, post+decide): "
            + ", ".join(f"{k} {v:.0f}" for k, v in r["stage_p50_us"].items()),
            "  device time per op, back to back (µs): "
            + ", ".join(f"{k} {v:.1f}" for k, v in r["device_op_us"].items()),
        ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=REPO / "engines" / "demo_detector.ts")
    parser.add_argument("--iters", type=int, default=2000, help="latency samples per case")
    parser.add_argument("--parts", type=int, default=1000, help="parts per throughput run")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--out", type=Path, default=None, help="write pipeline_gpu.json here")
    args = parser.parse_args()
    import cuda.bindings
    import torch

    tmp = tempfile.TemporaryDirectory()
    model, what = args.model, f"{args.model} (trained demo model)"
    if not model.is_file():
        model = Path(tmp.name) / "standin.ts"
        what = standin_model(model)
    model_cfg = ModelConfig(
        name="demo",
        path=model,
        backend="torch",
        torch={"fp16": True},
        input_size=INPUT_HW,
        detection={"conf": 0.25},
    )
    head = {
        "device": torch.cuda.get_device_name(0),
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "cuda_bindings": cuda.bindings.__version__,
        "model": what,
    }
    print(json.dumps(head), flush=True)
    results = [run_camera(cam, model_cfg, args) for cam in CAMERAS]
    text = table(results)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "pipeline_gpu.json").write_text(
            json.dumps({**head, "results": results}, indent=1)
        )
        (args.out / "pipeline_gpu.txt").write_text(json.dumps(head) + "\n" + text + "\n")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
