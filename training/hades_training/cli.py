"""`hades-train`: the training side's command line, one subcommand per job."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from hades_training.config import EXPERIMENT


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
    best = train(
        cfg,
        args.data,
        Path(args.out),
        split=args.split,
        val_data=args.val_data,
        val_split=args.val_split,
        resume=Path(args.resume) if args.resume else None,
        init=Path(args.init) if args.init else None,
    )
    print(f"best checkpoint: {best}")
    if int(os.environ.get("RANK", "0")) == 0:  # one line per run, from the process that logs it
        import torch

        run_id = torch.load(best, map_location="cpu", weights_only=False).get("mlflow_run_id")
        if run_id:
            print(f"mlflow_run_id {run_id}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from hades_training.export import export

    out = export(
        Path(args.checkpoint),
        Path(args.out),
        args.data,
        args.split,
        name=args.name,
        version=args.version,
        int8=args.int8,
        tensorrt=not args.no_tensorrt,
        force=args.force,
        max_items=args.max_items,
        tile=args.tile,
    )
    print(f"bundle: {out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from hades_training.evaluate.report import evaluate, log_evaluation

    out = Path(args.out)
    summary = evaluate(Path(args.model), args.data, args.split, out, max_items=args.max_items, precision=args.precision)
    if not args.no_mlflow:
        try:
            print(f"mlflow_run_id {log_evaluation(summary, out, Path(args.model))}")
        except RuntimeError as exc:
            logging.getLogger("hades-train").warning("evaluation not logged to MLflow: %s", exc)
    seg = ", ".join(f"{c} {v['iou']:.3f}" for c, v in summary["segmentation"].items() if v["iou"] is not None)
    tips = summary["primary_root_tip"]
    print(
        f"IoU: {seg}; primary tip median {tips['median_px']} px, within 1 mm {tips.get('within_1mm')}; "
        f"pixel ECE {summary['calibration']['pixel_ece']}"
    )
    print(f"report: {out / 'report.md'}")
    return 0


def _replay_plants(args: argparse.Namespace) -> int:
    import json

    from hades_training.evaluate.replay import replay_plants

    summary, rows = replay_plants(Path(args.model), args.data, args.split, Path(args.cache), precision=args.precision)
    if args.out:
        Path(args.out).write_text(json.dumps({"plants": summary, "per_plant": rows}, indent=1))
    unflagged = sum(1 for r in rows if not r["hit"] and not r["flagged"])
    hits = sum(r["hit"] for r in rows)
    print(
        f"plants {summary['plants']}: tips within 1 mm, right plant {hits}; "
        f"misses {summary['misses']}, not flagged {unflagged}"
    )
    return 0


def _score(args: argparse.Namespace) -> int:
    """Prediction files (predict, or replay --predictions from a node) against ground truth."""
    import json

    from hades_training.evaluate.scoring import score_folder

    summary = score_folder(Path(args.predictions), Path(args.truth))
    text = json.dumps(summary, indent=1)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    if not summary.get("images"):
        raise ValueError(summary.get("note", "nothing scored"))
    seg = ", ".join(f"{c} {v['iou']:.3f}" for c, v in summary["segmentation"].items() if v["iou"] is not None)
    tips = summary["primary_root_tip"]
    print(f"{summary['images']} images; IoU: {seg}; primary tips within 1 mm: {tips.get('within_radius')}")
    if args.out:
        print(f"scores: {args.out}")
    return 0


def _tune(args: argparse.Namespace) -> int:
    from hades_training.tune import tune

    best = tune(
        args.data,
        Path(args.out),
        args.trials,
        split=args.split,
        val_split=args.val_split,
        config=args.config,
        overrides=args.set,
        study_name=args.study,
        storage=args.storage,
        seed=args.seed,
    )
    print(f"best trial {best['trial']}: score {best['value']:.4f}, params {best['params']}")
    return 0


def _monitor(args: argparse.Namespace) -> int:
    from hades_training.monitor import monitor, summary_line

    doc = monitor(Path(args.reference), Path(args.current), Path(args.out))
    print(summary_line(doc))
    print(f"report: {Path(args.out) / 'drift.html'}; verdict: {Path(args.out) / 'drift.json'}")
    return 0


def _pipeline(args: argparse.Namespace) -> int:
    from hades_training.retrain import Gates, PipelineConfig, run_pipeline

    cfg = PipelineConfig(
        store=args.store or _default_store(),
        model=args.model,
        new_data=args.new_data if "://" in args.new_data else Path(args.new_data),
        gate_data=Path(args.gate_data),
        gate_split=args.gate_split or None,
        out=Path(args.out),
        drift_report=Path(args.drift_report) if args.drift_report else None,
        schedule=args.schedule,
        state=Path(args.state) if args.state else None,
        state_in_store=args.state_in_store,
        overrides=args.set,
        sign_key=Path(args.sign) if args.sign else None,
        gates=Gates(args.iou_margin, args.tip_margin, args.max_pixel_ece),
        min_items=args.min_items,
        dry_run=args.dry_run,
    )
    decision = run_pipeline(cfg)
    print(f"decision: {decision['decision']}")
    for reason in decision["reasons"]:
        print(f"  - {reason}")
    for step in decision.get("plan", []):
        print(f"  would: {step}")
    print(f"record: {cfg.out / 'decision.json'}")
    return 1 if decision["decision"] == "error" else 0


def _default_store() -> str:
    from hades_perception.models.cli import default_store

    return default_store()


def _card(args: argparse.Namespace) -> int:
    from hades_training.card import write_card

    reports = {"normal": Path(args.report)}
    for item in args.also:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--also expects PRESET=metrics.json, got {item!r}")
        reports[name] = Path(path)
    print(f"model card: {write_card(Path(args.model), reports, Path(args.out))}")
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
        help="appearance: a preset (easy, normal, hard, realistic, drift_blur, drift_dark, drift_noise, "
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
    p.add_argument(
        "--init",
        default=None,
        metavar="CHECKPOINT",
        help="fine-tune: start a new run from the weights of a checkpoint or of a model bundle folder (e.g. "
        "models/hades-seedlings; same network shape); the new bundle's lineage records it",
    )
    p.set_defaults(func=_train)

    p = sub.add_parser("export", help="checkpoint -> calibrated, verified, versioned model bundle")
    p.add_argument("--checkpoint", required=True, help="a checkpoint from train (best.pt)")
    p.add_argument("--data", required=True, help="validation data for calibration, metrics and the golden sample")
    p.add_argument("--split", default=None, help="its split (Hades sub-folder, or RootNav valid)")
    p.add_argument("--out", required=True, help="bundle folder to create")
    p.add_argument("--name", default="hades-seedlings", help="model name (default hades-seedlings)")
    p.add_argument("--version", default=None, help="version (default: UTC time, YYYY.MM.DD-HHMMSS)")
    p.add_argument("--int8", action="store_true", help="also write a static int8 variant and measure its cost")
    p.add_argument("--no-tensorrt", action="store_true", help="do not try to build a TensorRT engine")
    p.add_argument("--max-items", type=int, default=8, help="validation items to use (default 8)")
    p.add_argument(
        "--tile", type=int, default=None, help="serving tile for the manifest (default: the training config's)"
    )
    p.add_argument("--force", action="store_true", help="replace an existing bundle folder")
    p.set_defaults(func=_export)

    p = sub.add_parser("evaluate", help="score a bundle on a dataset split through the serving pipeline")
    p.add_argument("--model", required=True, help="model bundle folder")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--split", default=None, help="split (Hades sub-folder, RootNav valid)")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--max-items", type=int, default=None, help="evaluate the first N items only")
    p.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "int8"),
        help="fp32: model.onnx (default); int8: the bundle's int8 variant, what nodes serve where it passed its gate",
    )
    p.add_argument("--no-mlflow", action="store_true", help="do not log the evaluation as an MLflow run")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser(
        "replay-plants", help="the plant step again on cached engine outputs: tips and flags per plant, fast"
    )
    p.add_argument("--model", required=True, help="model bundle folder")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--split", default=None, help="split (Hades sub-folder, RootNav valid)")
    p.add_argument("--cache", required=True, help="folder of this bundle's engine outputs (made on first use)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "int8"), help="as for evaluate")
    p.add_argument("--out", default=None, help="write the summary and the per-plant rows here (JSON)")
    p.set_defaults(func=_replay_plants)

    p = sub.add_parser("score", help="score prediction files (predict, replay --predictions) against ground truth")
    p.add_argument("--predictions", required=True, help="folder of <stem>.json and <stem>_<class>_mask.png")
    p.add_argument("--truth", required=True, help="dataset folder the images came from (Hades or RootNav)")
    p.add_argument("--out", default=None, help="write the scores here (JSON)")
    p.set_defaults(func=_score)

    p = sub.add_parser("tune", help="Optuna study over the training config (sqlite storage, pruning)")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--split", default=None, help="training split")
    p.add_argument("--val-split", default=None, help="validation split")
    p.add_argument("--out", required=True, help="folder for trial runs and best_params.yaml")
    p.add_argument("--trials", type=int, default=10, help="number of trials (default 10)")
    p.add_argument("--config", default=None, help="base config YAML")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a base config value")
    p.add_argument("--study", default=EXPERIMENT, help=f"study name (default {EXPERIMENT})")
    p.add_argument("--storage", default=None, help="Optuna storage URL (default sqlite in $HADES_DATA_DIR)")
    p.add_argument("--seed", type=int, default=0, help="sampler seed")
    p.set_defaults(func=_tune)

    p = sub.add_parser("monitor", help="drift of recent frames against a bundle's reference (drift.json, drift.html)")
    p.add_argument("--reference", required=True, help="model bundle folder (its reference_stats.signals)")
    p.add_argument(
        "--current", required=True, help="folder of images, folder of predict JSONs, or a recorded outputs bag"
    )
    p.add_argument("--out", required=True, help="report folder")
    p.set_defaults(func=_monitor)

    p = sub.add_parser(
        "pipeline",
        help="gated retraining: new data / drift / schedule -> train, evaluate, gates -> canary (never production)",
    )
    p.add_argument("--store", default=None, help="model store URL (default as hades-model: $HADES_MODEL_STORE, ...)")
    p.add_argument("--model", default="hades-seedlings", help="model name in the store")
    p.add_argument(
        "--new-data",
        required=True,
        help="labelled data (Hades layout: train/ [val/], or flat): a folder or a blob prefix (azure://C/P)",
    )
    p.add_argument("--gate-data", required=True, help="the fixed gate set every candidate is compared on")
    p.add_argument("--gate-split", default="test", help="split of the gate set (default test; '' for a flat folder)")
    p.add_argument("--out", required=True, help="work folder: run, candidate, evaluations, decision.json")
    p.add_argument("--drift-report", default=None, help="drift.json from hades-train monitor: drift triggers a run")
    p.add_argument("--schedule", action="store_true", help="a scheduled run: go ahead even without new data or drift")
    p.add_argument("--state", default=None, help="what data was seen (default OUT/../pipeline-state.json)")
    p.add_argument(
        "--state-in-store",
        action="store_true",
        help="keep what data was seen in the model store (<model>/pipeline/state.json) instead: for cloud jobs",
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override the production config")
    p.add_argument("--sign", default=None, metavar="PREFIX.key", help="sign the candidate with this ed25519 key")
    p.add_argument("--iou-margin", type=float, default=0.01, help="a class IoU may be this much lower (default 0.01)")
    p.add_argument("--tip-margin", type=float, default=0.0, help="tips within 1 mm may be this much lower (default 0)")
    p.add_argument("--max-pixel-ece", type=float, default=0.02, help="per-pixel ECE bound (default 0.02)")
    p.add_argument("--min-items", type=int, default=2, help="accepted items needed to train (default 2)")
    p.add_argument("--dry-run", action="store_true", help="trigger and validate, then print the plan; change nothing")
    p.set_defaults(func=_pipeline)

    p = sub.add_parser("card", help="write a model card from a bundle and a test evaluation")
    p.add_argument("--model", required=True, help="model bundle folder")
    p.add_argument("--report", required=True, help="metrics.json from evaluate on a test split")
    p.add_argument(
        "--also", action="append", default=[], metavar="PRESET=metrics.json", help="another test split, e.g. realistic="
    )
    p.add_argument("--out", required=True, help="where to write the card (Markdown)")
    p.set_defaults(func=_card)

    from hades_training.azure_job import add_azure_parser

    add_azure_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as exc:
        logging.getLogger("hades-train").error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
