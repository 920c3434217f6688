"""Config of the station web page (``hmi:``), a sink of the last step of the flow.

The page is read-only and binds to loopback by default. Bound to any other address it
must be protected: a token, HTTP basic auth, or both. Refusing an unprotected
non-loopback bind here makes it a configuration error (exit 78), never a warning.
"""

from __future__ import annotations

import ipaddress

from pydantic import Field, SecretStr, model_validator

from inspector.config.base import Section


def is_loopback(host: str) -> bool:
    """Whether ``host`` only ever accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost may resolve anywhere
        return False


class HmiBasicAuthConfig(Section):
    """HTTP basic auth credentials for the web page."""

    user: str = Field(min_length=1, description="User name.")
    password: SecretStr = Field(
        min_length=8, description="Password (at least 8 characters); never logged."
    )


class HmiConfig(Section):
    """The station web page: live part with overlays, counters, cycle chart, NG gallery."""

    enabled: bool = Field(False, description="Serve the station web page.")
    host: str = Field(
        "127.0.0.1",
        description="Bind address; loopback by default. Any other address needs token or "
        "basic_auth.",
    )
    port: int = Field(8088, ge=0, le=65535, description="Port; 0 picks a free one.")
    max_fps: float = Field(
        4.0,
        gt=0,
        le=30,
        description="Most live images encoded per second (parts in between are counted "
        "and charted, not shown).",
    )
    image_width: int = Field(
        960, ge=160, le=4096, description="Live images are scaled down to this width."
    )
    jpeg_quality: int = Field(80, ge=30, le=95, description="JPEG quality of live images.")
    token: SecretStr | None = Field(
        None,
        min_length=16,
        description="Access token (at least 16 characters): 'Authorization: Bearer <token>', "
        "or '?token=<token>' once, which sets a cookie.",
    )
    basic_auth: HmiBasicAuthConfig | None = Field(None, description="HTTP basic auth credentials.")
    chart_parts: int = Field(
        300, ge=10, le=5000, description="Parts shown in the cycle-time strip chart."
    )
    max_clients: int = Field(
        16, ge=1, le=256, description="Most live streams (browser tabs) at once; more get 503."
    )
    max_connections: int = Field(
        64,
        ge=4,
        le=1024,
        description="Most open connections at once; more are answered 503 and closed. "
        "Bounds the memory slow or hostile clients can hold.",
    )
    send_timeout_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="A client that takes longer than this to accept one message or file "
        "chunk is disconnected.",
    )

    @model_validator(mode="after")
    def _protected_off_loopback(self) -> HmiConfig:
        if (
            self.enabled
            and not is_loopback(self.host)
            and self.token is None
            and self.basic_auth is None
        ):
            raise ValueError(
                f"hmi.host {self.host!r} is not loopback: set hmi.token or hmi.basic_auth "
                "(or bind 127.0.0.1 and use an SSH tunnel or a reverse proxy)"
            )
        return self
