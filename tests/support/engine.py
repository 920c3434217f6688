"""Stand-ins for the engine tests: a fake TensorRT engine with ``ICudaEngine``'s method
names (the calls ``engine/bindings.py`` makes), and a valid manifest for a plan."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from pathlib import Path

from inspector.engine.manifest import Manifest, sha256_bytes


class TensorIOMode(enum.Enum):  # same member names as tensorrt.TensorIOMode
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class DataType(enum.Enum):  # same member names as tensorrt.DataType
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BF16 = 7


Tensor = tuple[str, TensorIOMode, tuple[int, ...], DataType]
Profile = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


class FakeEngine:
    def __init__(self, tensors: Sequence[Tensor], profiles: dict[str, Profile] | None = None):
        self.tensors = list(tensors)
        self.profiles = profiles or {}

    @property
    def num_io_tensors(self) -> int:
        return len(self.tensors)

    @property
    def num_optimization_profiles(self) -> int:
        return 1 if self.profiles else 0

    def _get(self, name: str) -> Tensor:
        return next(t for t in self.tensors if t[0] == name)

    def get_tensor_name(self, index: int) -> str:
        return self.tensors[index][0]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return self._get(name)[1]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self._get(name)[2]

    def get_tensor_dtype(self, name: str) -> DataType:
        return self._get(name)[3]

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> Profile:
        assert profile_index == 0
        return self.profiles[name]


class FakeContext:
    """Output shapes follow the batch of input ``images``, as a YOLO engine's do."""

    def __init__(self, engine: FakeEngine, refuse: bool = False) -> None:
        self.engine = engine
        self.inputs: dict[str, tuple[int, ...]] = {}
        self.refuse = refuse

    def set_input_shape(self, name: str, shape: Sequence[int]) -> bool:
        if self.refuse:
            return False
        self.inputs[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        shape = self.engine.get_tensor_shape(name)
        if self.engine.get_tensor_mode(name) is TensorIOMode.INPUT:
            return self.inputs.get(name, shape)
        batch = self.inputs.get("images", (1,))[0]
        return tuple(batch if d == -1 else d for d in shape)


IN, OUT = TensorIOMode.INPUT, TensorIOMode.OUTPUT
STATIC = FakeEngine(
    [
        ("output1", OUT, (1, 32, 160, 160), DataType.HALF),
        ("images", IN, (1, 3, 640, 640), DataType.FLOAT),
        ("output0", OUT, (1, 39, 8400), DataType.FLOAT),
    ]
)
DYNAMIC = FakeEngine(
    [
        ("images", IN, (-1, 3, 640, 640), DataType.FLOAT),
        ("output0", OUT, (-1, 7, 8400), DataType.FLOAT),
    ],
    profiles={"images": ((1, 3, 640, 640), (1, 3, 640, 640), (4, 3, 640, 640))},
)


PLAN_BYTES = bytes(range(256)) * 64


def make_manifest(plan: Path, data: bytes = PLAN_BYTES, **over: object) -> Manifest:
    fields: dict[str, object] = {
        "model_name": "demo",
        "onnx_sha256": "a" * 64,
        "plan_file": plan.name,
        "plan_sha256": sha256_bytes(data),
        "trt_version": "10.3.0",
        "gpu_name": "Orin",
        "compute_capability": "8.7",
        "l4t_release": "R36.3.0",
        "precision": "fp16",
        "flags": ["FP16"],
        "shapes": {"images": [[1, 3, 640, 640]] * 3},
        "onnx_inputs": ["images"],
        "onnx_outputs": ["output0"],
        "built_at": "2026-11-21T23:00:00Z",
    }
    fields.update(over)
    return Manifest.model_validate(fields)
