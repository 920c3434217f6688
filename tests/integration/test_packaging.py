"""Packaging as a plant installs it (issue 15, point 7).

A wheel built from the checkout and installed non-editable (outside the repository)
runs ``inspector run`` on the embedded default; the embedded default equals the
repository's config.yaml; a missing extra ends in a sentence naming the PyPI
distribution; the distribution name, Python range and constraints files agree.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inspector.config import DEFAULT_CONFIG_PATH, load_config
from inspector.extras import DIST_NAME
from tests.support.common import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # the dev extra brings tomli on 3.10
    import tomli as tomllib

PIP = (sys.executable, "-m", "pip")
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_embedded_default_is_the_repository_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/inspector")  # same runtime base for both
    embedded = load_config(None)
    repo = load_config(REPO / "config.yaml")
    # Equal settings (the configs' texts differ in comments and the model's relative path).
    assert embedded.model_dump() == repo.model_dump()
    (model,) = embedded.recipes[0].models
    assert model.path.is_file() and model.path.is_relative_to(DEFAULT_CONFIG_PATH.parent)
    assert model.engine.dir == Path("/var/lib/inspector/engines")


def test_runtime_paths_default_under_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "etc" / "config.yaml"
    cfg.parent.mkdir()
    cfg.write_text(
        'recipes: [{id: 1, name: t, models: [{path: "m.onnx"}]}]\narchive: {enabled: true}\n'
    )
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    c = load_config(cfg)
    assert c.archive.dir == tmp_path / "state" / "archive"
    assert c.recipes[0].models[0].engine.dir == tmp_path / "state" / "engines"
    assert c.recipes[0].models[0].path == tmp_path / "etc" / "m.onnx"  # inputs: the config's
    from inspector.config.paths import kernel_cache_dir

    monkeypatch.delenv("INSPECTOR_KERNEL_CACHE", raising=False)
    assert kernel_cache_dir() == tmp_path / "state" / "kernels"
    monkeypatch.delenv("STATE_DIRECTORY")
    assert load_config(cfg).archive.dir == tmp_path / "etc" / "archive"  # a checkout


def test_metadata_name_python_range_and_constraints() -> None:
    project = PYPROJECT["project"]
    assert project["name"] == DIST_NAME == "inspector-vision"
    assert project["scripts"] == {"inspector": "inspector.cli:main"}
    assert project["requires-python"] == ">=3.10,<3.14"
    assert "(3, 10) <= v < (3, 14)" in (REPO / "Makefile").read_text()
    for pattern in PYPROJECT["tool"]["setuptools"]["package-data"]["inspector"]:
        assert list((REPO / "inspector").glob(pattern)), pattern
    base = {re.split(r"[<>=;\[ ]", d)[0].lower().replace("_", "-") for d in project["dependencies"]}
    for name in ("constraints.txt", "deploy/constraints-jetson.txt"):
        pins = {}
        for line in (REPO / name).read_text().splitlines():
            if line and not line.startswith("#"):
                pkg, _, version = line.partition("==")
                pins.setdefault(pkg.lower().replace("_", "-"), []).append(version)
        assert base <= set(pins), (name, base - set(pins))
        assert {"harvesters", "genicam", "cuda-python"} <= set(pins)
    jetson = (REPO / "deploy/constraints-jetson.txt").read_text()
    assert re.search(r"^cuda-python==12\.", jetson, re.M)  # JetPack 6: CUDA 12.6
    assert re.search(r"^numpy==1\.", jetson, re.M)
    assert "cuda-python>=12.6,<13" in project["optional-dependencies"]["jetson"]


def test_missing_extra_names_the_distribution() -> None:
    code = (
        "import sys; sys.modules['harvesters'] = None; sys.modules['harvesters.core'] = None\n"
        "from inspector.cli import main\n"
        "sys.exit(main(['camera', 'list', '--cti', '/nonexistent.cti']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert proc.returncode == 78, proc.stderr
    assert 'pip install "inspector-vision[camera]"' in proc.stderr
    assert "Traceback" not in proc.stderr


def test_wheel_runs_the_embedded_default(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [*PIP, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(REPO)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("inspector_vision-*.whl")
    site = tmp_path / "site"
    install = subprocess.run(
        [*PIP, "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert install.returncode == 0, install.stderr
    # Outside the checkout: only the installed copy (and the venv's dependencies) import.
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONUNBUFFERED": "1"}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    proc = subprocess.Popen(
        [sys.executable, "-m", "inspector", "run", "--metrics-port", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    events: list[str] = []
    try:
        assert proc.stdout is not None
        end = time.monotonic() + 90
        while time.monotonic() < end and sum('"event": "part"' in e for e in events) < 2:
            line = proc.stdout.readline()
            if not line:
                break
            events.append(line)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=10)
        finally:
            proc.kill()
            _, err = proc.communicate()
    assert any('"event": "ready"' in e for e in events), (events[-5:], err[-2000:])
    assert sum('"event": "part"' in e for e in events) >= 2  # NG parts, always logged
    loaded = next(e for e in events if '"event": "recipe_loaded"' in e)
    assert "demo-plate" in loaded
    assert rc == 0, err[-2000:]
    assert (
        str(site)
        in subprocess.run(
            [sys.executable, "-c", "import inspector; print(inspector.__file__)"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
        ).stdout
    )
