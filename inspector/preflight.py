"""Preflight: the start-up checks, runnable without opening any hardware.

Where it sits: beside ``app`` (wiring). ``inspector check-config FILE`` runs
``preflight(cfg)``; ``App.start`` runs the same checks (``check_environment`` before
anything starts, ``check_recipe`` on every loaded recipe) before it reports READY. So a
config that passes check-config does not crash-loop at start, and one that would is
refused with exit 78 and one line per problem naming the key — never a traceback.

Checks, in the order a part flows:
* camera: the extras it needs are installed; its files and folders exist; the web page's
  extra (``hmi``) when the page is enabled;
* models: each file exists and is readable; the backend's extras are installed; host
  (ONNX Runtime, CPU) models are loaded and their outputs fitted to their family;
* rules: every class name used in the rules exists in a model of the recipe (a
  misspelled ``scrach: 0.9`` would silently never apply: an escape risk);
* directories the daemon writes to (engines when it builds them, the MQTT spool) are
  writable; an archive directory that is not is only a warning (``check_warnings``): the
  archive then runs off, with a fault flag, and never stops the start; plant extras
  (mqtt, opcua) installed, their certificates there.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path

from inspector.camera import probe_frame
from inspector.config import Config, ModelConfig, RecipeConfig
from inspector.errors import ConfigError, InspectorError
from inspector.extras import install_hint
from inspector.quality import fits as quality_fits
from inspector.types import Frame

#: Python modules each optional piece needs, and the extra that installs them.
CAMERA_EXTRAS = {"genicam": (("harvesters", "genicam"), "camera")}
BACKEND_EXTRAS = {
    "torch": (("torch",), "torch"),
    "tensorrt": (("tensorrt", "cuda"), "tensorrt"),
}
CUDA_PREPROCESS_EXTRAS = (("cuda",), "gpu")
HMI_EXTRAS = (("aiohttp",), "hmi")
PLANT_EXTRAS = {"mqtt": (("paho",), "mqtt"), "opcua": (("asyncua",), "opcua")}


def _missing(modules: Iterable[str]) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def _extra_problem(what: str, modules: Iterable[str], extra: str) -> str | None:
    missing = _missing(modules)
    if not missing:
        return None
    return (
        f"{what} needs the '{extra}' extra (missing Python module(s) {', '.join(missing)}): "
        f"{install_hint(extra)} in the daemon's venv"
    )


def _writable_dir(path: Path, key: str) -> str | None:
    """None if ``path`` is (or can be created as) a writable directory, else why not."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        return f"{key}: {probe} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{key}: {probe} is not writable by this user"
    return None


def check_environment(cfg: Config) -> list[str]:
    """Everything checkable without loading a model: extras, files, writable dirs."""
    problems: list[str] = []
    cam = cfg.camera
    if cam.type in CAMERA_EXTRAS:
        modules, extra = CAMERA_EXTRAS[cam.type]
        problems.append(_extra_problem(f"camera.type {cam.type!r}", modules, extra) or "")
    if cam.type == "genicam":
        problems += [
            f"camera.genicam.cti: {p} does not exist" for p in cam.genicam.cti if not p.is_file()
        ]
    if cam.type == "folder" and cam.folder is not None:
        if not cam.folder.path.is_dir():
            problems.append(f"camera.folder.path: {cam.folder.path} is not a directory")
        if cam.folder.labels is not None and not cam.folder.labels.is_file():
            problems.append(f"camera.folder.labels: {cam.folder.labels} does not exist")
    for r_i, recipe in enumerate(cfg.recipes):
        for m_i, model in enumerate(recipe.models):
            problems += _model_file_problems(model, f"recipes[{r_i}].models[{m_i}]")
    if cfg.hmi.enabled:
        problems.append(_extra_problem("hmi.enabled", *HMI_EXTRAS) or "")
    return [p for p in problems + _plant_problems(cfg) if p]


def _plant_problems(cfg: Config) -> list[str]:
    """MQTT and OPC UA: extras installed, spool directory writable, certificate files there."""
    problems: list[str] = []
    files: list[tuple[Path | None, str]] = []
    if cfg.mqtt.enabled:
        modules, extra = PLANT_EXTRAS["mqtt"]
        problems.append(_extra_problem("mqtt.enabled", modules, extra) or "")
        problems.append(_writable_dir(cfg.mqtt.spool_path.parent, "mqtt.spool_path") or "")
        tls = cfg.mqtt.tls
        if tls.enabled:
            files += [(tls.ca_file, "mqtt.tls.ca_file"), (tls.cert_file, "mqtt.tls.cert_file")]
            files += [(tls.key_file, "mqtt.tls.key_file")]
    if cfg.opcua.enabled:
        modules, extra = PLANT_EXTRAS["opcua"]
        problems.append(_extra_problem("opcua.enabled", modules, extra) or "")
        files += [(cfg.opcua.certificate, "opcua.certificate")]
        files += [(cfg.opcua.private_key, "opcua.private_key")]
    problems += [f"{key}: {p} does not exist" for p, key in files if p and not p.is_file()]
    return problems


