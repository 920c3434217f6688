"""HTTP hygiene of the station web page: credentials, security headers, bounded writes.

Used by ``routes``: ``auth_middleware`` (token or basic auth, constant-time compares),
``harden`` (security headers on every answer; a handler bug is a logged, clean 500), and
``send_chunks``/``send_bytes``, through which every body larger than a message goes out:
64 KiB at a time, each write bounded by ``hmi.send_timeout_s``, so a client that stops
reading is cut off (``drop``, counted) instead of holding a task and a buffer forever.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

from inspector import metrics
from inspector.config import Config
from inspector.logging import RateLimitedLog, get_logger

_errors = RateLimitedLog(get_logger(__name__))

CHUNK = 64 * 1024
TOKEN_COOKIE = "inspector_hmi_token"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
}
SEND_TIMEOUT_S = web.AppKey("send_timeout_s", float)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# ------------------------------------------------------------------ middleware
def auth_middleware(cfg: Config) -> Any:
    """Require the token or basic auth when configured (always, off loopback)."""
    token = cfg.hmi.token.get_secret_value() if cfg.hmi.token else None
    basic = cfg.hmi.basic_auth
    expected_basic = (
        base64.b64encode(f"{basic.user}:{basic.password.get_secret_value()}".encode()).decode()
        if basic
        else None
    )

    def same(a: str, b: str) -> bool:
        return hmac.compare_digest(a.encode(), b.encode())

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token is None and expected_basic is None:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if token is not None:
            if scheme.lower() == "bearer" and same(value.strip(), token):
                return await handler(request)
            if same(request.cookies.get(TOKEN_COOKIE, ""), token):
                return await handler(request)
            if same(request.query.get("token", ""), token):
                # Once in the URL, then a cookie: the address bar and history forget it.
                query = {k: v for k, v in request.query.items() if k != "token"}
                resp = web.HTTPFound(request.rel_url.with_query(query))
                resp.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict", path="/")
                raise resp
        if expected_basic is not None and scheme.lower() == "basic":
            try:
                given = base64.b64encode(base64.b64decode(value.strip(), validate=True)).decode()
            except (binascii.Error, ValueError):
                given = ""
            if same(given, expected_basic):
                return await handler(request)
        headers = {"WWW-Authenticate": 'Basic realm="inspector"'} if expected_basic else {}
        raise web.HTTPUnauthorized(text="credentials required\n", headers=headers)

    return check


@web.middleware
async def harden(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Security headers on every answer; an unexpected error is a logged, clean 500."""
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(SECURITY_HEADERS)
        raise
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception as exc:  # a page bug answers 500 and is logged; it never spreads
        _errors.error("hmi_request_failed", path=request.path, error=repr(exc))
        raise web.HTTPInternalServerError(
            text="internal error\n", headers=SECURITY_HEADERS
        ) from None
    if not resp.prepared:
        resp.headers.update(SECURITY_HEADERS)
    return resp


# ------------------------------------------------------------------- helpers
async def send_chunks(
    request: web.Request,
    chunks: Iterable[bytes],
    *,
    content_type: str,
    length: int | None = None,
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    """Stream ``chunks`` (bytes, at most CHUNK each); a write slower than the timeout
    aborts the connection."""
    resp = web.StreamResponse(headers={**SECURITY_HEADERS, **(headers or {})})
    resp.content_type = content_type.split(";")[0]
    if length is not None:
        resp.content_length = length
    await resp.prepare(request)
    if request.method == "HEAD":
        return resp
    timeout = request.app[SEND_TIMEOUT_S]
    try:
        for chunk in chunks:
            await asyncio.wait_for(resp.write(chunk), timeout)
        await asyncio.wait_for(resp.write_eof(), timeout)
    except asyncio.TimeoutError:
        drop(request, "slow")
    return resp


def _split(body: bytes) -> list[bytes]:
    return [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)] or [b""]


async def send_bytes(
    request: web.Request, body: bytes, content_type: str, headers: dict[str, str] | None = None
) -> web.StreamResponse:
    return await send_chunks(
        request, _split(body), content_type=content_type, length=len(body), headers=headers
    )


def drop(request: web.Request, reason: str) -> None:
    """Cut a client off (it stopped reading); counted."""
    metrics.HMI_CLIENTS_DROPPED.labels(reason).inc()
    if request.transport is not None:
        request.transport.abort()
