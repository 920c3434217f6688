"""Config validation: every error names its key and YAML line; the default is valid."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from inspector.config import (
    DEFAULT_CONFIG_PATH,
    config_hash,
    config_schema,
    load_config,
    parse_config,
)
from inspector.errors import EXIT_CONFIG, ConfigError
from tests.support.onnx_models import make_detector_onnx

MINIMAL = """\
recipes:
  - id: 1
    name: plate
    models:
      - path: model.onnx
"""


def test_default_config_is_valid() -> None:
    cfg = load_config(DEFAULT_CONFIG_PATH)
    assert cfg.line.cycle_budget_ms == 30
    assert cfg.recipe(cfg.default_recipe).models[0].path.is_absolute()


def test_misspelled_key_names_key_and_line() -> None:
    text = MINIMAL + "line:\n  cycle_budjet_ms: 20\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, "cfg.yaml")
    msg = str(err.value)
    assert "cfg.yaml:7: line.cycle_budjet_ms: unknown key 'cycle_budjet_ms'" in msg


def test_every_error_is_reported_with_its_line() -> None:
    text = MINIMAL.replace("path: model.onnx", "path: model.onnx\n        detection: {conf: 7}") + (
        "metrics:\n  port: -1\n"
    )
    with pytest.raises(ConfigError) as err:
        parse_config(text, "c.yaml")
    lines = str(err.value).splitlines()
    assert any(line.startswith("c.yaml:6: recipes.0.models.0.detection.conf") for line in lines)
    assert any(line.startswith("c.yaml:8: metrics.port") for line in lines)


def test_missing_required_key_points_at_parent() -> None:
    with pytest.raises(ConfigError, match=r"c.yaml:2: recipes.0.name: Field required"):
        parse_config("recipes:\n  - id: 1\n    models: [{path: m.onnx}]\n", "c.yaml")


def test_unknown_default_recipe_and_duplicate_ids() -> None:
    with pytest.raises(ConfigError, match="default_recipe 3"):
        parse_config(MINIMAL + "default_recipe: 3\n")
    dup = MINIMAL + "  - id: 1\n    name: b\n    models: [{path: m.onnx}]\n"
    with pytest.raises(ConfigError, match="repeated: \\[1\\]"):
        parse_config(dup)


def test_bad_rules_are_refused() -> None:
    bad = MINIMAL + "    rules:\n      roi_include: [[[0, 0], [1, 1]]]\n"
    with pytest.raises(ConfigError, match="at least 3 points"):
        parse_config(bad)
    bad = MINIMAL + "    rules:\n      min_confidence: {scratch: 1.5}\n"
    with pytest.raises(ConfigError, match=r"within 0\.\.1"):
        parse_config(bad)


def test_invalid_yaml_and_non_mapping() -> None:
    with pytest.raises(ConfigError, match="invalid YAML"):
        parse_config("recipes: [\n")
    with pytest.raises(ConfigError, match="mapping"):
        parse_config("- 1\n- 2\n")


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(MINIMAL)
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.recipes[0].models[0].path == (tmp_path / "model.onnx").resolve()


def test_hash_is_stable_and_sensitive() -> None:
    a, b = parse_config(MINIMAL), parse_config(MINIMAL)
    c = parse_config(MINIMAL + "line: {cycle_budget_ms: 25}\n")
    assert config_hash(a) == config_hash(b) != config_hash(c)


def _check_config_crc(config: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "inspector", "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    crc = [line for line in proc.stdout.splitlines() if line.startswith("CONFIG_CRC ")]
    assert len(crc) == 1, proc.stdout
    return crc[0]


def test_config_crc_does_not_depend_on_install_dir_or_overrides(tmp_path: Path) -> None:
    """Same YAML and same model bytes in two directories: one CONFIG_CRC; the model
    hash follows the file's content, and command-line overrides are not hashed."""
    model = make_detector_onnx(tmp_path / "model.onnx", [(30, 30, 8, 8, 0, 0.9)])
    crcs = []
    for where in ("a", "b/deeper"):
        d = tmp_path / where
        d.mkdir(parents=True)
        shutil.copyfile(model, d / "model.onnx")
        (d / "c.yaml").write_text(MINIMAL)
        crcs.append(_check_config_crc(d / "c.yaml"))
    assert crcs[0] == crcs[1]
    make_detector_onnx(tmp_path / "a" / "model.onnx", [(30, 30, 8, 8, 1, 0.9)])
    assert _check_config_crc(tmp_path / "a" / "c.yaml") != crcs[0]
    cfg = load_config(tmp_path / "b" / "deeper" / "c.yaml")
    port = cfg.model_copy(update={"metrics": cfg.metrics.model_copy(update={"port": 9999})})
    assert config_hash(port) == config_hash(cfg) == config_hash(parse_config(MINIMAL))


def test_schema_has_description_on_every_field() -> None:
    schema = config_schema()
    missing = []
    for name, model in schema["$defs"].items():
        for field, spec in model.get("properties", {}).items():
            if "description" not in spec:
                missing.append(f"{name}.{field}")
    assert not missing, missing


def test_check_config_cli_exit_codes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MINIMAL + "camera:\n  typ: sim\n")
    proc = subprocess.run(
        [sys.executable, "-m", "inspector", "check-config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == EXIT_CONFIG
    assert "bad.yaml:7: camera.typ: unknown key 'typ'" in proc.stderr
    good = subprocess.run(
        [sys.executable, "-m", "inspector", "check-config", str(DEFAULT_CONFIG_PATH)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert good.returncode == 0, good.stderr


def test_plc_and_camera_triggers_need_their_links() -> None:
    with pytest.raises(ConfigError, match=r"plc\.enabled"):
        parse_config(MINIMAL + "trigger: {source: plc}\n")
    with pytest.raises(ConfigError, match="trigger_mode 'hardware'"):
        parse_config(MINIMAL + "trigger: {source: camera}\nplc: {enabled: true}\n")


def test_relative_cti_paths_resolve(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(MINIMAL + "camera: {genicam: {cti: [vendor/x.cti]}}\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.camera.genicam.cti == [(tmp_path / "vendor/x.cti").resolve()]