def check_warnings(cfg: Config) -> list[str]:
    """What will run degraded but does not stop the start: an unwritable archive."""
    if cfg.archive.enabled and (problem := _writable_dir(cfg.archive.dir, "archive.dir")):
        return [f"{problem}: the archive will be off (inspection goes on)"]
    return []


def _model_file_problems(model: ModelConfig, key: str) -> list[str]:
    problems: list[str] = []
    if not model.path.is_file():
        problems.append(f"{key}.path: model file {model.path} does not exist")
    elif not os.access(model.path, os.R_OK):
        problems.append(f"{key}.path: model file {model.path} is not readable")
    if model.backend in BACKEND_EXTRAS:
        modules, extra = BACKEND_EXTRAS[model.backend]
        problems.append(_extra_problem(f"{key}.backend {model.backend!r}", modules, extra) or "")
    if model.preprocess.device == "cuda":
        modules, extra = CUDA_PREPROCESS_EXTRAS
        problems.append(_extra_problem(f"{key}.preprocess.device 'cuda'", modules, extra) or "")
    if model.backend == "tensorrt" and model.engine.build_on_start:
        problems.append(_writable_dir(model.engine.dir, f"{key}.engine.dir") or "")
    return [p for p in problems if p]


def rule_class_names(recipe: RecipeConfig) -> dict[str, set[str]]:
    """Class names the rules of ``recipe`` name, by rule key ('default' excluded)."""
    rules = recipe.rules
    used: dict[str, set[str]] = {}
    for key, table in (
        ("min_confidence", rules.min_confidence),
        ("min_area_px", rules.min_area_px),
        ("max_count", rules.max_count),
    ):
        names = {n for n in table if n != "default"}
        if names:
            used[key] = names
    return used


def check_recipe(recipe: RecipeConfig, class_names: Iterable[Iterable[str]]) -> list[str]:
    """Problems with the rules of a recipe whose models know ``class_names`` (one per model)."""
    known: set[str] = set()
    for names in class_names:
        known.update(names)
    problems = []
    for key, names in rule_class_names(recipe).items():
        for name in sorted(names - known):
            hint = f"; the models know {sorted(known)}" if known else ""
            problems.append(
                f"recipe {recipe.id} ({recipe.name}): rules.{key} names class {name!r}, "
                f"which no model of the recipe has{hint}"
            )
    return problems


def load_host_models(
    recipe: RecipeConfig, probe: Frame | None = None
) -> tuple[list[tuple[str, ...]], list[str]]:
    """Load the recipe's host (ONNX Runtime CPU) models, fit their outputs and, given a
    ``probe`` frame, run the whole path on it as the start does (``prove_recipe``).

    Returns each loaded model's class names and the problems found. Device models
    (torch, TensorRT, CUDA preprocessing) are not opened here: that needs the GPU.
    """
    from inspector.backends import create_backend
    from inspector.inspect import LoadedModel, LoadedRecipe, prove_recipe
    from inspector.models import build_postprocessor

    names: list[tuple[str, ...]] = []
    problems: list[str] = []
    for m_i, model in enumerate(recipe.models):
        if model.backend != "onnxruntime" or model.preprocess.device != "cpu":
            continue
        key = f"recipe {recipe.id} models[{m_i}] ({model.name})"
        try:
            backend = create_backend(model)
        except InspectorError as exc:
            problems.append(f"{key}: cannot load {model.path}: {exc}")
            continue
        try:
            post = build_postprocessor(model, backend.info)
            names.append(tuple(post.class_names))
            if probe is not None:
                one = recipe.model_copy(update={"models": [model]})
                prove_recipe(LoadedRecipe(one, [LoadedModel(model, backend, post)]), probe)
        except InspectorError as exc:
            problems.append(f"{key}: {exc}")
        finally:
            backend.close()
    return names, problems


def preflight(cfg: Config) -> None:
    """Every start-up check that needs no hardware; raises ConfigError listing all problems."""
    problems = check_environment(cfg)
    if not problems:  # models only once their files and extras are there
        probe = probe_frame(cfg.camera)
        for recipe in cfg.recipes:
            if problem := quality_fits(recipe.quality, *probe.image.shape[:2]):
                problems.append(f"recipe {recipe.id} ({recipe.name}): {problem}")
            names, load_problems = load_host_models(recipe, probe)
            problems += load_problems
            if not load_problems and len(names) == len(recipe.models):
                problems += check_recipe(recipe, names)
    if problems:
        raise ConfigError("\n".join(problems))
