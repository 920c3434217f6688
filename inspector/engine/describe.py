"""Text for ``inspector engine inspect``: manifest, plan check, I/O tensors, layers.

Works on the manifest alone (no TensorRT) and on any engine-like object with
``ICudaEngine``'s method names, so it is tested without TensorRT.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from inspector.engine.bindings import EngineLike, discover
from inspector.engine.manifest import Manifest


def describe_manifest(plan: Path, manifest: Manifest | None, actual: str) -> tuple[list[str], bool]:
    """Manifest lines and whether ``actual`` (the plan's SHA-256) matches it."""
    if manifest is None:
        return [f"{plan.name}: no manifest ({plan.name}.json): provenance unknown"], False
    ok = actual == manifest.plan_sha256
    lines = [
        f"plan         {plan}",
        f"sha256       {actual} ({'matches manifest' if ok else 'DOES NOT MATCH manifest'})",
        f"model        {manifest.model_name} (onnx sha256 {manifest.onnx_sha256[:16]}…)",
        f"tensorrt     {manifest.trt_version}  strongly typed: {manifest.strongly_typed}",
        f"device       {manifest.gpu_name}, compute {manifest.compute_capability}"
        + (f", L4T {manifest.l4t_release}" if manifest.l4t_release else "")
        + (f", DLA core {manifest.dla_core}" if manifest.dla_core is not None else ""),
        f"precision    {manifest.precision}  flags: {', '.join(manifest.flags) or '-'}",
        f"built        {manifest.built_at} in {manifest.build_seconds:.1f}s "
        f"by inspector {manifest.inspector_version}",
        f"io           inputs {manifest.onnx_inputs} outputs {manifest.onnx_outputs}",
    ]
    for name, (lo, opt, hi) in manifest.shapes.items():
        lines.append(f"profile      {name}: min {lo} opt {opt} max {hi}")
    if manifest.golden is not None:
        lines.append(f"golden       {json.dumps(manifest.golden, sort_keys=True)}")
    return lines, ok


def describe_engine(engine: EngineLike) -> list[str]:
    """One line per I/O tensor (mode, dtype, shape, profile) and the profile count."""
    lines = [f"profiles     {engine.num_optimization_profiles}"]
    for t in discover(engine):
        mode = "input " if t.is_input else "output"
        line = f"{mode}       {t.name}: {t.dtype} {list(t.shape)}"
        if t.profile is not None:
            lo, opt, hi = t.profile
            line += f" (profile 0: min {list(lo)} opt {list(opt)} max {list(hi)})"
        lines.append(line)
    return lines


def layer_summary(info_json: str, top: int = 12) -> list[str]:
    """Summarise ``IEngineInspector.get_engine_information(JSON)``: layers by type.

    Plans built with ``ProfilingVerbosity.DETAILED`` list dicts with ``LayerType``;
    others list bare names, and then only the count is known.
    """
    try:
        layers = json.loads(info_json).get("Layers", [])
    except (json.JSONDecodeError, AttributeError):
        return ["layers       (engine information unreadable)"]
    kinds = Counter(
        str(layer.get("LayerType", "?")) if isinstance(layer, dict) else "(no detail)"
        for layer in layers
    )
    lines = [f"layers       {len(layers)}"]
    for kind, n in kinds.most_common(top):
        lines.append(f"  {n:5d}  {kind}")
    return lines
