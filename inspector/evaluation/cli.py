"""``inspector eval``: the subcommand (registered in ``cli.COMMANDS``); the work is in
``evaluation.run``. Beside the flow, like ``replay``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from inspector.config import DEFAULT_CONFIG_PATH, load_config
from inspector.evaluation import CHOICES
from inspector.logging import configure


def cmd_eval(args: argparse.Namespace) -> int:
    from inspector.evaluation import labels, run
    from inspector.recipes import load_recipe

    cfg = load_config(args.config)
    configure(cfg.logging.model_copy(update={"per_part": False}))
    truth = labels.read_truth(args.images, args.labels)
    recipe = load_recipe(cfg.recipe(args.recipe or cfg.default_recipe), warmup_runs=1)
    try:
        ev = run.evaluate(recipe, args.images, truth, progress=not args.no_progress)
        run.report(ev, sys.stdout)
        if args.raw is not None:
            run.write_raw(ev, args.raw)
        if args.plot is not None:
            title = f"{recipe.cfg.name}: {len(ev.names)} parts of {args.images.name}"
            run.plot(ev, args.plot, title)
            print(f"plot: {args.plot}")
        if args.write_recipe is not None:
            run.write_recipe(run.chosen_recipe(recipe, ev, args.choose), args.write_recipe)
            print(f"recipe with thresholds at '{CHOICES[args.choose]}': {args.write_recipe}")
    finally:
        recipe.close()
    return 0


def register_cli(sub: Any) -> None:
    """Add ``eval`` to the ``inspector`` command's subparsers."""
    p = sub.add_parser("eval", help="score a recipe on labelled images and sweep thresholds")
    p.add_argument(
        "-c",
        "--config",
        type=Path,
        default=None,
        help=f"config file (default: {DEFAULT_CONFIG_PATH.name} of the install)",
    )
    p.add_argument("--images", type=Path, required=True, help="folder of images")
    p.add_argument(
        "--labels",
        type=Path,
        default=None,
        help="labels JSON file, or a folder of Ultralytics txt labels "
        "(default: the labels/ folder beside images/)",
    )
    p.add_argument("--recipe", type=int, default=None, help="recipe id (default: default_recipe)")
    p.add_argument("--plot", type=Path, default=None, help="PNG of escape/overkill vs threshold")
    p.add_argument("--raw", type=Path, default=None, help="JSONL of every kept finding")
    p.add_argument("--write-recipe", type=Path, default=None, help="YAML recipe with thresholds")
    p.add_argument(
        "--choose",
        choices=sorted(CHOICES),
        default="zero-escape",
        help="operating point for --write-recipe: "
        + "; ".join(f"{k}: {v}" for k, v in CHOICES.items()),
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)
