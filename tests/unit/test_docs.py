"""The config reference is generated from the models and must not go stale."""

from __future__ import annotations

import subprocess
import sys

from tests.support.common import REPO


def test_config_docs_are_current() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools/gen_config_docs.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def test_every_config_section_is_documented() -> None:
    text = (REPO / "docs/config.md").read_text()
    for section in (
        "`line`",
        "`camera.sim`",
        "`recipes`",
        "`recipes.models`",
        "`plc`",
        "`metrics`",
    ):
        assert f"## {section}" in text, section
