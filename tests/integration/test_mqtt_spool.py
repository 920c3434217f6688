"""The MQTT spool: order, durability across reopen, the size bound, damaged files."""

from __future__ import annotations

from pathlib import Path

import pytest

from inspector.plant.spool import Spool


def payloads(n: int, size: int = 100, start: int = 0) -> list[tuple[str, bytes]]:
    return [("t/parts", f"{i:08d}".encode().ljust(size, b".")) for i in range(start, start + n)]


def test_order_and_acknowledgement(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", 1 << 20)
    assert spool.append(payloads(10)) == 0
    rows = spool.after(0, 4)
    assert [r.payload[:8] for r in rows] == [f"{i:08d}".encode() for i in range(4)]
    assert spool.after(rows[-1].id, 100)[0].payload[:8] == b"00000004"
    assert spool.delete([rows[1].id, rows[0].id, 10_000]) == 2  # unknown ids are ignored
    assert spool.count == 8 and spool.bytes == 800
    assert spool.after(0, 1)[0].payload[:8] == b"00000002"
    spool.close()


def test_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    spool = Spool(path, 1 << 20)
    spool.append(payloads(5))
    spool.close()
    again = Spool(path, 1 << 20)
    assert again.count == 5 and again.bytes == 500
    again.append(payloads(2, start=5))
    assert [r.payload[:8] for r in again.after(0, 100)] == [f"{i:08d}".encode() for i in range(7)]
    again.close()


def test_bound_drops_the_oldest_and_says_how_many(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", 1000)  # room for 10 messages of 100 bytes
    assert spool.append(payloads(8)) == 0
    assert spool.append(payloads(5, start=8)) == 3  # 13 > 10: the 3 oldest go
    assert spool.count == 10 and spool.bytes == 1000
    assert spool.after(0, 1)[0].payload[:8] == b"00000003"
    assert spool.append(payloads(600, start=13)) == 600  # one big batch: keeps the newest
    assert [r.payload[:8] for r in spool.after(0, 100)][-1] == b"00000612"
    assert spool.count == 10
    spool.close()


def test_a_damaged_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    spool = Spool(path, 1000)
    assert spool.count == 0
    assert [p.name for p in tmp_path.iterdir() if ".damaged-" in p.name]
    spool.close()


def test_refuses_a_zero_bound(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Spool(tmp_path / "s.sqlite", 0)


def test_sink_counts_what_the_bound_drops_and_never_blocks(tmp_path: Path) -> None:
    """No broker at all: every part is spooled; past the bound the oldest are dropped and
    counted in inspector_mqtt_spool_dropped_total, never silently."""
    import time

    from inspector import metrics
    from inspector.config import MqttConfig
    from inspector.plant.message import Station
    from inspector.plant.mqtt import MqttSink
    from inspector.supervisor import Supervisor
    from inspector.types import PartResult, Reason, Trigger, ng
    from tests.support.common import free_port

    def dropped() -> float:
        return metrics.REGISTRY.get_sample_value("inspector_mqtt_spool_dropped_total") or 0.0

    cfg = MqttConfig(
        enabled=True, port=free_port(), spool_path=tmp_path / "s.sqlite", spool_max_mb=0.01
    )
    sink = MqttSink(cfg, Station("line", "st", "m" * 16, "c" * 16, "0123456789abcdef"))
    sup = Supervisor()
    before = dropped()
    sink.start(sup)
    now = time.monotonic_ns()
    slowest = 0
    for i in range(1, 201):
        result = PartResult(Trigger(i, i, now, now + 10**8), ng(Reason.DEFECT, "x"), now + 1000)
        t0 = time.perf_counter_ns()
        sink.publish(result)
        slowest = max(slowest, time.perf_counter_ns() - t0)
    sink.close(1.0)
    assert sup.faulted is None
    spool = Spool(cfg.spool_path, 1 << 30)
    kept = spool.count
    assert 0 < kept < 200 and dropped() - before == 200 - kept
    assert spool.bytes <= 10_000
    assert spool.after(0, 1_000)[-1].payload.find(b'"part_id":200,') > 0  # the newest kept
    assert slowest < 5_000_000, slowest  # publish is a hand-off: never milliseconds
