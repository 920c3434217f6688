"""Simulated viewers of the station web page, in their own process (load test, benchmark).

    python -m tests.support.hmi_clients URL --clients 20 --stuck 1 --seconds 60

Each client does what the page's script does: one Server-Sent Events stream, and for
every ``part`` message a check of its inline JPEG. A stuck client opens the stream with a tiny
receive buffer and never reads. Prints one JSON line: per-client counts and errors.
Runs in a process of its own so that the clients' work never shares the daemon's (or the
test's) interpreter; every loop is bounded in time and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
from urllib.parse import urlsplit

import aiohttp


async def viewer(url: str, seconds: float, out: dict[str, int]) -> None:
    end = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=None, sock_read=20)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        while time.monotonic() < end:
            try:
                async with s.get(url + "events") as stream:
                    out["streams"] += 1
                    buf = b""
                    while time.monotonic() < end:
                        try:
                            chunk = await asyncio.wait_for(
                                stream.content.readany(), max(0.01, end - time.monotonic())
                            )
                        except asyncio.TimeoutError:
                            break
                        if not chunk:
                            break
                        buf += chunk
                        *blocks, buf = buf.split(b"\n\n")
                        for block in blocks:
                            await handle(s, url, block, out)
            except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError):
                out["errors"] += 1
                await asyncio.sleep(0.5)


JPEG_INLINE = b'"src":"data:image/jpeg;base64,/9j/'  # a data URL whose bytes start FF D8 FF


async def handle(s: aiohttp.ClientSession, url: str, block: bytes, out: dict[str, int]) -> None:
    """Count one message. An image is recognised by its inline JPEG's first bytes, not
    decoded: the viewers share the daemon's two cores, so they do as little as possible
    (the browser test decodes and shows real images)."""
    if block.startswith(b"event: stats"):
        out["stats"] += 1
    elif block.startswith(b"event: part"):
        out["parts"] += 1
        out["images" if JPEG_INLINE in block else "image_misses"] += 1


async def stuck(url: str, seconds: float, out: dict[str, int]) -> None:
    """Opens the live stream and never reads a byte."""
    u = urlsplit(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((u.hostname or "127.0.0.1", u.port or 80))
    sock.sendall(f"GET /events HTTP/1.1\r\nHost: {u.netloc}\r\n\r\n".encode())
    out["streams"] += 1
    await asyncio.sleep(seconds)
    sock.close()


async def main_async(url: str, clients: int, stuck_n: int, seconds: float) -> dict[str, object]:
    keys = ("streams", "parts", "stats", "images", "image_misses", "errors")
    viewers = [dict.fromkeys(keys, 0) for _ in range(clients)]
    stuck_out = [dict.fromkeys(keys, 0) for _ in range(stuck_n)]
    await asyncio.gather(
        *(viewer(url, seconds, o) for o in viewers), *(stuck(url, seconds, o) for o in stuck_out)
    )
    return {"viewers": viewers, "stuck": stuck_out}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("url")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--stuck", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    url = args.url if args.url.endswith("/") else args.url + "/"
    result = asyncio.run(main_async(url, args.clients, args.stuck, args.seconds))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
