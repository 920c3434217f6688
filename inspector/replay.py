"""Offline replay: the same inspection steps over a folder of images, no deadlines.

``inspector replay --images DIR [--labels FILE]`` runs every image through
``inspect_part`` with the recipe in force, writes one JSON line per image, and, when
labels are given, scores the verdicts against them: an *escape* is a defective part
passed as OK, an *overkill* is a good part rejected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from inspector.camera.folder import FolderCamera
from inspector.config import FolderCameraConfig
from inspector.errors import CameraError
from inspector.inspect import LoadedRecipe, inspect_part
from inspector.seq import seq_of_count
from inspector.sinks import part_record
from inspector.types import PartResult, Trigger, Verdict


@dataclass
class Confusion:
    """Part-level confusion counts; 'positive' means defective (NG)."""

    true_ng: int = 0  # defective, rejected
    escape: int = 0  # defective, passed
    overkill: int = 0  # good, rejected
    true_ok: int = 0  # good, passed
    unlabelled: int = 0
    per_reason: dict[str, int] = field(default_factory=dict)

    def add(self, truth_ng: bool | None, verdict: Verdict) -> None:
        """Count one part: its confusion cell and its verdict's reason."""
        verdict_ok = verdict.ok
        if truth_ng is None:
            self.unlabelled += 1
        elif truth_ng:
            self.escape += verdict_ok
            self.true_ng += not verdict_ok
        else:
            self.true_ok += verdict_ok
            self.overkill += not verdict_ok
        reason = verdict.reason.value
        self.per_reason[reason] = self.per_reason.get(reason, 0) + 1

    @property
    def escape_rate(self) -> float:
        return self.escape / max(1, self.escape + self.true_ng)

    @property
    def overkill_rate(self) -> float:
        return self.overkill / max(1, self.overkill + self.true_ok)

    def table(self) -> str:
        return "\n".join(
            [
                "                 verdict OK   verdict NG",
                f"truth NG       {self.escape:>11d}  {self.true_ng:>11d}"
                f"   (escape rate {self.escape_rate:.2%})",
                f"truth OK       {self.true_ok:>11d}  {self.overkill:>11d}"
                f"   (overkill rate {self.overkill_rate:.2%})",
                f"unlabelled: {self.unlabelled}",
            ]
        )


def replay(recipe: LoadedRecipe, images: Path, labels: Path | None, out: IO[str]) -> Confusion:
    """Inspect every image in ``images``; write JSONL verdicts to ``out``."""
    camera = FolderCamera(FolderCameraConfig(path=images, labels=labels, loop=False))
    camera.open()
    confusion = Confusion()
    try:
        seq = 0
        while True:
            seq += 1
            trig = Trigger(
                trigger_seq=seq_of_count(seq),
                part_id=seq,
                t_trigger_ns=0,
                deadline_ns=0,
                source="replay",
                recipe_id=recipe.cfg.id,
            )
            try:
                frame = camera.grab(trig)
            except CameraError:
                if camera.exhausted:
                    break
                raise
            verdict, stage_ns = inspect_part(frame, recipe)
            truth_ng = None if frame.truth is None else len(frame.truth) > 0
            confusion.add(truth_ng, verdict)
            # The log's and archive's field names (part_record); cycle_ms is the sum of
            # the stages, since replay has no trigger clock.
            result = PartResult(
                trig, verdict, sum(stage_ns.values()), stage_ns, frame.frame_id, frame=frame
            )
            record = part_record(result)
            record["image"] = frame.source_name
            record.setdefault("truth", None)  # null: no label for this image
            out.write(json.dumps(record) + "\n")
    finally:
        camera.close()
    return confusion
