"""NG image archive with retention and exact accounting (after step 7, off the critical path).

The archive is a result sink behind a ``sinks.QueuedSink``: the ledger hands it every
NG part with a frame (``wants``) without waiting, and a full queue drops the image,
because the archive must never slow the line. Every such image ends up counted once in
``inspector_archive_images_total`` by outcome:

* ``written``: the PNG and its JSON sidecar are both in the directory;
* ``dropped``: the queue was full (``count_dropped``, called by the queue, so this
  equals ``inspector_sink_dropped_total{sink="archive"}``);
* ``failed``: a write failed (disk full, read-only, the directory gone), or the archive
  was off.

A failure (at start too: a directory that cannot be created) turns the archive off
for ``retry_s`` and raises the fault flag (``inspector_archive_up`` 0, an error line
at most once a minute); then the next image tries again, and the first image written
clears the flag (``archive_resumed``). Inspection and the start never wait for it or
stop for it.

Files: each image is encoded in memory, written under a temporary name with its
sidecar, and both are renamed into place, the sidecar last; any failure removes what
was written. So a sidecar never exists without its image. Opening the directory
deletes orphans (a PNG without its sidecar, a sidecar without its PNG, temporary files
of an interrupted write); pruning deletes the oldest pairs past ``max_files``. File
names carry the wall-clock time, the part id and the reason, so name order is age order;
``parse_name`` reads them back (the web page's gallery). The sidecar is the part's one
JSON shape (``sinks.part_record``: part id, trigger sequence, findings, timings) plus
the pixel format, the wall-clock time and the model and config fingerprints in force,
so an archived image traces back to what judged it.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import re
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import cv2

from inspector import metrics
from inspector.config import ArchiveConfig
from inspector.logging import RateLimitedLog, get_logger
from inspector.sinks import part_record
from inspector.types import PartResult

log = get_logger(__name__)
#: A full disk stays full for a while: one line a minute says so (with a suppressed count).
_errors = RateLimitedLog(log, period_s=60.0)

_TMP = ".tmp"

#: ``<UTC stamp>_<part_id>_<reason>`` (+ ``.png`` / ``.json``): the only names the archive writes.
NAME_PATTERN = re.compile(r"(?P<stamp>\d{8}T\d{6})_(?P<part_id>\d{10})_(?P<reason>[a-z_]{1,32})")
STAMP_FORMAT = "%Y%m%dT%H%M%S"


@dataclass(frozen=True, slots=True)
class ArchiveName:
    """What an archive file name says: when (UTC), which part, why NG."""

    stem: str
    stamp: str
    part_id: int
    reason: str


def parse_name(stem: str) -> ArchiveName | None:
    """Read an archive file stem (no suffix); None for anything the archive did not name."""
    m = NAME_PATTERN.fullmatch(stem)
    if m is None:
        return None
    return ArchiveName(stem, m["stamp"], int(m["part_id"]), m["reason"])


class Archive:
    """Saves NG frames with a JSON sidecar; a sink, run behind a ``QueuedSink`` thread.

    ``publish`` does the disk I/O, so the app never calls it inline: it wraps the
    archive in ``sinks.QueuedSink(archive, "archive", wants=archive.wants,
    on_drop=archive.count_dropped)``.
    """

    def __init__(self, cfg: ArchiveConfig, *, model_hash: str = "", config_hash: str = "") -> None:
        self.cfg = cfg
        self.fingerprints = {"model_hash": model_hash, "config_hash": config_hash}
        #: Stems (path without suffix) of complete image+sidecar pairs, oldest first.
        self._kept: deque[Path] = deque()
        self._open_dir = False  # the directory is listed and writes are tried
        self._retry_at_ns = 0
        self._faulted = False  # the fault flag: the last attempt failed
        self.written = 0
        self.failed = 0
        self.dropped = 0
        self._outcome = {o: metrics.ARCHIVE_IMAGES.labels(o) for o in ("written", "failed")}
        self._dropped = metrics.ARCHIVE_IMAGES.labels("dropped")
        self._up_flag = metrics.ARCHIVE_UP.labels(str(cfg.dir))

    @property
    def up(self) -> bool:
        """False from a failure until an image is written again (``inspector_archive_up``)."""
        return not self._faulted

    def start(self) -> None:
        """Open the directory; never raises (an unwritable archive is off, not fatal)."""
        if self._open():
            self._up_flag.set(1)
            log.info("archive_up", dir=str(self.cfg.dir), images=len(self._kept))

    def wants(self, result: PartResult) -> bool:
        """Only NG parts with a frame have an image to archive."""
        return not result.verdict.ok and result.frame is not None

    def count_dropped(self, n: int) -> None:
        """The queue in front dropped ``n`` wanted images."""
        self.dropped += n
        self._dropped.inc(n)

    def publish(self, result: PartResult) -> None:
        """Save an NG part's frame and sidecar; OK parts and parts without a frame are skipped."""
        if not self.wants(result):
            return
        assert result.frame is not None  # wants() checked it
        if not self._open_dir and (time.monotonic_ns() < self._retry_at_ns or not self._open()):
            self._count("failed")
            return
        try:
            stem = self._save(result)
        except (OSError, cv2.error) as exc:
            self._count("failed")
            self._go_off("archive_write_failed", exc)
            return
        self._count("written")
        self._keep(stem)
        self._prune()
        if self._faulted:
            self._faulted = False
            self._up_flag.set(1)
            log.info("archive_resumed", dir=str(self.cfg.dir), failed=self.failed)

    def close(self) -> None:
        """Say what the archive did (one log line); the files stay."""
        log.info("archive_summary", written=self.written, failed=self.failed, dropped=self.dropped)

    # ------------------------------------------------------------------ internals
    def _count(self, outcome: str) -> None:
        if outcome == "written":
            self.written += 1
        else:
            self.failed += 1
        self._outcome[outcome].inc()

    def _open(self) -> bool:
        """Create and list the directory, deleting orphans; False (and off) on failure."""
        try:
            self.cfg.dir.mkdir(parents=True, exist_ok=True)
            self._kept = deque(self._complete_pairs())
        except OSError as exc:
            self._go_off("archive_unavailable", exc)
            return False
        self._open_dir = True
        return True

    def _go_off(self, event: str, exc: BaseException) -> None:
        """Off for ``retry_s``, fault flag up, and a log line at most once a minute."""
        self._open_dir = False
        self._faulted = True
        self._retry_at_ns = time.monotonic_ns() + int(self.cfg.retry_s * 1e9)
        self._up_flag.set(0)
        kind = str(exc.errno) if isinstance(exc, OSError) else type(exc).__name__
        _errors.error(
            event, kind=kind, dir=str(self.cfg.dir), error=str(exc), retry_s=self.cfg.retry_s
        )

    def _complete_pairs(self) -> list[Path]:
        """Stems that have both files, oldest first; every other archive file is deleted."""
        pngs: set[Path] = set()
        jsons: set[Path] = set()
        orphans: list[Path] = []
        for entry in self.cfg.dir.iterdir():
            if entry.suffix == ".png":
                pngs.add(entry.with_suffix(""))
            elif entry.suffix == ".json":
                jsons.add(entry.with_suffix(""))
            elif entry.name.endswith(_TMP):
                orphans.append(entry)
        orphans += [s.with_suffix(".png") for s in pngs - jsons]
        orphans += [s.with_suffix(".json") for s in jsons - pngs]
        for path in orphans:
            path.unlink(missing_ok=True)
        if orphans:
            log.warning("archive_orphans_removed", count=len(orphans))
        return sorted(pngs & jsons)

    def _save(self, result: PartResult) -> Path:
        """Write the image and its sidecar as a pair; on any failure, neither remains."""
        frame, part_id, verdict = result.frame, result.trigger.part_id, result.verdict
        assert frame is not None  # wants() checked it
        now = time.time()
        stamp = time.strftime(STAMP_FORMAT, time.gmtime(now))
        stem = self.cfg.dir / f"{stamp}_{part_id:010d}_{verdict.reason.value}"
        image = frame.image[:, :, ::-1] if frame.pixel_format == "RGB8" else frame.image
        ok, png = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise OSError(f"cannot encode a {frame.pixel_format} frame of {image.shape} as PNG")
        meta = {
            **part_record(result),
            "image": stem.with_suffix(".png").name,
            "detail": verdict.detail,
            "pixel_format": frame.pixel_format,
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "wall_time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
            + f".{int(now % 1 * 1000):03d}Z",
            **self.fingerprints,
        }
        files = [
            (stem.with_suffix(".png"), png.tobytes()),
            (stem.with_suffix(".json"), json.dumps(meta).encode()),
        ]
        done: list[Path] = []
        try:
            for path, data in files:
                tmp = path.with_name(path.name + _TMP)
                done.append(tmp)
                tmp.write_bytes(data)
            for path, _ in files:  # the image first: a sidecar never stands alone
                os.replace(path.with_name(path.name + _TMP), path)
                done.append(path)
        except OSError:
            for path in done:
                with contextlib.suppress(OSError):  # the write's own error is the one to report
                    path.unlink(missing_ok=True)
            raise
        return stem

    def _keep(self, stem: Path) -> None:
        """Add a written pair in name order (almost always at the end); once per name."""
        i = bisect.bisect_left(self._kept, stem)
        if i == len(self._kept) or self._kept[i] != stem:
            self._kept.insert(i, stem)

    def _prune(self) -> None:
        while len(self._kept) > self.cfg.max_files:
            old = self._kept.popleft()
            try:  # the sidecar first: an interrupted prune leaves an orphan PNG, not JSON
                old.with_suffix(".json").unlink(missing_ok=True)
                old.with_suffix(".png").unlink(missing_ok=True)
            except OSError as exc:
                _errors.error("archive_prune_failed", error=str(exc))
