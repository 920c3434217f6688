"""What the station web page costs the line: cycle time with the page closed and open.

    python benchmarks/hmi_cost.py [--config config.yaml] [--rounds 6] [--block-s 10]

The CPU demo (bundled detector on ONNX Runtime, sim camera 1280×1024 Mono8) runs as the
daemon runs it: the threaded Pipeline at the line's rate (10 parts/s from a trigger
thread), its sinks (metrics, the web page's sink) and the page's server and encoder
threads under a Supervisor. Blocks of ``--block-s`` seconds alternate, in one run:

* ``closed``  nobody watches the page (its sink still counts every part);
* ``open``    5 viewers in a separate process, each doing what the page's script does:
              one Server-Sent Events stream, every image decoded (≤ max_fps a second).

Interleaving the blocks lets a change of machine load hit both alike. The pipeline runs
pinned to one CPU (``--cpu``, as ``pipeline.cpus`` does) and the viewers' process to
another, as browsers would run on other machines. It prints p50/p99 of the cycle
(trigger → verdict in the sinks' hands), per condition and per block, and the cost of
the open page at p50 and p99 (target ≤ 5 % at p99). "Cycle − infer" subtracts each
part's own inference time, which cancels most load noise from other processes; "cpu %"
is the daemon process's CPU time per second of the block (all its threads), so open −
closed is what the page costs in CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inspector import metrics
from inspector.config import load_config
from inspector.hmi.server import Hmi
from inspector.pipeline import Pipeline
from inspector.recipes import load_recipe
from inspector.sim.camera import SimCamera
from inspector.sinks import MetricsSink
from inspector.supervisor import Supervisor
from inspector.types import PartResult, Trigger

#: kind, (cycle ms, cycle − infer ms) per part, images the viewers decoded, process CPU s/s
Block = tuple[str, list[tuple[float, float]], int, float]


class Recorder:
    """Sink: (cycle ms, cycle − infer ms) per part, into the current block's list."""

    def __init__(self) -> None:
        self.block: list[tuple[float, float]] | None = None

    def publish(self, result: PartResult) -> None:
        block = self.block
        if block is not None and result.verdict.reason.value != "timeout":
            cycle = result.cycle_ns / 1e6
            block.append((cycle, cycle - result.stage_ns.get("infer", 0) / 1e6))
        elif block is not None:
            block.append((result.cycle_ns / 1e6, float("nan")))


async def _viewer(url: str, seconds: float, counts: list[int], i: int) -> None:
    import aiohttp

    end = time.monotonic() + seconds
    async with aiohttp.ClientSession() as s, s.get(url + "events") as stream:
        buf = b""
        while time.monotonic() < end:
            try:
                chunk = await asyncio.wait_for(stream.content.readany(), end - time.monotonic())
            except asyncio.TimeoutError:
                break
            buf += chunk
            *blocks, buf = buf.split(b"\n\n")
            for block in blocks:
                if block.startswith(b"event: part"):
                    msg = json.loads(block.split(b"data: ", 1)[1])
                    if msg.get("image"):
                        import base64

                        base64.b64decode(msg["image"]["src"].split(",", 1)[1])
                        counts[i] += 1


def viewers_main(url: str, n: int, seconds: float, cpu: int) -> int:
    """The viewers' process: n live streams for ``seconds``; prints images per viewer."""
    if cpu >= 0:
        os.sched_setaffinity(0, {cpu})
    counts = [0] * n

    async def all_viewers() -> None:
        await asyncio.gather(*(_viewer(url, seconds, counts, i) for i in range(n)))

    asyncio.run(all_viewers())
    print(json.dumps(counts), flush=True)
    return 0


def frames_encoded() -> float:
    samples = metrics.HMI_FRAMES_ENCODED.collect()[0].samples
    return next(s.value for s in samples if s.name.endswith("_total"))


