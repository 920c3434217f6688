"""The daemon with its web page on the sim line, as a subprocess: for the browser and
load tests of ``inspector/hmi``.

``python -m inspector run`` with the bundled demo detector, the sim camera, the internal
trigger, the NG archive and the page on free loopback ports; stdout is read on a thread
so the daemon never blocks on its log pipe (``daemon_process.py``).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.common import REPO, free_port
from tests.support.daemon_process import DaemonProcess, daemon_process

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SEED, POOL = 1234, 16
ROI_INCLUDE = [[40, 40], [1240, 40], [1240, 984], [40, 984]]
ROI_EXCLUDE = [[1040, 40], [1240, 40], [1240, 240], [1040, 240]]


@dataclass(kw_only=True)
class Daemon(DaemonProcess):
    url: str
    metrics_url: str
    archive: Path

    def metrics(self) -> dict[str, float]:
        """The daemon's /metrics samples, by name with labels as printed."""
        with urllib.request.urlopen(self.metrics_url, timeout=5) as resp:
            lines = resp.read().decode().splitlines()
        out = {}
        for line in lines:
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def metric(self, name: str) -> float:
        """One sample, or the sum of a metric's samples over all labels (0 when absent)."""
        samples = self.metrics()
        if name in samples:
            return samples[name]
        return sum(v for k, v in samples.items() if k.startswith(name + "{"))

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


def write_config(
    tmp: Path,
    *,
    hmi_port: int,
    metrics_port: int,
    rate_hz: float,
    budget_ms: float,
    extra_hmi: str = "",
    archive: bool = True,
) -> Path:
    cfg = tmp / "station.yaml"
    cfg.write_text(
        f"""
line: {{name: station-7, cycle_budget_ms: {budget_ms}}}
trigger: {{source: internal, rate_hz: {rate_hz}}}
camera: {{type: sim, sim: {{seed: {SEED}, pool_size: {POOL}, defects: {{rate: 0.5}}}}}}
recipes:
  - id: 1
    name: demo-plate
    models:
      - {{name: detector, path: "{REPO / "engines/demo_detector.onnx"}"}}
    rules:
      roi_include: [{ROI_INCLUDE}]
      roi_exclude: [{ROI_EXCLUDE}]
metrics: {{port: {metrics_port}}}
logging: {{format: json, per_part: false}}
archive: {{enabled: {"true" if archive else "false"}, dir: "{tmp / "archive"}"}}
hmi: {{enabled: true, port: {hmi_port}{extra_hmi}}}
"""
    )
    return cfg


@contextmanager
def running_daemon(
    tmp: Path,
    *,
    rate_hz: float = 10,
    budget_ms: float = 30,
    extra_hmi: str = "",
    archive: bool = True,
) -> Iterator[Daemon]:
    hmi_port, metrics_port = free_port(), free_port()
    cfg = write_config(
        tmp,
        hmi_port=hmi_port,
        metrics_port=metrics_port,
        rate_hz=rate_hz,
        budget_ms=budget_ms,
        extra_hmi=extra_hmi,
        archive=archive,
    )
    url, metrics_url = f"http://127.0.0.1:{hmi_port}/", f"http://127.0.0.1:{metrics_port}/metrics"
    with daemon_process(
        cfg,
        lambda proc: Daemon(proc=proc, url=url, metrics_url=metrics_url, archive=tmp / "archive"),
    ) as daemon:
        yield daemon
