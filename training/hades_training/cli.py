"""`hades-train`: the training side's command line, one subcommand per job."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def _synth(args: argparse.Namespace) -> int:
    from hades_training.synth.generate import generate

    generate(
        Path(args.out),
        args.count,
        args.seed,
        args.difficulty,
        args.split,
        args.width,
        args.height,
        workers=args.workers,
    )
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from hades_training.data import open_dataset
    from hades_training.data.preview import write_preview

    ds = open_dataset(args.data, args.split, skip_bad=args.skip_bad)
    n = len(ds) if args.limit is None else min(args.limit, len(ds))
    md = write_preview([ds[i] for i in range(n)], Path(args.out))
    print(f"preview of {n} item(s) of {args.data}: {md}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from hades_training.config import load_config
    from hades_training.train import train

    cfg = load_config(args.config, args.set)
    best = train(cfg, args.data, Path(args.out), split=args.split, val_data=args.val_data, val_split=args.val_split,
                 resume=Path(args.resume) if args.resume else None)
    print(f"best checkpoint: {best}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hades-train", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="generate synthetic Hades plates with exact ground truth")
    p.add_argument("--out", required=True, help="output folder (Hades dataset layout)")
    p.add_argument("--count", type=int, default=10, help="number of plates (default 10)")
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed, same plates")
    p.add_argument(
        "--split", default=None, help="write into OUT/SPLIT with stems prefixed by it, e.g. train, val, test"
    )
    p.add_argument(
        "--difficulty",
        default="normal",
        help="appearance: a preset (easy, normal, hard, drift_blur, drift_dark, drift_noise, "
        "drift_condensation, drift_illumination) or a number 0-1 (easy..hard)",
    )
    p.add_argument("--width", type=int, default=4202, help="image width (default: Hades 4202)")
    p.add_argument("--height", type=int, default=3006, help="image height (default: Hades 3006)")
    p.add_argument(
        "--workers", type=int, default=min(2, os.cpu_count() or 1), help="parallel processes (default: up to 2)"
    )
    p.set_defaults(func=_synth)

    p = sub.add_parser("inspect", help="overlay pictures and figures of a dataset (Hades or RootNav folder)")
    p.add_argument("data", help="dataset folder")
    p.add_argument("--split", default=None, help="sub-folder (Hades) or split name (RootNav: train, valid)")
    p.add_argument("--out", required=True, help="where to write dataset.md, dataset.json and overlays/")
    p.add_argument("--limit", type=int, default=None, help="look at the first N items only")
    p.add_argument("--skip-bad", action="store_true", help="leave out unreadable items instead of failing")
    p.set_defaults(func=_inspect)

    p = sub.add_parser("train", help="train a model; every run is an MLflow run")
    p.add_argument("--data", required=True, help="dataset folder (Hades or RootNav)")
    p.add_argument("--split", default=None, help="training split (Hades: sub-folder; RootNav: train)")
    p.add_argument("--val-data", default=None, help="validation dataset folder (default: --data)")
    p.add_argument("--val-split", default=None, help="validation split (default: val, or valid for RootNav)")
    p.add_argument("--out", required=True, help="run folder: checkpoints/ and config.json")
    p.add_argument("--config", default=None, help="YAML file of config values (see hades_training/config.py)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one config value")
    p.add_argument("--resume", default=None, help="continue from a checkpoint (its MLflow run continues too)")
    p.set_defaults(func=_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        logging.getLogger("hades-train").error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
