"""Metrics and logs in the conventions operators expect (issue 15, points 5 and 6).

Metrics: buckets from the cycle budget, unknown values absent, label values pre-created,
reasons in step with ``types.Reason``. Logs: NG parts always logged, OK parts sampled or
summarised, journald priority prefixes when stdout is the journal's stream, and one
set of field names in the log line, the archive sidecar and replay.
"""

from __future__ import annotations

import io
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import generate_latest

from inspector import logging as ilog
from inspector import metrics
from inspector.archive import Archive
from inspector.config import ArchiveConfig, LoggingConfig
from inspector.errors import ConfigError
from inspector.sinks import LogSink, MetricsSink, part_record
from inspector.types import Finding, Frame, Label, PartResult, Reason, Trigger, Verdict, ng


def exposition() -> str:
    return generate_latest(metrics.REGISTRY).decode()


@pytest.fixture
def budget_30() -> Iterator[None]:
    yield
    metrics.configure(metrics.DEFAULT_BUDGET_MS)


def test_buckets_follow_the_budget(budget_30: None) -> None:
    metrics.configure(12.5)
    text = exposition()
    assert 'inspector_cycle_seconds_bucket{le="0.0125"}' in text  # the budget itself
    assert 'inspector_cycle_seconds_bucket{le="0.025"}' in text  # 2 x budget
    assert 'inspector_cycle_seconds_bucket{le="0.03"}' not in text
    assert "inspector_cycle_budget_seconds 0.0125" in text
    stage = [b * 1000 for b in metrics.budget_buckets(12.5, metrics.STAGE_FRACTIONS)]
    assert stage[0] == pytest.approx(0.0625) and stage[-1] == pytest.approx(62.5)
    # Observations land in the new histograms (MetricsSink reads the module's current one).
    MetricsSink().publish(result(1, Verdict(ok=True, reason=Reason.OK), cycle_ms=10))
    assert metrics.REGISTRY.get_sample_value("inspector_cycle_seconds_bucket", {"le": "0.0125"})


def test_unknown_is_absent_and_configure_forgets_the_last_run(budget_30: None) -> None:
    metrics.configure(30)
    assert "inspector_plc_link_up" not in exposition()
    metrics.PLC_LINK_UP.set(0)
    assert "inspector_plc_link_up 0.0" in exposition()  # known: configured and down
    metrics.configure(30)  # a new run without a PLC
    assert "inspector_plc_link_up" not in exposition()
    assert "inspector_camera_temperature_celsius" not in exposition()


def test_every_reason_is_precreated() -> None:
    assert {("ng", r.value) for r in Reason if r is not Reason.OK} | {("ok", "ok")} == set(
        metrics.VERDICT_REASONS
    )
    text = exposition()
    for verdict, reason in metrics.VERDICT_REASONS:
        assert f'inspector_parts_total{{reason="{reason}",verdict="{verdict}"}}' in text
    assert "_created" not in text


def test_state_is_an_enum() -> None:
    metrics.set_state(3)
    text = exposition()
    assert 'inspector_state{inspector_state="fault"} 1.0' in text
    assert 'inspector_state{inspector_state="ready"} 0.0' in text
    metrics.set_state(1)


# ------------------------------------------------------------------------- logs
def result(part: int, verdict: Verdict, cycle_ms: float = 5.0) -> PartResult:
    trig = Trigger(part, part, 0, 10**9, recipe_id=1)
    frame = Frame(np.zeros((16, 16), np.uint8), "Mono8", part, 0)
    stages = {"infer": 2_000_000, "decide": 10_000}
    return PartResult(trig, verdict, int(cycle_ms * 1e6), stages, part, frame)


SPOT = Finding("spot", 1, 0.9, (1.0, 2.0, 5.0, 6.0), model="detector")


def log_lines(cfg: LoggingConfig, parts: list[PartResult], *, close: bool = False) -> list[dict]:
    out = io.StringIO()
    ilog.configure(LoggingConfig(format="json"), stream=out)
    sink = LogSink(cfg)
    for p in parts:
        sink.publish(p)
    if close:
        sink.close()
    return [json.loads(x) for x in out.getvalue().splitlines()]


def parts(n_ok: int, n_ng: int) -> list[PartResult]:
    ok = [result(i, Verdict(ok=True, reason=Reason.OK)) for i in range(1, n_ok + 1)]
    bad = [result(1000 + i, ng(Reason.DEFECT, "spot", (SPOT,))) for i in range(n_ng)]
    return ok + bad


