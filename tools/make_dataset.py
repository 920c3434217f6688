"""Write simulated parts as PNGs + labels.json, for ``inspector replay`` or a folder camera.

    .venv/bin/python tools/make_dataset.py --out /tmp/holdout --seed 9000 --count 1000
    .venv/bin/python -m inspector replay --images /tmp/holdout --labels /tmp/holdout/labels.json

Seed 9000 is the demo detector's held-out seed (training used 1000 and 2000), so this
replays the evaluation of docs/demo-model.md through the daemon's replay path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from inspector.config import SimCameraConfig, SimDefectConfig
from inspector.sim.camera import write_dataset


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--seed", type=int, default=9000)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--start", type=int, default=0, help="first part index")
    p.add_argument("--rate", type=float, default=0.3, help="fraction of defective parts")
    p.add_argument("--pixel-format", default="Mono8", choices=["Mono8", "BGR8"])
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=1024)
    args = p.parse_args(argv)
    cfg = SimCameraConfig(
        seed=args.seed,
        width=args.width,
        height=args.height,
        pixel_format=args.pixel_format,
        defects=SimDefectConfig(rate=args.rate),
    )
    labels = write_dataset(args.out, args.seed, args.count, cfg, start=args.start)
    print(f"wrote {args.count} parts to {args.out} (labels: {labels})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
