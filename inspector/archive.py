"""NG image archive with retention (after step 7, off the critical path).

The archive is a result sink behind a ``sinks.QueuedSink``: the ledger hands it every
part without waiting, a full queue drops the image (counted), because the archive must
never slow the line. Its writer thread saves PNGs plus a JSON sidecar and deletes the
oldest files past ``max_files``. File names carry the wall-clock time, the part id and
the reason, so name order is age order; ``parse_name`` reads them back (the web page's
gallery). The sidecar is the part's one JSON shape (``sinks.part_record``: part id,
trigger sequence, findings, timings) plus the pixel format, the wall-clock time, and the
model and config fingerprints in force, so an archived image traces back to what judged it.
"""

from __future__ import annotations

import bisect
import json
import re
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import cv2

from inspector.config import ArchiveConfig
from inspector.logging import get_logger
from inspector.sinks import part_record
from inspector.types import PartResult

log = get_logger(__name__)

#: ``<UTC stamp>_<part_id>_<reason>.<png|json>``; the only names the archive writes.
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
    archive in ``sinks.QueuedSink``, whose bounded queue drops (and counts) images when
    the disk is behind.
    """

    def __init__(self, cfg: ArchiveConfig, *, model_hash: str = "", config_hash: str = "") -> None:
        self.cfg = cfg
        self.fingerprints = {"model_hash": model_hash, "config_hash": config_hash}
        #: The archive's PNGs, oldest (first by name) first; read once in ``start``.
        self._kept: deque[Path] = deque()

    def start(self) -> None:
        self.cfg.dir.mkdir(parents=True, exist_ok=True)
        self._kept = deque(sorted(self.cfg.dir.glob("*.png")))

    def publish(self, result: PartResult) -> None:
        """Save an NG part's frame and sidecar; OK parts and parts without a frame are skipped."""
        if result.verdict.ok or result.frame is None:
            return
        try:
            self._save(result)
        except OSError as exc:
            log.error("archive_write_failed", error=str(exc))

    def _save(self, result: PartResult) -> None:
        frame, part_id, verdict = result.frame, result.trigger.part_id, result.verdict
        assert frame is not None
        now = time.time()
        stamp = time.strftime(STAMP_FORMAT, time.gmtime(now))
        stem = self.cfg.dir / f"{stamp}_{part_id:010d}_{verdict.reason.value}"
        image = frame.image
        if frame.pixel_format == "RGB8":
            image = image[:, :, ::-1]
        png = stem.with_suffix(".png")
        if cv2.imwrite(str(png), image, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            self._keep(png)
        meta = {
            **part_record(result),
            "detail": verdict.detail,
            "pixel_format": frame.pixel_format,
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "wall_time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
            + f".{int(now % 1 * 1000):03d}Z",
            **self.fingerprints,
        }
        stem.with_suffix(".json").write_text(json.dumps(meta))
        self._prune()

    def _keep(self, png: Path) -> None:
        """Add a written PNG in name order (almost always at the end); once per name."""
        i = bisect.bisect_left(self._kept, png)
        if i == len(self._kept) or self._kept[i] != png:
            self._kept.insert(i, png)

    def _prune(self) -> None:
        while len(self._kept) > self.cfg.max_files:
            old = self._kept.popleft()
            old.unlink(missing_ok=True)
            old.with_suffix(".json").unlink(missing_ok=True)
