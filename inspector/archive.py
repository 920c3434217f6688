"""NG image archive with retention (after step 7, off the critical path).

The worker hands each NG frame over with ``offer()``, which never blocks: a full queue
drops the image, because the archive must never slow the line. One writer thread saves
PNGs plus a JSON sidecar and deletes the oldest files past ``max_files``. File names
carry the wall-clock time, the part id and the reason, so name order is age order.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import queue
import threading
import time
from collections import deque
from pathlib import Path

import cv2

from inspector.config import ArchiveConfig
from inspector.logging import get_logger
from inspector.types import Frame, Verdict

log = get_logger(__name__)


class Archive:
    """Saves NG frames in the background; ``close()`` flushes and joins."""

    def __init__(self, cfg: ArchiveConfig, queue_size: int = 16) -> None:
        self.cfg = cfg
        self._q: queue.Queue[tuple[Frame, int, Verdict] | None] = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        #: The archive's PNGs, oldest (first by name) first; read once in ``start``.
        self._kept: deque[Path] = deque()

    def start(self) -> None:
        self.cfg.dir.mkdir(parents=True, exist_ok=True)
        self._kept = deque(sorted(self.cfg.dir.glob("*.png")))
        self._thread = threading.Thread(target=self._run, name="inspector-archive", daemon=True)
        self._thread.start()

    def offer(self, frame: Frame, part_id: int, verdict: Verdict) -> None:
        """Queue an NG frame for saving; drops it if the writer is behind."""
        if verdict.ok:
            return
        with contextlib.suppress(queue.Full):
            self._q.put_nowait((frame, part_id, verdict))

    def close(self) -> None:
        if self._thread is None:
            return
        self._q.put(None)
        self._thread.join(timeout=5)
        self._thread = None

    def _run(self) -> None:
        while (item := self._q.get()) is not None:
            frame, part_id, verdict = item
            try:
                self._save(frame, part_id, verdict)
            except OSError as exc:
                log.error("archive_write_failed", error=str(exc))

    def _save(self, frame: Frame, part_id: int, verdict: Verdict) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        stem = self.cfg.dir / f"{stamp}_{part_id:010d}_{verdict.reason.value}"
        image = frame.image
        if frame.pixel_format == "RGB8":
            image = image[:, :, ::-1]
        png = stem.with_suffix(".png")
        if cv2.imwrite(str(png), image, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            self._keep(png)
        meta = {
            "part_id": part_id,
            "pixel_format": frame.pixel_format,
            "reason": verdict.reason.value,
            "detail": verdict.detail,
            "findings": [f.to_record() for f in verdict.findings],
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
