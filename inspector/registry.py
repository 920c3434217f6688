"""One registry mechanism: a name → ``"module:attribute"`` table, imported only when used.

Backends (step 4), model families (step 5), camera types (step 2) and the CLI's
subcommands are each one ``Registry``. Nothing listed is imported until its name is
asked for, so a CPU machine never imports TensorRT, CUDA, torch or harvesters, and the
demo pieces (``inspector/sim/``) are reached by name, never imported by the core.

A name that is not in the table, or whose module needs an optional extra that is not
installed, is a configuration mistake: ``ConfigError`` (exit 78) naming the extra.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from inspector.errors import ConfigError
from inspector.extras import install_hint

#: Top-level module → the optional extra of pyproject.toml that installs it.
EXTRAS: dict[str, str] = {
    "tensorrt": "tensorrt",
    "cuda": "gpu",
    "torch": "torch",
    "harvesters": "camera",
    "genicam": "camera",
}


@dataclass(frozen=True, slots=True)
class Registry:
    """``kind`` names what is registered (in messages); ``entries`` maps each name to
    ``"package.module:attribute"``."""

    kind: str
    entries: Mapping[str, str]

    def names(self) -> list[str]:
        return sorted(self.entries)

    def load(self, name: str) -> Any:
        """Import the module registered under ``name`` and return its attribute."""
        try:
            target = self.entries[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {self.names()}") from None
        module_name, _, attribute = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            extra = EXTRAS.get((exc.name or "").split(".")[0])
            if extra is None:
                raise  # not an optional extra: a broken install, not a config mistake
            raise ConfigError(
                f"{self.kind} {name!r} needs the optional extra {extra!r}, which is not "
                f"installed here ({install_hint(extra)}): {exc}"
            ) from exc
        return getattr(module, attribute)
