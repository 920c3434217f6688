"""The page's HTTP routes: read-only GETs, one live stream per tab, archive files.

    GET /                       the page (assets/ are package data, read once)
    GET /static/<asset>         its script and style sheet
    GET /events                 Server-Sent Events: ``part`` with its image (≤ max_fps),
                                ``stats`` (1 Hz)
    GET /api/state              the latest part and stats as JSON (tools, tests)
    GET /api/gallery            archived NG parts: ?reason= &class= &since= &until= &limit=
    GET /api/archive/<stem>     one archived part: sidecar, overlay shapes, file URLs
    GET /archive/<stem>.png|json  the archived files (?download=1: as an attachment)
    GET /thumb/<stem>.jpg       a gallery thumbnail;  GET /annotated/<stem>.jpg  overlays burnt in

Only GET (and HEAD) routes exist, so any other method is 405: the page is read-only.
Bodies go out through ``guard.send_chunks`` (bounded writes), credentials are checked by
``guard.auth_middleware`` before any route, and archive files are reached only through
``Gallery.file``.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import socket
import stat
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from aiohttp import web

from inspector import metrics
from inspector.config import Config
from inspector.hmi.gallery import Gallery
from inspector.hmi.guard import (
    CHUNK,
    SECURITY_HEADERS,
    SEND_TIMEOUT_S,
    auth_middleware,
    drop,
    harden,
    send_bytes,
    send_chunks,
)
from inspector.hmi.live import Stats
from inspector.hmi.overlay import render, shapes
from inspector.hmi.stream import Hub

KEEPALIVE_S = 15.0
STREAM_SNDBUF = 64 * 1024  # a stuck live stream is noticed after ~this much unread data
ASSETS = ("index.html", "app.js", "app.css")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".json": "application/json",
    ".jpg": "image/jpeg",
}
_REASON = re.compile(r"[a-z_]{1,32}")
_CLASS = re.compile(r"[\w .-]{1,64}")


class LoopWake:
    """Wakes every live stream of one server loop (call ``notify`` in the loop's thread)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def notify(self) -> None:
        event, self.event = self.event, asyncio.Event()
        event.set()


CONFIG = web.AppKey("config", Config)
HUB = web.AppKey("hub", Hub)
STATS = web.AppKey("stats", Stats)
GALLERY = web.AppKey("gallery", Gallery)
STOPPING = web.AppKey("stopping", asyncio.Event)
WAKE = web.AppKey("wake", LoopWake)
ASSET_FILES = web.AppKey("assets", dict[str, bytes])
THUMBS = web.AppKey("thumbs", dict[str, bytes])


def read_assets() -> dict[str, bytes]:
    """The page's files, read once from the package."""
    root = resources.files("inspector.hmi") / "assets"
    return {name: (root / name).read_bytes() for name in ASSETS}


def _gallery(request: web.Request) -> Gallery:
    if GALLERY not in request.app:
        raise web.HTTPNotFound(text="the NG archive is disabled (archive.enabled)\n")
    return request.app[GALLERY]


# -------------------------------------------------------------------- routes
async def index(request: web.Request) -> web.StreamResponse:
    body = request.app[ASSET_FILES]["index.html"]
    return await send_bytes(request, body, CONTENT_TYPES[".html"], {"Cache-Control": "no-store"})


async def favicon(request: web.Request) -> web.StreamResponse:
    return web.Response(status=204, headers=SECURITY_HEADERS)


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    assets = request.app[ASSET_FILES]
    if name == "index.html" or name not in assets:
        raise web.HTTPNotFound()
    return await send_bytes(
        request, assets[name], CONTENT_TYPES[Path(name).suffix], {"Cache-Control": "no-cache"}
    )


async def state(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    return web.json_response(
        {"part": hub.latest_part(), "stats": request.app[STATS].message(hub.viewers)},
        headers={"Cache-Control": "no-store"},
    )


async def events(request: web.Request) -> web.StreamResponse:
    """The live stream: every client is sent the latest messages it has not seen yet."""
    app = request.app
    hub, hmi = app[HUB], app[CONFIG].hmi
    if request.method == "HEAD":
        return web.Response(content_type="text/event-stream", headers=SECURITY_HEADERS)
    if hub.viewers >= hmi.max_clients:
        metrics.HMI_CLIENTS_DROPPED.labels("too_many").inc()
        raise web.HTTPServiceUnavailable(text="too many live clients\n")
    resp = web.StreamResponse(
        headers={**SECURITY_HEADERS, "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    resp.content_type = "text/event-stream"
    await resp.prepare(request)
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)
    hub.join()
    sent_part = sent_stats = -1
    try:
        while not app[STOPPING].is_set():
            wake = app[WAKE].event  # taken before reading the hub: no wake-up is lost
            (part_seq, part), (stats_version, stats_msg) = hub.latest()
            out = b""
            if stats_msg and stats_version != sent_stats:
                out, sent_stats = stats_msg, stats_version
            if part and part_seq != sent_part:
                out, sent_part = out + part, part_seq
            if not out:
                try:
                    await asyncio.wait_for(wake.wait(), KEEPALIVE_S)
                    continue
                except asyncio.TimeoutError:
                    out = b": keep-alive\n\n"
            await asyncio.wait_for(resp.write(out), hmi.send_timeout_s)
    except asyncio.TimeoutError:
        drop(request, "slow")
    except ConnectionError:
        pass  # the browser went away
    finally:
        hub.leave()
    return resp


def _when(request: web.Request, key: str) -> datetime | None:
    raw = request.query.get(key)
    if not raw:
        return None
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise web.HTTPBadRequest(text=f"{key}: expected an ISO 8601 time\n") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _choice(request: web.Request, key: str, pattern: re.Pattern[str]) -> str | None:
    raw = request.query.get(key)
    if not raw:
        return None
    if not pattern.fullmatch(raw):
        raise web.HTTPBadRequest(text=f"{key}: invalid value\n")
    return raw


async def gallery(request: web.Request) -> web.StreamResponse:
    try:
        limit = int(request.query.get("limit", "60"))
    except ValueError:
        raise web.HTTPBadRequest(text="limit: expected an integer\n") from None
    if not 1 <= limit <= 500:
        raise web.HTTPBadRequest(text="limit: 1..500\n")
    g = _gallery(request)
    entries, matched = g.query(
        reason=_choice(request, "reason", _REASON),
        class_name=_choice(request, "class", _CLASS),
        since=_when(request, "since"),
        until=_when(request, "until"),
        limit=limit,
    )
    return web.json_response(
        {"entries": [e.summary() for e in entries], "matched": matched, **g.facets()},
        headers={"Cache-Control": "no-store"},
    )


async def archived_part(request: web.Request) -> web.StreamResponse:
    cfg = request.app[CONFIG]
    g, stem = _gallery(request), request.match_info["stem"]
    entry, meta = g.entry(stem), g.sidecar(stem)
    if entry is None or meta is None:
        raise web.HTTPNotFound(text="no such archived part\n")
    recipe = next((r for r in cfg.recipes if r.id == meta.get("recipe_id")), None)
    findings = [f for f in meta.get("findings") or [] if isinstance(f, dict)]
    build = request.app[STATS].build
    return web.json_response(
        {
            "summary": entry.summary(),
            "sidecar": meta,
            "shapes": shapes(findings, recipe),
            "width": meta.get("width"),
            "height": meta.get("height"),
            "config_in_force": meta.get("config_hash") == build.get("config_hash"),
            "files": {
                "image": f"/archive/{entry.stem}.png",
                "sidecar": f"/archive/{entry.stem}.json",
                "annotated": f"/annotated/{entry.stem}.jpg",
            },
        },
        headers={"Cache-Control": "no-store"},
    )


def _open_archived(request: web.Request, name: str) -> tuple[int, int]:
    """(fd, size) of an archive file, opened without following links; 404 otherwise."""
    path = _gallery(request).file(name)
    if path is None:
        raise web.HTTPNotFound()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        raise web.HTTPNotFound() from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise web.HTTPNotFound()
    return fd, st.st_size


async def archived_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    fd, size = _open_archived(request, name)
    headers = {"Cache-Control": "private, max-age=3600"}
    if request.query.get("download"):
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    with os.fdopen(fd, "rb") as f:
        chunks = iter(functools.partial(f.read, CHUNK), b"")
        return await send_chunks(
            request,
            chunks,
            content_type=CONTENT_TYPES[Path(name).suffix],
            length=size,
            headers=headers,
        )


def _read_png(request: web.Request, stem: str) -> Any:
    fd, _ = _open_archived(request, f"{stem}.png")
    with os.fdopen(fd, "rb") as f:
        raw = f.read()
    image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise web.HTTPNotFound(text="unreadable image\n")
    return image


async def thumbnail(request: web.Request) -> web.StreamResponse:
    stem = request.match_info["stem"]
    cache = request.app[THUMBS]
    jpeg = cache.get(stem)
    if jpeg is None:
        image = _read_png(request, stem)
        h, w = image.shape[:2]
        small = cv2.resize(image, (240, max(1, round(h * 240 / w))), interpolation=cv2.INTER_AREA)
        jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 75])[1].tobytes()
        if len(cache) >= 256:
            cache.pop(next(iter(cache)))
        cache[stem] = jpeg
    return await send_bytes(request, jpeg, "image/jpeg", {"Cache-Control": "private, max-age=3600"})


async def annotated(request: web.Request) -> web.StreamResponse:
    stem = request.match_info["stem"]
    cfg = request.app[CONFIG]
    meta = _gallery(request).sidecar(stem)
    if meta is None:
        raise web.HTTPNotFound()
    recipe = next((r for r in cfg.recipes if r.id == meta.get("recipe_id")), None)
    findings = [f for f in meta.get("findings") or [] if isinstance(f, dict)]
    image = render(_read_png(request, stem), shapes(findings, recipe))
    jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    headers = {"Content-Disposition": f'attachment; filename="{stem}_annotated.jpg"'}
    return await send_bytes(request, jpeg, "image/jpeg", headers)


_STEM = r"{stem:\d{8}T\d{6}_\d{10}_[a-z_]{1,32}}"


def build_app(cfg: Config, hub: Hub, stats: Stats, gallery_: Gallery | None) -> web.Application:
    """The aiohttp application: routes above, auth first, then hardening."""
    app = web.Application(middlewares=[harden, auth_middleware(cfg)], client_max_size=1024)
    app[CONFIG], app[HUB], app[STATS] = cfg, hub, stats
    app[SEND_TIMEOUT_S] = cfg.hmi.send_timeout_s
    if gallery_ is not None:
        app[GALLERY] = gallery_
    app[ASSET_FILES] = read_assets()
    app[THUMBS] = {}
    app[STOPPING] = asyncio.Event()
    app[WAKE] = LoopWake()
    r = app.router
    r.add_get("/", index)
    r.add_get("/static/{name}", asset)
    r.add_get("/favicon.ico", favicon)
    r.add_get("/events", events)
    r.add_get("/api/state", state)
    r.add_get("/api/gallery", gallery)
    r.add_get(f"/api/archive/{_STEM}", archived_part)
    r.add_get("/archive/{name}", archived_file)
    r.add_get(f"/thumb/{_STEM}.jpg", thumbnail)
    r.add_get(f"/annotated/{_STEM}.jpg", annotated)
    return app
