"""NG image archive with retention (after step 7, off the critical path).

The archive is a result sink behind a ``sinks.QueuedSink``: the ledger hands it every
part without waiting, a full queue drops the image (counted), because the archive must
never slow the line. Its writer thread saves PNGs plus a JSON sidecar and deletes the
oldest files past ``max_files``. File names carry the wall-clock time, the part id and
the reason, so name order is age order.
"""

from __future__ import annotations

import bisect
import json
import time
from collections import deque
from pathlib import Path

import cv2

from inspector.config import ArchiveConfig
from inspector.logging import get_logger
from inspector.sinks import part_record
from inspector.types import Frame, PartResult

log = get_logger(__name__)


class Archive:
    """Saves NG frames with a JSON sidecar; a sink, run behind a ``QueuedSink`` thread.

    ``publish`` does the disk I/O, so the app never calls it inline: it wraps the
    archive in ``sinks.QueuedSink``, whose bounded queue drops (and counts) images when
    the disk is behind.
    """

    def __init__(self, cfg: ArchiveConfig) -> None:
        self.cfg = cfg
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
            self._save(result.frame, result)
        except OSError as exc:
            log.error("archive_write_failed", error=str(exc))

    def _save(self, frame: Frame, result: PartResult) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        stem = self.cfg.dir / f"{stamp}_{result.trigger.part_id:010d}_{result.verdict.reason.value}"
        image = frame.image
        if frame.pixel_format == "RGB8":
            image = image[:, :, ::-1]
        png = stem.with_suffix(".png")
        if cv2.imwrite(str(png), image, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            self._keep(png)
        # The log's field names (part_record), plus what only the archive knows.
        meta = {**part_record(result), "image": png.name, "pixel_format": frame.pixel_format}
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
