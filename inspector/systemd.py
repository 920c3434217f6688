"""sd_notify over $NOTIFY_SOCKET: READY, WATCHDOG, STATUS, EXTEND_TIMEOUT_USEC.

No dependency on libsystemd: the protocol is one datagram per message. Outside systemd
(no $NOTIFY_SOCKET) every call is a no-op that returns False.
"""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    """Send one notification, e.g. ``READY=1`` or ``STATUS=...``; True if sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError:
        return False
    return True


def ready(status: str = "") -> bool:
    return notify("READY=1" + (f"\nSTATUS={status}" if status else ""))


def watchdog() -> bool:
    return notify("WATCHDOG=1")


def stopping() -> bool:
    return notify("STOPPING=1")


def extend_timeout(seconds: float, status: str = "") -> bool:
    """Ask systemd for more start time (long engine builds), optionally with a STATUS."""
    usec = int(seconds * 1e6)
    return notify(f"EXTEND_TIMEOUT_USEC={usec}" + (f"\nSTATUS={status}" if status else ""))


def watchdog_interval_s() -> float | None:
    """Half of $WATCHDOG_USEC, the interval to ping at; None when no watchdog is set."""
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec or ((pid := os.environ.get("WATCHDOG_PID")) and int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6
