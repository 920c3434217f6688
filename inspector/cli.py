"""Command line: ``inspector run | check-config | config-schema | replay | ...``.

Exit codes: 0 clean stop, 70 (EX_SOFTWARE) internal fault (systemd restarts), 2 usage,
78 (EX_CONFIG) for configuration or environment errors, so that systemd's
``RestartPreventExitStatus=78`` stops a restart loop.
Subsystems add their own subcommands through ``register_cli(subparsers)``, listed in
``COMMANDS`` (``inspector.registry``) and imported when the parser is built.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from inspector import __version__
from inspector.config import DEFAULT_CONFIG_PATH, config_hash, config_schema, load_config
from inspector.errors import (
    EXIT_CONFIG,
    EXIT_INTERNAL,
    EXIT_OK,
    ConfigError,
    InspectorError,
    ModelError,
)
from inspector.logging import configure, get_logger
from inspector.logging import flush as flush_logs
from inspector.registry import Registry

log = get_logger("inspector.cli")

#: Subcommands contributed by subsystems: name → their ``register_cli(subparsers)``.
COMMANDS = Registry(
    "command",
    {
        "plc-sim": "inspector.sim.cli:register_cli",
        "camera": "inspector.camera.cli:register_cli",
        "engine": "inspector.engine_cli:register_cli",
        "doctor": "inspector.doctor:register_cli",
        "eval": "inspector.evaluation.cli:register_cli",
    },
)

Handler = Callable[[argparse.Namespace], int]


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-c",
        "--config",
        type=Path,
        default=None,
        help=f"config file (default: {DEFAULT_CONFIG_PATH.name} of the install)",
    )


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate the file and run the start-up preflight (no hardware is opened); print
    the CONFIG_CRC the daemon will show the PLC."""
    from inspector.preflight import check_warnings, preflight
    from inspector.recipes import config_crc16, models_hash

    cfg = load_config(args.file)
    preflight(cfg)
    for warning in check_warnings(cfg):
        print(f"warning: {warning}", file=sys.stderr)
    model_hash, cfg_hash = models_hash(cfg), config_hash(cfg)
    print(f"{args.file}: OK")
    crc = config_crc16(model_hash, cfg_hash)
    print(f"CONFIG_CRC 0x{crc:04X} (config {cfg_hash}, models {model_hash})")
    return 0


def cmd_config_schema(args: argparse.Namespace) -> int:
    json.dump(config_schema(), sys.stdout, indent=2)
    print()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from inspector.app import App, StartAborted

    cfg = load_config(args.config)
    if args.parts is not None:
        cfg = cfg.model_copy(
            update={"trigger": cfg.trigger.model_copy(update={"max_parts": args.parts})}
        )
    if args.metrics_port is not None:
        cfg = cfg.model_copy(
            update={"metrics": cfg.metrics.model_copy(update={"port": args.metrics_port})}
        )
    configure(cfg.logging)
    # The embedded default config is the demo; any other file runs demo pieces only
    # when asked to (--demo): a plant's config never starts a simulated PLC by accident.
    app = App(cfg, demo=args.demo or args.config is None)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stop_requested", signal=signal.Signals(signum).name)
        app.stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        app.start()
    except StartAborted:
        flush_logs()
        return EXIT_OK
    except ConfigError:
        raise
    except InspectorError as exc:  # a model, engine, camera or PLC that cannot start: 78
        flush_logs()
        print(f"cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        app.wait()
    finally:
        app.stop()
        flush_logs()
    return app.exit_code


def cmd_replay(args: argparse.Namespace) -> int:
    from inspector.recipes import load_recipe
    from inspector.replay import replay

    cfg = load_config(args.config)
    configure(cfg.logging.model_copy(update={"per_part": False}))
    recipe_cfg = cfg.recipe(args.recipe or cfg.default_recipe)
    recipe = load_recipe(recipe_cfg)
    try:
        out = sys.stdout if args.out is None else args.out.open("w", encoding="utf-8")
        try:
            confusion = replay(recipe, args.images, args.labels, out)
        finally:
            if out is not sys.stdout:
                out.close()
    finally:
        recipe.close()
    if args.labels is not None:
        print(confusion.table(), file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inspector", description="Visual inspection daemon.")
    parser.add_argument("--version", action="version", version=f"inspector {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the daemon")
    _config_arg(p)
    p.add_argument("--parts", type=int, default=None, help="stop after N parts (internal trigger)")
    p.add_argument("--metrics-port", type=int, default=None, help="override metrics.port")
    p.add_argument(
        "--demo",
        action="store_true",
        help="demo mode: allow the config's demo section (the embedded PLC simulator)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check-config", help="validate a config file; exit 78 on error")
    p.add_argument("file", type=Path)
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("config-schema", help="print the config JSON Schema")
    p.set_defaults(func=cmd_config_schema)

    p = sub.add_parser("replay", help="inspect a folder of images offline")
    _config_arg(p)
    p.add_argument("--images", type=Path, required=True, help="folder of images")
    p.add_argument("--labels", type=Path, default=None, help="labels JSON: scores escapes/overkill")
    p.add_argument("--out", type=Path, default=None, help="JSONL verdicts file (default stdout)")
    p.add_argument("--recipe", type=int, default=None, help="recipe id (default: default_recipe)")
    p.set_defaults(func=cmd_replay)

    for name in COMMANDS.entries:
        COMMANDS.load(name)(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Handler = args.func
    try:
        return func(args)
    except ConfigError as exc:
        print(f"config error:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ModelError as exc:  # per-part ones become NG inside; here: the model does not fit
        print(f"model error:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    except InspectorError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except Exception:  # an internal fault: a traceback, and the code systemd restarts on
        traceback.print_exc()
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
