"""The Grafana dashboard and the alert rules against a real Prometheus (issue 15, 3 and 4).

Two daemons run as a plant runs them (``python -m inspector run``): a sim line with the
internal trigger and no PLC, and a sim line driven by the embedded PLC simulator (so
the PLC panels have series). A real Prometheus (Debian's package, unpacked by
``tools/get-promtool.sh``) scrapes both every second and evaluates the alert rules
every second. Then every query of ``deploy/grafana/dashboards/inspector.json`` (panels
and variables) is evaluated through Prometheus's HTTP API and must return at least one
series with a finite value, and on these healthy lines no alert rule may match (not
even pending). ``promtool test rules`` runs the rules' unit tests. Everything binds
127.0.0.1 on free ports.
"""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.common import REPO, free_port

BIN = REPO / ".cache/bin"
DASHBOARD = REPO / "deploy/grafana/dashboards/inspector.json"
RULES = REPO / "deploy/prometheus/inspector-alerts.yml"
RULE_TESTS = REPO / "deploy/prometheus/inspector-alerts.test.yml"
MODEL = REPO / "inspector/data/models/demo_detector.onnx"
#: What the test puts in for Grafana's variables (every station of every line).
VARIABLES = {
    "$__rate_interval": "10s",
    "$__interval": "2s",
    "$__range": "1m",
    "$instance": ".*",
    "$line": ".*",
}


def tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{path} missing: run tools/get-promtool.sh (make test does)"
    return str(path)


def daemon_config(path: Path, port: int, *, plc: bool) -> Path:
    trigger = "{source: plc}" if plc else "{source: internal, rate_hz: 5}"
    plc_cfg = (
        "{enabled: true, role: client, port: 0}\n"
        "demo: {plc_simulator: true, plc_rate_hz: 5, plc_deadline_ms: 1000}"
        if plc
        else "{enabled: false}"
    )
    # A generous budget: this is a healthy line on a shared 2-core host, and a late part
    # would rightly move InspectorDeadlineMisses.
    path.write_text(
        f"""
line: {{name: {"plc-line" if plc else "sim-line"}, cycle_budget_ms: 500}}
trigger: {trigger}
camera: {{type: sim, sim: {{width: 640, height: 512, pool_size: 8, seed: 7}}}}
recipes: [{{id: 1, name: demo, models: [{{path: "{MODEL}"}}]}}]
plc: {plc_cfg}
metrics: {{port: {port}}}
logging: {{format: json, ok_parts: summary}}
"""
    )
    return path


def start_daemon(cfg: Path, log: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "inspector", "run", "--demo", "--config", str(cfg)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.wait()


def api(port: int, path: str, **params: str) -> Any:
    url = f"http://127.0.0.1:{port}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]


def query(port: int, expr: str) -> list[dict[str, Any]]:
    data = api(port, "query", query=expr)
    assert data["resultType"] == "vector", (expr, data)
    result: list[dict[str, Any]] = data["result"]
    return result


def wait_until(what: str, check: Any, timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def panel_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every target of every panel, and every query variable."""

    def walk(panels: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
        for p in panels:
            yield from walk(p.get("panels", []))
            for t in p.get("targets", []):
                yield f"panel {p['title']!r} {t['refId']}", t["expr"]

    yield from walk(dashboard["panels"])
    for var in dashboard["templating"]["list"]:
        if var["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", var["query"]["query"])
        assert m, var
        yield f"variable ${var['name']}", f"group by ({m.group(2)}) ({m.group(1)})"


def substitute(expr: str) -> str:
    for name, value in sorted(VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


def prometheus_config(tmp: Path, targets: list[str]) -> Path:
    cfg = tmp / "prometheus.yml"
    cfg.write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "scrape_configs": [
                    {
                        "job_name": "inspector",
                        "scrape_timeout": "900ms",
                        "static_configs": [{"targets": targets, "labels": {"line": "demo"}}],
                    }
                ],
            }
        )
    )
    return cfg


def test_alert_rules_unit_tests() -> None:
    check = subprocess.run(
        [tool("promtool"), "check", "rules", str(RULES)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    run = subprocess.run(
        [tool("promtool"), "test", "rules", str(RULE_TESTS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    print(run.stdout, run.stderr)
    assert run.returncode == 0 and "SUCCESS" in run.stdout, run.stdout + run.stderr


def test_dashboard_and_alerts_against_a_live_prometheus(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = list(panel_queries(dashboard))
    assert len(queries) >= 30
    prometheus = tool("prometheus")  # before anything starts: a missing tool leaks nothing
    ports = {"sim": free_port(), "plc": free_port()}
    daemons = {
        name: start_daemon(
            daemon_config(tmp_path / f"{name}.yaml", port, plc=name == "plc"),
            tmp_path / f"{name}.log",
        )
        for name, port in ports.items()
    }
    prom_port = free_port()
    targets = [f"127.0.0.1:{p}" for p in ports.values()]
    prom = subprocess.Popen(
        [
            prometheus,
            f"--config.file={prometheus_config(tmp_path, targets)}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("w"),
    )
    codes: dict[str, int] = {}
    try:
        wait_until("prometheus", lambda: _ready(prom_port), 30)
        # Both daemons ready, parts counted and the PLC link up, over several scrapes.
        wait_until(
            "both daemons inspecting",
            lambda: (
                _alive(daemons, tmp_path)
                and len(query(prom_port, 'inspector_state{inspector_state="ready"} == 1')) == 2
                and len(query(prom_port, "sum by (instance) (inspector_parts_total) > 5")) == 2
                and len(query(prom_port, "inspector_plc_link_up == 1")) == 1
            ),
            60,
        )
        wait_until(
            "12 s of scrapes since ready",
            lambda: len(query(prom_port, "count_over_time(inspector_camera_up[12s]) >= 10")) == 2,
            30,
        )
        report = []
        for where, expr in queries:
            result = query(prom_port, substitute(expr))
            finite = [r for r in result if math.isfinite(float(r["value"][1]))]
            report.append(f"{len(result):3d} series ({len(finite):3d} finite)  {where}")
            assert finite, f"{where}: no series with a value: {expr}"
        print("\n".join(["dashboard queries against a live Prometheus:", *report]))
        # The alert rules, loaded and evaluated by this Prometheus: all healthy, none
        # firing or pending, and each expression matches nothing on these lines.
        groups = api(prom_port, "rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        assert len(rules) == 9 and all(r["health"] == "ok" for r in rules), rules
        assert api(prom_port, "alerts")["alerts"] == []
        for rule in rules:
            assert query(prom_port, rule["query"]) == [], rule["name"]
        print(f"alert rules: {len(rules)} loaded, healthy, none pending or firing")
    finally:
        prom.terminate()
        prom.wait(timeout=10)
        for name, proc in daemons.items():
            codes[name] = stop(proc)
    for name in daemons:
        log = (tmp_path / f"{name}.log").read_text()
        assert codes[name] == 0, log[-3000:]
        after_stop = log[log.index('"stop_requested"') :]
        assert '"level": "error"' not in after_stop, after_stop


def _alive(daemons: dict[str, subprocess.Popen[str]], logs: Path) -> bool:
    """True while every daemon runs; fails the test with its log when one has exited."""
    for name, proc in daemons.items():
        if proc.poll() is not None:
            tail = (logs / f"{name}.log").read_text()[-2000:]
            pytest.fail(f"{name} daemon exited {proc.returncode}: {tail}")
    return True


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False
