"""Deserialisation failures mapped to causes, from messages TensorRT really prints.

The messages are quoted from public bug reports (NVIDIA/TensorRT #564, #2176, #2195,
#3898 and others) across TensorRT 7 to 10.
"""

from __future__ import annotations

import pytest

from inspector.engine.diagnose import Cause, diagnose

OTHER_GPU_TRT10 = [
    "IRuntime::deserializeCudaEngine: Error Code 6: API Usage Error (The engine plan file "
    "is generated on an incompatible device, expecting compute 8.9 got compute 8.6, please "
    "rebuild.)",
]
OTHER_GPU_TRT7 = [
    "INVALID_CONFIG: The engine plan file is generated on an incompatible device, expecting "
    "compute 6.1 got compute 7.5, please rebuild.",
    "engine.cpp (1407) - Serialization Error in deserialize: 0 (Core engine deserialization "
    "failure)",
    "INVALID_STATE: std::exception",
    "INVALID_CONFIG: Deserialize the cuda engine failed.",
]
OTHER_TRT10 = [
    "1: [stdArchiveReader.cpp::StdArchiveReaderInitCommon::46] Error Code 1: Serialization "
    "(Serialization assertion stdVersionRead == serializationVersion failed.Version tag does "
    "not match. Note: Current Version: 236, Serialized Engine Version: 237)",
    "4: [runtime.cpp::deserializeCudaEngine::65] Error Code 4: Internal Error (Engine "
    "deserialization failed.)",
]
OTHER_TRT_SAFE = [
    "1: [stdArchiveReader.cpp::StdArchiveReader::35] Error Code 1: Serialization "
    "(Serialization assertion safeVersionRead == safeSerializationVersion failed.Version "
    "tag does not match. Note: Current Version: 0, Serialized Engine Version: 96)",
]
OTHER_TRT_LIBRARY = [
    "The engine plan file is not compatible with this version of TensorRT, expecting "
    "library version 10.3.0.30 got 10.7.0.23, please rebuild.",
]
CORRUPT = [
    "1: [stdArchiveReader.cpp::StdArchiveReaderInitCommon::46] Error Code 1: Serialization "
    "(Serialization assertion magicTagRead == kMAGIC_TAG failed.Magic tag does not match)",
]


def test_other_gpu_names_both_compute_capabilities() -> None:
    d = diagnose(OTHER_GPU_TRT10)
    assert d.cause is Cause.OTHER_GPU
    assert "compute capability 8.6 vs 8.9 here" in d.message


def test_other_gpu_in_old_wording() -> None:
    d = diagnose(OTHER_GPU_TRT7)
    assert d.cause is Cause.OTHER_GPU
    assert "7.5 vs 6.1 here" in d.message


@pytest.mark.parametrize(
    ("messages", "detail"),
    [
        (OTHER_TRT10, "serialization version 237 vs 236 here"),
        (OTHER_TRT_SAFE, "serialization version 96 vs 0 here"),
        (OTHER_TRT_LIBRARY, "10.7.0.23 vs 10.3.0.30 here"),
    ],
)
def test_other_tensorrt_version(messages: list[str], detail: str) -> None:
    d = diagnose(messages, this_trt="10.3.0")
    assert d.cause is Cause.OTHER_TRT
    assert detail in d.message
    assert "another TensorRT version" in d.message


def test_corrupt_plan() -> None:
    assert diagnose(CORRUPT).cause is Cause.CORRUPT


def test_unknown_keeps_the_last_message() -> None:
    d = diagnose(["something new went wrong"], this_trt="10.3.0", this_cc="8.7")
    assert d.cause is Cause.UNKNOWN
    assert "something new went wrong" in d.message and "8.7" in d.message
    assert diagnose([]).cause is Cause.UNKNOWN
