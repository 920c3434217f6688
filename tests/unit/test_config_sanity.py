"""The config file itself is refused cleanly when it is not a sane config.

Issue 11's fuzzing found binary, UTF-16 and Latin-1 files, 2,000-deep nesting, alias
bombs, ``/dev/zero``, duplicate keys and ``.inf`` values crashing or hanging
``check-config`` (the unit's ExecStartPre) or slipping through. Each is now one
``ConfigError`` line; hypothesis throws arbitrary text and values at the parser.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspector.config import load_config, parse_config
from inspector.errors import ConfigError

MINIMAL = "recipes: [{id: 1, name: r, models: [{path: m.onnx}]}]\n"


def test_minimal_config_parses() -> None:
    assert parse_config(MINIMAL).recipes[0].id == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL + "plc: {heartbeat_timeout_s: .inf}\n", "finite"),
        (MINIMAL + "plc: {poll_ms: .nan}\n", "finite"),
        (MINIMAL + "line: {cycle_budget_ms: 30}\nline: {cycle_budget_ms: 40}\n", "duplicate key"),
        (
            "recipes: [{id: 1, name: r, models: [{path: m.onnx}],\n"
            "  rules: {max_count: {default: 0, default: 3}}}]\n",
            "duplicate key 'default'",
        ),
        ("a: " + "[" * 2000 + "]" * 2000 + "\n", "nesting"),
        ("a: " + "[" * 40 + "]" * 40 + "\n", "nesting deeper than"),
        ("- 1\n- 2\n", "top level must be a mapping"),
        ("a: [1, 2\n", "invalid YAML"),
    ],
)
def test_insane_text_is_one_config_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text)


def test_alias_bomb_is_refused_before_it_expands() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(8):
        prev, cur = chr(97 + i), chr(98 + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    with pytest.raises(ConfigError, match="aliases expanded"):
        parse_config("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (MINIMAL.encode("utf-16"), "not UTF-8"),
        (("line: {name: démo}\n" + MINIMAL).encode("latin-1"), "not UTF-8"),
        (bytes(range(256)) * 4, "not UTF-8"),
        (b"#" * (2 << 20), "larger than"),
    ],
)
def test_unreadable_files_are_one_config_error(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_device_files_and_directories_are_refused_without_reading() -> None:
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config("/dev/zero")
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config("/tmp")


yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=30,
)
SECTIONS = ["line", "trigger", "camera", "recipes", "plc", "pipeline", "metrics", "archive"]


@settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.text(max_size=400))
def test_arbitrary_text_never_escapes_the_config_error(text: str) -> None:
    with contextlib.suppress(ConfigError):
        parse_config(text)


@settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.dictionaries(st.sampled_from(SECTIONS), yaml_values, max_size=4))
def test_arbitrary_sections_validate_or_fail_as_config_errors(data: dict[str, object]) -> None:
    import yaml

    text = (
        MINIMAL + yaml.safe_dump(data, allow_unicode=True)
        if "recipes" not in data
        else yaml.safe_dump(data)
    )
    try:
        cfg = parse_config(text)
    except ConfigError:
        return
    # Whatever got through is a complete, finite config.
    assert cfg.line.cycle_budget_ms > 0
    assert cfg.plc.heartbeat_timeout_s < float("inf")
