"""The bundled sim-line models (engines/sim_*.onnx, tools/train_bundled.py): recognised
with no family set, run through the daemon's inspection path on held-out sim parts, and
``inspector eval`` over a labelled folder (JSON and Ultralytics txt labels) writes its
report, plot, raw scores and a recipe that loads. The full 1,000-part figures are in
docs/bundled-models.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from inspector.config import ModelConfig, RecipeConfig, SimCameraConfig, SimDefectConfig
from inspector.inspect import LoadedRecipe, inspect_part
from inspector.recipes import load_recipe
from inspector.sim.camera import write_dataset
from inspector.sim.render import render_part
from inspector.types import Frame

REPO = Path(__file__).resolve().parents[2]
ENGINES = REPO / "engines"
HOLDOUT = 9000  # never used in training (tools/train_bundled.py: 4000, 4100, 5000)
SIM = SimCameraConfig(seed=HOLDOUT, defects=SimDefectConfig(rate=0.5))
PARTS = [render_part(HOLDOUT, i, SIM) for i in range(8)]


@pytest.fixture(scope="module", params=["sim_unet_seg", "sim_anomaly", "sim_classifier"])
def bundled(request: pytest.FixtureRequest) -> Iterator[tuple[str, LoadedRecipe]]:
    model = ModelConfig(name=request.param, path=ENGINES / f"{request.param}.onnx")
    recipe = load_recipe(RecipeConfig(id=1, name="sim", models=[model]), warmup_runs=1)
    yield request.param, recipe
    recipe.close()


def test_files_are_small() -> None:
    for name in ("sim_unet_seg", "sim_anomaly", "sim_classifier"):
        assert (ENGINES / f"{name}.onnx").stat().st_size < 5 * 1024 * 1024


def test_recognised_and_run_through_the_inspection_path(
    bundled: tuple[str, LoadedRecipe],
) -> None:
    name, recipe = bundled
    post = recipe.models[0].post
    expected = {
        "sim_unet_seg": ("segmentation", "semantic"),
        "sim_anomaly": ("anomaly", "v2"),
        "sim_classifier": ("classification", "scores"),
    }[name]
    assert (post.family, post.layout) == expected
    verdicts = []
    for i, (image, truth) in enumerate(PARTS):
        verdict, _ = inspect_part(Frame(image, "Mono8", i, 0, truth=truth), recipe)
        verdicts.append((bool(truth), verdict.ok))
    assert any(bad for bad, _ in verdicts) and any(not bad for bad, _ in verdicts)
    if name != "sim_anomaly":  # 0 escapes and 0 overkill on 1,000 held-out parts
        assert all(bad != ok for bad, ok in verdicts), verdicts


@pytest.fixture(scope="module")
def holdout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval")
    images = root / "images" / "val"
    labels = write_dataset(images, HOLDOUT, 12, SIM)
    # The same truth as Ultralytics txt labels in labels/val (boxes need not be exact).
    (root / "labels" / "val").mkdir(parents=True)
    for name, boxes in json.loads(labels.read_text()).items():
        lines = [f"0 0.5 0.5 {(b[3] - b[1]) / 1280:.4f} {(b[4] - b[2]) / 1024:.4f}" for b in boxes]
        (root / "labels" / "val" / name.replace(".png", ".txt")).write_text("\n".join(lines))
    return images


def _config(tmp: Path, model: str) -> Path:
    text = (
        (REPO / "config.yaml")
        .read_text()
        .replace("inspector/data/models/demo_detector.onnx", str(ENGINES / f"{model}.onnx"))
    )
    path = tmp / "config.yaml"
    path.write_text(text)
    return path


def test_eval_reports_sweeps_plots_and_writes_a_recipe(holdout: Path, tmp_path: Path) -> None:
    out = {k: tmp_path / v for k, v in (("plot", "s.png"), ("raw", "r.jsonl"), ("rec", "r.yaml"))}
    cmd = [sys.executable, "-m", "inspector", "eval", "-c", str(_config(tmp_path, "sim_anomaly"))]
    cmd += ["--images", str(holdout), "--plot", str(out["plot"]), "--raw", str(out["raw"])]
    cmd += ["--write-recipe", str(out["rec"]), "--choose", "balanced", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "escape rate" in proc.stdout and "overkill rate" in proc.stdout
    assert "min_confidence[anomaly]" in proc.stdout and "lowest escape + overkill" in proc.stdout
    assert out["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    raw = [json.loads(line) for line in out["raw"].read_text().splitlines()]
    assert len(raw) == 12
    # Raw scores are kept: every part has its image-level score, below threshold or not.
    assert all(any(f["area_px"] > 1e6 for f in r["findings"]) for r in raw)
    (recipe,) = yaml.safe_load(out["rec"].read_text())
    loaded = RecipeConfig.model_validate(recipe)  # what eval writes loads
    thr = loaded.models[0].anomaly.image_threshold
    assert loaded.rules.min_confidence["anomaly"] == thr == loaded.models[0].anomaly.pixel_threshold


def test_eval_reads_ultralytics_txt_labels(holdout: Path, tmp_path: Path) -> None:
    cfg = _config(tmp_path, "sim_classifier")
    json_run = subprocess.run(
        [sys.executable, "-m", "inspector", "eval", "-c", str(cfg), "--images", str(holdout),
         "--labels", str(holdout / "labels.json"), "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    txt_run = subprocess.run(
        [sys.executable, "-m", "inspector", "eval", "-c", str(cfg), "--images", str(holdout),
         "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert json_run.returncode == txt_run.returncode == 0, txt_run.stderr
    table = [ln for ln in txt_run.stdout.splitlines() if ln.startswith("truth")]
    assert table == [ln for ln in json_run.stdout.splitlines() if ln.startswith("truth")]
    counts = [int(v) for ln in table for v in ln.split()[2:4]]
    assert sum(counts) == 12 and np.array(counts).min() >= 0
