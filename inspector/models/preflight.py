"""The model half of the start-up preflight: load each model, recognise it and bind its
postprocessor, exactly as start does, then close it (before step 1 ever runs).

``inspector check-config`` calls ``check_models`` so that a family, layout, class-name or
input-size mismatch is refused before deployment with exit 78, not found per part
after the daemon said it was ready.
"""

from __future__ import annotations

from inspector.backends import create_backend
from inspector.config import Config
from inspector.errors import BackendError, ConfigError, ModelError
from inspector.models import build_postprocessor


def check_models(cfg: Config) -> list[str]:
    """One line per model (what it was recognised as); ConfigError listing every failure."""
    lines: list[str] = []
    errors: list[str] = []
    for recipe in cfg.recipes:
        for model in recipe.models:
            where = f"recipe {recipe.id} model '{model.name}'"
            try:
                backend = create_backend(model)
            except BackendError as exc:
                errors.append(f"{where}: {exc}")
                continue
            try:
                post = build_postprocessor(model, backend.info)
                lines.append(
                    f"{where}: {post.family} ({post.layout}), input {list(post.input_hw)}, "
                    f"classes {list(post.class_names)}"
                )
            except (ModelError, ConfigError) as exc:
                errors.append(f"{where}: {exc}")
            finally:
                backend.close()
    if errors:
        raise ConfigError("\n".join(errors))
    return lines
