"""``inspector camera list | features | grab``: the vision engineer's bench tools.

They do what arv-tool or a vendor viewer does, through the same code the daemon runs
(``camera/genicam.py``): list the devices behind a GenTL producer, dump a device's
feature tree with current values, and grab N frames to PNG. The device and producer
come from ``-c config.yaml`` (camera.genicam), overridden by the options here.
harvesters is imported only when one of these commands runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from inspector.config import GenicamCameraConfig, load_config
from inspector.errors import ConfigError
from inspector.types import Trigger


def register_cli(subparsers: Any) -> None:
    """Add ``camera list|features|grab`` to the daemon's argparse subcommands."""
    cam = subparsers.add_parser("camera", help="GenICam cameras: list, features, grab")
    sub = cam.add_subparsers(dest="camera_command", required=True)

    p = sub.add_parser("list", help="list the devices behind the GenTL producer(s)")
    _source_args(p, device=False)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("features", help="dump the feature tree with current values")
    _source_args(p)
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("grab", help="grab N frames to PNG files")
    _source_args(p)
    p.add_argument("-n", "--frames", type=int, default=1, help="frames to grab (default 1)")
    p.add_argument("--out", type=Path, default=Path("."), help="folder for the PNGs")
    p.add_argument("--trigger-mode", choices=("software", "hardware", "free_run"), default=None)
    p.add_argument("--timeout-ms", type=float, default=None, help="per-frame timeout")
    p.set_defaults(func=cmd_grab)


def _source_args(p: argparse.ArgumentParser, *, device: bool = True) -> None:
    p.add_argument("-c", "--config", type=Path, default=None, help="take camera.genicam from it")
    p.add_argument(
        "--cti", type=Path, action="append", default=None, help="GenTL producer (repeatable)"
    )
    if not device:
        return
    which = p.add_mutually_exclusive_group()
    which.add_argument("--serial", default=None, help="device serial number")
    which.add_argument("--user-name", default=None, help="device user-defined name")
    which.add_argument("--model", default=None, help="first device of this model")
    which.add_argument("--index", type=int, default=None, help="device index in 'list'")
    p.add_argument(
        "--feature",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="apply after the configured features (repeatable; VALUE is YAML: 2000, On)",
    )
    p.add_argument("--no-config-features", action="store_true", help="skip camera.genicam.features")


def camera_config(args: argparse.Namespace) -> GenicamCameraConfig:
    """camera.genicam of ``--config`` (or defaults) with the command-line overrides."""
    base = load_config(args.config).camera.genicam if args.config else GenicamCameraConfig()
    data = base.model_dump()
    if args.cti:
        data["cti"] = args.cti
    picked = {
        "serial_number": getattr(args, "serial", None),
        "user_defined_name": getattr(args, "user_name", None),
        "model": getattr(args, "model", None),
        "index": getattr(args, "index", None),
    }
    if any(v is not None for v in picked.values()):
        data.update(picked)
    features = [] if getattr(args, "no_config_features", False) else data["features"]
    data["features"] = features + [_parse_feature(f) for f in getattr(args, "feature", [])]
    for key in ("trigger_mode", "timeout_ms"):
        if getattr(args, key, None) is not None:
            data[key] = getattr(args, key)
    try:
        return GenicamCameraConfig.model_validate(data)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def _parse_feature(text: str) -> dict[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ConfigError(f"--feature wants NAME=VALUE, got {text!r}")
    return {name.strip(): yaml.safe_load(value)}


# ------------------------------------------------------------------------ commands
def cmd_list(args: argparse.Namespace) -> int:
    from inspector.camera.genicam_nodes import DEVICE_FIELDS, list_devices

    devices = list_devices(camera_config(args).cti)
    rows = [("#", *DEVICE_FIELDS)] + [
        (str(i), *(d[k] or "-" for k in DEVICE_FIELDS)) for i, d in enumerate(devices)
    ]
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0 if devices else 1


def cmd_features(args: argparse.Namespace) -> int:
    """Open the device without acquiring, apply the feature set, dump the tree."""
    from inspector.camera.genicam_nodes import apply_features, choose_device, open_harvester

    cfg = camera_config(args)
    harvester = open_harvester(cfg.cti)
    acquirer = None
    try:
        acquirer = harvester.create(choose_device(harvester.device_info_list, cfg))
        node_map = acquirer.remote_device.node_map
        apply_features(node_map, cfg.features)
        for depth, name, kind, access, value in walk_features(node_map):
            print(f"{'  ' * depth}{name:<{max(44 - 2 * depth, 8)}} {kind:<11} {access:<3} {value}")
    finally:
        if acquirer is not None:
            acquirer.destroy()
        harvester.reset()
    return 0


def viewable(image: np.ndarray[Any, Any], pixel_format: str) -> np.ndarray[Any, Any]:
    """An 8-bit frame as PNG wants it: Bayer debayered (as the preprocessor does), BGR."""
    import cv2

    bayer = {
        "BayerRG8": cv2.COLOR_BayerRGGB2BGR,
        "BayerBG8": cv2.COLOR_BayerBGGR2BGR,
        "BayerGR8": cv2.COLOR_BayerGRBG2BGR,
        "BayerGB8": cv2.COLOR_BayerGBRG2BGR,
    }
    if pixel_format in bayer:
        return np.asarray(cv2.cvtColor(image, bayer[pixel_format]), np.uint8)
    if pixel_format == "RGB8":
        return np.ascontiguousarray(image[:, :, ::-1])
    return image


def cmd_grab(args: argparse.Namespace) -> int:
    """Grab ``--frames`` frames through the daemon's own source and save them as PNG."""
    import cv2

    from inspector.camera.genicam import GenicamCamera

    cfg = camera_config(args)
    args.out.mkdir(parents=True, exist_ok=True)
    with GenicamCamera(cfg, name="cli") as cam:
        print(f"grabbing {args.frames} from {cam.device}", file=sys.stderr)
        for part in range(args.frames):
            now = time.monotonic_ns()
            budget = int(cfg.timeout_ms * 1e6) + 1
            frame = cam.grab(Trigger(part, part, now, now + budget, source="cli"))
            image = viewable(np.asarray(frame.image, np.uint8), frame.pixel_format)
            path = args.out / f"frame_{part:04d}_id{frame.frame_id}.png"
            if not cv2.imwrite(str(path), image):
                raise OSError(f"cannot write {path}")
            print(f"{path}  {frame.pixel_format} {frame.image.shape}", file=sys.stderr)
        stats = cam.stats
        print(
            f"frames {stats.frames}, timeouts {stats.timeouts}, incomplete "
            f"{stats.incomplete}, fps {stats.fps:.1f}",
            file=sys.stderr,
        )
    return 0


def walk_features(node_map: Any) -> Iterator[tuple[int, str, str, str, str]]:
    """(depth, name, type, access, value) for every feature under Root, in tree order."""
    from genicam import genapi

    def visit(node: Any, depth: int) -> Iterator[tuple[int, str, str, str, str]]:
        access = genapi.EAccessMode(node.node.get_access_mode()).name
        kind = type(node).__name__.removeprefix("I")
        value = ""
        if access in ("RO", "RW") and not isinstance(node, (genapi.ICategory, genapi.ICommand)):
            try:
                value = str(node.to_string())
            except Exception as exc:  # some nodes cannot be read in the current state
                value = f"<{type(exc).__name__}>"
        yield depth, str(node.node.name), kind, access, value
        if isinstance(node, genapi.ICategory):
            for child in node.features:
                yield from visit(child, depth + 1)

    yield from visit(node_map.get_node("Root"), 0)
