"""Small torch detectors for the GPU tests (imported only where torch is present).

``TinyDetector`` has YOLOv8's output layout: ``[B, 3, H, W]`` → ``[B, 4 + nc, H/4 * W/4]``
(cx, cy, w, h in model-input pixels, then sigmoid class scores), real convolutions on
seeded random weights, so some candidates clear a confidence floor and some do not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.common import REPO

#: The trained demo detector as TorchScript (committed).
DEMO_TS: Path = REPO / "engines" / "demo_detector.ts"


def tiny_detector(seed: int = 0, *, nc: int = 3, device: str = "cuda") -> Any:
    import torch

    class TinyDetector(torch.nn.Module):  # type: ignore[misc]  # torch is untyped here
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Sequential(
                torch.nn.Conv2d(3, 16, 3, stride=2, padding=1),
                torch.nn.SiLU(),
                torch.nn.Conv2d(16, 32, 3, stride=2, padding=1),
                torch.nn.SiLU(),
                torch.nn.Conv2d(32, 4 + nc, 1),
            )

        def forward(self, x: Any) -> Any:
            y = self.body(x).flatten(2)  # [B, 4 + nc, H/4 * W/4]
            boxes = torch.sigmoid(y[:, :4]) * 64.0
            scores = torch.sigmoid(y[:, 4:] * 4.0)
            return torch.cat([boxes, scores], 1)

    torch.manual_seed(seed)
    return TinyDetector().eval().to(device)