def pct(xs: list[float], q: float) -> float:
    arr = np.asarray([x for x in xs if x == x])  # NaN (timeouts) excluded
    return float(np.percentile(arr, q)) if arr.size else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=6, help="closed/open block pairs")
    ap.add_argument("--block-s", type=float, default=10.0)
    ap.add_argument("--viewers", type=int, default=5)
    ap.add_argument("--rate", type=float, default=10.0, help="parts per second")
    cpus = sorted(os.sched_getaffinity(0))
    ap.add_argument("--cpu", type=int, default=cpus[-1], help="pipeline CPU; -1: unpinned")
    ap.add_argument("--viewer-cpu", type=int, default=cpus[0] if len(cpus) > 1 else -1)
    ap.add_argument(
        "--viewers-only", nargs=3, metavar=("URL", "N", "SECONDS"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.viewers_only:
        url, n, seconds = args.viewers_only
        return viewers_main(url, int(n), float(seconds), args.viewer_cpu)

    cfg = load_config(args.config)
    hmi_cfg = cfg.hmi.model_copy(update={"enabled": True, "port": 0})
    cfg = cfg.model_copy(
        update={"hmi": hmi_cfg, "plc": cfg.plc.model_copy(update={"enabled": False})}
    )
    recipe = load_recipe(cfg.recipe(cfg.default_recipe))
    camera = SimCamera(cfg.camera.sim)
    camera.open()
    supervisor = Supervisor()
    hmi = Hmi(cfg)
    hmi.start(supervisor)
    recorder = Recorder()
    pinned = {args.cpu} if args.cpu >= 0 else set()
    sinks = [MetricsSink(), hmi.sink, recorder]
    pipe = Pipeline(camera, {recipe.cfg.id: recipe}, sinks, queue_depth=4, cpus=pinned)
    pipe.start(supervisor)
    stop = threading.Event()
    budget_ns = int(cfg.line.cycle_budget_ms * 1e6)

    def trigger() -> None:  # the line: a part every 1/rate s
        period, seq, nxt = 1.0 / args.rate, 0, time.monotonic()
        while not stop.is_set():
            seq += 1
            now = time.monotonic_ns()
            pipe.submit(Trigger(seq, seq, now, now + budget_ns))
            nxt += period
            stop.wait(max(0.0, nxt - time.monotonic()))

    threading.Thread(target=trigger, name="bench-trigger", daemon=True).start()
    time.sleep(3.0)  # warm-up, untimed
    blocks: list[Block] = []
    encoded0 = frames_encoded()
    for r in range(args.rounds):
        for kind in ("closed", "open") if r % 2 == 0 else ("open", "closed"):
            blocks.append(run_block(kind, args, hmi, recorder))
    stop.set()
    pipe.stop()
    hmi.close()
    camera.close()
    recipe.close()
    encoded = frames_encoded() - encoded0
    report(args, cfg, blocks, encoded)
    return 0


def run_block(
    kind: str, args: argparse.Namespace, hmi: Hmi, recorder: Recorder
) -> tuple[str, list[tuple[float, float]], int]:
    proc = None
    if kind == "open":
        cmd = [
            sys.executable,
            __file__,
            "--viewer-cpu",
            str(args.viewer_cpu),
            "--viewers-only",
            hmi.url,
            str(args.viewers),
            str(args.block_s + 1.0),
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        end = time.monotonic() + 10
        while hmi.hub.viewers < args.viewers and time.monotonic() < end:
            time.sleep(0.05)
    else:
        while hmi.hub.viewers > 0:
            time.sleep(0.05)
    block: list[tuple[float, float]] = []
    recorder.block = block
    cpu0, t0 = time.process_time(), time.monotonic()
    time.sleep(args.block_s)
    cpu = (time.process_time() - cpu0) / (time.monotonic() - t0)  # this process: the daemon
    recorder.block = None
    images = 0
    if proc is not None:
        out, _ = proc.communicate(timeout=30)
        images = sum(json.loads(out)) if out.strip() else -1
    return kind, block, images, cpu


def report(args: argparse.Namespace, cfg: Any, blocks: list[Block], encoded: float) -> None:
    sim = cfg.camera.sim
    when = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())
    cpus = len(os.sched_getaffinity(0))
    print(
        f"# hmi_cost  {when}  {platform.machine()}  python {platform.python_version()}  cpus {cpus}"
    )
    print(
        f"# demo {cfg.recipes[0].models[0].path.name}  frame {sim.width}x{sim.height} "
        f"{sim.pixel_format}  {args.rate:g} parts/s  budget {cfg.line.cycle_budget_ms:g} ms  "
        f"pipeline CPU {args.cpu}  viewers CPU {args.viewer_cpu}"
    )
    print(
        f"# page: max_fps {cfg.hmi.max_fps:g}, image_width {cfg.hmi.image_width}, "
        f"{args.viewers} viewers (SSE, every image decoded) in open blocks; "
        f"{args.rounds} rounds of {args.block_s:g} s blocks"
    )
    print("block  kind     parts  late  images  cpu %   cycle p50    p99   cycle-infer p50    p99")
    for i, (kind, b, images, cpu) in enumerate(blocks):
        cyc, rest = [c for c, _ in b], [x for _, x in b]
        late = sum(1 for x in rest if x != x)
        print(
            f"{i:5d}  {kind:7s} {len(b):6d} {late:5d} {images:7d} {100 * cpu:6.1f}   "
            f"{pct(cyc, 50):9.2f} {pct(cyc, 99):6.2f}   {pct(rest, 50):15.3f} {pct(rest, 99):6.3f}"
        )
    print(
        "condition  parts  late   cycle p50 ms   p99 ms   cycle-infer p50 ms   p99 ms   cpu %"
        "   median block p99"
    )
    stats, medians = {}, {}
    for kind in ("closed", "open"):
        rows = [x for k, b, _, _ in blocks if k == kind for x in b]
        cpu = float(np.mean([c for k, _, _, c in blocks if k == kind]))
        cyc, rest = [c for c, _ in rows], [x for _, x in rows]
        stats[kind] = (pct(cyc, 50), pct(cyc, 99), pct(rest, 50), pct(rest, 99))
        late = sum(1 for x in rest if x != x)
        p50, p99, r50, r99 = stats[kind]
        block_p99 = float(
            np.median([pct([c for c, _ in b], 99) for k, b, _, _ in blocks if k == kind])
        )
        print(
            f"{kind:9s} {len(rows):6d} {late:5d}   {p50:12.2f} {p99:8.2f}   {r50:18.3f} "
            f"{r99:8.3f}   {100 * cpu:5.1f}   {block_p99:14.2f}"
        )
        medians[kind] = block_p99
    c, o = stats["closed"], stats["open"]
    print(
        f"page open vs closed: cycle p50 {100 * (o[0] / c[0] - 1):+.1f} %, "
        f"p99 {100 * (o[1] / c[1] - 1):+.1f} % (target <= +5 % at p99); "
        f"cycle-infer p50 {o[2] - c[2]:+.3f} ms, p99 {o[3] - c[3]:+.3f} ms; "
        f"median block p99 {100 * (medians['open'] / medians['closed'] - 1):+.1f} %"
    )
    open_s = sum(1 for k, _, _, _ in blocks if k == "open") * args.block_s
    print(
        f"images encoded: {encoded:.0f} in {open_s:g} s of open blocks "
        f"(max_fps {cfg.hmi.max_fps:g}), once for all viewers"
    )


if __name__ == "__main__":
    sys.exit(main())