def test_ok_parts_summarised_ng_parts_always_logged() -> None:
    lines = log_lines(LoggingConfig(ok_parts="summary"), parts(50, 3), close=True)
    part_lines = [x for x in lines if x["event"] == "part"]
    assert [x["verdict"] for x in part_lines] == ["NG"] * 3
    assert all(x["level"] == "warning" for x in part_lines)
    (summary,) = [x for x in lines if x["event"] == "parts_summary"]
    assert (summary["parts"], summary["ok"], summary["ng"]) == (53, 50, 3)
    assert summary["ng_reasons"] == {"defect": 3}


def test_ok_parts_sampled() -> None:
    lines = log_lines(LoggingConfig(ok_parts="sample", ok_sample_every=10), parts(25, 1))
    ok_ids = [x["part_id"] for x in lines if x["event"] == "part" and x["verdict"] == "OK"]
    assert ok_ids == [1, 11, 21]
    assert all(x.get("sampled") == 10 for x in lines if x.get("verdict") == "OK")
    assert sum(x["event"] == "part" and x["verdict"] == "NG" for x in lines) == 1


def test_ok_parts_all_and_summary_period() -> None:
    lines = log_lines(LoggingConfig(ok_parts="all"), parts(4, 0), close=True)
    assert [x["event"] for x in lines] == ["part"] * 4  # no summary in 'all'
    cfg = LoggingConfig(ok_parts="summary", summary_period_s=0.05)
    out = io.StringIO()
    ilog.configure(LoggingConfig(format="json"), stream=out)
    sink = LogSink(cfg)
    sink.publish(parts(1, 0)[0])
    time.sleep(0.06)  # the period is wall time by definition
    sink.publish(parts(1, 0)[0])
    events = [json.loads(x)["event"] for x in out.getvalue().splitlines()]
    assert events == ["parts_summary"]


def test_journald_priorities(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with (tmp_path / "journal").open("w+") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        ilog.configure(LoggingConfig(format="json"), stream=stream)
        log = ilog.get_logger("t")
        log.error("e1")
        log.warning("w1")
        log.info("i1")
        stream.seek(0)
        lines = stream.read().splitlines()
    assert [x[:3] for x in lines] == ["<3>", "<4>", "<6>"]
    assert json.loads(lines[0][3:])["event"] == "e1"
    # Another stream (a pipe to a terminal, a file) gets no prefix.
    other = io.StringIO()
    ilog.configure(LoggingConfig(format="json"), stream=other)
    ilog.get_logger("t").error("e2")
    assert other.getvalue().startswith("{")


def test_same_field_names_in_log_archive_and_replay(tmp_path: Path) -> None:
    part = result(7, ng(Reason.DEFECT, "spot", (SPOT,)))
    (line,) = [x for x in log_lines(LoggingConfig(), [part]) if x["event"] == "part"]
    arch = Archive(ArchiveConfig(enabled=True, dir=tmp_path / "a"))
    arch.start()
    arch.publish(part)
    (sidecar_path,) = (tmp_path / "a").glob("*.json")
    sidecar = json.loads(sidecar_path.read_text())
    record = part_record(part)
    for key, value in record.items():
        assert line[key] == value, key
        assert sidecar[key] == value, key
    assert sidecar["image"] == sidecar_path.with_suffix(".png").name
    assert {"stages_ms", "cycle_ms", "findings", "verdict", "reason"} <= set(record)


def test_a_metrics_port_in_use_is_a_config_error() -> None:
    """Another program on the metrics port: exit 78 with the port named, not a traceback
    and exit 70 (systemd would restart into the same wall)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(ConfigError, match=f"metrics: cannot listen on 127.0.0.1:{port}"):
            metrics.serve("127.0.0.1", port)


def test_the_part_record_carries_the_ground_truth_when_the_frame_knows_it() -> None:
    """The sim line's parts say what was on them (the soak counts escapes from the log);
    a camera's frame knows nothing, and the field is absent."""
    image = np.zeros((4, 4), np.uint8)
    label = Label("spot", (1.0, 1.0, 2.0, 2.0))
    cases = {"NG": (label,), "OK": (), None: None}
    for want, truth in cases.items():
        frame = Frame(image, "Mono8", 1, 0, truth=truth)
        record = part_record(replace(result(3, ng(Reason.DEFECT)), frame=frame))
        assert record.get("truth") == want
    assert "truth" not in part_record(result(4, ng(Reason.TIMEOUT)))
