"""Reading config files: YAML → validated ``Config``, errors mapped to YAML lines.

Nothing else in the daemon reads YAML or environment for settings.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from inspector.config.paths import state_dir
from inspector.config.root import Config
from inspector.errors import ConfigError

#: The embedded default, shipped inside the package with the demo model it names.
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "data" / "default_config.yaml"

Loc = tuple[int | str, ...]


def _yaml_lines(node: yaml.Node, path: Loc = ()) -> dict[Loc, int]:
    """Map each key path of a composed YAML document to its 1-based line."""
    lines: dict[Loc, int] = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, key.value)
            lines.update(_yaml_lines(value, sub))
            lines[sub] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.update(_yaml_lines(item, (*path, i)))
    return lines


def _line_of(lines: dict[Loc, int], loc: Loc) -> int | None:
    """The line of the deepest existing prefix of ``loc`` (a missing key → its parent)."""
    for n in range(len(loc), -1, -1):
        if (found := lines.get(tuple(loc[:n]))) is not None:
            return found
    return None


def format_errors(exc: ValidationError, lines: dict[Loc, int], source: str) -> list[str]:
    """One message per validation error: ``file:line: key.path: message``."""
    out = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        key = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_of(lines, loc)
        where = f"{source}:{line}" if line is not None else source
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r} (misspelled?)"
        out.append(f"{where}: {key}: {msg}")
    return out


def parse_config(text: str, source: str = "<config>") -> Config:
    """Validate YAML text; raise ConfigError listing every problem with its line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    lines = _yaml_lines(node) if node is not None else {}
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("\n".join(format_errors(exc, lines, source))) from exc


def load_config(path: Path | str | None = None) -> Config:
    """Read and validate a config file (default: the embedded default of the package).

    Relative input paths (models, producers, folders) are resolved against the file's
    directory; relative runtime paths (engines, archive) against the state directory
    (``config/paths.py``).
    """
    p = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror}") from exc
    runtime = state_dir(p.parent if path is not None else None)
    return resolve_paths(parse_config(text, str(p)), p.parent, runtime)


def resolve_paths(cfg: Config, base: Path, runtime: Path | None = None) -> Config:
    """Make every relative path absolute: inputs against ``base``, runtime paths against
    ``runtime`` (default ``base``)."""
    state = runtime if runtime is not None else base

    def fix(p: Path) -> Path:
        return p if p.is_absolute() else (base / p).resolve()

    def fix_runtime(p: Path) -> Path:
        return p if p.is_absolute() else (state / p).resolve()

    recipes = [
        r.model_copy(
            update={
                "models": [
                    m.model_copy(
                        update={
                            "path": fix(m.path),
                            "engine": m.engine.model_copy(
                                update={"dir": fix_runtime(m.engine.dir)}
                            ),
                        }
                    )
                    for m in r.models
                ]
            }
        )
        for r in cfg.recipes
    ]
    camera = cfg.camera
    if camera.folder is not None:
        folder = camera.folder.model_copy(
            update={
                "path": fix(camera.folder.path),
                "labels": fix(camera.folder.labels) if camera.folder.labels else None,
            }
        )
        camera = camera.model_copy(update={"folder": folder})
    if camera.genicam.cti:
        genicam = camera.genicam.model_copy(update={"cti": [fix(p) for p in camera.genicam.cti]})
        camera = camera.model_copy(update={"genicam": genicam})
    archive = cfg.archive.model_copy(update={"dir": fix_runtime(cfg.archive.dir)})
    return cfg.model_copy(update={"recipes": recipes, "camera": camera, "archive": archive})


def config_hash(cfg: Config) -> str:
    """A short, stable fingerprint of the validated config (build_info, CONFIG_CRC)."""
    blob = json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def config_schema() -> dict[str, Any]:
    """The JSON Schema of the config (``inspector config-schema``)."""
    return Config.model_json_schema()
