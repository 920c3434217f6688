"""Fixtures of the GPU tests (all marked ``gpu``; run on a machine with an NVIDIA GPU).

Nothing here imports CUDA or torch at collection time, so ``pytest -m "not gpu"`` on a
CPU machine deselects these tests without import errors.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small TorchScript detector with YOLOv8's output layout: [1,3,64,96] → [1,7,N].

    Real convolutions on random (seeded) weights; class scores are sigmoids so some
    candidates clear a confidence floor and some do not.
    """
    torch = pytest.importorskip("torch")

    class Tiny(torch.nn.Module):  # type: ignore[misc]  # torch is untyped here
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Sequential(
                torch.nn.Conv2d(3, 16, 3, stride=2, padding=1),
                torch.nn.SiLU(),
                torch.nn.Conv2d(16, 32, 3, stride=2, padding=1),
                torch.nn.SiLU(),
                torch.nn.Conv2d(32, 7, 1),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.body(x).flatten(2)  # [1, 7, H/4*W/4]
            boxes = torch.sigmoid(y[:, :4]) * 64.0
            scores = torch.sigmoid(y[:, 4:] * 4.0)
            return torch.cat([boxes, scores], 1)

    torch.manual_seed(0)
    model = Tiny().eval().cuda()
    traced = torch.jit.trace(model, torch.rand(1, 3, 64, 96, device="cuda"))
    path = tmp_path_factory.mktemp("models") / "tiny_detector.ts"
    traced.save(str(path))
    return path
