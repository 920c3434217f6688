"""Soak: the whole daemon against the PLC simulator for N parts, watched from outside.

Where it sits: a leaf benchmark. It starts ``inspector run`` as a subprocess on the sim
line with the bundled demo detector, the PLC link in client role and a PLC simulator
in this process (``inspector.sim.plc``), as on a line: the PLC triggers at ``--rate``
and checks every verdict. Every 10 s it records the daemon's RSS, open file
descriptors and threads (from /proc). At the end it prints cycle p50 / p99 / p99.9
(trigger to verdict, from the daemon's per-part log), deadline misses, and the PLC's
mismatches, misses and late verdicts, escapes and overkill against the sim's ground
truth (the ``truth`` field of each part's log line), and where the cycle goes (stage
percentiles, and "outside": the PLC poll, queueing and publishing).

    python benchmarks/soak.py --parts 20000 --rate 10
    python benchmarks/soak.py --parts 100000 --rate 60 --out benchmarks/results/soak.txt

RSS growth is reported after warm-up (from the first sample after 30 s) per 100,000 parts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from inspector.sim.plc import PlcSimulator  # noqa: E402


def proc_stats(pid: int) -> tuple[int, int, int]:
    """(RSS bytes, open fds, threads) of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss = int(fields["VmRSS"].split()[0]) * 1024
    threads = int(fields["Threads"])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds, threads


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--budget-ms", type=float, default=30.0)
    ap.add_argument("--plc-deadline-ms", type=float, default=300.0)
    ap.add_argument("--out", type=Path, default=None, help="also write the report here")
    args = ap.parse_args()

    sim = PlcSimulator(port=0, rate_hz=args.rate, deadline_ms=args.plc_deadline_ms).start()
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    cfg = work / "soak.yaml"
    cfg.write_text(
        f"""
line: {{name: soak, cycle_budget_ms: {args.budget_ms}}}
trigger: {{source: plc}}
camera: {{type: sim, sim: {{width: 1280, height: 1024, pool_size: 64, seed: 99,
         defects: {{rate: 0.3}}}}}}
recipes: [{{id: 1, name: demo, models: [{{path: "{REPO / "engines/demo_detector.onnx"}"}}],
           rules: {{min_confidence: {{default: 0.5}}}}}}]  # the demo's rules (config.yaml)
plc: {{enabled: true, port: {sim.bound_port}}}
metrics: {{enabled: false}}
logging: {{format: json, per_part: true, ok_parts: all}}
"""
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "inspector", "run", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )
    cycles: list[float] = []
    verdicts: dict[int, str] = {}
    reasons: dict[str, int] = {}
    truth: dict[str, int] = {}  # "NG→OK" (escape), "OK→NG" (overkill), … per part
    stages: dict[str, list[float]] = {}  # per stage, and "outside" (cycle − stages)
    assert proc.stdout is not None
    stdout = proc.stdout

    def read() -> None:
        for line in stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if event.get("event") == "part":
                cycles.append(float(event["cycle_ms"]))
                verdicts[int(event["part_id"])] = event["verdict"]
                reasons[event["reason"]] = reasons.get(event["reason"], 0) + 1
                key = f"{event.get('truth', '?')}→{event['verdict']}"
                truth[key] = truth.get(key, 0) + 1
                if stage_ms := event.get("stages_ms"):
                    for name, ms in stage_ms.items():
                        stages.setdefault(name, []).append(float(ms))
                    outside = float(event["cycle_ms"]) - sum(stage_ms.values())
                    stages.setdefault("outside", []).append(outside)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    samples: list[tuple[float, int, int, int, int]] = []
    t0 = time.monotonic()
    next_sample = t0
    try:
        while sim.counts().triggered < args.parts and proc.poll() is None:
            if time.monotonic() >= next_sample:
                rss, fds, threads = proc_stats(proc.pid)
                samples.append((time.monotonic() - t0, len(cycles), rss, fds, threads))
                next_sample += 10.0
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
        reader.join(5)
        time.sleep(args.plc_deadline_ms / 1000 + 0.2)
        counts = sim.counts()
    finally:
        proc.kill()
        sim.stop()

    warm = [s for s in samples if s[0] >= 30.0] or samples
    growth = (warm[-1][2] - warm[0][2]) if len(warm) > 1 else 0
    parts_span = max(1, warm[-1][1] - warm[0][1]) if len(warm) > 1 else 1
    lines = [
        f"soak {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())} on {platform.node()} "
        f"({os.cpu_count()} CPUs, Python {platform.python_version()})",
        f"parts {args.parts} at {args.rate} parts/s, budget {args.budget_ms} ms, "
        f"elapsed {elapsed:.0f} s, exit code {rc}",
        f"PLC: {counts.summary()}",
        f"daemon verdicts logged {len(cycles)}; reasons {dict(sorted(reasons.items()))}",
        f"cycle ms p50 {percentile(cycles, 0.5):.2f} p99 {percentile(cycles, 0.99):.2f} "
        f"p99.9 {percentile(cycles, 0.999):.2f} max {max(cycles, default=float('nan')):.2f}",
        f"deadline misses (timeout) {reasons.get('timeout', 0)}",
        f"against the sim's ground truth: escapes (NG part → OK) {truth.get('NG→OK', 0)}, "
        f"overkill (OK part → NG) {truth.get('OK→NG', 0)}, all {dict(sorted(truth.items()))}",
        f"RSS after warm-up {warm[0][2] / 2**20:.1f} MiB → {warm[-1][2] / 2**20:.1f} MiB: "
        f"{growth / 2**20 * 100_000 / parts_span:+.2f} MiB per 100,000 parts",
        "stages ms (parts with a verdict in time; 'outside' = cycle − stages: the PLC poll,"
        " queueing, publishing):",
        *(
            f"  {name:12s} p50 {percentile(v, 0.5):6.2f} p99 {percentile(v, 0.99):6.2f} "
            f"p99.9 {percentile(v, 0.999):6.2f} max {max(v):6.2f}"
            for name, v in stages.items()
        ),
        "samples (s, parts, RSS MiB, fds, threads):",
        *(f"  {s[0]:7.0f} {s[1]:7d} {s[2] / 2**20:8.1f} {s[3]:4d} {s[4]:3d}" for s in samples),
    ]
    if cycles:
        lines.insert(5, f"cycle ms mean {statistics.fmean(cycles):.2f}")
    report = "\n".join(lines)
    print(report)
    if args.out is not None:
        args.out.write_text(report + "\n")
    ok = counts.mismatched == 0 and rc == 0 and truth.get("NG→OK", 0) == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
