"""The PLC link under a busy host: triggers lost, reconnect time, latency vs a bare FC16.

    python benchmarks/plc_link.py [--parts 1000] [--rate 40] [--hogs 2] [--work-ms 5]

Starts the PLC simulator in its own process (``python -m inspector.sim.cli --control``,
a pymodbus server on 127.0.0.1, as a PLC is a separate device) and ``--hogs`` processes
that spin on the CPU. Then, in this process:

1. baseline: a bare ``write_registers`` of 12 words to the same simulator, one at a
   time (pymodbus AsyncModbusTcpClient): ``--parts`` times before the line starts, and
   every 5 ms from a second connection while the simulator runs the line for step 2
   (the ratios use this one: same PLC load, same busy host);
2. the link (daemon role client, production defaults) fed by a stand-in pipeline thread
   that spends ``--work-ms`` per part in Python (holding the GIL, like inspection work
   between native calls): per part, PLC trigger (the ring slot's PLC-clock time) →
   the pipeline has it (the read side: PLC scan, poll, FC3, ring lookup), → verdict
   written (FC16 of the result block returned), and the link's own part (publish →
   written); then every part accounted: taken, missed (ring overrun), late,
   unseen (link down), results dropped, and the PLC's own counts;
3. reconnects: the simulator is killed (SIGKILL) and started again on the same port
   after each of ``--off-s``; reported: from its listening again to the link in sync,
   and to its first on-time verdict.

Prints the host, then one line per measure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import queue
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inspector.config import PlcConfig
from inspector.plc.link import PlcLink
from inspector.plc.protocol import RESULT_FIRST, State
from inspector.types import PartResult, Reason, Trigger, Verdict


class Sim:
    """The simulator process, driven by JSON commands on its stdin."""

    def __init__(self, *args: str, port: int = 0) -> None:
        cmd = [sys.executable, "-m", "inspector.sim.cli", "--control", "--port", str(port)]
        self.proc = subprocess.Popen(
            [*cmd, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.t_listen_ns = time.monotonic_ns()
        self.port = int(line.split("port=")[1].split()[0])

    def command(self, cmd: str, **kw: object) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kw}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


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


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class Bench:
    """The link, a stand-in pipeline, and per-part timing of what the link writes."""

    def __init__(self, port: int, work_s: float) -> None:
        self.link = PlcLink(PlcConfig(enabled=True, port=port), cycle_budget_ms=250.0)
        self.work_s = work_s
        self.published: dict[int, tuple[int, int]] = {}  # trigger_seq -> (t_trigger, t_pub)
        self.total: list[float] = []
        self.own: list[float] = []
        self.taken: list[float] = []  # PLC trigger -> the pipeline has it (read side)
        self.q: queue.Queue[Trigger | None] = queue.Queue()
        self.stop = threading.Event()
        io_write = self.link.io.write

        async def timed_write(address: int, words: list[int]) -> None:
            await io_write(address, words)
            t = time.monotonic_ns()
            seq = words[2]
            if address == self.link.cfg.out_base + RESULT_FIRST and seq in self.published:
                t_trig, t_pub = self.published.pop(seq)
                self.total.append((t - t_trig) / 1e6)
                self.own.append((t - t_pub) / 1e6)

        self.link.io.write = timed_write  # type: ignore[method-assign]  # benchmark probe
        self.worker = threading.Thread(target=self._pipeline)
        self.runner = threading.Thread(target=self.link.run, args=(self.q.put, self.stop))

    def _pipeline(self) -> None:
        while (trig := self.q.get()) is not None:
            self.taken.append((time.monotonic_ns() - trig.t_trigger_ns) / 1e6)
            spin(self.work_s)
            now = time.monotonic_ns()
            self.published[trig.trigger_seq] = (trig.t_trigger_ns, now)
            verdict = Verdict(ok=True, reason=Reason.OK)
            self.link.publish(PartResult(trigger=trig, verdict=verdict, t_verdict_ns=now))

    def start(self) -> None:
        self.worker.start()
        self.link.set_state(State.READY)
        self.runner.start()

    def close(self) -> None:
        self.stop.set()
        self.runner.join()
        self.q.put(None)
        self.worker.join()


def pct(xs: list[float]) -> str:
    if not xs:
        return "n=0"
    a = np.asarray(xs)
    p = np.percentile(a, [50, 99, 99.9])
    return f"p50 {p[0]:7.3f} ms  p99 {p[1]:7.3f} ms  p99.9 {p[2]:7.3f} ms  n={a.size}"


def wait_counts(sim: Sim, parts: int, timeout_s: float) -> dict[str, Any]:
    end = time.monotonic() + timeout_s
    while True:
        c: dict[str, Any] = sim.command("counts")
        judged = c["ok"] + c["ng"] + c["late"] + c["missed"] + c["forgotten"]
        if (c["triggered"] >= parts and judged == c["triggered"]) or time.monotonic() > end:
            return c
        time.sleep(0.05)


def host_line() -> str:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"host {platform.node()} {platform.machine()} cpus={os.cpu_count()} ({cpu}), "
        f"python {platform.python_version()}, load {load}, "
        f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}"
    )


def line_run(args: argparse.Namespace, sim: Sim) -> Bench:
    probe: list[float] = []
    probe_stop = threading.Event()

    def run_probe() -> None:
        probe.extend(asyncio.run(bare_fc16(sim.port, 10**9, gap_s=0.005, stop=probe_stop)))

    bench = Bench(sim.port, args.work_ms / 1000)
    prober = threading.Thread(target=run_probe)
    prober.start()
    bench.start()
    try:
        counts = wait_counts(sim, args.parts, args.parts / args.rate * 3 + 30)
    finally:
        probe_stop.set()
        prober.join()
    s = bench.link.stats
    base = float(np.percentile(probe, 50))
    print(f"bare FC16 (12 words), line running    {pct(probe)}")
    print(f"link: PLC trigger -> pipeline has it  {pct(bench.taken)}")
    print(f"link: PLC trigger -> verdict written  {pct(bench.total)}")
    print(f"link only: publish -> verdict written {pct(bench.own)}")
    print(
        f"ratio to bare FC16 (p50): trigger->written {np.percentile(bench.total, 50) / base:.2f}x,"
        f" publish->written {np.percentile(bench.own, 50) / base:.2f}x"
    )
    print(
        f"triggers: plc triggered={counts['triggered']} link taken={s.submitted} "
        f"lost to polling (ring overrun)={s.missed} lost to link drops={s.unseen} "
        f"seen after their deadline={s.late}; results dropped={s.dropped} "
        f"connections={s.connections}"
    )
    print(
        f"plc: ok={counts['ok']} ng={counts['ng']} late={counts['late']} "
        f"missed={counts['missed']} mismatched={counts['mismatched']}"
    )
    return bench


def reconnects(args: argparse.Namespace, sim: Sim, bench: Bench) -> Sim:
    for off_s in args.off_s:
        sim.kill()
        deadline = time.monotonic() + 5
        while bench.link.up.is_set() and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(off_s)
        ups = len(bench.link.stats.up_at_ns)
        sim = Sim("--rate", str(args.rate), "--deadline-ms", "300", port=sim.port)
        while len(bench.link.stats.up_at_ns) == ups:
            time.sleep(0.001)
        up_s = (bench.link.stats.up_at_ns[ups] - sim.t_listen_ns) / 1e9
        while (t := sim.command("first_result_after", t_ns=sim.t_listen_ns)["value"]) is None:
            time.sleep(0.005)
        served_s = (t - sim.t_listen_ns) / 1e9
        print(
            f"PLC killed, off {off_s:.1f} s: link in sync {up_s:.3f} s and first verdict "
            f"{served_s:.3f} s after it listened again"
        )
    return sim


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=40.0)
    ap.add_argument("--hogs", type=int, default=2, help="CPU-spinning processes beside us")
    ap.add_argument("--work-ms", type=float, default=5.0, help="Python work per part")
    ap.add_argument("--off-s", type=float, nargs="*", default=[0.2, 1.0, 3.0])
    args = ap.parse_args()
    print(host_line())
    print(f"args: {vars(args)}")
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hogs)]
    sim = Sim("--rate", str(args.rate), "--deadline-ms", "300", "--parts", str(args.parts))
    bench = None
    try:
        idle = asyncio.run(bare_fc16(sim.port, 500))
        print(f"bare FC16 (12 words), idle PLC        {pct(idle)}")
        bench = line_run(args, sim)
        sim = reconnects(args, sim, bench)
    finally:
        if bench is not None:
            bench.close()
        sim.kill()
        for hog in hogs:
            hog.kill()
            hog.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
