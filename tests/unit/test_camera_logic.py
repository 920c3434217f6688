"""Pure logic of the GenICam source that the Viky producer cannot exercise: hardware
trigger frame matching (lost, damaged, stale and held frames, id wrap), reconnect
backoff, feature-name close matches, device choice, trigger feature sets and the camera
state codes reported to the PLC."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from inspector.backoff import Backoff
from inspector.camera.genicam_nodes import (
    choose_device,
    close_matches,
    resolve_cti,
    trigger_features,
)
from inspector.camera.genicam_state import CameraState, CameraStats
from inspector.camera.matching import GEV1_BLOCK_ID_WRAP, FrameMatcher, serve_part
from inspector.config import GenicamCameraConfig
from inspector.errors import CameraError, ConfigError


# ------------------------------------------------------------------ frame matching
def device(frames: list[tuple[int, str | None]]) -> Callable[[], tuple[int, str | None]]:
    """A fetch() that delivers these (frame id, image) in order, then times out."""
    queue = iter(frames)

    def fetch() -> tuple[int, str | None]:
        try:
            return next(queue)
        except StopIteration:
            raise CameraError("no frame within 100 ms") from None

    return fetch


def serve(
    matcher: FrameMatcher[str], fetch: Callable[[], tuple[int, str | None]], n: int
) -> list[str]:
    """Serve n parts; each gets its image name or 'NG'."""
    out = []
    for part in range(n):
        try:
            out.append(serve_part(matcher, fetch, part))
        except CameraError:
            out.append("NG")
    return out


def test_frames_in_sequence_go_to_parts_in_order() -> None:
    m: FrameMatcher[str] = FrameMatcher()
    fetch = device([(5, "a"), (6, "b"), (7, "c")])
    assert serve(m, fetch, 3) == ["a", "b", "c"]
    assert (m.lost, m.stale, m.held) == (0, 0, 0)


def test_a_gap_in_frame_ids_makes_only_the_owner_ng() -> None:
    m: FrameMatcher[str] = FrameMatcher()
    # frame 2 was dropped (incomplete on the wire): part 1 is NG, part 2 keeps frame 3
    fetch = device([(1, "a"), (3, "c"), (4, "d")])
    assert serve(m, fetch, 4) == ["a", "NG", "c", "d"]
    assert m.lost == 1


def test_a_damaged_buffer_makes_only_its_part_ng() -> None:
    m: FrameMatcher[str] = FrameMatcher()
    fetch = device([(1, "a"), (2, None), (3, "c")])
    assert serve(m, fetch, 3) == ["a", "NG", "c"]


def test_timed_out_part_never_gets_a_neighbours_frame() -> None:
    m: FrameMatcher[str] = FrameMatcher()
    fetch = device([(10, "a")])
    assert serve_part(m, fetch, 0) == "a"
    with pytest.raises(CameraError):
        serve_part(m, fetch, 1)  # frame 11 is late: part 1 gives up
    late = device([(11, "late-b"), (12, "c")])
    assert serve_part(m, late, 2) == "c"  # frame 11 is stale, dropped
    assert m.stale == 1


def test_timeout_before_the_first_frame_still_counts_that_part() -> None:
    m: FrameMatcher[str] = FrameMatcher()
    with pytest.raises(CameraError):
        serve_part(m, device([]), 0)
    # part 0's frame arrives late as the first frame ever, then part 1's
    assert serve_part(m, device([(1, "late-a"), (2, "b")]), 1) == "b"
    assert m.stale == 1


def test_a_missed_trigger_is_reported_out_of_step_not_guessed() -> None:
    m: FrameMatcher[str] = FrameMatcher()
    assert serve_part(m, device([(1, "a")]), 0) == "a"
    with pytest.raises(CameraError):
        serve_part(m, device([]), 1)  # the camera missed part 1's trigger: no exposure
    # from now on each frame has the id the matcher gave up with the part before it
    results = [serve(m, device([(i, f"part{i}")]), 1)[0] for i in (2, 3, 4)]
    assert results == ["NG", "NG", "NG"]  # never a neighbour's image ...
    assert m.out_of_step  # ... and the source is told to restart acquisition
    m.reset()
    assert not m.out_of_step
    assert serve_part(m, device([(1, "fresh")]), 5) == "fresh"


def test_one_late_frame_is_not_out_of_step() -> None:
    m: FrameMatcher[str] = FrameMatcher()
    assert serve(m, device([(1, "a")]), 2) == ["a", "NG"]  # part 1's frame is late
    assert serve(m, device([(2, "late"), (3, "c"), (4, "d")]), 2) == ["c", "d"]
    assert m.stale == 1 and not m.out_of_step


def test_frames_for_later_parts_are_held() -> None:
    m: FrameMatcher[str] = FrameMatcher()
    m.push(1, "a")
    m.push(2, "b")
    assert m.held == 2
    assert serve_part(m, device([]), 0) == "a"  # no fetch needed
    assert serve_part(m, device([]), 1) == "b"


def test_reset_restarts_ids_but_keeps_counters() -> None:
    m: FrameMatcher[str] = FrameMatcher()
    assert serve(m, device([(7, "a"), (9, "c")]), 2) == ["a", "NG"]
    m.reset()  # acquisition restarted: ids start again at 1
    assert serve(m, device([(1, "x"), (2, "y")]), 2) == ["x", "y"]
    assert m.lost == 1 and m.held == 0


def test_gev1_block_ids_wrap_without_a_false_gap() -> None:
    m: FrameMatcher[str] = FrameMatcher(id_wrap=GEV1_BLOCK_ID_WRAP)
    fetch = device([(65534, "a"), (65535, "b"), (1, "c"), (3, "e")])
    assert serve(m, fetch, 5) == ["a", "b", "c", "NG", "e"]
    assert m.lost == 1
    stale = FrameMatcher[str](id_wrap=GEV1_BLOCK_ID_WRAP)
    stale.push(2, "x")
    assert stale.push(1, "old") is False and stale.stale == 1  # one before, not 65534 ahead


# ------------------------------------------------------------------ small helpers
def test_backoff_doubles_up_to_the_cap() -> None:
    """The camera reconnects on the daemon's one Backoff (here without its jitter)."""
    delays = Backoff(0.5, 3.0, jitter=0.0)
    assert [delays.next() for _ in range(6)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert Backoff(5.0, 1.0, jitter=0.0).next() == 1.0


def test_close_matches_find_misspellings_and_case() -> None:
    names = ["Width", "WidthMax", "Height", "ExposureTime", "ExposureAuto", "Gain"]
    assert close_matches("Widht", names)[0] == "Width"
    assert close_matches("exposuretime", names)[0] == "ExposureTime"
    assert close_matches("Exposure", names)[:2] == ["ExposureAuto", "ExposureTime"]
    assert close_matches("Zebra", names) == []


def info(serial: str, model: str = "M1", user: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        vendor="V", model=model, serial_number=serial, user_defined_name=user, id_=serial
    )


def test_choose_device_by_each_key() -> None:
    infos = [info("A", user="left"), info("B", model="M2", user="right"), info("C", model="M2")]
    assert choose_device(infos, GenicamCameraConfig(serial_number="B")).serial_number == "B"
    assert choose_device(infos, GenicamCameraConfig(user_defined_name="left")).serial_number == "A"
    assert choose_device(infos, GenicamCameraConfig(model="M2")).serial_number == "B"
    assert choose_device(infos, GenicamCameraConfig(index=2)).serial_number == "C"
    assert choose_device(infos, GenicamCameraConfig()).serial_number == "A"
    with pytest.raises(CameraError, match="no camera with serial_number 'Z'"):
        choose_device(infos, GenicamCameraConfig(serial_number="Z"))
    with pytest.raises(CameraError, match="2 cameras with serial_number 'A'"):
        choose_device([info("A"), info("A")], GenicamCameraConfig(serial_number="A"))
    with pytest.raises(CameraError, match="no camera found"):
        choose_device([], GenicamCameraConfig())


def test_config_refuses_two_device_keys_and_multi_key_features() -> None:
    with pytest.raises(ValueError, match="one of serial_number"):
        GenicamCameraConfig(serial_number="1", index=0)
    with pytest.raises(ValueError, match="one \\{Name: value\\} mapping"):
        GenicamCameraConfig(features=[{"Width": 1, "Height": 2}])


def node_map(*names: str) -> Any:
    """The part of a GenApi node map that trigger_features reads: node names."""
    return SimpleNamespace(nodes=[SimpleNamespace(node=SimpleNamespace(name=n)) for n in names])


def test_trigger_feature_sets() -> None:
    full = node_map("TriggerSelector", "TriggerMode", "TriggerSource", "TriggerSoftware")
    assert trigger_features(full, "software") == [
        {"TriggerSelector": "FrameStart"},
        {"TriggerMode": "On"},
        {"TriggerSource": "Software"},
    ]
    # hardware: the line (Line0, Line1 ...) is vendor specific, set in camera features
    assert trigger_features(full, "hardware") == [
        {"TriggerSelector": "FrameStart"},
        {"TriggerMode": "On"},
    ]
    assert trigger_features(full, "free_run") == [{"TriggerMode": "Off"}]
    assert trigger_features(node_map("Width"), "free_run") == []
    with pytest.raises(ConfigError, match="TriggerSoftware"):
        trigger_features(node_map("TriggerMode"), "software")


def test_resolve_cti(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cti = tmp_path / "vendor.cti"
    cti.write_bytes(b"")
    monkeypatch.setenv("GENICAM_GENTL64_PATH", f"/nonexistent:{tmp_path}")
    assert resolve_cti([]) == [cti]
    with pytest.raises(CameraError, match="not found"):
        resolve_cti([tmp_path / "missing.cti"])


def test_state_codes_and_fps() -> None:
    assert [s.error_code for s in CameraState] == [101, 0, 102]
    stats = CameraStats()
    assert stats.fps == 0.0
    for i in range(11):
        stats.frame_done(i * 50_000_000)  # 20 Hz
    assert stats.fps == pytest.approx(20.0) and stats.frames == 11
