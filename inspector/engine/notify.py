"""A tiny sd_notify client: tell systemd about a long start (an engine build).

systemd passes ``$NOTIFY_SOCKET`` to a ``Type=notify`` service; each message is one
datagram of ``KEY=VALUE`` lines. A TensorRT build takes minutes on an Orin, longer
than ``TimeoutStartSec``, so the builder sends ``EXTEND_TIMEOUT_USEC`` as it goes.
``inspector/systemd.py`` (READY/WATCHDOG/STATUS) can reuse ``notify``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


def notify(*lines: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``lines`` as one datagram to ``$NOTIFY_SOCKET``; False when not under systemd.

    A socket name starting with ``@`` is in the abstract namespace (leading NUL byte).
    Errors are swallowed and reported as False: a status message must never stop a
    start, and systemd enforces its own timeouts if messages are lost.
    """
    address = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if not address or address[0] not in "@/":
        return False
    target = "\0" + address[1:] if address.startswith("@") else address
    payload = "\n".join(lines).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(target)
            sock.sendall(payload)
    except OSError:
        return False
    return True


def extend_timeout(seconds: float, status: str = "", env: Mapping[str, str] | None = None) -> bool:
    """Ask systemd for ``seconds`` more of start time (``EXTEND_TIMEOUT_USEC``)."""
    lines = [f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}"]
    if status:
        lines.append(f"STATUS={status}")
    return notify(*lines, env=env)
