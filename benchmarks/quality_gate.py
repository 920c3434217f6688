"""Cost of the image-quality gate per frame (inspector/quality.py), on sim frames.

    python benchmarks/quality_gate.py [--frames 32] [--runs 2000] [--width 1280 --height 1024]

For each pixel format of the sim line (Mono8, BGR8, BayerRG8) it renders ``--frames``
distinct parts and times ``check_quality`` with the default gate and with every check
on (focus and a presence box), cycling through the frames ``--runs`` times. It prints
p50, p99 and max in microseconds; the target is well under 200 µs at 1280×1024.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inspector.config import PresenceConfig, QualityConfig, SimCameraConfig
from inspector.quality import check_quality
from inspector.sim.render import render_part


def time_gate(frames: list[np.ndarray], fmt: str, cfg: QualityConfig, runs: int) -> np.ndarray:
    """Per-call times (ns) of the gate over ``runs`` calls cycling through ``frames``."""
    out = np.empty(runs, np.int64)
    for _ in range(50):  # warm caches and OpenCV's first-call setup
        check_quality(frames[0], fmt, cfg)
    for i in range(runs):
        frame = frames[i % len(frames)]
        t0 = time.perf_counter_ns()
        failure = check_quality(frame, fmt, cfg)
        out[i] = time.perf_counter_ns() - t0
        if failure is not None:
            raise SystemExit(f"a sim frame failed the gate: {failure}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=1024)
    args = ap.parse_args()
    w, h = args.width, args.height
    box = (w * 3 // 8, h * 3 // 8, w * 5 // 8, h * 5 // 8)
    gates = {
        "default": QualityConfig(),
        "all checks": QualityConfig(
            min_focus=100, presence=PresenceConfig(box=box, mean=(60, 255))
        ),
    }
    print(f"{platform.processor() or platform.machine()}, {w}x{h}, {args.runs} runs")
    print(f"{'format':<10} {'gate':<11} {'p50 µs':>8} {'p99 µs':>8} {'max µs':>8}")
    for fmt in ("Mono8", "BGR8", "BayerRG8"):
        sim = SimCameraConfig(width=w, height=h, pixel_format=fmt)  # type: ignore[arg-type]
        frames = [render_part(sim.seed, i, sim)[0] for i in range(args.frames)]
        for name, cfg in gates.items():
            ns = time_gate(frames, fmt, cfg, args.runs)
            p50, p99 = np.percentile(ns, [50, 99]) / 1e3
            print(f"{fmt:<10} {name:<11} {p50:8.1f} {p99:8.1f} {ns.max() / 1e3:8.1f}")


if __name__ == "__main__":
    main()
