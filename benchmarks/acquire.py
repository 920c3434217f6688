"""Acquisition cost per frame: the GenICam source's fetch+copy+convert against a bare
harvesters ``fetch()``, in one run, on the same device.

    python benchmarks/acquire.py [--cti PATH] [--frames 400] [--size 800]

The producer defaults to the simulated one in the genicam wheel (viky.cti), which runs
at up to 200 frames/s. To measure cost rather than the wait for the next exposure, each
burst lets the producer fill all its buffers first, then fetches them back to back:

* ``bare``      ``with ia.fetch() as buffer:`` and nothing else (harvesters' own work:
                event wait, Buffer/Payload objects, flat numpy view; queue on exit);
* ``bare raw``  ``ia.fetch(is_raw=True)`` then queue: the GenTL part alone;
* ``source``    the daemon's path for one frame (``GenicamCamera._fetch_frame``): raw
                fetch, frame id, the one copy with conversion, queue, Frame.

Bursts alternate between the two so machine load affects both alike. A second table
times ``convert()`` alone on a 3 MP frame for the deep formats a real camera sends,
against a plain numpy copy of the same bytes, and for packed formats the source's
``convert_raw`` against harvesters' expansion + ``convert``. Prints p50/p99 in µs and ratios to the
baseline of the same run.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inspector.camera.convert import convert, convert_raw
from inspector.camera.genicam import GenicamCamera
from inspector.config import GenicamCameraConfig
from inspector.types import Trigger

BUFFERS = 16


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def burst(cam: GenicamCamera, step: Callable[[], object], out: list[float]) -> None:
    """Let the producer fill every buffer, then time ``step`` on each, back to back."""
    time.sleep(BUFFERS / 200 + 0.05)  # benchmark only: 200 fps fills 16 buffers in 80 ms
    for _ in range(BUFFERS):
        t0 = time.perf_counter_ns()
        step()
        out.append((time.perf_counter_ns() - t0) / 1e3)


def paired_us(
    first: Callable[[], object], second: Callable[[], object], runs: int
) -> tuple[list[float], list[float]]:
    """Time ``first`` then ``second``, back to back, ``runs`` times; µs per call each."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        first()
        t1 = time.perf_counter_ns()
        second()
        t2 = time.perf_counter_ns()
        a.append((t1 - t0) / 1e3)
        b.append((t2 - t1) / 1e3)
    return a, b


def device_table(cti: Path, frames: int, size: int, pixel_format: str) -> None:
    features = [
        {"Width": size},
        {"Height": size},
        {"PixelFormat": pixel_format},
        {"AcquisitionFrameRate": 200.0},
    ]
    cfg = GenicamCameraConfig(
        cti=[cti], index=0, trigger_mode="free_run", features=features, num_buffers=BUFFERS
    )
    bare: list[float] = []
    bare_raw: list[float] = []
    source: list[float] = []
    with GenicamCamera(cfg, name="bench") as cam:
        ia = cam._acquirer  # benchmark reaches in: the same acquirer, no second device

        def bare_fetch() -> None:
            with ia.fetch(timeout=1.0) as buffer:
                buffer.payload.components[0].data  # noqa: B018  # harvesters builds the view

        def bare_raw_fetch() -> None:
            raw = ia.fetch(timeout=1.0, is_raw=True)
            raw.parent.queue_buffer(raw)

        def source_fetch() -> None:
            now = time.monotonic_ns()
            cam._fetch_frame(Trigger(0, 0, now, now + 1_000_000_000), now + 1_000_000_000)

        while len(bare) < frames:
            burst(cam, bare_fetch, bare)
            burst(cam, bare_raw_fetch, bare_raw)
            burst(cam, source_fetch, source)
    print(f"\n{pixel_format} {size}x{size} from {cam.device}, {len(bare)} frames each")
    base = pct(bare, 50)
    for name, xs in (("bare fetch", bare), ("bare raw", bare_raw), ("source", source)):
        p50, p99 = pct(xs, 50), pct(xs, 99)
        print(f"  {name:<12} p50 {p50:8.1f} µs  p99 {p99:8.1f} µs  p50 ratio {p50 / base:5.2f}")
    extra = pct(source, 50) - pct(bare_raw, 50)
    print(f"  source - bare raw at p50 (copy+convert+Frame): {extra:+.1f} µs per frame")


def convert_table(repeats: int) -> None:
    from harvesters.util.pfnc import Dictionary

    w, h = 2048, 1536
    rng = np.random.default_rng(0)
    print(f"\nconvert() alone, {w}x{h}, {repeats} runs each (baseline: np.copy of the input)")
    for fmt, depth in (("Mono8", 8), ("BayerRG8", 8), ("Mono12", 12), ("BayerRG12", 12)):
        dtype = np.uint8 if depth == 8 else np.uint16
        data = rng.integers(0, 2**depth, w * h, dtype=dtype)
        copies, converts = paired_us(
            partial(np.copy, data), partial(convert, data, w, h, fmt), repeats
        )
        base = pct(copies, 50)
        print(
            f"  {fmt:<10} copy p50 {base:8.1f} µs | convert p50 {pct(converts, 50):8.1f} µs "
            f"p99 {pct(converts, 99):8.1f} µs  ratio {pct(converts, 50) / base:5.2f}"
        )
    # packed: harvesters' Buffer would expand to uint16 in Python (inside fetch) before
    # convert(); the source's convert_raw unpacks the raw bytes straight to 8 bits
    for fmt in ("Mono12p", "Mono12Packed", "Mono10p"):
        nbytes = w * h * 5 // 4 if fmt == "Mono10p" else w * h * 3 // 2
        packed = rng.integers(0, 256, nbytes, dtype=np.uint8)
        proxy = Dictionary.get_proxy(symbolic=fmt)
        harvesters_way, ours = paired_us(
            lambda: convert(proxy.expand(packed), w, h, fmt),  # noqa: B023  # called here
            partial(convert_raw, packed, w, h, fmt),
            max(3, repeats // 5),
        )
        base = pct(harvesters_way, 50)
        print(
            f"  {fmt:<12} harvesters expand+convert p50 {base:8.1f} µs | convert_raw p50 "
            f"{pct(ours, 50):8.1f} µs  ratio {pct(ours, 50) / base:5.2f}"
        )


def main() -> int:
    import genicam

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cti", type=Path, default=Path(genicam.__file__).parent / "viky.cti")
    ap.add_argument("--frames", type=int, default=400, help="frames per variant and format")
    ap.add_argument("--size", type=int, default=800, help="Viky width=height (100..800)")
    ap.add_argument("--repeats", type=int, default=30, help="runs per format in convert()")
    args = ap.parse_args()
    print(f"{platform.node()} {platform.machine()} python {platform.python_version()}")
    for pixel_format in ("Mono8", "RGBa8"):
        device_table(args.cti, args.frames, args.size, pixel_format)
    convert_table(args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
