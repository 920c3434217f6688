"""Where the repository is, and a free loopback port."""

from __future__ import annotations

import random
import socket
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent

_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago.

    It lies below the kernel's ephemeral range, so no ``bind(0)`` and no outgoing
    connection of any process (a daemon's embedded PLC simulator, a client socket) can
    take it between this call and the daemon's bind; and it is never handed out twice in
    one test run. (The kernel's own ``bind(0)`` gave both kinds of collision.)"""
    low = _ephemeral_low()
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(min(20000, low - 1000), low)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free loopback port below the ephemeral range")
