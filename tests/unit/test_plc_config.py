"""PLC config checks (inspector/config/plc.py): the map fits, the allow-list parses."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from inspector.config import PlcConfig


def test_defaults_reconnect_within_a_second_and_hold_a_ring_of_16() -> None:
    cfg = PlcConfig()
    assert cfg.trigger_ring == 16 and cfg.backoff_s == 0.05
    assert cfg.backoff_max_s * 1.2 < 1.0  # the cap with its jitter: back within 1 s


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"in_base": 0, "out_base": 60, "trigger_ring": 16}, "overlap"),  # A is 0..73
        ({"in_base": 65530}, "past register 65535"),
        ({"trigger_ring": 29}, "less than or equal to 28"),
        ({"allowed_clients": ["10.0.0.300"]}, "not an address"),
        ({"allowed_clients": ["10.0.0.1"]}, "role 'server' only"),
        ({"poll_ms": float("inf")}, "finite"),
        ({"request_timeout_s": float("nan")}, "finite"),
    ],
)
def test_bad_plc_settings_are_refused(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PlcConfig(**kw)  # type: ignore[arg-type]


def test_server_role_allow_list_takes_addresses_and_networks() -> None:
    cfg = PlcConfig(role="server", allowed_clients=["10.1.2.3", "10.1.2.0/28", "fd00::/8"])
    assert len(cfg.allowed_clients) == 3
