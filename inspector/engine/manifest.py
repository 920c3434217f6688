"""Engine manifests: what a TensorRT plan was built from, for and with.

A plan (``*.plan``) is executable code for one GPU and one TensorRT version. Next to
every plan lies ``<plan>.json``: the SHA-256 of the ONNX it was built from and of the
plan itself, the TensorRT version, the GPU and its compute capability, the L4T release
on a Jetson, the precision, flags, shapes and build time. ``engine/cache.py`` picks a
plan by its manifest; ``read_verified_plan`` hashes the very bytes it hands to
TensorRT, so a plan that was swapped or damaged after the build is refused before it
is deserialised. Pure Python: no TensorRT, no CUDA.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inspector.errors import EngineError

#: Bump when a field changes meaning; a manifest of another schema is not trusted.
SCHEMA = 1

NV_TEGRA_RELEASE = Path("/etc/nv_tegra_release")

_SHA256 = r"^[0-9a-f]{64}$"


class Manifest(BaseModel):
    """The JSON written next to a plan. Unknown keys are refused, as in config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = Field(SCHEMA, description="Manifest schema; must equal SCHEMA.")
    model_name: str = Field(description="Stem of the ONNX file the plan was built from.")
    onnx_sha256: str = Field(pattern=_SHA256, description="SHA-256 of the ONNX file.")
    plan_file: str = Field(description="Plan file name, in the manifest's directory.")
    plan_sha256: str = Field(pattern=_SHA256, description="SHA-256 of the plan file.")
    trt_version: str = Field(description="TensorRT version that built the plan.")
    gpu_name: str = Field(description="GPU the plan was built on.")
    compute_capability: str = Field(description="Compute capability, e.g. '8.7'.")
    l4t_release: str | None = Field(None, description="L4T release on a Jetson, e.g. 'R36.3.0'.")
    precision: str = Field(description="Requested precision: fp32, fp16 or int8.")
    dla_core: int | None = Field(None, description="DLA core the plan runs on, None for GPU.")
    strongly_typed: bool = Field(False, description="Built as a strongly typed network.")
    flags: list[str] = Field(default_factory=list, description="Builder flags set.")
    shapes: dict[str, list[list[int]]] = Field(
        default_factory=dict, description="Per input: [min, opt, max] profile shapes."
    )
    onnx_inputs: list[str] = Field(default_factory=list, description="ONNX input names, in order.")
    onnx_outputs: list[str] = Field(
        default_factory=list, description="ONNX output names, in order (the model's order)."
    )
    onnx_metadata: dict[str, str] = Field(
        default_factory=dict, description="ONNX custom metadata (Ultralytics names, imgsz)."
    )
    workspace_mib: int = Field(0, description="Workspace pool limit used.")
    build_seconds: float = Field(0.0, description="Wall time of the build.")
    built_at: str = Field("", description="UTC time of the build (ISO 8601).")
    inspector_version: str = Field("", description="inspector version that built the plan.")
    golden: dict[str, object] | None = Field(
        None, description="Summary of the golden check against ONNX Runtime, if run."
    )


def manifest_path(plan: Path) -> Path:
    """The manifest that belongs to ``plan``: ``x.plan`` → ``x.plan.json``."""
    return plan.with_name(plan.name + ".json")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    except OSError as exc:
        raise EngineError(f"cannot read {path}: {exc.strerror}") from exc
    return h.hexdigest()


_MODEL_SHA256: dict[tuple[Path, int, int], str] = {}


def _model_key(path: Path) -> tuple[Path, int, int]:
    try:
        st = path.stat()
    except OSError as exc:
        raise EngineError(f"cannot read {path}: {exc.strerror}") from exc
    return path.resolve(), st.st_size, st.st_mtime_ns


def model_sha256(path: Path) -> str:
    """``sha256_file`` of a MODEL file, remembered while its path, size and mtime stay.

    One ONNX is hashed for the config fingerprint, the engine cache and a build; this
    reads it once per process. Never use it for plans: their hash is a tamper check
    and is recomputed every time.
    """
    key = _model_key(path)
    digest = _MODEL_SHA256.get(key)
    if digest is None:
        digest = sha256_file(path)
        if _model_key(path) == key:  # not remembered if the file changed while read
            _MODEL_SHA256[key] = digest
    return digest


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` so that ``path`` is either the old file or the whole new one.

    A power cut during a build must not leave a half-written plan that later fails its
    hash check and stops the line; temp file + fsync + rename gives that.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_manifest(plan: Path, manifest: Manifest) -> Path:
    """Write the manifest of ``plan`` atomically; return its path."""
    path = manifest_path(plan)
    text = json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
    atomic_write(path, text.encode())
    return path


def read_manifest(path: Path) -> Manifest:
    """Read and validate one manifest; raise EngineError saying what is wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EngineError(f"cannot read manifest {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise EngineError(f"manifest {path} is not valid JSON: {exc}") from exc
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise EngineError(f"manifest {path} is invalid: {where}: {first['msg']}") from exc
    if manifest.schema_version != SCHEMA:
        raise EngineError(
            f"manifest {path} has schema {manifest.schema_version}, this inspector reads "
            f"{SCHEMA}; rebuild the engine"
        )
    if Path(manifest.plan_file).name != manifest.plan_file:
        raise EngineError(f"manifest {path}: plan_file must be a bare file name")
    return manifest


def read_verified_plan(plan: Path, manifest: Manifest) -> bytes:
    """Return the plan's bytes after checking them against ``manifest.plan_sha256``.

    The bytes returned are the bytes hashed, so nothing can change between the check
    and deserialisation. A mismatch raises EngineError and TensorRT never sees the plan.
    """
    try:
        data = plan.read_bytes()
    except OSError as exc:
        raise EngineError(f"cannot read plan {plan}: {exc.strerror}") from exc
    actual = sha256_bytes(data)
    if actual != manifest.plan_sha256:
        raise EngineError(
            f"plan {plan} does not match its manifest (sha256 {actual[:12]}… vs "
            f"{manifest.plan_sha256[:12]}…): it was modified or damaged after the build. "
            "Refusing to deserialise it; delete it and rebuild with 'inspector engine build'."
        )
    return data


_L4T = re.compile(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([0-9.]+)")


def parse_l4t_release(text: str) -> str | None:
    """``# R36 (release), REVISION: 3.0, ...`` → ``"R36.3.0"``; None if not that format."""
    m = _L4T.search(text)
    return f"R{m.group(1)}.{m.group(2)}" if m else None


def read_l4t_release(path: Path = NV_TEGRA_RELEASE) -> str | None:
    """The L4T release of this Jetson, or None on any other machine."""
    try:
        return parse_l4t_release(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None
