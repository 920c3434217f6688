"""sd_notify over a real datagram socket, and the NG archive with retention."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from inspector import systemd
from inspector.archive import Archive
from inspector.config import ArchiveConfig
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
