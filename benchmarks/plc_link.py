"""What the PLC link adds to each part, beside a bare Modbus FC16 round trip.

    python benchmarks/plc_link.py [--parts 1000] [--rate 100]

Starts the PLC simulator in its own process (``python -m inspector.sim.cli``, a pymodbus
server on 127.0.0.1, as a PLC is a separate device), then in this process:

1. baseline: a bare ``write_registers`` of 12 words to the same simulator, one at a
   time (pymodbus AsyncModbusTcpClient): ``--parts`` times while the line is idle, and
   every 5 ms from a second connection while the simulator runs the line for step 2
   (the ratios use this one: same PLC load);
2. the link (daemon role client) fed by a stand-in pipeline thread that answers every
   trigger at once, so what is measured is the link: trigger seen (block A read
   returned a new TRIGGER_SEQ) → verdict written (FC16 of the result block returned),
   split into the pipeline hand-off and the link's own part (publish → written).

Prints p50/p99 of each, and the ratios to the bare FC16 round trip in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inspector.config import PlcConfig
from inspector.plc.link import PlcLink
from inspector.plc.protocol import RESULT_FIRST, State
from inspector.types import PartResult, Reason, Trigger, Verdict


def start_sim(parts: int, rate: float) -> tuple[subprocess.Popen[str], int]:
    cmd = [
        sys.executable,
        "-m",
        "inspector.sim.cli",
        "--port",
        "0",
        "--rate",
        str(rate),
        "--parts",
        str(parts),
        "--deadline-ms",
        "1000",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline().split("port=")[1])


async def bare_fc16(
    port: int, n: int, *, gap_s: float = 0.0, stop: threading.Event | None = None
) -> list[float]:
    """``n`` FC16 round trips of 12 words to an unused area (no effect on the PLC)."""
    from pymodbus.client import AsyncModbusTcpClient

    client = AsyncModbusTcpClient("127.0.0.1", port=port, retries=0, reconnect_delay=0)
    await client.connect()
    words = list(range(12))
    out = []
    while len(out) < n and not (stop is not None and stop.is_set()):
        t0 = time.monotonic_ns()
        await client.write_registers(200, words, device_id=1)
        out.append((time.monotonic_ns() - t0) / 1e6)
        if gap_s:
            await asyncio.sleep(gap_s)  # a probe at a low rate beside the link
    client.close()
    return out


def run_link(port: int, parts: int) -> tuple[list[float], list[float]]:
    """Return per part: trigger seen → written, and publish → written (ms)."""
    link = PlcLink(PlcConfig(enabled=True, port=port, poll_ms=1.0), cycle_budget_ms=100.0)
    published: dict[int, tuple[int, int]] = {}  # trigger_seq -> (t_trigger, t_publish)
    total, own = [], []
    io_write = link.io.write

    async def timed_write(address: int, words: list[int], timeout_s: float) -> None:
        await io_write(address, words, timeout_s)
        t = time.monotonic_ns()
        if address == link.cfg.out_base + RESULT_FIRST and words[2] in published:
            t_trig, t_pub = published.pop(words[2])
            total.append((t - t_trig) / 1e6)
            own.append((t - t_pub) / 1e6)

    link.io.write = timed_write  # type: ignore[method-assign]  # benchmark probe
    q: queue.Queue[Trigger | None] = queue.Queue()

    def pipeline() -> None:
        while (trig := q.get()) is not None:
            now = time.monotonic_ns()
            published[trig.trigger_seq] = (trig.t_trigger_ns, now)
            verdict = Verdict(ok=True, reason=Reason.OK)
            link.publish(PartResult(trigger=trig, verdict=verdict, t_verdict_ns=now))

    stop = threading.Event()
    worker = threading.Thread(target=pipeline)
    runner = threading.Thread(target=link.run, args=(q.put, stop))
    worker.start()
    link.set_state(State.READY)
    runner.start()
    while len(total) < parts * 0.95 and runner.is_alive():
        time.sleep(0.1)
    stop.set()
    runner.join()
    q.put(None)
    worker.join()
    return total, own


def pct(xs: list[float]) -> str:
    a = np.asarray(xs)
    return f"p50 {np.percentile(a, 50):7.3f} ms  p99 {np.percentile(a, 99):7.3f} ms  n={a.size}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=100.0)
    args = ap.parse_args()
    proc, port = start_sim(args.parts + 50, args.rate)
    probe: list[float] = []
    probe_stop = threading.Event()

    def run_probe() -> None:
        probe.extend(asyncio.run(bare_fc16(port, 10**9, gap_s=0.005, stop=probe_stop)))

    try:
        idle = asyncio.run(bare_fc16(port, args.parts))
        # The same round trip again while the simulator runs the line for the link, so
        # both are measured against an equally busy PLC.
        prober = threading.Thread(target=run_probe)
        prober.start()
        try:
            total, own = run_link(port, args.parts)
        finally:
            probe_stop.set()
            prober.join()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    bare = probe
    base = float(np.percentile(bare, 50))
    print(f"bare FC16 (12 words), idle PLC        {pct(idle)}")
    print(f"bare FC16 (12 words), line running    {pct(bare)}")
    print(f"link: trigger seen -> verdict written {pct(total)}")
    print(f"link only: publish -> verdict written {pct(own)}")
    r_total = np.percentile(total, 50) / base
    r_own = np.percentile(own, 50) / base
    print(
        f"ratio to bare FC16, line running (p50): trigger->written {r_total:.2f}x, "
        f"publish->written {r_own:.2f}x"
    )
    print(f"simulator: {out.strip().splitlines()[-1] if out.strip() else '(no summary)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
