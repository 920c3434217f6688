"""Optional dependencies (pip extras) and the one message for a missing one.

The distribution is ``inspector-vision`` on PyPI (the name ``inspector`` belongs to an
unrelated project); the import package and the command stay ``inspector``. Code that
needs an extra imports it through ``require``, so a missing one ends in a sentence that
names the real install command, never in a raw ``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from inspector.errors import MissingExtra

#: The distribution name on PyPI (pyproject.toml ``[project] name``).
DIST_NAME = "inspector-vision"


def install_hint(extra: str) -> str:
    """The pip command that installs an extra of this distribution."""
    return f'pip install "{DIST_NAME}[{extra}]"'


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` or raise ``MissingExtra`` (exit 78) saying which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(
            f"{what} needs the Python package {module.split('.')[0]!r}, which is not "
            f"installed ({exc}); install it with: {install_hint(extra)}"
        ) from exc
