"""Shared fixtures: the leak guard and a free port. Helpers are in tests/support/."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.common import free_port

#: What a test may leave behind for at most this long: the daemon's stop promise (2 s).
LEAK_GRACE_S = 2.0


def _sockets() -> set[str]:
    """Inodes of this process's open sockets (``socket:[123]``), from /proc."""
    found: set[str] = set()
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:  # not Linux: nothing to compare
        return found
    for fd in fds:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


def _tasks() -> set[asyncio.Task[object]]:
    """asyncio tasks still pending in any loop (live loops are found through gc)."""
    tasks: set[asyncio.Task[object]] = set()
    for obj in gc.get_objects():
        if isinstance(obj, asyncio.AbstractEventLoop) and not obj.is_closed():
            tasks |= {t for t in asyncio.all_tasks(obj) if not t.done()}
    return tasks


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail any test that leaves a thread, a socket or an asyncio task behind for longer
    than the stop promise (pymodbus' rule, adopted here and widened)."""
    threads, sockets = set(threading.enumerate()), _sockets()
    yield
    deadline = time.monotonic() + LEAK_GRACE_S
    while True:
        leaked = [t.name for t in threading.enumerate() if t not in threads and t.is_alive()]
        leaked += sorted(_sockets() - sockets)
        if not leaked:
            break
        if time.monotonic() >= deadline:
            pytest.fail(f"test leaked (after {LEAK_GRACE_S} s): {leaked}")
        time.sleep(0.02)
    tasks = _tasks()
    if tasks:
        pytest.fail(f"test leaked asyncio tasks: {[t.get_name() for t in tasks]}")


@pytest.fixture
def port() -> int:
    return free_port()
