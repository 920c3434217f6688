"""The NG gallery: the archive directory read back for the web page (no writes, ever).

    Archive (sink) ─▶ <dir>/<stamp>_<part_id>_<reason>.png + .json ┄▶ Gallery ─▶ page

``Gallery.query`` lists archived NG parts newest first, filtered by reason, class and
time. The index is rebuilt only when the directory changed (its mtime): the names are
listed once, and each new sidecar is read once (bounded in size), so a page reload
costs a ``stat``. Entries whose sidecar is not there yet are read again next time. The
index keeps a small summary per entry (~200 bytes: a full 10,000-image archive costs a
few MB); ``Gallery.sidecar`` reads one sidecar again when an entry is opened.

``Gallery.file`` is the one way the page reaches a file: only names the archive itself
writes (``archive.parse_name``), with suffix ``.png`` or ``.json``, regular files (never
a symlink), directly inside the archive directory. Anything else is None, so ``..``,
encoded separators, absolute paths and links out of the directory are all refused.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from inspector.archive import STAMP_FORMAT, parse_name

MAX_SIDECAR_BYTES = 1 << 20
_MTIME_SETTLE_NS = 2_000_000_000
SUFFIXES = (".png", ".json")


@dataclass(frozen=True, slots=True)
class Entry:
    """One archived NG part."""

    stem: str
    time: datetime  # UTC, from the file name
    part_id: int
    reason: str
    complete: bool = False  # its sidecar was read
    classes: tuple[str, ...] = ()
    trigger_seq: int | None = None
    findings: int = 0
    max_confidence: float | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.stem,
            "time": self.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "part_id": self.part_id,
            "trigger_seq": self.trigger_seq,
            "reason": self.reason,
            "classes": list(self.classes),
            "findings": self.findings,
            "max_confidence": self.max_confidence,
        }


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        raw = f.read(MAX_SIDECAR_BYTES + 1)
    if len(raw) > MAX_SIDECAR_BYTES:
        return None
    try:
        meta = json.loads(raw)
    except ValueError:
        return None
    return meta if isinstance(meta, dict) else None


def _entry(stem: str, directory: Path) -> Entry | None:
    name = parse_name(stem)
    if name is None:
        return None
    try:
        if not stat.S_ISREG(os.lstat(directory / f"{stem}.png").st_mode):
            return None  # a link or anything but a file the archive wrote
    except OSError:
        return None
    when = datetime.strptime(name.stamp, STAMP_FORMAT).replace(tzinfo=timezone.utc)
    meta = _read_sidecar(directory / f"{stem}.json")
    if meta is None:
        return Entry(stem, when, name.part_id, name.reason)
    found = [f for f in meta.get("findings") or [] if isinstance(f, dict)]
    seq = meta.get("trigger_seq")
    return Entry(
        stem,
        when,
        name.part_id,
        name.reason,
        complete=True,
        classes=tuple(sorted({str(f.get("class")) for f in found})),
        trigger_seq=seq if isinstance(seq, int) else None,
        findings=len(found),
        max_confidence=max((float(f.get("confidence", 0)) for f in found), default=None),
    )


class Gallery:
    """Read-only view of the NG archive directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self._entries: dict[str, Entry] = {}
        self._mtime_ns = -1
        self._incomplete = False  # some entry still waits for its sidecar
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Re-read the directory if it changed since the last call."""
        try:
            mtime = os.stat(self.dir).st_mtime_ns
        except OSError:
            with self._lock:
                self._entries, self._mtime_ns = {}, -1
            return
        with self._lock:
            # A directory's mtime may tick coarsely: a file added in the same tick as the
            # last listing leaves it unchanged, so a recent mtime is listed again.
            settled = time.time_ns() - mtime > _MTIME_SETTLE_NS
            if mtime == self._mtime_ns and not self._incomplete and settled:
                return
            try:
                names = os.listdir(self.dir)
            except OSError:
                return
            stems = {n[:-4] for n in names if n.endswith(".png")}
            kept = {s: e for s, e in self._entries.items() if s in stems and e.complete}
            for stem in stems - kept.keys():
                entry = _entry(stem, self.dir)
                if entry is not None:
                    kept[stem] = entry
            self._entries, self._mtime_ns = kept, mtime
            self._incomplete = not all(e.complete for e in kept.values())

    def query(
        self,
        *,
        reason: str | None = None,
        class_name: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> tuple[list[Entry], int]:
        """Matching entries newest first (at most ``limit``), and how many matched in all."""
        self.refresh()
        with self._lock:
            entries = list(self._entries.values())
        hits = [
            e
            for e in entries
            if (reason is None or e.reason == reason)
            and (class_name is None or class_name in e.classes)
            and (since is None or e.time >= since)
            and (until is None or e.time <= until)
        ]
        hits.sort(key=lambda e: e.stem, reverse=True)
        return hits[:limit], len(hits)

    def facets(self) -> dict[str, list[str]]:
        """Reasons and classes present in the archive (the page's filter choices)."""
        with self._lock:
            entries = list(self._entries.values())
        return {
            "reasons": sorted({e.reason for e in entries}),
            "classes": sorted({c for e in entries for c in e.classes}),
        }

    def sidecar(self, stem: str) -> dict[str, Any] | None:
        """The sidecar of an archived part the gallery lists (read now), else None."""
        self.refresh()
        with self._lock:
            listed = stem in self._entries
        return _read_sidecar(self.dir / f"{stem}.json") if listed else None

    def entry(self, stem: str) -> Entry | None:
        self.refresh()
        with self._lock:
            return self._entries.get(stem)

    def file(self, name: str) -> Path | None:
        """The archive file ``name`` if it is one the archive wrote; None for anything else."""
        stem, dot, suffix = name.rpartition(".")
        if not dot or f".{suffix}" not in SUFFIXES or parse_name(stem) is None:
            return None
        path = self.dir / name
        try:
            st = os.lstat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):  # a symlink, a directory, a device: refused
            return None
        if path.resolve().parent != self.dir.resolve():
            return None
        return path
