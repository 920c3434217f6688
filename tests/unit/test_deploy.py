"""The systemd units and ``inspector doctor`` (issue 15, points 1 and 2).

The units are scored by the real ``systemd-analyze security --offline=true`` (``make
test`` installs systemd's tools where they are missing), share one hardening block,
comment every directive, and restart on the daemon's exit codes as ``errors.py``
defines them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from inspector import doctor
from inspector.errors import EXIT_CONFIG, EXIT_INTERNAL
from tests.support.common import REPO

UNITS = [REPO / "systemd/inspector.service", REPO / "systemd/inspector@.service"]
MAX_EXPOSURE = 2.5


def directives(unit: Path) -> list[tuple[str, str]]:
    return [
        tuple(line.split("=", 1))  # type: ignore[misc]
        for line in unit.read_text().splitlines()
        if line and not line.startswith(("#", "["))
    ]


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_exposure_score(unit: Path, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze missing: `make test` installs it (apt-get install systemd)"
    # A template is scored as an instance, the way systemd runs it.
    target = tmp_path / unit.name.replace("@.", "@press1.")
    target.write_text(unit.read_text())
    proc = subprocess.run(
        [analyze, "security", "--offline=true", str(target)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    m = re.search(r"Overall exposure level for \S+: ([\d.]+)", proc.stdout)
    assert m, proc.stdout[-2000:] + proc.stderr
    print(f"{unit.name}: exposure {m.group(1)}")
    assert float(m.group(1)) <= MAX_EXPOSURE


def test_units_share_the_hardening() -> None:
    blocks = [u.read_text().split("# ---- hardening", 1)[1] for u in UNITS]
    assert blocks[0] == blocks[1]
    single, template = (dict(directives(u)) for u in UNITS)
    same = {"Type", "Restart", "RestartPreventExitStatus", "WatchdogSec", "User", "DevicePolicy"}
    assert {k: single[k] for k in same} == {k: template[k] for k in same}
    assert template["StateDirectory"] == "inspector/%i"
    assert "%i.yaml" in template["ExecStart"]


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_every_directive_is_commented(unit: Path) -> None:
    """Each run of directives is introduced by a comment line."""
    previous = ""
    for line in unit.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            assert previous.startswith("#") or "=" in previous, f"{unit.name}: {line}"
        elif not line or line.startswith("["):
            previous = ""
            continue
        previous = line


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_restart_matches_exit_codes_and_paths(unit: Path) -> None:
    d = dict(directives(unit))
    assert d["Type"] == "notify" and d["WatchdogSec"]
    assert d["Restart"] == "on-failure"  # 70 (and a watchdog kill) restart; 0 does not
    assert d["RestartPreventExitStatus"] == str(EXIT_CONFIG)
    assert EXIT_INTERNAL != EXIT_CONFIG
    assert d["ProtectSystem"] == "strict" and d["DevicePolicy"] == "closed"
    assert d["StateDirectory"].startswith("inspector")
    assert d["LogsDirectory"].startswith("inspector")
    assert d["ConfigurationDirectory"] == "inspector"
    allowed = " ".join(v for k, v in directives(unit) if k == "DeviceAllow")
    for node in ("nvhost", "/dev/nvmap", "nvidia-frontend", "nvidia-uvm", "usb_device"):
        assert node in allowed, node


def test_doctor_on_this_machine() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "inspector", "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out["versions"]) == set(doctor.COMPONENTS)
    assert out["versions"]["pymodbus"] and out["versions"]["onnxruntime"]
    assert out["status"]["python"] != "absent"


def test_doctor_on_a_jetson_says_what_was_never_tested(tmp_path: Path) -> None:
    release = tmp_path / "nv_tegra_release"
    release.write_text("# R36 (release), REVISION: 4.0, GCID: 1, BOARD: generic, EABI: aarch64\n")
    cuda = tmp_path / "cuda"
    cuda.mkdir()
    (cuda / "version.json").write_text(json.dumps({"cuda": {"version": "12.6.68"}}))
    found = {name: None for name in doctor.COMPONENTS}
    found.update(
        l4t=doctor.l4t_version(release),
        cuda=doctor.cuda_version(cuda),
        tensorrt="10.3.0",
        python="3.10.12",
        pymodbus="3.16.1",
        onnxruntime="1.32.0",
    )
    assert found["l4t"] == "36.4.0" and found["cuda"] == "12.6.68"
    status = doctor.verdicts(found)
    assert status["tensorrt"] == status["l4t"] == status["cuda"] == "never tested"
    assert status["pymodbus"].startswith("tested")
    assert status["torch"] == "absent"
    text = "\n".join(doctor.report(found))
    assert "never tested here: l4t 36.4.0, cuda 12.6.68, tensorrt 10.3.0, python 3.10.12" in text
    assert "Jetson AGX Orin, JetPack 6 [NOT executed]" in text


def test_driver_version_parsing(tmp_path: Path) -> None:
    proc = tmp_path / "version"
    proc.write_text(
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.124.06  Release Build\n"
    )
    assert doctor.driver_version(proc) == "570.124.06"
    assert doctor.driver_version(tmp_path / "absent") is None
