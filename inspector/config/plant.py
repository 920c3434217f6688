"""Config of plant integration (the publish step's plant-facing sinks): MQTT and OPC UA.

Where it sits: a section of ``inspector/config/``; read by ``inspector/plant/``. Both are
off by default: a daemon on its own needs neither a broker nor an OPC UA client.
Secrets (passwords) sit in the config file; keep it readable by the service user only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from inspector.config.base import Section

#: Characters MQTT forbids or gives meaning to inside one topic level.
TOPIC_LEVEL_FORBIDDEN = ("/", "+", "#", "\x00")


class MqttTlsConfig(Section):
    """TLS towards the broker (off: plain TCP, for loopback or a trusted segment only)."""

    enabled: bool = Field(False, description="Connect with TLS.")
    ca_file: Path | None = Field(
        None, description="CA bundle that signed the broker's certificate; None: system CAs."
    )
    cert_file: Path | None = Field(None, description="Client certificate (mutual TLS).")
    key_file: Path | None = Field(None, description="Client private key (mutual TLS).")
    check_hostname: bool = Field(
        True, description="Verify the broker's host name against its certificate."
    )

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> MqttTlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls.cert_file and tls.key_file go together")
        return self


class MqttConfig(Section):
    """Every part's result to an MQTT broker, through a durable local spool (docs/plant.md)."""

    enabled: bool = Field(False, description="Publish every part's result to MQTT.")
    host: str = Field("127.0.0.1", description="Broker host.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 is usual with TLS).")
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version.")
    client_id: str | None = Field(
        None,
        max_length=64,
        description="MQTT client id; None: inspector-<line>-<station>. Unique per broker.",
    )
    topic_prefix: str = Field(
        "inspector",
        min_length=1,
        description="First topic level(s): topics are <prefix>/<line>/<station>/parts "
        "and <prefix>/<line>/<station>/state.",
    )
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keep-alive interval.")
    username: str | None = Field(None, description="Broker user name; None: anonymous.")
    password: str | None = Field(None, description="Broker password (with username).")
    tls: MqttTlsConfig = Field(default_factory=MqttTlsConfig, description="TLS settings.")
    spool_path: Path = Field(
        Path("spool/mqtt.sqlite"),
        description="SQLite spool file: every message waits here until the broker acknowledged "
        "it, across broker outages and daemon restarts.",
    )
    spool_max_mb: float = Field(
        256.0,
        gt=0,
        description="Spool size bound (payload bytes); beyond it the oldest messages are "
        "dropped and counted (inspector_mqtt_spool_dropped_total).",
    )
    spool_sync: Literal["full", "normal"] = Field(
        "full",
        description="SQLite synchronous mode: 'full' survives power loss, 'normal' a crash "
        "of the daemon only (fewer disk flushes).",
    )
    handoff_max: int = Field(
        100_000,
        ge=100,
        description="Parts held in memory between the cycle and the spool writer; beyond it "
        "parts are dropped and counted (only if the spool's disk stalls).",
    )
    max_inflight: int = Field(
        64, ge=1, le=65535, description="QoS 1 messages sent and not yet acknowledged."
    )
    connect_timeout_s: float = Field(
        5.0, gt=0, le=120, description="TCP connect and CONNACK wait per attempt."
    )
    backoff_s: float = Field(0.2, gt=0, description="First reconnect delay; doubles to the cap.")
    backoff_max_s: float = Field(
        10.0,
        gt=0,
        description="Reconnect delay cap; also how long a session must hold before the next "
        "failure starts again at backoff_s (a broker that drops the station at once is "
        "retried at the cap).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> MqttConfig:
        if self.password is not None and self.username is None:
            raise ValueError("mqtt.password needs mqtt.username")
        if any(c in self.topic_prefix for c in ("+", "#", "\x00")):
            raise ValueError("mqtt.topic_prefix must not contain '+', '#' or NUL")
        return self


class OpcUaConfig(Section):
    """An OPC UA server showing the station (OPC 40100-1 structure; docs/opcua.md)."""

    enabled: bool = Field(False, description="Serve the station over OPC UA.")
    host: str = Field("127.0.0.1", description="Bind address; loopback by default.")
    port: int = Field(4840, ge=1, le=65535, description="TCP port (4840 is OPC UA's).")
    namespace_uri: str = Field(
        "urn:inspector:station", min_length=1, description="Namespace of the station's nodes."
    )
    security: Literal["none", "sign", "sign_encrypt"] = Field(
        "none",
        description="Message security: 'none', or Basic256Sha256 'sign' / 'sign_encrypt' "
        "(needs certificate and private_key).",
    )
    certificate: Path | None = Field(None, description="Server certificate (DER or PEM).")
    private_key: Path | None = Field(None, description="Server private key (PEM).")
    allow_anonymous: bool = Field(True, description="Accept anonymous sessions.")
    username: str | None = Field(None, description="Accept this user (with password).")
    password: str | None = Field(None, description="The user's password.")
    max_result_backlog: int = Field(
        1000,
        ge=1,
        description="Results waiting for the server's loop; beyond it the oldest are dropped "
        "and counted (the latest result is always shown).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> OpcUaConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("opcua.username and opcua.password go together")
        if self.security != "none" and (self.certificate is None or self.private_key is None):
            raise ValueError(f"opcua.security {self.security!r} needs certificate and private_key")
        if not self.allow_anonymous and self.username is None:
            raise ValueError("opcua.allow_anonymous: false needs opcua.username and password")
        return self


def check_topic_level(value: str, key: str) -> None:
    """Raise ValueError if ``value`` cannot be one MQTT topic level."""
    if not value or any(c in value for c in TOPIC_LEVEL_FORBIDDEN):
        raise ValueError(f"{key} {value!r} cannot be an MQTT topic level (no '/', '+', '#', NUL)")


def resolve_plant_paths(
    mqtt: MqttConfig,
    opcua: OpcUaConfig,
    fix: Callable[[Path], Path],
    fix_runtime: Callable[[Path], Path] | None = None,
) -> dict[str, Section]:
    """Relative files of both sections made absolute (config load): inputs (certificates,
    keys) with ``fix``, the spool the daemon writes with ``fix_runtime`` (the state
    directory, ``config/paths.py``; default ``fix``)."""
    runtime = fix_runtime or fix

    def opt(p: Path | None) -> Path | None:
        return fix(p) if p is not None else None

    tls = mqtt.tls.model_copy(
        update={k: opt(getattr(mqtt.tls, k)) for k in ("ca_file", "cert_file", "key_file")}
    )
    return {
        "mqtt": mqtt.model_copy(update={"spool_path": runtime(mqtt.spool_path), "tls": tls}),
        "opcua": opcua.model_copy(
            update={"certificate": opt(opcua.certificate), "private_key": opt(opcua.private_key)}
        ),
    }
