"""Generate docs/config.md from the pydantic config models (the one source of truth).

python tools/gen_config_docs.py          # rewrite docs/config.md
python tools/gen_config_docs.py --check  # exit 1 if docs/config.md is stale (tests)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from inspector.config import Config  # noqa: E402

OUT = REPO / "docs" / "config.md"

HEADER = """# Configuration reference

Generated from `inspector/config/` by `tools/gen_config_docs.py`; do not edit by hand.
Validate a file with `inspector check-config FILE` (exit 78 on error, each error with its
YAML line and key); print the JSON Schema with `inspector config-schema`. Unknown keys are
errors. Relative paths are resolved against the config file's directory.
"""


def _type(info: FieldInfo) -> str:
    text = repr(info.annotation).replace("typing.", "").replace("pathlib.", "")
    for noise in ("<class '", "'>"):
        text = text.replace(noise, "")
    return re.sub(r"inspector\.config\.\w+\.", "", text)


def _default(info: FieldInfo) -> str:
    if info.default is not PydanticUndefined:
        value: Any = info.default
        return "required" if value is Ellipsis else f"`{value!r}`"
    if info.default_factory is not None:
        try:
            made = info.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return "(computed)"
        return "(section)" if isinstance(made, BaseModel) else f"`{made!r}`"
    return "**required**"


def _section(model: type[BaseModel], path: str, lines: list[str], seen: set[str]) -> None:
    lines += ["", f"## `{path}`" if path else "## top level", "", (model.__doc__ or "").strip(), ""]
    lines += ["| key | type | default | description |", "|---|---|---|---|"]
    nested: list[tuple[type[BaseModel], str]] = []
    for name, info in model.model_fields.items():
        desc = (info.description or "").replace("|", "\\|")
        kind = _type(info).replace("|", "\\|")
        lines.append(f"| `{name}` | `{kind}` | {_default(info)} | {desc} |")
        for sub in _models_in(info.annotation):
            key = f"{path}.{name}" if path else name
            if key not in seen:
                seen.add(key)
                nested.append((sub, key))
    for sub, key in nested:
        _section(sub, key, lines, seen)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()) or ():
        found += _models_in(arg)
    return found


def render() -> str:
    lines = [HEADER.rstrip()]
    _section(Config, "", lines, set())
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print("docs/config.md is stale: run python tools/gen_config_docs.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
