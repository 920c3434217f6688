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

from inspector.config.models import ModelConfig
from inspector.config.plant import resolve_plant_paths
from inspector.config.root import Config
from inspector.errors import ConfigError

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent.parent / "config.yaml"

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


#: Limits on a config file: a config is a few kB; anything far beyond is a mistake or an attack.
MAX_CONFIG_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_NODES = 100_000  # scalars, mappings and sequences, aliases expanded


def _check_tree(node: yaml.Node, source: str) -> None:
    """Refuse duplicate keys, excessive nesting and alias expansion (a 'billion laughs')."""
    sizes: dict[int, int] = {}

    def walk(n: yaml.Node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise ConfigError(f"{source}:{n.start_mark.line + 1}: nesting deeper than {MAX_DEPTH}")
        if id(n) in sizes:  # an alias: counted again, walked once
            return sizes[id(n)]
        size = 1
        if isinstance(n, yaml.MappingNode):
            seen: dict[object, int] = {}
            for key, value in n.value:
                k = key.value if isinstance(key, yaml.ScalarNode) else id(key)
                if k in seen:
                    raise ConfigError(
                        f"{source}:{key.start_mark.line + 1}: duplicate key {k!r} "
                        f"(first on line {seen[k]})"
                    )
                seen[k] = key.start_mark.line + 1
                size += walk(key, depth + 1) + walk(value, depth + 1)
        elif isinstance(n, yaml.SequenceNode):
            size += sum(walk(item, depth + 1) for item in n.value)
        sizes[id(n)] = size
        if size > MAX_NODES:
            raise ConfigError(f"{source}: more than {MAX_NODES} values (aliases expanded)")
        return size

    walk(node, 0)


def parse_config(text: str, source: str = "<config>") -> Config:
    """Validate YAML text; raise ConfigError listing every problem with its line.

    Before validation the document is checked for duplicate keys, nesting, size and
    alias expansion; numbers must be finite (``Section`` forbids inf and NaN).
    """
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: larger than {MAX_CONFIG_BYTES} bytes; not a config file")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            _check_tree(node, source)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from exc
    except RecursionError as exc:
        raise ConfigError(f"{source}: nesting too deep") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    lines = _yaml_lines(node) if node is not None else {}
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("\n".join(format_errors(exc, lines, source))) from exc
    cfg._as_written_hash = _fingerprint(cfg)
    return cfg


def load_config(path: Path | str | None = None) -> Config:
    """Read and validate a config file (default: the repository's config.yaml).

    Relative paths inside the config are resolved against the file's directory.
    """
    p = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    return resolve_paths(parse_config(read_config_text(p), str(p)), p.parent)


def read_config_text(p: Path) -> str:
    """The file's text: a regular file, at most MAX_CONFIG_BYTES, strict UTF-8."""
    try:
        if not p.is_file():
            raise ConfigError(f"cannot read config {p}: not a regular file")
        with p.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror}") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{p}: larger than {MAX_CONFIG_BYTES} bytes; not a config file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{p}: not UTF-8 text (byte {exc.start}: {raw[exc.start : exc.start + 1]!r}); "
            "save the config as UTF-8"
        ) from exc


def resolve_paths(cfg: Config, base: Path) -> Config:
    """Make every relative model/camera path absolute against ``base``."""

    def fix(p: Path) -> Path:
        return p if p.is_absolute() else (base / p).resolve()

    def fix_model(m: ModelConfig) -> ModelConfig:
        update: dict[str, object] = {
            "path": fix(m.path),
            "engine": m.engine.model_copy(update={"dir": fix(m.engine.dir)}),
        }
        # model_copy marks updated keys as given, and a given family block declares the
        # family (ModelConfig.declared_family): touch the anomaly block only if it was given.
        if m.anomaly.metadata is not None:
            update["anomaly"] = m.anomaly.model_copy(update={"metadata": fix(m.anomaly.metadata)})
        return m.model_copy(update=update)

    recipes = [
        r.model_copy(update={"models": [fix_model(m) for m in r.models]}) for r in cfg.recipes
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
    archive = cfg.archive.model_copy(update={"dir": fix(cfg.archive.dir)})
    plant = resolve_plant_paths(cfg.mqtt, cfg.opcua, fix)
    return cfg.model_copy(
        update={"recipes": recipes, "camera": camera, "archive": archive, **plant}
    )


def config_hash(cfg: Config) -> str:
    """A short, stable fingerprint of the config as written (build_info, CONFIG_CRC).

    The same YAML gives the same hash wherever it is installed and whatever the
    command line overrides (``--metrics-port``, ``--parts``): it is taken when the text
    is parsed, with paths as written. A config built in code is hashed as it stands.
    """
    return cfg._as_written_hash or _fingerprint(cfg)


def _fingerprint(cfg: Config) -> str:
    blob = json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def config_schema() -> dict[str, Any]:
    """The JSON Schema of the config (``inspector config-schema``)."""
    return Config.model_json_schema()
