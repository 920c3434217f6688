"""The MQTT sink's durable spool: a SQLite file every part message waits in until the
broker has acknowledged it.

Where it sits: behind the MQTT sink (``plant/mqtt.py``): the spool writer thread
appends, the MQTT session thread reads in order and deletes what the broker
acknowledged (PUBACK). Rows keep their insertion order (``id``), so a replay after a
broker outage or a daemon restart sends the oldest first: at least once, in order.

Bounded by payload bytes: an append that takes the spool past ``max_bytes`` deletes the
oldest rows first and returns how many it dropped; the caller counts and logs them.
Never silently. One connection, used under a lock by both threads; WAL journal, and
``synchronous=FULL`` by default so a committed row survives power loss too.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from inspector.logging import get_logger

log = get_logger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    size INTEGER NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class Spooled:
    """One message waiting in the spool."""

    id: int
    topic: str
    payload: bytes


class Spool:
    """Durable FIFO of (topic, payload), bounded by payload bytes."""

    def __init__(self, path: Path, max_bytes: int, *, sync: str = "full") -> None:
        if max_bytes <= 0:
            raise ValueError("spool max_bytes must be positive")
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._open(path, sync)
        except sqlite3.DatabaseError as exc:  # a damaged file must not crash-loop the daemon
            aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
            path.rename(aside)
            log.error("mqtt_spool_damaged", path=str(path), moved_to=str(aside), error=repr(exc))
            self._db = self._open(path, sync)
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages").fetchone()
        self.count, self.bytes = int(row[0]), int(row[1])

    @staticmethod
    def _open(path: Path, sync: str) -> sqlite3.Connection:
        db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'FULL' if sync == 'full' else 'NORMAL'}")
        db.execute(_SCHEMA)
        db.execute("SELECT COUNT(*) FROM messages").fetchone()  # reads the file: damage shows
        return db

    def append(self, messages: Sequence[tuple[str, bytes]]) -> int:
        """Store ``messages`` in order in one transaction; returns how many of the oldest
        rows were dropped to stay within ``max_bytes``."""
        if not messages:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO messages (topic, payload, size) VALUES (?, ?, ?)",
                    [(t, p, len(p)) for t, p in messages],
                )
                self.count += len(messages)
                self.bytes += sum(len(p) for _, p in messages)
                dropped = self._trim()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._recount()
                raise
        return dropped

    def _trim(self) -> int:
        """Delete the oldest rows until within bound (inside the caller's transaction)."""
        dropped = 0
        while self.bytes > self.max_bytes and self.count > 0:
            rows = self._db.execute(
                "SELECT id, size FROM messages ORDER BY id LIMIT 256"
            ).fetchall()
            cut: list[int] = []
            for row_id, size in rows:
                if self.bytes <= self.max_bytes:
                    break
                cut.append(row_id)
                self.bytes -= size
                self.count -= 1
            self._db.execute("DELETE FROM messages WHERE id <= ?", (cut[-1],))
            dropped += len(cut)
        return dropped

    def _recount(self) -> None:
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages").fetchone()
        self.count, self.bytes = int(row[0]), int(row[1])

    def after(self, last_id: int, limit: int) -> list[Spooled]:
        """Up to ``limit`` messages with ``id > last_id``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload FROM messages WHERE id > ? ORDER BY id LIMIT ?",
                (last_id, limit),
            ).fetchall()
        return [Spooled(int(i), str(t), bytes(p)) for i, t, p in rows]

    def delete(self, ids: Iterable[int]) -> int:
        """Forget acknowledged messages; returns how many were still there."""
        id_list = sorted(set(ids))
        if not id_list:
            return 0
        gone = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for i in range(0, len(id_list), 500):
                    chunk = id_list[i : i + 500]
                    marks = ",".join("?" * len(chunk))
                    rows = self._db.execute(
                        f"DELETE FROM messages WHERE id IN ({marks}) RETURNING size", chunk
                    ).fetchall()
                    gone += len(rows)
                    self.count -= len(rows)
                    self.bytes -= sum(int(r[0]) for r in rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._recount()
                raise
        return gone

    def close(self) -> None:
        with self._lock:
            self._db.close()
