"""Why TensorRT refused a plan, in words an operator can act on.

``IRuntime.deserialize_cuda_engine`` returns None and says why only through the
logger. ``diagnose`` reads the captured messages and names the cause: a plan built for
another GPU, with another TensorRT version, or a damaged file. The patterns are the
messages TensorRT 7–10 print (quoted in the tests). Pure Python.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass


class Cause(enum.Enum):
    OTHER_GPU = "other_gpu"
    OTHER_TRT = "other_trt"
    CORRUPT = "corrupt"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Diagnosis:
    cause: Cause
    message: str


# "The engine plan file is generated on an incompatible device, expecting compute 8.7
# got compute 8.6, please rebuild." — 'expecting' is this GPU, 'got' is the plan's.
_DEVICE = re.compile(r"incompatible device, expecting compute (\d+\.\d+) got compute (\d+\.\d+)")
# "... not compatible with this version of TensorRT, expecting library version X got Y"
_LIBRARY = re.compile(r"expecting library version ([\w.]+) got ([\w.]+)")
# "Serialization assertion stdVersionRead == kSERIALIZATION_VERSION failed.Version tag
# does not match. Note: Current Version: 236, Serialized Engine Version: 239"
_TAG = re.compile(r"Current Version: (\d+), Serialized Engine Version: (\d+)")
_VERSION_WORDS = ("Version tag does not match", "VersionRead ==")
_CORRUPT_WORDS = (
    "Magic tag does not match",
    "magicTagRead",
    "Mismatch between allocated memory size",
    "size >= bsize",
    "Unexpected end of stream",
    "corrupt",
)


def diagnose(messages: Sequence[str], *, this_trt: str = "", this_cc: str = "") -> Diagnosis:
    """Name the cause of a failed deserialisation from the logger's ``messages``."""
    text = "\n".join(messages)
    if m := _DEVICE.search(text):
        here, plan = m.group(1), m.group(2)
        return Diagnosis(
            Cause.OTHER_GPU,
            f"the engine was built for another GPU (compute capability {plan} vs {here} "
            "here); rebuild it on this device",
        )
    if m := _LIBRARY.search(text):
        return Diagnosis(
            Cause.OTHER_TRT,
            f"the engine was built with another TensorRT version ({m.group(2)} vs "
            f"{m.group(1)} here); rebuild it with this TensorRT",
        )
    if any(w in text for w in _VERSION_WORDS):
        if m := _TAG.search(text):
            detail = f"serialization version {m.group(2)} vs {m.group(1)} here"
        else:
            detail = "version tag differs"
        here = f", this is TensorRT {this_trt}" if this_trt else ""
        return Diagnosis(
            Cause.OTHER_TRT,
            f"the engine was built with another TensorRT version ({detail}{here}); "
            "rebuild it with this TensorRT",
        )
    if any(w in text for w in _CORRUPT_WORDS):
        return Diagnosis(Cause.CORRUPT, "the plan file is corrupt or not a TensorRT plan")
    last = messages[-1] if messages else "no message from TensorRT"
    where = f" (TensorRT {this_trt}, compute capability {this_cc})" if this_trt else ""
    return Diagnosis(Cause.UNKNOWN, f"TensorRT could not deserialise the plan{where}: {last}")
