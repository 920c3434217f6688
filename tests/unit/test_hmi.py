"""The station web page's pure parts: config checks, counters, overlay shapes, archive
names and file access, and the crash-restart loop."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from inspector import metrics
from inspector.archive import parse_name
from inspector.config import parse_config
from inspector.errors import ConfigError
from inspector.hmi.gallery import Gallery
from inspector.hmi.live import HmiSink, Stats
from inspector.hmi.overlay import render, shapes, to_jpeg
from inspector.hmi.server import run_restarting
from inspector.types import Label
from tests.support.hmi import hmi_config, make_result

BASE = "recipes: [{id: 1, name: r, models: [{name: det, path: m.onnx}]}]\n"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "localhost"])
def test_loopback_needs_no_credentials(host: str) -> None:
    cfg = parse_config(BASE + f'hmi: {{enabled: true, host: "{host}"}}')
    assert cfg.hmi.host == host and cfg.hmi.token is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "station-7.plant"])
def test_any_other_bind_needs_a_token_or_basic_auth(host: str) -> None:
    with pytest.raises(ConfigError, match=r"not loopback: set hmi\.token or hmi\.basic_auth"):
        parse_config(BASE + f'hmi: {{enabled: true, host: "{host}"}}')
    ok = parse_config(BASE + f'hmi: {{enabled: true, host: "{host}", token: "{"k" * 16}"}}')
    assert ok.hmi.token is not None and ok.hmi.token.get_secret_value() == "k" * 16
    basic = '{user: u, password: "12345678"}'
    assert parse_config(BASE + f'hmi: {{enabled: true, host: "{host}", basic_auth: {basic}}}')


def test_weak_credentials_and_bad_limits_are_config_errors() -> None:
    for bad in (
        'token: "short"',
        'basic_auth: {user: u, password: "1234"}',
        "max_fps: 0",
        "max_fps: 100",
        "port: 70000",
        "colour: red",
    ):
        with pytest.raises(ConfigError):
            parse_config(BASE + f"hmi: {{enabled: true, {bad}}}")


def test_defaults_are_safe() -> None:
    h = parse_config(BASE).hmi
    assert not h.enabled and h.host == "127.0.0.1" and h.max_fps <= 5
    assert "**" in str(parse_config(BASE + 'hmi: {token: "' + "s" * 20 + '"}').hmi.token)


def test_counters_since_start_and_last_hour(tmp_path: Path) -> None:
    now = [10**12]
    sink = HmiSink(chart_parts=3, clock=lambda: now[0])
    for seq in range(1, 6):
        sink.publish(make_result(seq, ok=seq % 2 == 0))  # 2 OK, 3 NG defect
    now[0] += 61 * 60 * 10**9  # an hour and a minute later
    sink.publish(make_result(6, ok=True))
    since, hour, chart = sink.snapshot()
    assert since == {"ok": 3, "defect": 3}
    assert hour == {"ok": 1}  # the first five are out of the last hour
    assert [c[1] for c in chart] == [4, 5, 6]  # the ring keeps the last chart_parts
    stats = Stats(hmi_config(str(tmp_path)), sink, {}).message(clients=2)
    assert stats["since_start"]["ng_by_reason"] == {"defect": 3}
    assert stats["last_hour"] == {"total": 1, "ok": 1, "ng": 0, "ng_by_reason": {}}
    assert stats["status"]["deadline_misses"] == 0 and stats["status"]["clients"] == 2
    assert stats["recent"][0] == {"part_id": 6, "verdict": "OK", "reason": "ok", "cycle_ms": 9.0}
    assert [r["verdict"] for r in stats["recent"]] == ["OK", "NG", "OK"]  # newest first
    assert stats["chart"]["ok"] == [1, 0, 1]


def test_latest_slot_keeps_one_part_and_shares_its_frame() -> None:
    sink = HmiSink()
    first, second = make_result(1), make_result(2)
    sink.publish(first)
    sink.publish(second)
    version, latest = sink.latest()
    assert version == 2 and latest is second and latest.frame is second.frame  # no copy
    assert sink.fresh.is_set()


def test_shapes_roles_and_labels(tmp_path: Path) -> None:
    rules = "{roi_include: [[[0,0],[100,0],[100,100]]], roi_exclude: [[[1,1],[2,1],[2,2]]]}"
    cfg = parse_config(
        "recipes: [{id: 1, name: r, rules: "
        + rules
        + ", models: [{name: det, path: a.onnx}, {name: seg, family: segmentation, path: b.onnx}]}]"
    )
    found = [
        {"class": "scratch", "confidence": 0.91, "box": [1, 2, 3, 4], "model": "det", "area_px": 4},
        {"class": "defect", "confidence": 0.7, "box": [5, 6, 7, 8], "area_px": 4, "model": "seg"},
        # family 'auto': a measured area well under its box is a blob's
        {"class": "pit", "confidence": 0.6, "box": [0, 0, 40, 40], "area_px": 300, "model": "x"},
    ]
    drawn = shapes(found, cfg.recipes[0], (Label("spot", (9.0, 9.0, 10.0, 10.0)),))
    roles = [s["role"] for s in drawn]
    assert roles == ["roi_include", "roi_exclude", "truth", "finding", "blob", "blob"]
    assert drawn[3]["label"] == "scratch 0.91" and drawn[4]["label"] == "defect 0.70 · 4 px²"
    assert drawn[2] == {"role": "truth", "box": [9.0, 9.0, 10.0, 10.0], "label": "spot"}


def test_render_burns_boxes_and_jpeg_scales_down() -> None:
    image = np.full((200, 300), 128, np.uint8)
    out = render(image, [{"role": "finding", "box": [50, 50, 120, 120], "label": "x 0.9"}])
    assert out.shape == (200, 300, 3) and tuple(out[50, 80]) == (40, 40, 235)
    assert image[50, 80] == 128  # the frame itself is never drawn on
    jpeg = to_jpeg(np.zeros((100, 400, 3), np.uint8), "RGB8", width=200, quality=80)
    assert jpeg[:2] == b"\xff\xd8"
    bayer = to_jpeg(np.zeros((64, 64), np.uint8), "BayerRG8", width=960, quality=80)
    assert bayer[:2] == b"\xff\xd8"


def test_archive_names_and_the_only_files_served(tmp_path: Path) -> None:
    name = parse_name("20261130T101112_0000004711_defect")
    assert name is not None and (name.part_id, name.reason, name.stamp) == (
        4711,
        "defect",
        "20261130T101112",
    )
    for bad in ("x", "../20261130T101112_0000004711_defect", "20261130T101112_4711_defect"):
        assert parse_name(bad) is None
    good = "20261130T101112_0000004711_defect"
    (tmp_path / f"{good}.png").write_bytes(b"png")
    (tmp_path / "sub").mkdir()
    os.symlink(tmp_path / f"{good}.png", tmp_path / "20261130T101112_0000000001_defect.png")
    g = Gallery(tmp_path)
    assert g.file(f"{good}.png") == tmp_path / f"{good}.png"
    for bad in (
        f"{good}.json",  # absent
        f"{good}.txt",
        "../x.png",
        "/etc/passwd",
        "sub",
        "20261130T101112_0000000001_defect.png",  # a symlink, even to an archive file
    ):
        assert g.file(bad) is None, bad


def test_gallery_reads_a_sidecar_written_after_its_image(tmp_path: Path) -> None:
    stem = "20261130T101112_0000004711_defect"
    (tmp_path / f"{stem}.png").write_bytes(b"png")
    g = Gallery(tmp_path)
    entries, matched = g.query()
    assert matched == 1 and entries[0].trigger_seq is None and not entries[0].complete
    finding = {"class": "spot", "confidence": 0.8, "box": [1, 2, 3, 4]}
    sidecar = {"part_id": 4711, "trigger_seq": 12, "findings": [finding]}
    (tmp_path / f"{stem}.json").write_text(json.dumps(sidecar))
    (entry,), _ = g.query(class_name="spot")
    assert entry.complete and entry.trigger_seq == 12 and entry.max_confidence == 0.8
    assert g.sidecar(stem) == sidecar and g.sidecar("20261130T101112_0000000001_ok") is None


def test_run_restarting_restarts_after_crashes_and_stops() -> None:
    stop = threading.Event()
    runs: list[int] = []

    def body() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("boom")
        stop.set()

    before = metrics.HMI_RESTARTS.labels("unit").collect()[0].samples[0].value
    run_restarting("unit", body, stop)  # returns: no exception escapes, no fault
    after = metrics.HMI_RESTARTS.labels("unit").collect()[0].samples[0].value
    assert len(runs) == 3 and after - before == 2
