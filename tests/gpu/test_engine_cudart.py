"""The CUDA helpers the TensorRT backend runs on, exercised on a real GPU.

Marked ``gpu``: run where an NVIDIA GPU and cuda-python are present
(``pytest -m gpu tests/integration/test_cudart_gpu.py``). Checks the sequence the
backend uses: pinned input → device → device → pinned output, plain and as a captured
CUDA graph replayed on new data, and the fallback when capture fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from inspector.errors import BackendError

pytestmark = pytest.mark.gpu

SHAPE = (1, 3, 64, 64)


@dataclass
class Rig:
    stream: object
    src: object
    dst: object
    enqueue: Callable[[], None]


@pytest.fixture
def rig() -> Iterator[Rig]:
    from inspector.engine import cudart as c

    c.device_properties(0)
    stream = c.Stream()
    src = c.PinnedBuffer(SHAPE, "float32")
    dst = c.PinnedBuffer(SHAPE, "float32")
    a, b = c.DeviceBuffer(src.nbytes), c.DeviceBuffer(src.nbytes)

    def enqueue() -> None:
        c.copy_htod_async(a.ptr, src.ptr, src.nbytes, stream)
        c.copy_dtod_async(b.ptr, a.ptr, src.nbytes, stream)
        c.copy_dtoh_async(dst.ptr, b.ptr, dst.nbytes, stream)

    yield Rig(stream, src, dst, enqueue)
    for buf in (src, dst, a, b, stream):
        buf.close()


def test_device_properties_name_and_compute_capability() -> None:
    from inspector.engine import cudart

    name, cc = cudart.device_properties(0)
    major, minor = cc.split(".")
    assert name and int(major) >= 5 and minor.isdigit()


def test_plain_enqueue_round_trip(rig: Rig) -> None:
    rig.src.array[...] = np.random.default_rng(1).random(SHAPE, np.float32)
    rig.enqueue()
    rig.stream.sync()
    np.testing.assert_array_equal(rig.dst.array, rig.src.array)


def test_graph_replays_on_new_input(rig: Rig) -> None:
    from inspector.engine import cudart

    graph = cudart.capture_graph(rig.stream, rig.enqueue)
    try:
        for seed in range(3):
            rig.src.array[...] = np.random.default_rng(seed).random(SHAPE, np.float32)
            rig.dst.array[...] = -1
            graph.launch(rig.stream)
            rig.stream.sync()
            np.testing.assert_array_equal(rig.dst.array, rig.src.array)
    finally:
        graph.close()


def test_failed_capture_leaves_the_stream_usable(rig: Rig) -> None:
    from inspector.engine import cudart

    def illegal() -> None:
        rig.enqueue()
        rig.stream.sync()  # synchronising a capturing stream is illegal

    with pytest.raises(BackendError):
        cudart.capture_graph(rig.stream, illegal)
    rig.src.array[...] = 7.0
    rig.enqueue()
    rig.stream.sync()
    assert float(rig.dst.array.min()) == 7.0
