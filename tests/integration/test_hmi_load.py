"""Load and abuse: 20 viewers and one that never reads, on the daemon at 10 parts/s.

The line must not notice: no deadline miss, no overrun, and the daemon's memory stays
flat while the page serves everybody (each viewer gets its images, the stuck one is cut
off). CI runs 20 s; ``INSPECTOR_HMI_SOAK_S=60`` runs the full minute. The budget is 100 ms
here (``INSPECTOR_HMI_LOAD_BUDGET_MS`` overrides it): the 20 viewers are processes on
the same two cores as the daemon, which a station never has; at the line's default
30 ms a loaded 2-core host misses parts with the page closed too. The test first
checks for a few seconds that the host holds it without the page, so a host too busy
for the line itself is reported as such, not blamed on the page.

Memory bound: once the viewers are connected, the daemon's RSS may grow by at most
16 MiB. What the page can hold by design: per connection one message in flight (an
image message is ~60-90 kB) plus aiohttp's 64 KiB transport buffer, ~160 kB × 22
connections ≈ 3.5 MB; the latest part and stats messages; the strip chart ring and
counters (fixed size). The rest of the bound is allocator noise (arenas, ORT scratch)
seen across runs. A queue per viewer (the leak this guards against) would grow by a
message per viewer per image, 20 × 4 × ~80 kB ≈ 6 MB/s, and would blow the bound within
a few seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.common import REPO
from tests.support.hmi_daemon import Daemon, running_daemon

SOAK_S = float(os.environ.get("INSPECTOR_HMI_SOAK_S", "20"))
BUDGET_MS = float(os.environ.get("INSPECTOR_HMI_LOAD_BUDGET_MS", "100"))
BASELINE_S = 6.0
RSS_GROWTH_KIB = 16 * 1024
MAX_FPS = 4
COUNTERS = (
    "inspector_deadline_misses_total",
    "inspector_overruns_total",
    "inspector_parts_total",
    "inspector_hmi_frames_encoded_total",
)


def counters(daemon: Daemon) -> dict[str, float]:
    return {k: daemon.metric(k) for k in COUNTERS}


def sample_rss(rss: list[tuple[float, int]], daemon: Daemon, stop: threading.Event) -> None:
    t0 = time.monotonic()
    while not stop.wait(0.5):
        rss.append((time.monotonic() - t0, daemon.rss_kib()))


def run_viewers(daemon: Daemon) -> dict:
    cmd = [sys.executable, "-m", "tests.support.hmi_clients", daemon.url]
    cmd += ["--clients", "20", "--stuck", "1", "--seconds", str(SOAK_S)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=SOAK_S + 60, cwd=REPO, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.slow
def test_twenty_viewers_and_a_stuck_one_cost_the_line_nothing(tmp_path: Path) -> None:
    extra = f", max_fps: {MAX_FPS}, max_clients: 32, send_timeout_s: 5"
    # No archive: its PNG writes are not the page's cost (the browser test covers it).
    run = running_daemon(tmp_path, rate_hz=10, budget_ms=BUDGET_MS, extra_hmi=extra, archive=False)
    with run as daemon:
        time.sleep(2.0)  # past the first parts (model and caches warm)
        c0 = counters(daemon)
        time.sleep(BASELINE_S)  # the line alone, page closed
        c1 = counters(daemon)
        base_misses = c1["inspector_deadline_misses_total"] - c0["inspector_deadline_misses_total"]
        assert base_misses == 0, (
            f"host too busy for the line itself: {base_misses:.0f} deadline misses in "
            f"{BASELINE_S} s at {BUDGET_MS} ms with the page closed"
        )
        rss: list[tuple[float, int]] = []
        stop = threading.Event()
        sampler = threading.Thread(target=sample_rss, args=(rss, daemon, stop), name="test-rss")
        sampler.start()
        t0 = time.monotonic()
        try:
            viewers = run_viewers(daemon)
        finally:
            stop.set()
            sampler.join()
        elapsed = time.monotonic() - t0
        c2 = counters(daemon)
        dropped_slow = daemon.metric('inspector_hmi_clients_dropped_total{reason="slow"}')
    delta = {k.removeprefix("inspector_"): c2[k] - c1[k] for k in COUNTERS}
    images = [v["images"] for v in viewers["viewers"]]
    settled = [r for t, r in rss if 3.0 <= t <= 6.0]
    late = [r for t, r in rss if t >= elapsed * 0.75]
    growth = max(late) - sorted(settled)[len(settled) // 2]
    report = {**delta, "seconds": round(elapsed, 1), "dropped_slow": dropped_slow}
    report |= {"images_min": min(images), "images_max": max(images), "rss_growth_kib": growth}
    print("hmi load:", json.dumps(report))
    # The line: every part judged in time, none refused.
    assert delta["deadline_misses_total"] == 0, report
    assert delta["overruns_total"] == 0, report
    assert delta["parts_total"] >= 0.9 * 10 * elapsed, report
    # The page: one encode per shown image whatever the viewers; every viewer served.
    assert delta["hmi_frames_encoded_total"] <= MAX_FPS * (elapsed + 1), report
    assert min(images) >= 0.5 * MAX_FPS * SOAK_S, report
    assert sum(v["image_misses"] for v in viewers["viewers"]) == 0, viewers
    assert dropped_slow >= 1, report  # the one that never reads was cut off
    # Memory: flat once the viewers are connected (module docstring).
    assert growth <= RSS_GROWTH_KIB, report
