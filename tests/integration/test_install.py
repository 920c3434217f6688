"""deploy/install.sh into a temporary root: installing twice gives what installing once did.

The installer runs for real (venv, pip install of a wheel built from this checkout,
units, sysusers, config) into ``--root``; pip gets ``--no-deps --no-index`` so the test
needs no network (the dependencies are the packaging test's business). A ``systemctl``
placed first on PATH records any call: with ``--root`` there must be none.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.common import REPO

PIP_WHEEL = (sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q")
INSTALL = ("bash", str(REPO / "deploy/install.sh"), "--pip-args", "--no-deps --no-index")
INSTALL += ("--no-check",)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [*PIP_WHEEL, "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (found,) = out.glob("inspector_vision-*.whl")
    return found


def install(root: Path, wheel: Path, tmp: Path) -> str:
    fake = tmp / "fakebin"
    fake.mkdir(exist_ok=True)
    marker = tmp / "systemctl-called"
    (fake / "systemctl").write_text(f'#!/bin/sh\necho "$@" >> {marker}\nexit 1\n')
    (fake / "systemctl").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    proc = subprocess.run(
        [*INSTALL, "--root", str(root), "--wheel", str(wheel), "--python", sys.executable],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not marker.exists(), marker.read_text()
    return proc.stdout


def snapshot(root: Path) -> dict[str, str]:
    """Every file (content hash) and link (target) under root; byte-code caches aside."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if "__pycache__" in path.parts:
            continue
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[rel] = f"dir {path.stat().st_mode:o}"
    return out


def test_install_twice_is_install_once(tmp_path: Path, wheel: Path) -> None:
    root = tmp_path / "root"
    said = install(root, wheel, tmp_path)
    assert "platform x86, extras [camera]" in said
    once = snapshot(root)
    install(root, wheel, tmp_path)
    assert snapshot(root) == once
    for rel in (
        "etc/systemd/system/inspector.service",
        "etc/systemd/system/inspector@.service",
        "usr/lib/sysusers.d/inspector.conf",
        "etc/inspector/config.yaml",
        "etc/inspector/models/demo_detector.onnx",
        "opt/inspector/share/grafana/dashboards/inspector.json",
        "opt/inspector/share/prometheus/inspector-alerts.yml",
        "opt/inspector/share/doc/deploy.md",
    ):
        assert rel in once, rel
    assert "inspector:" in (root / "etc/passwd").read_text()
    assert "video:" in (root / "etc/group").read_text()
    # The installed config is the embedded default, and its model path resolves.
    config = (root / "etc/inspector/config.yaml").read_text()
    assert config == (REPO / "inspector/data/default_config.yaml").read_text()
    venv_python = root / "opt/inspector/venv/bin/python"
    version = subprocess.run(
        [
            str(venv_python),
            "-c",
            "import importlib.metadata as m; print(m.version('inspector-vision'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.strip() == "0.1.0"
    # An operator's edit survives a reinstall; nothing rewrites model paths.
    edited = config.replace("name: demo-line", "name: press-3")
    (root / "etc/inspector/config.yaml").write_text(edited)
    install(root, wheel, tmp_path)
    assert (root / "etc/inspector/config.yaml").read_text() == edited


def test_jetson_path(tmp_path: Path, wheel: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 4.0\n")
    said = install(root, wheel, tmp_path)
    assert "platform jetson, extras [camera,jetson]" in said
    assert "constraints deploy/constraints-jetson.txt" in said
    cfg = (root / "opt/inspector/venv/pyvenv.cfg").read_text()
    assert "include-system-site-packages = true" in cfg  # JetPack's TensorRT bindings
    once = snapshot(root)
    install(root, wheel, tmp_path)
    assert snapshot(root) == once
