"""Recipes at start: every model built, warmed and proven; the fingerprints of the set.

Where it sits: just below ``app`` (wiring). ``load_recipe`` builds what a part runs
through (step 3-6 of the flow) — backend, postprocessor, the runner chosen once (host or
device path) — and proves the whole path on a synthetic frame before the daemon
reports READY. ``models_hash`` and ``config_crc16`` fingerprint what was loaded
(``build_info``, the PLC's CONFIG_CRC). Used by ``App``, ``inspector replay`` and
``inspector eval``, and the benchmarks.
"""

from __future__ import annotations

import hashlib

from inspector.backends import create_backend
from inspector.camera import probe_frame
from inspector.config import CameraConfig, Config, PipelineConfig, RecipeConfig
from inspector.engine.manifest import model_sha256
from inspector.errors import ConfigError
from inspector.inspect import LoadedModel, LoadedRecipe, prove_recipe
from inspector.models import build_postprocessor
from inspector.quality import fits as quality_fits
from inspector.types import Frame


def models_hash(cfg: Config) -> str:
    """Fingerprint of every model file of every recipe (build_info, CONFIG_CRC)."""
    h = hashlib.sha256()
    for recipe in cfg.recipes:
        for m in recipe.models:
            h.update(model_sha256(m.path).encode() if m.path.exists() else b"missing")
    return h.hexdigest()[:16]


def config_crc16(model_hash: str, cfg_hash: str) -> int:
    """CRC-16/MODBUS of the model-set and config fingerprints: the CONFIG_CRC register."""
    from inspector.plc.protocol import crc16_bytes

    return crc16_bytes(f"{model_hash}:{cfg_hash}".encode())


def load_recipe(
    recipe: RecipeConfig,
    warmup_runs: int = 3,
    pipeline: PipelineConfig | None = None,
    probe: Frame | None = None,
) -> LoadedRecipe:
    """Load, warm and prove every model of a recipe; raises BackendError/ModelError/ConfigError.

    Each model gets its runner here, once (``LoadedModel.with_runner``): the host path,
    or with ``preprocess.device: cuda`` the device runner (pinned frames, fused NVRTC
    kernel, the backend's device path, device NMS, one CUDA graph per lane); CUDA is
    imported only then. Then the whole path (preprocess, infer, postprocess, decide)
    runs once on ``probe``, a synthetic frame shaped like the camera's (default: the
    sim camera's), so a model whose outputs cannot be read stops the start.
    """
    pipeline = pipeline or PipelineConfig()
    loaded = LoadedRecipe(recipe, [])
    try:
        for m in recipe.models:
            backend = create_backend(m)  # a pinned file is checked before the backend reads it
            post = build_postprocessor(m, backend.info)
            backend.warmup(warmup_runs)
            loaded.models.append(LoadedModel.with_runner(m, backend, post, pipeline))
        frame = probe if probe is not None else probe_frame(CameraConfig())
        if problem := quality_fits(recipe.quality, *frame.image.shape[:2]):
            raise ConfigError(f"recipe {recipe.id} ({recipe.name}): {problem}")
        prove_recipe(loaded, frame)
    except BaseException:
        loaded.close()
        raise
    return loaded
