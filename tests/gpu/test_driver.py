"""The one CUDA layer (``nvidia/driver.py``) on a real GPU (marked ``gpu``).

The sequence the device runner and the TensorRT host path use: pinned input → device →
device → pinned output, plain and as a captured CUDA graph replayed on new data; the
fallback when capture fails; event queries; device properties as TensorRT's manifests
write them.
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
    stream: int
    src: object
    dst: object
    enqueue: Callable[[], None]


@pytest.fixture
def rig() -> Iterator[Rig]:
    from inspector.nvidia import driver as cu

    stream = cu.stream_create()
    src = cu.PinnedArray(SHAPE, "float32")
    dst = cu.PinnedArray(SHAPE, "float32")
    a, b = cu.DeviceBuffer(src.nbytes), cu.DeviceBuffer(src.nbytes)

    def enqueue() -> None:
        cu.copy_htod_async(a.ptr, src.ptr, src.nbytes, stream)
        cu.copy_dtod_async(b.ptr, a.ptr, src.nbytes, stream)
        cu.copy_dtoh_async(dst.ptr, b.ptr, dst.nbytes, stream)

    yield Rig(stream, src, dst, enqueue)
    for buf in (src, dst, a, b):
        buf.close()  # type: ignore[attr-defined]
    cu.stream_destroy(stream)


def test_device_properties_name_and_compute_capability() -> None:
    from inspector.nvidia import driver as cu

    name, cc = cu.device_properties(0)
    major, minor = cc.split(".")
    assert name and int(major) >= 5 and minor.isdigit()


def test_graph_replays_on_new_input_and_events_report_completion(rig: Rig) -> None:
    from inspector.nvidia import driver as cu

    graph = cu.capture(rig.stream, rig.enqueue)
    done = cu.event_create()
    try:
        for seed in range(3):
            rig.src.array[...] = np.random.default_rng(seed).random(SHAPE, np.float32)  # type: ignore[attr-defined]
            rig.dst.array[...] = -1  # type: ignore[attr-defined]
            graph.launch()
            cu.event_record(done, rig.stream)
            cu.event_sync(done)
            assert cu.event_done(done)
            np.testing.assert_array_equal(rig.dst.array, rig.src.array)  # type: ignore[attr-defined]
    finally:
        graph.close()
        cu.event_destroy(done)


def test_failed_capture_leaves_the_stream_usable(rig: Rig) -> None:
    from inspector.nvidia import driver as cu

    def illegal() -> None:
        rig.enqueue()
        cu.stream_sync(rig.stream)  # synchronising a capturing stream is illegal

    with pytest.raises(BackendError):
        cu.capture(rig.stream, illegal)
    rig.src.array[...] = 7.0  # type: ignore[attr-defined]
    rig.enqueue()
    cu.stream_sync(rig.stream)
    assert float(rig.dst.array.min()) == 7.0  # type: ignore[attr-defined]
