"""Helpers for the station web page's tests: parts with real sim frames, raw HTTP, SSE.

Raw sockets on purpose: an HTTP client library normalises paths (``..``, ``%2e``) and
refuses malformed requests itself, and the tests must see what the server does with
exactly the bytes a hostile client sends.
"""

from __future__ import annotations

import functools
import json
import socket
import time
from dataclasses import dataclass

from inspector.config import Config, SimCameraConfig, parse_config
from inspector.sim.render import render_part
from inspector.types import Finding, Frame, PartResult, Reason, Trigger, Verdict, ng

SIM = SimCameraConfig(width=640, height=512)


def hmi_config(
    archive_dir: str, hmi: str = "{enabled: true, port: 0}", rules: str = "{}"
) -> Config:
    return parse_config(
        f"""
line: {{name: test-line, cycle_budget_ms: 30}}
recipes: [{{id: 1, name: plate, models: [{{name: det, path: m.onnx}}], rules: {rules}}}]
archive: {{enabled: true, dir: "{archive_dir}"}}
hmi: {hmi}
"""
    )


@functools.lru_cache(maxsize=64)
def sim_part(index: int) -> tuple[object, tuple]:
    """Sim part ``index`` (seed 7, 640×512 Mono8), rendered once per test session."""
    return render_part(7, index, SIM)


def defective_index(start: int = 0) -> int:
    """The first sim part at or after ``start`` that carries a defect."""
    return next(i for i in range(start, start + 100) if sim_part(i)[1])


def make_result(
    seq: int, *, ok: bool | None = None, index: int | None = None, pixel_format: str = "Mono8"
) -> PartResult:
    """Part ``seq`` with a real sim frame; NG (a finding on its truth) when it has a defect."""
    image, truth = sim_part((seq if index is None else index) % 64)
    now = time.monotonic_ns()
    findings = tuple(
        Finding(lb.class_name, 0, 0.9, lb.box, model="det", area_px=None) for lb in truth
    )
    good = not truth if ok is None else ok
    verdict = (
        Verdict(ok=True, reason=Reason.OK)
        if good
        else ng(Reason.DEFECT, "defect", findings or (Finding("spot", 1, 0.8, (5, 5, 25, 25)),))
    )
    frame = Frame(image, pixel_format, seq, now, truth=truth)
    stages = {"grab": 20_000, "preprocess": 400_000, "infer": 7_000_000, "decide": 30_000}
    return PartResult(
        Trigger(seq, seq, now - 9_000_000, now + 21_000_000), verdict, now, stages, seq, frame
    )


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def raw_http(port: int, request: bytes, timeout_s: float = 5.0) -> Reply:
    """Send bytes as they are; read the whole reply (the request should say close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        s.sendall(request)
        chunks = []
        while True:
            try:
                data = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            chunks.append(data)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return Reply(status, headers, body)


def get(port: int, path: str, headers: str = "") -> Reply:
    """A GET with the path exactly as given (no normalisation, no encoding)."""
    return raw_http(
        port, f"GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n".encode()
    )


def sse_events(stream: bytes) -> list[tuple[str, dict]]:
    """Parse Server-Sent Events text into (event, data) pairs."""
    out = []
    for block in stream.split(b"\n\n"):
        event, data = "message", None
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                event = line[7:].decode()
            elif line.startswith(b"data: "):
                data = json.loads(line[6:])
        if data is not None:
            out.append((event, data))
    return out
