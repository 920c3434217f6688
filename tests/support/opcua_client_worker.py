"""A plant's OPC UA client in its own process, for the OPC UA fuzz test.

A real client runs on another computer: it shares neither the daemon's GIL nor its
garbage collector, nor (much of) its CPU. So the fuzz test starts this worker once,
at nice 19 and before the station starts (its imports compile while no part is being
judged), and hands it one job per example over stdin: a pickled ``(url, reads, value)``
behind a 4-byte length, 0 to end. Each job is a fresh connection that reads and writes
whatever node ids the fuzzer picked; the answer is one line, ``ok`` or ``error: …``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import struct
import subprocess
import sys

from asyncua import Client, ua

from tests.support.common import REPO


async def client_input(url: str, reads: list[tuple[int, int | str]], value: object) -> None:
    """A real client reading and writing whatever node ids the fuzzer picks."""
    async with Client(url, timeout=5) as client:
        for ns, ident in reads:
            node = client.get_node(ua.NodeId(ident, ns))
            with contextlib.suppress(ua.UaError, ValueError, TypeError):
                await node.read_value()
            with contextlib.suppress(ua.UaError, ValueError, TypeError):
                await node.write_value(value)


class ClientProcess:
    """The worker seen from the test: ``run(url, reads, value)`` per example."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.opcua_client_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=REPO,
            preexec_fn=lambda: os.nice(19),
        )
        assert self._answer() == "ready"

    def _answer(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().decode().strip()

    def run(self, url: str, reads: list[tuple[int, int | str]], value: object) -> None:
        assert self.proc.stdin is not None
        job = pickle.dumps((url, reads, value))
        self.proc.stdin.write(struct.pack("<I", len(job)) + job)
        self.proc.stdin.flush()
        answer = self._answer()
        assert answer == "ok", answer

    def close(self) -> None:
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.write(struct.pack("<I", 0))
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        finally:
            self.proc.kill()
            self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()


def main() -> None:
    out = sys.stdout.buffer
    out.write(b"ready\n")
    out.flush()
    while (head := sys.stdin.buffer.read(4)) and (size := struct.unpack("<I", head)[0]):
        url, reads, value = pickle.loads(sys.stdin.buffer.read(size))
        try:
            asyncio.run(client_input(url, reads, value))
            out.write(b"ok\n")
        except Exception as exc:  # the test shows what the client met
            out.write(f"error: {exc!r}".replace("\n", " ").encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    main()
