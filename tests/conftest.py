"""Shared fixtures: the thread-leak guard and a free port. Helpers are in tests/support/."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.common import free_port


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail any test that leaves a thread running (pymodbus' rule, adopted here)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 3.0
    leaked: list[threading.Thread] = []
    while time.monotonic() < deadline:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked:
            return
        time.sleep(0.02)
    pytest.fail(f"test leaked threads: {[t.name for t in leaked]}")


@pytest.fixture
def port() -> int:
    return free_port()
