"""``inspector engine build | inspect``: make and look at TensorRT engines.

``build`` writes the plan and its manifest into ``--out`` (default ``engines/``) after
the golden check against ONNX Runtime passed; ``inspect`` shows a plan's manifest and
SHA-256 check without TensorRT, and its tensors, profiles and layers with it. Both
fail with a clear message (exit 1) when TensorRT is not installed. ``inspector/cli.py``
registers it (``COMMANDS``). It sits above ``engine/`` and ``backends/``: it puts the
real toolchain (``backends.tensorrt.toolchain``) and the folder reader into the build.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from inspector.config import ModelConfig, RulesConfig, load_config
from inspector.engine import cache
from inspector.engine.manifest import manifest_path, read_manifest, sha256_bytes
from inspector.engine.options import BuildRequest, parse_shapes
from inspector.errors import ConfigError, EngineError


def register_cli(subparsers: Any) -> None:
    """Add ``engine build`` and ``engine inspect`` to the top-level subparsers."""
    engine = subparsers.add_parser("engine", help="build and inspect TensorRT engines")
    sub = engine.add_subparsers(dest="engine_command", required=True)

    p = sub.add_parser("build", help="build a TensorRT engine from an ONNX model")
    p.add_argument("onnx", type=Path, metavar="MODEL.onnx")
    p.add_argument(
        "--precision",
        choices=("fp32", "fp16", "int8"),
        default=None,
        help="engine precision (default: the model's engine.precision, else fp16)",
    )
    p.add_argument(
        "--calib-images",
        type=Path,
        default=None,
        metavar="DIR",
        help="INT8 calibration images (TensorRT 10)",
    )
    p.add_argument(
        "--calib-cache",
        type=Path,
        default=None,
        metavar="PATH",
        help="INT8 calibration cache, read if present and written after",
    )
    p.add_argument(
        "--dla",
        type=int,
        default=None,
        metavar="CORE",
        help="build for this DLA core, with GPU fallback (Jetson)",
    )
    p.add_argument(
        "--workspace", type=int, default=1024, metavar="MiB", help="builder workspace pool limit"
    )
    p.add_argument(
        "--shapes",
        action="append",
        default=[],
        metavar="NAME:MIN/OPT/MAX",
        help="optimisation profile, e.g. images:1x3x640x640/1x3x640x640/4x3x640x640",
    )
    p.add_argument(
        "--timing-cache",
        type=Path,
        default=None,
        metavar="PATH",
        help="timing cache reused between builds (default: one per TRT/GPU in --out)",
    )
    p.add_argument("--out", type=Path, default=Path("engines"), help="engine directory")
    p.add_argument(
        "--golden",
        type=Path,
        default=None,
        metavar="DIR",
        help="golden images (default: OUT/golden/, else synthetic frames)",
    )
    p.add_argument(
        "--no-golden",
        action="store_true",
        help="skip the golden check (the engine is then unverified)",
    )
    p.add_argument(
        "-c",
        "--config",
        type=Path,
        default=None,
        help="config whose model entry (same ONNX path) gives preprocess and rules",
    )
    p.set_defaults(func=cmd_build)  # fmt: skip

    p = sub.add_parser("inspect", help="show a plan's manifest, tensors and layers")
    p.add_argument("plan", type=Path, metavar="PLAN")
    p.add_argument(
        "--unverified",
        action="store_true",
        help="deserialise a plan that has no manifest (e.g. from trtexec)",
    )
    p.set_defaults(func=cmd_inspect)  # fmt: skip


def _model_from_config(
    config: Path | None, onnx: Path
) -> tuple[ModelConfig | None, RulesConfig | None]:
    if config is None:
        return None, None
    cfg = load_config(config)
    for recipe in cfg.recipes:
        for model in recipe.models:
            if model.path.resolve() == onnx.resolve():
                return model, recipe.rules
    raise ConfigError(f"{config}: no model entry has path {onnx}")


def cmd_build(args: argparse.Namespace) -> int:
    from inspector.backends.tensorrt import toolchain
    from inspector.camera.folder import read_folder
    from inspector.engine.build import build_engine, systemd_keepalive

    onnx: Path = args.onnx
    if not onnx.is_file():
        raise ConfigError(f"{onnx}: no such ONNX file")
    model, rules = _model_from_config(args.config, onnx)
    precision = args.precision or (model.engine.precision if model else "fp16")
    tools = toolchain()  # EngineError with install instructions when TensorRT is missing
    request = BuildRequest(
        onnx=onnx, out_dir=args.out, precision=precision, dla_core=args.dla,
        workspace_mib=args.workspace, shapes=tuple(parse_shapes(s) for s in args.shapes),
        calib_images=args.calib_images, calib_cache=args.calib_cache,
        timing_cache=args.timing_cache
        or cache.timing_cache_path(args.out, tools.trt_version, tools.compute_capability),
    )  # fmt: skip
    where = f"{tools.gpu_name} (compute {tools.compute_capability})"
    print(
        f"building {onnx} → {args.out}/ with TensorRT {tools.trt_version} on {where}, {precision}",
        file=sys.stderr,
    )
    plan, manifest = build_engine(
        request, tools, model=model, rules=rules, golden_dir=args.golden or args.out / "golden",
        run_golden_check=not args.no_golden,
        keepalive=systemd_keepalive, read_folder=read_folder,
    )  # fmt: skip
    print(f"wrote {plan} ({manifest.build_seconds:.0f}s build) and {manifest_path(plan).name}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from inspector.engine.describe import describe_manifest

    plan: Path = args.plan
    if not plan.is_file():
        raise ConfigError(f"{plan}: no such plan file")
    mpath = manifest_path(plan)
    manifest = read_manifest(mpath) if mpath.is_file() else None
    try:  # read once: the bytes hashed are the bytes deserialised
        data = plan.read_bytes()
    except OSError as exc:
        raise EngineError(f"cannot read {plan}: {exc.strerror}") from exc
    lines, verified = describe_manifest(plan, manifest, sha256_bytes(data))
    print("\n".join(lines))
    if manifest is not None and not verified:
        raise EngineError(f"{plan} does not match its manifest; not deserialising it")
    if manifest is None and not args.unverified:
        raise EngineError(f"{plan} has no manifest; pass --unverified to load it anyway")
    for line in _describe_with_tensorrt(data):
        print(line)
    return 0


def _describe_with_tensorrt(data: bytes) -> list[str]:
    from inspector.engine import trt_api
    from inspector.engine.describe import describe_engine, layer_summary
    from inspector.engine.diagnose import diagnose

    try:
        trt = trt_api.import_tensorrt()
    except EngineError as exc:
        raise EngineError(f"cannot list tensors, profiles and layers: {exc}") from exc
    logger = trt_api.make_logger(trt)
    _runtime, engine = trt_api.deserialize(trt, logger, data, None)
    if engine is None:
        raise EngineError(diagnose(logger.messages, this_trt=str(trt.__version__)).message)
    return describe_engine(engine) + layer_summary(trt_api.engine_information(trt, engine))
