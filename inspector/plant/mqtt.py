"""The MQTT sink: every part's result to the plant's broker, through a durable spool.

Where it sits: the publish step, one of the sinks (``sinks.py``). The flow of one part:

    ledger ─▶ MqttSink.publish ─▶ handoff (memory) ─▶ spool writer ─▶ Spool (SQLite)
                                                                         │
                                   broker ◀── MqttSession (QoS 1, in order) ◀┘

* ``publish`` runs in the cycle: it only appends the result to a bounded in-memory
  handoff and wakes the spool writer; it never blocks, never does I/O. The bound
  (``mqtt.handoff_max``, 100,000 parts: hours at line rate) is only reached if the
  spool's disk stalls; a part dropped there is counted (``inspector_sink_dropped_total
  {sink="mqtt"}``) and logged, never silently.
* The spool writer thread (``inspector-mqtt-spool``) takes everything waiting, builds
  the messages (``message.part_message``: message id, sequence, wall-clock and
  monotonic times) and stores them in one SQLite transaction.
* The session thread (``inspector-mqtt``, ``mqtt_session.py``) sends the spool to the
  broker in order and deletes what the broker acknowledged.

At stop (``close``): the writer stores what is waiting (milliseconds), the session
sends what it can within the budget, publishes the retained offline state and
disconnects; whatever is left stays in the spool for the next start.
"""

from __future__ import annotations

import collections
import sqlite3
import threading
import time

from inspector import metrics
from inspector.backoff import Backoff
from inspector.config import MqttConfig
from inspector.logging import RateLimitedLog, get_logger
from inspector.plant.message import Station, part_message
from inspector.plant.mqtt_session import MqttSession
from inspector.plant.spool import Spool
from inspector.supervisor import Supervisor
from inspector.types import PartResult

log = get_logger(__name__)
_errors = RateLimitedLog(log)


class MqttSink:
    """Result sink: hands every part to the durable spool; the session sends it."""

    name = "mqtt"

    def __init__(self, cfg: MqttConfig, station: Station) -> None:
        self.cfg = cfg
        self.station = station
        self.spool: Spool | None = None
        self.session: MqttSession | None = None
        self.dropped = 0
        self._handoff: collections.deque[tuple[PartResult, int]] = collections.deque()
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._msg_seq = 0
        self._pending: list[tuple[str, bytes]] = []  # built, not yet stored (disk error)
        self._writer: threading.Thread | None = None
        self._sender: threading.Thread | None = None
        self._dropped_metric = metrics.SINK_DROPPED.labels(self.name)
        self._depth = metrics.SINK_QUEUE_DEPTH.labels(self.name)

    def start(self, supervisor: Supervisor) -> None:
        """Open the spool (what a previous run left is sent first) and start both threads."""
        self.spool = Spool(
            self.cfg.spool_path, int(self.cfg.spool_max_mb * 1_000_000), sync=self.cfg.spool_sync
        )
        metrics.MQTT_SPOOL_MESSAGES.set(self.spool.count)
        metrics.MQTT_SPOOL_BYTES.set(self.spool.bytes)
        if self.spool.count:
            log.info("mqtt_spool_replay", messages=self.spool.count, path=str(self.spool.path))
        self.session = MqttSession(self.cfg, self.station, self.spool)
        self._writer = supervisor.spawn("mqtt-spool", self._write_loop, stops_with=self._closing)
        self._sender = supervisor.spawn("mqtt", self.session.run, stops_with=self.session.stop)

    # ------------------------------------------------------------------ cycle
    def publish(self, result: PartResult) -> None:
        """Hand the part over (O(1), no I/O); drop and count only if the handoff is full."""
        wall_ns = time.time_ns() - (time.monotonic_ns() - result.t_verdict_ns)
        with self._cond:
            if len(self._handoff) >= self.cfg.handoff_max:
                self.dropped += 1
                self._dropped_metric.inc()
                _errors.error("mqtt_handoff_full", part_id=result.trigger.part_id)
                return
            self._handoff.append((result, wall_ns))
            self._cond.notify()

    def set_state(self, state: int, error_code: int) -> None:
        """The station's STATE and ERROR_CODE changed: publish the retained state."""
        if self.session is not None:
            self.session.set_state(state, error_code)

    # ---------------------------------------------------------- spool writer
    def _write_loop(self) -> None:
        assert self.spool is not None and self.session is not None
        backoff = Backoff(0.05, 1.0)
        while True:
            with self._cond:
                while not self._handoff and not self._pending and not self._closing.is_set():
                    self._cond.wait(0.5)
                batch = list(self._handoff)
                self._handoff.clear()
                self._depth.set(0)
            if not batch and not self._pending:
                return  # closing, and everything is stored
            for result, wall_ns in batch:
                self._msg_seq += 1
                payload = part_message(result, self.station, self._msg_seq, wall_ns)
                self._pending.append((self.session.parts_topic, payload))
            if self._store():
                backoff.reset()
            elif self._closing.wait(backoff.next()):
                return  # stopping with a disk that refuses writes: counted in _store

    def _store(self) -> bool:
        """Move the built messages into the spool; False (kept for a retry) on a disk error."""
        assert self.spool is not None and self.session is not None
        try:
            dropped = self.spool.append(self._pending)
        except sqlite3.Error as exc:
            metrics.SINK_ERRORS.labels(self.name).inc()
            _errors.error("mqtt_spool_write_failed", error=repr(exc), waiting=len(self._pending))
            if self._closing.is_set():
                self._count_dropped(len(self._pending), "spool write failed at stop")
                self._pending = []
            return False
        self._pending = []
        if dropped:
            metrics.MQTT_SPOOL_DROPPED.inc(dropped)
            log.warning(
                "mqtt_spool_full_dropped_oldest", dropped=dropped, max_mb=self.cfg.spool_max_mb
            )
        metrics.MQTT_SPOOL_MESSAGES.set(self.spool.count)
        metrics.MQTT_SPOOL_BYTES.set(self.spool.bytes)
        self.session.wake()
        return True

    def _count_dropped(self, n: int, why: str) -> None:
        self.dropped += n
        self._dropped_metric.inc(n)
        log.error("mqtt_parts_dropped", parts=n, why=why)

    # ------------------------------------------------------------------- stop
    def close(self, drain_s: float = 1.0) -> None:
        """Store what is waiting, let the session send what it can within ``drain_s``,
        then say offline and disconnect; the rest stays spooled for the next start."""
        end = time.monotonic() + drain_s
        with self._cond:
            self._closing.set()
            self._cond.notify()
        if self._writer is not None:
            self._writer.join(max(0.0, end - time.monotonic()) * 0.5)
            if self._writer.is_alive():
                log.error("mqtt_spool_writer_slow_at_stop", waiting=len(self._handoff))
        if self.session is not None:
            self.session.drain(end - 0.05)
        if self._sender is not None:
            self._sender.join(max(0.05, end - time.monotonic()))
        if self.session is not None and self._sender is not None and not self._sender.is_alive():
            self.session.close_sockets()
        with self._cond:
            left = len(self._handoff)
            self._handoff.clear()
        if left:
            self._count_dropped(left, "not stored within the stop budget")
        if self.spool is not None and not (self._writer and self._writer.is_alive()):
            if self.spool.count:
                log.info("mqtt_spooled_at_stop", messages=self.spool.count)
            self.spool.close()
