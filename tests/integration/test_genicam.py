"""The GenICam source on the real harvesters path, with the simulated GenTL producer
that ships in the genicam wheel (viky.cti: three "Viky" devices, serials 0/1/2, free
running, Mono8/RGBa8, no TriggerMode, no timestamps, no temperature node).

What Viky cannot show (hardware/software trigger, lost frame ids, damaged buffers) is
covered by tests/unit/test_camera_logic.py and test_camera_convert.py.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import genicam
import pytest

from inspector import metrics
from inspector.camera.genicam import GenicamCamera
from inspector.camera.genicam_nodes import list_devices
from inspector.camera.genicam_state import CameraState
from inspector.config import GenicamCameraConfig
from inspector.errors import CameraError, ConfigError
from inspector.preprocess.cpu import check_frame
from inspector.types import Trigger

pytestmark = pytest.mark.camera

VIKY = Path(genicam.__file__).resolve().parent / "viky.cti"
SMALL = [{"Width": 128}, {"Height": 100}, {"PixelFormat": "Mono8"}, {"AcquisitionFrameRate": 200.0}]


def make_cfg(**changes: Any) -> GenicamCameraConfig:
    base: dict[str, Any] = {
        "cti": [VIKY],
        "serial_number": "1",
        "trigger_mode": "free_run",
        "features": SMALL,
        "timeout_ms": 2000.0,
        "reconnect_backoff_s": 0.02,
        "reconnect_backoff_max_s": 0.2,
    }
    return GenicamCameraConfig(**{**base, **changes})


def trig(part_id: int, within_s: float = 2.0) -> Trigger:
    now = time.monotonic_ns()
    return Trigger(
        trigger_seq=part_id,
        part_id=part_id,
        t_trigger_ns=now,
        deadline_ns=now + int(within_s * 1e9),
    )


def test_discovery_lists_the_viky_devices() -> None:
    devices = list_devices([VIKY])
    assert [d["serial_number"] for d in devices] == ["0", "1", "2"]
    assert {d["model"] for d in devices} == {"Viky"}
    assert devices[2]["id_"] == "VikyTL_DEV_blue"
    assert devices[0]["user_defined_name"] is None  # Viky has none; not an error


def test_producer_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENICAM_GENTL64_PATH", str(VIKY.parent))
    assert len(list_devices([])) == 3
    monkeypatch.setenv("GENICAM_GENTL64_PATH", "/nonexistent")
    with pytest.raises(CameraError, match="GENICAM_GENTL64_PATH"):
        list_devices([])


def sample(name: str) -> float:
    value = metrics.REGISTRY.get_sample_value(name)
    assert value is not None, name
    return value


def test_open_by_serial_applies_features_and_grabs() -> None:
    frames_before = sample("inspector_camera_frames_total")
    cam = GenicamCamera(make_cfg(serial_number="2"))
    cam.open()
    try:
        assert "VikyTL_DEV_blue" in cam.device and cam.state is CameraState.READY
        assert sample("inspector_camera_up") == 1
        frames = [cam.grab(trig(i)) for i in range(3)]
    finally:
        cam.close()
    assert sample("inspector_camera_up") == 0
    assert sample("inspector_camera_frames_total") == frames_before + 3
    assert sample("inspector_camera_frames_per_second") > 0
    for f in frames:
        assert f.pixel_format == "Mono8" and f.image.shape == (100, 128)  # features applied
        check_frame(f.image, f.pixel_format)
        assert f.device_timestamp_ns is None  # Viky reports no timestamps
        assert f.source_name == "genicam"
    ids = [f.frame_id for f in frames]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert cam.stats.frames == 3 and cam.stats.fps > 0
    assert cam.state is CameraState.CLOSED


def test_rgba8_arrives_as_rgb8() -> None:
    features = [*SMALL[:2], {"PixelFormat": "RGBa8"}, SMALL[3]]
    with GenicamCamera(make_cfg(features=features)) as cam:
        frame = cam.grab(trig(1))
    assert frame.pixel_format == "RGB8" and frame.image.shape == (100, 128, 3)
    check_frame(frame.image, frame.pixel_format)


def test_misspelled_feature_fails_with_close_matches() -> None:
    cam = GenicamCamera(make_cfg(features=[{"Widht": 128}]))
    with pytest.raises(ConfigError, match=r"'Widht' does not exist; close matches: .*Width"):
        cam.open()
    assert cam.state is CameraState.CLOSED
    with GenicamCamera(make_cfg()) as again:  # the failed open released the device
        assert again.grab(trig(1)).image.shape == (100, 128)


@pytest.mark.parametrize(
    ("feature", "message"),
    [
        ({"AspectRatio": 2.0}, "not writable now"),
        ({"PixelFormat": "Mono12"}, r"no value 'Mono12'.*Mono8"),
        ({"Width": 50}, "rejected"),  # below the device's minimum of 100
        ({"Width": 128.5}, "takes an integer"),
        ({"AcquisitionMode": "SingleFrame"}, "not writable"),
    ],
)
def test_unwritable_or_bad_feature_values_fail_at_open(
    feature: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        GenicamCamera(make_cfg(features=[feature])).open()


@pytest.mark.parametrize("mode", ["software", "hardware"])
def test_trigger_modes_need_trigger_nodes(mode: str) -> None:
    with pytest.raises(ConfigError, match="TriggerMode"):
        GenicamCamera(make_cfg(trigger_mode=mode)).open()


def test_unknown_device_lists_what_is_there() -> None:
    with pytest.raises(CameraError, match=r"no camera with serial_number '7'.*serial 0"):
        GenicamCamera(make_cfg(serial_number="7")).open()
    with pytest.raises(CameraError, match="no camera at index 5"):
        GenicamCamera(make_cfg(serial_number=None, index=5)).open()


def test_frame_timeout_is_a_camera_error_and_counted() -> None:
    features = [*SMALL[:3], {"AcquisitionFrameRate": 1.0}]
    with GenicamCamera(make_cfg(features=features)) as cam:
        cam.grab(trig(1))  # in step with the 1 Hz frames: the next is ~1 s away
        with pytest.raises(CameraError, match="no frame within"):
            cam.grab(trig(2, within_s=0.05))
        assert cam.stats.timeouts == 1 and cam.state is CameraState.READY
        assert sample("inspector_camera_timeouts_total") >= 1


def _wait_ready(states: list[CameraState], ready: threading.Event) -> None:
    assert ready.wait(10.0), f"no reconnect; states seen: {states}"


@pytest.mark.parametrize("how", ["destroy_acquirer", "reset_harvester"])
def test_reconnects_after_the_device_is_lost(how: str) -> None:
    states: list[CameraState] = []
    ready = threading.Event()

    def on_state(state: CameraState, detail: str) -> None:
        states.append(state)
        if state is CameraState.READY and CameraState.LOST in states:
            ready.set()

    with GenicamCamera(make_cfg(), on_state=on_state) as cam:
        assert cam.grab(trig(1)).image.shape == (100, 128)
        # What a pulled cable does to the GenTL handles, done from outside the source.
        if how == "destroy_acquirer":
            cam._acquirer.destroy()
        else:
            cam._harvester.reset()
        with pytest.raises(CameraError):
            cam.grab(trig(2))
        assert CameraState.LOST in states
        _wait_ready(states, ready)
        frame = cam.grab(trig(3))
        # A fresh Viky device starts at 400x400 RGBa8: the features were applied again.
        assert frame.image.shape == (100, 128) and frame.pixel_format == "Mono8"
        assert cam.stats.reconnects == 1
        assert sample("inspector_camera_reconnects_total") >= 1
    assert states[-1] is CameraState.CLOSED


def test_reconnect_retries_until_the_producer_is_back(tmp_path: Path) -> None:
    cti = tmp_path / "viky.cti"
    shutil.copy(VIKY, cti)
    failures: list[str] = []
    three_failures, back = threading.Event(), threading.Event()

    def on_state(state: CameraState, detail: str) -> None:
        if detail.startswith("reconnect failed"):
            failures.append(detail)
            if len(failures) == 3:
                three_failures.set()
        elif state is CameraState.READY and failures:
            back.set()

    cfg = make_cfg(cti=[cti], reconnect_backoff_s=0.01, reconnect_backoff_max_s=0.04)
    with GenicamCamera(cfg, on_state=on_state) as cam:
        cam.grab(trig(1))
        cti.rename(tmp_path / "away.cti")  # the producer (or the camera) is gone
        cam._acquirer.destroy()
        with pytest.raises(CameraError):
            cam.grab(trig(2))
        assert three_failures.wait(10.0)
        with pytest.raises(CameraError, match="is lost: reconnect failed"):
            cam.grab(trig(3))  # fails at once while the camera is away
        (tmp_path / "away.cti").rename(cti)
        assert back.wait(10.0)
        assert cam.grab(trig(4)).image.shape == (100, 128)
        assert cam.stats.reconnects == 1 and cam.stats.reconnect_attempts >= 4
    assert "not found" in failures[0]


def test_close_releases_everything_and_is_idempotent() -> None:
    cam = GenicamCamera(make_cfg())
    for _ in range(2):  # open again after close: the device was really released
        cam.open()
        cam.grab(trig(1))
        cam.close()
        cam.close()
    with pytest.raises(CameraError, match="closed"):
        cam.grab(trig(2))


# ------------------------------------------------------------ inspector camera ...
def test_cli_list_features_grab(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import cv2

    from inspector.cli import main

    assert main(["camera", "list", "--cti", str(VIKY)]) == 0
    out = capsys.readouterr().out
    assert sum(" Viky " in line for line in out.splitlines()) == 3 and "VikyTL_DEV_blue" in out

    assert (
        main(["camera", "features", "--cti", str(VIKY), "--serial", "2", "--feature", "Width=128"])
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    width = next(line.split() for line in lines if line.strip().startswith("Width "))
    assert width == ["Width", "Integer", "RW", "128"]
    assert any(line.startswith("  ImageFormatControl") for line in lines)  # the tree

    args = ["camera", "grab", "--cti", str(VIKY), "--index", "0", "-n", "2", "--out", str(tmp_path)]
    assert main([*args, "--trigger-mode", "free_run", "--feature", "PixelFormat=RGBa8"]) == 0
    pngs = sorted(tmp_path.glob("frame_*.png"))
    assert len(pngs) == 2
    image = cv2.imread(str(pngs[0]))
    assert image.shape == (400, 400, 3)  # Viky's default size
    # the red device draws a red ball on white: some pixels are pure red in BGR
    assert ((image[:, :, 2] > 200) & (image[:, :, 0] < 50)).any()


def test_cli_misspelled_feature_exits_78(capsys: pytest.CaptureFixture[str]) -> None:
    from inspector.cli import main

    assert main(["camera", "features", "--cti", str(VIKY), "--feature", "Widht=3"]) == 78
    assert "close matches: Width" in capsys.readouterr().err
