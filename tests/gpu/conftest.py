"""Fixtures of the GPU tests (all marked ``gpu``; run on a machine with an NVIDIA GPU).

Nothing here imports CUDA or torch at collection time, so ``pytest -m "not gpu"`` on a
CPU machine deselects these tests without import errors.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tests/support/gpu_models.tiny_detector`` traced to TorchScript: [1,3,64,96] →
    [1,7,384] (YOLOv8 layout), seeded weights."""
    torch = pytest.importorskip("torch")
    from tests.support.gpu_models import tiny_detector as make

    traced = torch.jit.trace(make(0), torch.rand(1, 3, 64, 96, device="cuda"))
    path = tmp_path_factory.mktemp("models") / "tiny_detector.ts"
    traced.save(str(path))
    return path


@pytest.fixture(scope="session", autouse=True)
def cuda_initialised() -> None:
    """The CUDA driver (and torch's CUDA, where present) initialised once, before any
    test's leak snapshot: the driver keeps a socket open for the process's lifetime
    (seen on the H200: ``socket:[…]`` after the first test's first CUDA call)."""
    from inspector.nvidia import driver as cu

    cu.make_current()
    try:
        import torch
    except ImportError:
        return
    torch.cuda.init()
