"""sd_notify over a real datagram socket, and the NG archive: retention, pairs, accounting."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector import metrics, systemd
from inspector.archive import Archive
from inspector.config import ArchiveConfig
from inspector.sinks import QueuedSink
from inspector.types import Frame, PartResult, Reason, Trigger, Verdict, ng


def test_notify_sends_datagrams(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind(path)
        srv.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert systemd.ready("up")
        assert srv.recv(256) == b"READY=1\nSTATUS=up"
        assert systemd.extend_timeout(90)
        assert srv.recv(256) == b"EXTEND_TIMEOUT_USEC=90000000"


def test_notify_is_a_noop_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.watchdog() is False


def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_interval_s() == 5.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert systemd.watchdog_interval_s() is None


def test_archive_saves_ng_only_and_prunes(tmp_path: Path) -> None:
    arch = Archive(ArchiveConfig(enabled=True, dir=tmp_path / "a", max_files=3))
    arch.start()
    frame = Frame(np.zeros((32, 32), np.uint8), "Mono8", 1, time.monotonic_ns())

    def result(part: int, verdict: Verdict) -> PartResult:
        trig = Trigger(part, part, 0, 1)
        return PartResult(trig, verdict, 1, frame_id=1, frame=frame)

    arch.publish(result(1, Verdict(ok=True, reason=Reason.OK)))
    for part in range(2, 7):
        arch.publish(result(part, ng(Reason.DEFECT, "spot")))
        time.sleep(0.001)
    assert len(list((tmp_path / "a").glob("*.png"))) == 3
    names = sorted(p.name for p in (tmp_path / "a").glob("*.png"))
    assert all("_defect" in n for n in names)
    assert len(list((tmp_path / "a").glob("*.json"))) == 3


def _ng(part: int, frame: Frame | None) -> PartResult:
    return PartResult(Trigger(part, part, 0, 1), ng(Reason.DEFECT, "spot"), 1, frame=frame)


def _archive_counts() -> dict[str, float]:
    sample = metrics.REGISTRY.get_sample_value
    out = {
        o: sample("inspector_archive_images_total", {"outcome": o}) or 0.0
        for o in ("written", "dropped", "failed")
    }
    out["sink_dropped"] = sample("inspector_sink_dropped_total", {"sink": "archive"}) or 0.0
    return out


def _delta(before: dict[str, float]) -> dict[str, float]:
    after = _archive_counts()
    return {k: after[k] - before[k] for k in after}


def _up(archive_dir: Path) -> float | None:
    return metrics.REGISTRY.get_sample_value("inspector_archive_up", {"dir": str(archive_dir)})


FRAME = Frame(np.full((32, 32), 90, np.uint8), "Mono8", 1, 0)


def test_archive_counts_written_and_keeps_pairs_only(tmp_path: Path) -> None:
    d = tmp_path / "a"
    d.mkdir()
    (d / "20000101T000000_0000000001_defect.png").write_bytes(b"orphan image")
    (d / "20000101T000000_0000000002_defect.json").write_text("{}")  # orphan sidecar
    (d / "20000101T000000_0000000003_defect.png.tmp").write_bytes(b"interrupted")
    (d / "20000101T000000_0000000004_defect.png").write_bytes(b"complete")
    (d / "20000101T000000_0000000004_defect.json").write_text("{}")
    before = _archive_counts()
    arch = Archive(ArchiveConfig(enabled=True, dir=d, max_files=3))
    arch.start()
    assert arch.up and _up(d) == 1
    assert sorted(p.name for p in d.iterdir()) == [
        "20000101T000000_0000000004_defect.json",
        "20000101T000000_0000000004_defect.png",
    ]
    ok = PartResult(Trigger(9, 9, 0, 1), Verdict(ok=True, reason=Reason.OK), 1, frame=FRAME)
    arch.publish(ok)  # OK parts and parts without a frame have no image to archive
    arch.publish(_ng(10, None))
    for part in range(11, 14):
        arch.publish(_ng(part, FRAME))
    assert _delta(before) == {"written": 3, "dropped": 0, "failed": 0, "sink_dropped": 0}
    names = sorted(p.name for p in d.iterdir())
    assert len(names) == 6 and "20000101T000000_0000000004_defect.png" not in names  # pruned
    stems = {n.rsplit(".", 1)[0] for n in names}
    assert all(f"{s}.png" in names and f"{s}.json" in names for s in stems)
    assert json.loads((d / f"{max(stems)}.json").read_text())["part_id"] == 13
    img = cv2.imread(str(d / f"{max(stems)}.png"), cv2.IMREAD_UNCHANGED)
    assert img.shape == (32, 32) and int(img[0, 0]) == 90


def test_unwritable_archive_is_off_counts_failures_and_comes_back(tmp_path: Path) -> None:
    where = tmp_path / "a"
    where.write_text("a file where the archive directory should be")
    cfg = ArchiveConfig(enabled=True, dir=where, retry_s=0.05)
    before = _archive_counts()
    arch = Archive(cfg)
    arch.start()  # never raises: the archive is off, with a fault flag
    assert not arch.up and _up(where) == 0
    for part in range(1, 4):
        arch.publish(_ng(part, FRAME))
    assert _delta(before) == {"written": 0, "dropped": 0, "failed": 3, "sink_dropped": 0}
    where.unlink()  # fixed (the directory can be created now); the retry is time-based
    time.sleep(cfg.retry_s)
    arch.publish(_ng(4, FRAME))
    assert arch.up and _up(where) == 1
    assert _delta(before) == {"written": 1, "dropped": 0, "failed": 3, "sink_dropped": 0}
    # The directory goes away under a running archive: the write fails, nothing is left.
    shutil.rmtree(where)
    where.write_text("gone again")
    arch.publish(_ng(5, FRAME))
    arch.publish(_ng(6, FRAME))  # off: counted without touching the disk
    assert not arch.up and where.read_text() == "gone again"
    assert _delta(before) == {"written": 1, "dropped": 0, "failed": 5, "sink_dropped": 0}
    assert (arch.written, arch.failed, arch.dropped) == (1, 5, 0)


def test_queue_drops_agree_with_the_archive_and_ok_parts_take_no_place(tmp_path: Path) -> None:
    arch = Archive(ArchiveConfig(enabled=True, dir=tmp_path / "a"))
    arch.start()
    queued = QueuedSink(
        arch, "archive", maxsize=2, wants=arch.wants, on_drop=arch.count_dropped
    )  # its writer is not started: everything stays queued
    before = _archive_counts()
    ok = PartResult(Trigger(1, 1, 0, 1), Verdict(ok=True, reason=Reason.OK), 1, frame=FRAME)
    for _ in range(3):
        queued.publish(ok)
    for part in range(4, 9):
        queued.publish(_ng(part, FRAME))
    assert queued.dropped == 3  # 5 NG images, 2 places; the OK parts never queued
    queued.close(drain_s=0)  # the 2 queued are dropped too
    assert _delta(before) == {"written": 0, "dropped": 5, "failed": 0, "sink_dropped": 5}
    assert arch.dropped == queued.dropped == 5
