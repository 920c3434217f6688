"""Config of the plant sinks: what is refused at load, and what preflight reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from inspector.config import parse_config
from inspector.errors import ConfigError
from inspector.preflight import check_environment

BASE = """
line: {name: line-a, station: cam-1}
recipes: [{id: 1, name: r, models: [{path: m.onnx}]}]
"""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("line: {name: a/b}\nmqtt: {enabled: true}", "line.name"),
        ("line: {name: a, station: 'st#1'}\nmqtt: {enabled: true}", "line.station"),
        ("mqtt: {enabled: true, password: x}", "needs mqtt.username"),
        ("mqtt: {enabled: true, topic_prefix: 'a/+'}", "topic_prefix"),
        ("mqtt: {tls: {enabled: true, cert_file: c.pem}}", "go together"),
        ("opcua: {enabled: true, security: sign_encrypt}", "needs certificate"),
        ("opcua: {enabled: true, allow_anonymous: false}", "needs opcua.username"),
        ("opcua: {enabled: true, username: u}", "go together"),
        ("mqtt: {enabled: true, spool_max_mb: 0}", "spool_max_mb"),
    ],
)
def test_refused_at_load(extra: str, message: str) -> None:
    text = BASE.replace("line: {name: line-a, station: cam-1}\n", "") if "line:" in extra else BASE
    with pytest.raises(ConfigError, match=message.replace("+", r"\+")):
        parse_config(text + extra)


def test_defaults_are_off_and_local() -> None:
    cfg = parse_config(BASE)
    assert not cfg.mqtt.enabled and not cfg.opcua.enabled
    assert cfg.opcua.host == "127.0.0.1" and cfg.opcua.allow_anonymous
    assert cfg.mqtt.spool_sync == "full"


def test_preflight_reports_missing_files_and_unwritable_spool(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    cfg = parse_config(
        BASE
        + f"""
mqtt: {{enabled: true, spool_path: "{blocker}/spool.sqlite",
       tls: {{enabled: true, ca_file: "{tmp_path}/nope.pem"}}}}
opcua: {{enabled: true, security: sign, certificate: "{tmp_path}/c.der",
        private_key: "{tmp_path}/k.pem"}}
"""
    )
    problems = "\n".join(check_environment(cfg))
    assert "mqtt.spool_path" in problems and "is not a directory" in problems
    assert "mqtt.tls.ca_file" in problems
    assert "opcua.certificate" in problems and "opcua.private_key" in problems
