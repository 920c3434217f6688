"""What an engine build will do, decided before TensorRT is touched.

``plan_build`` turns the user's request (precision, DLA core, calibration images,
shapes) and the installed TensorRT major version into a ``BuildPlan``: the builder flags
to set, whether the network is strongly typed, whether an INT8 calibrator runs. Invalid
combinations fail here with a message, not minutes into a build. Pure Python.

TensorRT 10: weakly typed networks; FP16/INT8 are builder flags, INT8 takes an entropy
calibrator (deprecated in 10, still working) unless the ONNX carries Q/DQ nodes.
TensorRT 11: the FP16/INT8 flags and calibrators are gone; networks are strongly
typed and the ONNX carries its precision (ModelOpt AutoCast for FP16, ModelOpt
``quantize`` for INT8 Q/DQ); see docs/tensorrt.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from inspector.errors import ConfigError

Shape = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ShapeProfile:
    """Optimisation profile of one input: min, opt and max shapes."""

    name: str
    min: Shape
    opt: Shape
    max: Shape


def _dims(text: str, where: str) -> Shape:
    try:
        dims = tuple(int(d) for d in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not a shape like 1x3x640x640") from None
    if not dims or any(d < 1 for d in dims):
        raise ConfigError(f"{where}: {text!r} must have positive dimensions")
    return dims


def parse_shapes(spec: str) -> ShapeProfile:
    """``images:1x3x640x640/2x3x640x640/4x3x640x640`` → profile (one shape = all three)."""
    name, sep, rest = spec.rpartition(":")
    if not sep or not name:
        raise ConfigError(f"--shapes {spec!r}: expected NAME:MIN/OPT/MAX")
    parts = rest.split("/")
    if len(parts) not in (1, 3):
        raise ConfigError(f"--shapes {spec!r}: give one shape or MIN/OPT/MAX")
    shapes = [_dims(p, f"--shapes {name}") for p in parts]
    lo, opt, hi = shapes if len(shapes) == 3 else shapes * 3
    if not len(lo) == len(opt) == len(hi):
        raise ConfigError(f"--shapes {name}: MIN, OPT and MAX must have the same rank")
    if any(not a <= b <= c for a, b, c in zip(lo, opt, hi, strict=True)):
        raise ConfigError(f"--shapes {name}: need MIN <= OPT <= MAX in every dimension")
    return ShapeProfile(name, lo, opt, hi)


@dataclass(frozen=True, slots=True)
class BuildRequest:
    """What the user asked for (``inspector engine build`` options or engine config)."""

    onnx: Path
    out_dir: Path
    precision: str = "fp16"
    dla_core: int | None = None
    workspace_mib: int = 1024
    shapes: tuple[ShapeProfile, ...] = ()
    calib_images: Path | None = None
    calib_cache: Path | None = None
    timing_cache: Path | None = None


@dataclass(frozen=True, slots=True)
class BuildPlan:
    """What the builder will do: flag names are ``tensorrt.BuilderFlag`` members."""

    strongly_typed: bool
    flags: tuple[str, ...]
    clear_flags: tuple[str, ...] = ()
    calibrate: bool = False
    notes: tuple[str, ...] = field(default=())


def plan_build(request: BuildRequest, trt_major: int) -> BuildPlan:
    """Builder flags for ``request`` on TensorRT ``trt_major``; ConfigError if impossible."""
    p, dla = request.precision, request.dla_core
    if p not in ("fp32", "fp16", "int8"):
        raise ConfigError(f"precision must be fp32, fp16 or int8, not {p!r}")
    if dla is not None and p == "fp32":
        raise ConfigError("DLA runs FP16 or INT8 only; use --precision fp16 or int8 with --dla")
    dla_flags = ("GPU_FALLBACK",) if dla is not None else ()
    if trt_major >= 11:
        notes: tuple[str, ...] = ()
        if p != "fp32":
            notes = (
                f"TensorRT {trt_major} builds strongly typed networks: the ONNX must already "
                f"be {p} (ModelOpt AutoCast for fp16, ModelOpt quantize for int8 Q/DQ); "
                "'--precision' only labels the engine",
            )
        if request.calib_images is not None:
            raise ConfigError(
                f"TensorRT {trt_major} has no INT8 calibrators; quantize the ONNX with "
                "ModelOpt (Q/DQ nodes) and build without --calib-images"
            )
        return BuildPlan(True, dla_flags, notes=notes)
    # fp32 clears TF32 so "fp32" means fp32 and the golden tolerance can stay tight.
    if p == "fp32":
        return BuildPlan(False, dla_flags, clear_flags=("TF32",))
    if p == "fp16":
        return BuildPlan(False, ("FP16", *dla_flags))
    has_cache = request.calib_cache is not None and request.calib_cache.is_file()
    calibrate = request.calib_images is not None or has_cache
    notes = ()
    if not calibrate:
        notes = ("no calibration images or cache: the ONNX must carry Q/DQ nodes",)
    # FP16 too: layers INT8 cannot run fall back to FP16 rather than FP32.
    return BuildPlan(False, ("INT8", "FP16", *dla_flags), calibrate=calibrate, notes=notes)


def trt_major(version: str) -> int:
    """``"10.3.0.30"`` → 10."""
    try:
        return int(version.split(".", 1)[0])
    except ValueError:
        raise ConfigError(f"cannot read TensorRT version {version!r}") from None


def profiles_for(
    shapes: Sequence[ShapeProfile], inputs: Sequence[tuple[str, Sequence[int | None]]]
) -> tuple[ShapeProfile, ...]:
    """Profiles for every dynamic input: the given ones, else batch 1 of its static dims.

    Static inputs need no profile. A dynamic input with a dynamic non-batch dimension
    and no ``--shapes`` entry is an error: there is nothing sensible to guess.
    """
    given = {s.name: s for s in shapes}
    unknown = sorted(set(given) - {name for name, _ in inputs})
    if unknown:
        raise ConfigError(f"--shapes names unknown inputs {unknown}")
    out = []
    for name, dims in inputs:
        if name in given:
            out.append(given[name])
            continue
        if all(isinstance(d, int) and d > 0 for d in dims):
            continue
        if any(not (isinstance(d, int) and d > 0) for d in dims[1:]):
            raise ConfigError(f"input {name!r} has dynamic dims {list(dims)}; pass --shapes")
        one = (1, *(int(d) for d in dims[1:] if d is not None))
        out.append(ShapeProfile(name, one, one, one))
    return tuple(out)
